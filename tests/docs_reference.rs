//! The reference in `docs/` cannot drift from the code:
//!
//! - every error `code` the server can answer (found in the source, where
//!   `ApiError`s are made) is in `docs/ERRORS.md` with its status, and on the
//!   in-product docs page (`ERROR_CODES`), and nothing documented is stale;
//! - every option of `latchkey serve` (clap's own list) is in
//!   `docs/CONFIGURATION.md` with its environment variable and config key;
//! - every command and flag of the CLI is in `docs/CLI.md`;
//! - `--help` has no blank description anywhere, and the global options are
//!   listed once under their own heading, apart from each command's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use latchkey::cli::Cli;
use latchkey::http::web::docs::ERROR_CODES;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn status_number(name: &str) -> u16 {
    match name {
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "CONFLICT" => 409,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "UNPROCESSABLE_ENTITY" => 422,
        "TOO_MANY_REQUESTS" => 429,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        other => panic!("StatusCode::{other}: add its number to this test's table"),
    }
}

/// The first string literal of `s` (after whitespace), if `s` starts with one.
fn leading_literal(s: &str) -> Option<&str> {
    let s = s.trim_start().strip_prefix('"')?;
    s.find('"').map(|end| &s[..end])
}

/// Every `(code, status)` the source makes: `ApiError::new(StatusCode::X,
/// "code", …)` and `ApiError::unauthorized("code", …)` (always 401).
fn codes_in_source() -> BTreeMap<String, u16> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (pos, _) in text.match_indices("ApiError::new(") {
            let rest = text[pos + "ApiError::new(".len()..].trim_start();
            let Some(after) = rest.strip_prefix("StatusCode::") else {
                continue;
            };
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            let after_name = after[name.len()..].trim_start();
            let Some(args) = after_name.strip_prefix(',') else {
                continue;
            };
            if let Some(code) = leading_literal(args) {
                found.insert(code.to_owned(), status_number(&name));
            }
        }
        for (pos, _) in text.match_indices("unauthorized(") {
            if let Some(code) = leading_literal(&text[pos + "unauthorized(".len()..]) {
                found.insert(code.to_owned(), 401);
            }
        }
    }
    found
}

/// The `### code` sections of docs/ERRORS.md, with their text.
fn documented_errors() -> BTreeMap<String, String> {
    let text = read("docs/ERRORS.md");
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            if let Some((code, body)) = current.take() {
                out.insert(code, body);
            }
            if let Some(code) = line.strip_prefix("### ") {
                current = Some((code.trim().to_owned(), String::new()));
            }
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((code, body)) = current {
        out.insert(code, body);
    }
    out
}

#[test]
fn every_error_code_the_server_answers_is_documented_with_its_status() {
    let source = codes_in_source();
    assert!(
        source.len() >= 15 && source.contains_key("missing_key") && source.contains_key("conflict"),
        "the source scan found only {source:?}"
    );
    let docs = documented_errors();
    let page: BTreeMap<&str, u16> = ERROR_CODES.iter().map(|(c, s, _)| (*c, *s)).collect();
    let mut problems = Vec::new();
    for (code, status) in &source {
        match docs.get(code) {
            None => problems.push(format!("docs/ERRORS.md has no `### {code}` section")),
            Some(body) => {
                if !body.contains(&format!("**Status {status}.**")) {
                    problems.push(format!(
                        "docs/ERRORS.md `{code}` does not say **Status {status}.**"
                    ));
                }
                if !body.contains("Fix:") {
                    problems.push(format!("docs/ERRORS.md `{code}` says no `Fix:`"));
                }
            }
        }
        if page.get(code.as_str()) != Some(status) {
            problems.push(format!(
                "the docs page (ERROR_CODES in src/http/web/docs.rs) lacks `{code}` with {status}"
            ));
        }
        let row = format!("| {status} | [{code}](#{code}) |");
        if !read("docs/ERRORS.md").contains(&row) {
            problems.push(format!("docs/ERRORS.md's table lacks the row `{row}`"));
        }
    }
    for code in docs.keys() {
        if !source.contains_key(code) {
            problems.push(format!(
                "docs/ERRORS.md documents `{code}`, which the server never answers"
            ));
        }
    }
    for code in page.keys() {
        if !source.contains_key(*code) {
            problems.push(format!(
                "the docs page lists `{code}`, which the server never answers"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn flag_of(arg: &clap::Arg) -> Option<String> {
    arg.get_long().map(|l| format!("--{l}"))
}

fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn built() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

#[test]
fn every_serve_option_is_documented_with_its_environment_variable_and_config_key() {
    let cmd = built();
    let serve = cmd
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .expect("serve");
    let doc = read("docs/CONFIGURATION.md");
    let readme = read("README.md");
    let mut problems = Vec::new();
    let mut seen = 0;
    for arg in serve.get_arguments().filter(|a| !is_builtin(a)) {
        let Some(flag) = flag_of(arg) else { continue };
        seen += 1;
        let name = &flag[2..];
        let env = format!("LATCHKEY_{}", name.to_uppercase().replace('-', "_"));
        let key = format!("`{}`", name.replace('-', "_"));
        // The table row of this flag names all three.
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{flag}")))
            .unwrap_or("");
        if row.is_empty() {
            problems.push(format!(
                "docs/CONFIGURATION.md has no table row for `{flag}`"
            ));
            continue;
        }
        if !row.contains(&env) {
            problems.push(format!("the row of {flag} does not name {env}"));
        }
        if name != "config" && !row.contains(&key) {
            problems.push(format!(
                "the row of {flag} does not name the config key {key}"
            ));
        }
        if !readme.contains(&flag) {
            problems.push(format!("README.md does not mention {flag}"));
        }
    }
    assert!(seen >= 14, "only {seen} serve options found");
    for must in [
        "GBP",
        "LATCHKEY_SECRET",
        "LATCHKEY_LOG",
        "2026-12-01T00:00:00Z",
    ] {
        if !doc.contains(must) {
            problems.push(format!("docs/CONFIGURATION.md does not mention {must}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `(path, command)` for every leaf command: `("keys create", …)`.
fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = if prefix.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{prefix} {}", sub.get_name())
        };
        if sub.has_subcommands() {
            leaves(sub, &path, out);
        } else {
            out.push((path, sub.clone()));
        }
    }
}

#[test]
fn every_command_and_flag_is_in_the_cli_reference() {
    let cmd = built();
    let doc = read("docs/CLI.md");
    let mut all = Vec::new();
    leaves(&cmd, "", &mut all);
    assert!(all.len() >= 14, "{} commands", all.len());
    let mut problems = Vec::new();
    for (path, sub) in &all {
        if !doc.contains(&format!("latchkey {path}")) {
            problems.push(format!("docs/CLI.md never shows `latchkey {path}`"));
        }
        if path == "serve" {
            continue; // its options: docs/CONFIGURATION.md, checked above
        }
        for arg in sub
            .get_arguments()
            .filter(|a| !is_builtin(a) && !a.is_global_set())
        {
            if let Some(flag) = flag_of(arg)
                && !doc.contains(&flag)
            {
                problems.push(format!("docs/CLI.md never mentions `{path} {flag}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.to_owned(), cmd.clone()));
    // clap's own `help` subcommands are not ours to describe.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        walk(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn help_describes_every_command_and_argument_and_lists_global_options_once_apart() {
    let cmd = built();
    let mut all = Vec::new();
    walk(&cmd, "latchkey", &mut all);
    let mut problems = Vec::new();
    for (path, c) in &all {
        if c.get_about()
            .is_none_or(|a| a.to_string().trim().is_empty())
        {
            problems.push(format!("`{path}` has no description"));
        }
        for arg in c.get_arguments().filter(|a| !is_builtin(a)) {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if help.trim().is_empty() {
                let name = flag_of(arg).unwrap_or_else(|| format!("<{}>", arg.get_id()));
                problems.push(format!("`{path} {name}` has no help text"));
            }
            if arg.is_global_set() && arg.get_help_heading() != Some("Global options") {
                problems.push(format!(
                    "`{path} --{}` is global but not under the `Global options` heading",
                    arg.get_id()
                ));
            }
        }
        // What a user sees: the global options once, under their heading,
        // after the command's own.
        let help = c.clone().render_help().to_string();
        let Some(heading) = help.find("Global options:") else {
            problems.push(format!("`{path} --help` has no `Global options:` section"));
            continue;
        };
        for global in ["--data-dir", "--database-url", "--config", "--secret-file"] {
            let count = help.matches(&format!("{global} ")).count();
            let at = help.find(&format!("{global} "));
            if count != 1 || at.is_none_or(|a| a < heading) {
                problems.push(format!(
                    "`{path} --help` shows {global} {count} time(s), not once under Global options"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
