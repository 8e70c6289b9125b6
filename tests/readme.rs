//! The README works as written, and the documented `--json` shapes are real.
//!
//! - The tour: every fenced `sh` block under "A five-minute tour" is run, in
//!   order, by one `bash -euo pipefail` against a real `latchkey serve` in a
//!   temporary directory, with the built binary as `latchkey` on `PATH` and
//!   the server's real address in place of `127.0.0.1:8080`. Each block must
//!   exit 0, and what it prints is checked against what the README says it
//!   prints. The README's own `jq -e` paths (`.shops[0].id`, `.key.secret`,
//!   `.key.id`, `.order.id`) fail the run when the shape is wrong.
//! - Every other `sh` block of the README is listed here with the suite that
//!   covers it instead (a new command in the README must be added to one or
//!   the other).
//! - The `--json` examples of docs/CLI.md and docs/LEGACY.md: every member
//!   they show exists in the real output of the command.
//!
//! Needs `bash`, `curl` and `jq` (scripts/test.sh installs them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const TOUR: &str = "A five-minute tour";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Fenced blocks of `lang`, each with the `## `/`### ` heading it sits under
/// (a list item's indentation removed). Any fence opens a block of its
/// language and the next fence closes it.
fn blocks(text: &str, lang: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(String, usize, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some((l, i, body)) = open.as_mut() {
            if trimmed.starts_with("```") {
                if l == lang {
                    out.push((heading.clone(), std::mem::take(body)));
                }
                open = None;
            } else {
                let cut = (*i).min(indent);
                body.push_str(&line[cut..]);
                body.push('\n');
            }
            continue;
        }
        if let Some(h) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            heading = h.trim().to_owned();
        } else if let Some(l) = trimmed.strip_prefix("```") {
            open = Some((l.trim().to_owned(), indent, String::new()));
        }
    }
    out
}

/// README blocks not run by the tour, with what covers them.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "cargo install --path .",
        "this suite runs the binary cargo built",
    ),
    (
        "latchkey serve\n",
        "this suite starts it (tests/cli.rs too)",
    ),
    ("scripts/test.sh", "the test command itself"),
    (
        "latchkey serve --database-url postgres://",
        "tests/cli.rs and the HTTP suites on PostgreSQL (scripts/test.sh pass 2); tests/redis_limits.rs",
    ),
    ("scripts/cluster.sh", "tests/cluster_script.rs"),
    ("latchkey db copy", "tests/db_copy.rs"),
    (
        "cargo bench",
        "the benchmarks (docs/BENCHMARKS.md), not tests",
    ),
];

#[test]
fn every_readme_command_is_run_by_the_tour_or_covered_by_a_named_suite() {
    let readme = read("README.md");
    let all = blocks(&readme, "sh");
    let tour: Vec<&String> = all
        .iter()
        .filter(|(h, _)| h == TOUR)
        .map(|(_, b)| b)
        .collect();
    assert!(tour.len() >= 8, "only {} sh blocks in the tour", tour.len());
    let mut used = vec![false; COVERED_ELSEWHERE.len()];
    let mut problems = Vec::new();
    for (heading, body) in all.iter().filter(|(h, _)| h != TOUR) {
        match COVERED_ELSEWHERE
            .iter()
            .position(|(start, _)| body.starts_with(start))
        {
            Some(i) => used[i] = true,
            None => problems.push(format!(
                "README section `{heading}`: this command is neither in the tour nor listed in COVERED_ELSEWHERE:\n{body}"
            )),
        }
    }
    for (i, (start, _)) in COVERED_ELSEWHERE.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "COVERED_ELSEWHERE lists `{start}`, which the README no longer shows"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // Every command is literally runnable: no `<placeholder>` and no
    // `cargo run` spelled differently from the install the README describes.
    for (heading, body) in &all {
        assert!(
            !body.contains('<') || body.contains("<<"),
            "README section `{heading}` has a placeholder: {body}"
        );
        // `export X=$(cmd)` exits 0 whatever cmd does, hiding a failed step.
        assert!(
            !body
                .lines()
                .any(|l| l.trim_start().starts_with("export ") && l.contains("=$(")),
            "README section `{heading}`: write `X=$(…)`, not `export X=$(…)`, so a failure shows: {body}"
        );
    }
}

fn require_tools() {
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "the README tour needs `{tool}` on PATH (apt-get install {tool}; scripts/test.sh installs it)"
        );
    }
}

/// A clean environment: no `LATCHKEY_*` from the user's shell.
fn clean(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null())
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// `latchkey serve --listen 127.0.0.1:0` in `cwd` (so on `./latchkey-data`,
    /// as the README runs it); waits for its `listening on` line.
    fn start(cwd: &Path) -> Server {
        let mut child = clean(&mut Command::new(BIN))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(cwd)
            .env("LATCHKEY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    sent = tx.send(url).is_ok();
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve logs `listening on http://…`");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every JSON value in `text`, one after another (curl prints answers without
/// a newline between them); other lines are skipped.
fn json_values(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let mut stream = serde_json::Deserializer::from_str(&rest[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let used = stream.byte_offset();
                out.push(v);
                rest = &rest[start + used..];
            }
            _ => rest = &rest[start + 1..],
        }
    }
    out
}

#[test]
fn the_readme_tour_runs_as_written_and_prints_what_the_readme_says() {
    require_tools();
    let readme = read("README.md");
    let tour: Vec<String> = blocks(&readme, "sh")
        .into_iter()
        .filter(|(h, _)| h == TOUR)
        .map(|(_, b)| b)
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.join("latchkey")).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let server = Server::start(&work);

    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in tour.iter().enumerate() {
        let block = block.replace("http://127.0.0.1:8080", &server.url);
        script.push_str(&format!(
            "echo '@@block {i}'\n{block}\necho\necho '@@end {i}'\n"
        ));
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = clean(&mut Command::new("bash"))
        .args(["-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let output_of = |i: usize| -> Option<String> {
        let start = stdout.find(&format!("@@block {i}\n"))? + format!("@@block {i}\n").len();
        let end = stdout.find(&format!("@@end {i}\n"))?;
        Some(stdout[start..end].to_owned())
    };
    if !out.status.success() {
        let failed = (0..tour.len())
            .find(|i| output_of(*i).is_none())
            .unwrap_or(tour.len());
        panic!(
            "README tour block {failed} failed ({}):\n{}\n--- its output:\n{}\n--- stderr:\n{stderr}",
            out.status,
            tour.get(failed).map_or("", String::as_str),
            stdout
                .rsplit(&format!("@@block {failed}\n"))
                .next()
                .unwrap_or("")
        );
    }

    // What each step prints, as the README describes it.
    let mut checked = 0;
    for (i, block) in tour.iter().enumerate() {
        let output = output_of(i).unwrap();
        let values = json_values(&output);
        let what = format!("tour block {i}:\n{block}\n--- printed:\n{output}");
        if block.contains("shop create") {
            assert!(
                output.contains("shop_id:") && output.contains("password:"),
                "{what}"
            );
            checked += 1;
        } else if block.contains("keys revoke") {
            assert!(output.contains("revoked"), "{what}");
            checked += 1;
        } else if block.contains("/api/v1/orders -H") {
            assert_eq!(values.len(), 1, "{what}");
            assert_eq!(values[0]["order"]["reference"], "RM-10001", "{what}");
            assert_eq!(values[0]["order"]["currency"], "GBP", "{what}");
            checked += 1;
        } else if block.contains("/devices") {
            assert_eq!(values.len(), 2, "{what}");
            assert_eq!(values[0]["device"]["imei"], "490154203237518", "{what}");
            assert_eq!(
                values[1]["devices"].as_array().map(Vec::len),
                Some(1),
                "{what}"
            );
            checked += 1;
        } else if block.contains("/api/v1/keys ") {
            assert_eq!(values[0]["code"], "insufficient_permission", "{what}");
            assert_eq!(values[0]["required_permission"], "keys:read", "{what}");
            checked += 1;
        } else if block.contains("sleep 1") {
            // The README shows the answer as a comment: each member it shows
            // is in the real answer.
            let shown = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("# "))
                .expect("the README shows the answer");
            assert_eq!(values.len(), 1, "{what}");
            let real = &values[0];
            let mut members = 0;
            for piece in shown.trim_matches(['{', '}']).split(',') {
                if piece.contains('…') {
                    continue;
                }
                let member: Value = serde_json::from_str(&format!("{{{piece}}}"))
                    .unwrap_or_else(|e| panic!("README shows `{piece}` ({e})"));
                for (k, v) in member.as_object().unwrap() {
                    assert_eq!(&real[k], v, "{what}");
                    members += 1;
                }
            }
            assert!(members >= 4, "{shown}");
            assert_eq!(real["code"], "revoked_key", "{what}");
            checked += 1;
        } else if block.contains("/api/v1/me") {
            if block.contains("lk_live_typo") {
                let codes: Vec<&Value> = values.iter().map(|v| &v["code"]).collect();
                assert_eq!(codes, ["missing_key", "malformed_key"], "{what}");
            } else {
                assert_eq!(values.len(), 1, "{what}");
                assert_eq!(values[0]["shop"]["name"], "Fix-It Phones", "{what}");
                assert_eq!(values[0]["key"]["name"], "Front desk app", "{what}");
                assert!(
                    values[0]["key"]["permissions"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|x| x == "orders:read")),
                    "{what}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} tour blocks were checked");

    // `shop list`, as the README says, finds the shop the tour made.
    let list = clean(&mut Command::new(BIN))
        .args(["shop", "list"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("Fix-It Phones"));
}

/// Every member `documented` shows (objects recursively, arrays by their first
/// element; `…` stands for "more") exists in `real`.
fn missing_members(documented: &Value, real: &Value, path: &str, out: &mut Vec<String>) {
    match (documented, real) {
        (Value::Object(doc), Value::Object(got)) => {
            for (k, v) in doc {
                if k == "…" {
                    continue;
                }
                let p = format!("{path}.{k}");
                match got.get(k) {
                    None => out.push(format!("{p} is documented but absent")),
                    Some(r) => missing_members(v, r, &p, out),
                }
            }
        }
        (Value::Array(doc), Value::Array(got)) => {
            if let (Some(d), Some(r)) = (doc.first(), got.first()) {
                missing_members(d, r, &format!("{path}[0]"), out);
            } else if !doc.is_empty() {
                out.push(format!("{path} is documented with items but is empty"));
            }
        }
        (Value::Object(_) | Value::Array(_), other) => {
            out.push(format!(
                "{path} is documented as a container but is {other}"
            ));
        }
        _ => {}
    }
}

/// The first ```json block after the heading `heading` in `doc`.
fn documented_json(doc: &str, heading: &str) -> Value {
    let text = read(doc);
    let block = blocks(&text, "json")
        .into_iter()
        .find(|(h, _)| h == heading)
        .unwrap_or_else(|| panic!("{doc} has no json block under `{heading}`"))
        .1;
    serde_json::from_str(&block).unwrap_or_else(|e| panic!("{doc} `{heading}`: {e}\n{block}"))
}

#[test]
fn the_json_shapes_of_the_cli_reference_are_the_real_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let out = clean(&mut Command::new(BIN))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "latchkey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("latchkey {args:?}: not JSON ({e})"))
    };
    let shop = run(
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "owner@fixit.example",
            "--json",
        ],
        &[],
    );
    let shop_id = shop["shop_id"].as_str().unwrap().to_owned();
    let key = run(
        &[
            "keys",
            "create",
            "--shop",
            &shop_id,
            "--template",
            "zapier",
            "--json",
        ],
        &[],
    );
    let csv = dir.join("keys.csv");
    std::fs::write(&csv, "key,name\nold-website-key-3f9a8c7d2b1e,Old website\n").unwrap();
    let legacy = run(
        &[
            "legacy",
            "import",
            "--shop",
            &shop_id,
            "--file",
            csv.to_str().unwrap(),
            "--json",
        ],
        &[("LATCHKEY_LEGACY_SUNSET", "2026-01-01T00:00:00Z")],
    );
    let cases: Vec<(&str, &str, Value)> = vec![
        ("docs/CLI.md", "shop create", shop),
        (
            "docs/CLI.md",
            "shop list",
            run(&["shop", "list", "--json"], &[]),
        ),
        ("docs/CLI.md", "keys create", key),
        (
            "docs/CLI.md",
            "users reset-password",
            run(
                &[
                    "users",
                    "reset-password",
                    "--email",
                    "owner@fixit.example",
                    "--json",
                ],
                &[],
            ),
        ),
        (
            "docs/CLI.md",
            "db copy",
            run(
                &[
                    "db",
                    "copy",
                    "--from",
                    "sqlite://latchkey-data/latchkey.db",
                    "--to",
                    &format!("sqlite://{}", dir.join("copy.db").display()),
                    "--json",
                ],
                &[],
            ),
        ),
        ("docs/LEGACY.md", "1. Import them", legacy),
    ];
    let mut problems = Vec::new();
    for (doc, heading, real) in &cases {
        let documented = documented_json(doc, heading);
        let mut missing = Vec::new();
        missing_members(&documented, real, "", &mut missing);
        for m in missing {
            problems.push(format!("{doc} `{heading}`: {m}\nreal: {real}"));
        }
    }
    // The shapes given inline in docs/CLI.md.
    let key_id = cases[2].2["key"]["id"].as_str().unwrap().to_owned();
    let list = run(&["keys", "list", "--shop", &shop_id, "--json"], &[]);
    assert!(list["keys"][0]["id"].is_string() && list["keys"][0].get("secret").is_none());
    let shown = run(&["keys", "show", &key_id, "--json"], &[]);
    assert_eq!(shown["key"]["id"], key_id.as_str());
    let revoked = run(&["keys", "revoke", &key_id, "--json"], &[]);
    assert_eq!(revoked["key"]["status"], "revoked");
    let reset = run(&["test-data", "reset", "--shop", &shop_id, "--json"], &[]);
    assert!(reset["test_data"]["orders"].as_u64().is_some_and(|n| n > 0));
    let deleted = run(&["keys", "delete", &key_id, "--json"], &[]);
    assert_eq!(deleted, serde_json::json!({"deleted": key_id}));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
