//! The repository documents itself: every relative link in a Markdown file or
//! a page template points at a file of the repository that exists (and, with
//! `#anchor`, at a heading of it), never outside the repository, and no file
//! a user reads names documents the repository does not carry.
//!
//! Runs on the source tree only (no build of the server, no network).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directories that are not part of the repository's content.
const SKIP_DIRS: &[&str] = &[
    "target",
    ".git",
    "test-output",
    "latchkey-data",
    "node_modules",
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if SKIP_DIRS.contains(&name.as_str()) {
                continue;
            }
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn files_with(exts: &[&str]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(&root(), &mut all);
    let mut found: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    found.sort();
    found
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Link targets of a Markdown text: `[text](target)`, `![alt](target)`,
/// `[ref]: target` and HTML `href="…"`/`src="…"`; code spans and fenced
/// blocks are skipped (they show commands, not links).
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans.
        let mut prose = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                prose.push_str(part);
            }
        }
        if let Some(rest) = prose.trim_start().strip_prefix('[')
            && let Some((_, target)) = rest.split_once("]:")
        {
            if let Some(t) = target.split_whitespace().next() {
                out.push(t.to_owned());
            }
            continue;
        }
        let bytes = prose.as_bytes();
        let mut i = 0;
        while let Some(pos) = prose[i..].find("](") {
            let start = i + pos + 2;
            let mut depth = 0;
            let mut end = start;
            while end < bytes.len() {
                match bytes[end] {
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    _ => {}
                }
                end += 1;
            }
            let inner = &prose[start..end];
            let target = inner.split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            out.push(target.to_owned());
            i = end.min(prose.len());
        }
        out.extend(html_links(&prose));
    }
    out
}

fn html_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = text;
        while let Some(pos) = rest.find(attr) {
            rest = &rest[pos + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| target.starts_with(p))
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and
/// `_` dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(h) = line.strip_prefix('#') {
            let h = h.trim_start_matches('#');
            let h: String = h.chars().filter(|c| *c != '`' && *c != '*').collect();
            let s = slug(&h);
            // Repeated headings get -1, -2, … on GitHub.
            let mut candidate = s.clone();
            let mut n = 0;
            while out.contains(&candidate) {
                n += 1;
                candidate = format!("{s}-{n}");
            }
            out.insert(candidate);
        }
        for marker in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(pos) = rest.find(marker) {
                rest = &rest[pos + marker.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_owned());
                }
            }
        }
    }
    out
}

/// Resolves `target` (relative to `from`'s directory) lexically; `None` when
/// it climbs out of the repository.
fn resolve(from: &Path, target: &str) -> Option<PathBuf> {
    let base = from.parent().unwrap_or(Path::new(""));
    let rel_base = base.strip_prefix(root()).ok()?.to_path_buf();
    let mut parts: Vec<String> = rel_base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().fold(root(), |acc, p| acc.join(p)))
}

/// Problems with one link of `file`, or `None` when it is fine.
fn check_markdown_link(file: &Path, target: &str) -> Option<String> {
    if target.is_empty() || is_external(target) {
        return None;
    }
    if target.starts_with('/') {
        return Some(format!(
            "`{target}` is an absolute path: link to a file of the repository relatively"
        ));
    }
    let (path_part, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let target_file = if path_part.is_empty() {
        file.to_path_buf()
    } else {
        match resolve(file, path_part) {
            Some(p) => p,
            None => return Some(format!("`{target}` points outside the repository")),
        }
    };
    if !target_file.exists() {
        return Some(format!(
            "`{target}` names {}, which does not exist",
            rel(&target_file)
        ));
    }
    if let Some(anchor) = anchor
        && target_file.extension().is_some_and(|e| e == "md")
    {
        let text = std::fs::read_to_string(&target_file).unwrap_or_default();
        if !anchors_of(&text).contains(anchor) {
            return Some(format!(
                "`{target}`: {} has no heading with the anchor `#{anchor}`",
                rel(&target_file)
            ));
        }
    }
    None
}

#[test]
fn every_relative_link_in_the_markdown_files_names_a_file_and_heading_of_the_repository() {
    let files = files_with(&["md"]);
    assert!(
        files.iter().any(|f| rel(f) == "README.md"),
        "the walk found README.md"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in markdown_links(&text) {
            checked += 1;
            if let Some(p) = check_markdown_link(file, &target) {
                problems.push(format!("{}: {p}", rel(file)));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} links found: the scan is broken"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn templates_link_only_to_pages_of_the_site_or_to_other_sites() {
    let files: Vec<PathBuf> = files_with(&["html", "svg"])
        .into_iter()
        .filter(|f| rel(f).starts_with("templates/"))
        .collect();
    assert!(!files.is_empty());
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in html_links(&text) {
            let fine = target.starts_with('/') && !target.starts_with("//")
                || target.starts_with('#')
                || target.starts_with("{{")
                || target.starts_with("{%")
                || target.starts_with("data:")
                || is_external(&target);
            if !fine {
                problems.push(format!(
                    "{}: `{target}` is relative to the page's URL; link to a path of the site",
                    rel(file)
                ));
            }
            if target.contains("/work/") || target.contains("../") {
                problems.push(format!("{}: `{target}` points outside the site", rel(file)));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn nothing_a_user_reads_names_documents_the_repository_does_not_carry() {
    // Built from pieces so this file does not match itself.
    let outside = [
        format!("../{}", "shared"),
        format!("/work/{}", "shared"),
        format!("{}.md", "SPEC"),
        format!("{}.md", "DESIGN"),
        format!("{}.md", "STYLE"),
    ];
    let mut files = files_with(&[
        "md", "html", "svg", "rs", "sh", "toml", "css", "js", "lua", "py", "cfg", "conf",
    ]);
    files.push(root().join(".ci/run"));
    let mut problems = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for needle in &outside {
                if line.contains(needle.as_str()) {
                    problems.push(format!("{}:{}: names `{needle}`", rel(&file), n + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "these point at documents a clone of the repository does not have; \
         point at docs/ instead:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_checker_catches_what_it_must() {
    let readme = root().join("README.md");
    assert!(check_markdown_link(&readme, "docs/DEPLOY.md").is_none());
    assert!(check_markdown_link(&readme, "#a-five-minute-tour").is_none());
    assert!(check_markdown_link(&readme, &format!("../{}/x.md", "shared")).is_some());
    assert!(check_markdown_link(&readme, "docs/NOPE.md").is_some());
    assert!(check_markdown_link(&readme, "#no-such-heading").is_some());
    assert!(check_markdown_link(&readme, "/etc/passwd").is_some());
    assert_eq!(
        markdown_links("see [a](b.md#c) and `[x](y)` ![i](p.png \"t\")"),
        ["b.md#c", "p.png"]
    );
    assert_eq!(slug("Running on PostgreSQL"), "running-on-postgresql");
    assert_eq!(
        slug("`--json` output: shapes (v3)"),
        "--json-output-shapes-v3"
    );
}
