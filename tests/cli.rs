//! The `latchkey` binary as a user runs it: every command's `--help`, the data
//! commands (`migrate`, `shop create`, `keys …`), one-line errors for bad
//! input and bad configuration, a running `serve` that sees a CLI revoke or
//! delete within the documented second, graceful shutdown on SIGTERM, and a server
//! log free of secrets.
//!
//! Each test has its own data directory and clears every `LATCHKEY_*` (and
//! `RUST_LOG`) variable, so the user's environment does not leak in. With
//! `LATCHKEY_TEST_BACKEND=postgres` every data command also gets
//! `--database-url postgres://…`, a fresh database per data directory on the
//! throwaway server of `common/pg.rs`; the data directory still holds
//! `secret.key` and `latchkey.toml`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use latchkey::domain::token::{Environment, generate};
use latchkey::store::Store;
use latchkey::store::postgres::PostgresStore;
use latchkey::store::sqlite::SqliteStore;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// Documented (docs/KEYS.md): a CLI revoke reaches every running server within 1 second.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(1);

/// A `latchkey` command with a clean environment, run in `cwd` (so a stray
/// default `./latchkey-data` could never land in the repository).
fn bare(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd.current_dir(cwd);
    cmd.stdin(Stdio::null());
    cmd
}

#[path = "common/pg.rs"]
mod pg;

/// On PostgreSQL: the database of each data directory, made on first use.
static DATABASES: Mutex<Vec<(PathBuf, pg::TestDatabase)>> = Mutex::new(Vec::new());

/// On PostgreSQL (`LATCHKEY_TEST_BACKEND=postgres`), the URL and options of
/// `dir`'s database; `None` on SQLite (`<dir>/latchkey.db`).
fn postgres_of(dir: &Path) -> Option<(String, sqlx::postgres::PgConnectOptions)> {
    if !pg::http_backend_is_postgres() {
        return None;
    }
    let mut databases = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, db)) = databases.iter().find(|(d, _)| d == dir) {
        return Some((db.url(), db.options.clone()));
    }
    // Called from inside a test's runtime: create it on a thread with its own.
    let db = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(pg::fresh_database())
    })
    .join()
    .expect("a fresh PostgreSQL database");
    let found = (db.url(), db.options.clone());
    databases.push((dir.to_owned(), db));
    Some(found)
}

/// `latchkey ARGS --data-dir DIR` (and `--database-url postgres://…` on
/// PostgreSQL).
fn latchkey(dir: &Path, args: &[&str]) -> Command {
    let cwd = dir.ancestors().find(|d| d.is_dir()).unwrap_or(dir);
    let mut cmd = bare(cwd);
    cmd.args(args).arg("--data-dir").arg(dir);
    if let Some((url, _)) = postgres_of(dir) {
        cmd.arg("--database-url").arg(url);
    }
    cmd
}

/// The store the commands in `dir` use, opened as another process would.
async fn open_store(dir: &Path) -> Box<dyn Store> {
    match postgres_of(dir) {
        None => Box::new(
            SqliteStore::open_path(&dir.join("latchkey.db"))
                .await
                .unwrap(),
        ),
        Some((_, options)) => Box::new(PostgresStore::open_with(options).await.unwrap()),
    }
}

/// The commands in `dir` created and migrated their database.
async fn assert_database_exists(dir: &Path) {
    match postgres_of(dir) {
        None => assert!(dir.join("latchkey.db").is_file()),
        Some((_, options)) => {
            // Migrated: the tables are there (dump_text asserts some exist).
            pg::dump_text(&options).await;
        }
    }
}

/// Whether `needle` appears anywhere in what `dir`'s database stores (the
/// SQLite file and WAL, or every PostgreSQL row, `bytea` as hex).
async fn database_contains(dir: &Path, needle: &[u8]) -> bool {
    match postgres_of(dir) {
        None => ["latchkey.db", "latchkey.db-wal"].iter().any(|file| {
            let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        }),
        Some((_, options)) => {
            let text = pg::dump_text(&options).await;
            text.as_bytes().windows(needle.len()).any(|w| w == needle)
                || text.contains(&pg::hex_of(needle))
        }
    }
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    what: String,
}

impl Run {
    fn of(cmd: &mut Command) -> Run {
        let what = format!("{:?}", cmd);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey starts");
        Run::finish(child, what)
    }

    fn with_stdin(cmd: &mut Command, input: &str) -> Run {
        let what = format!("{:?}", cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::finish(child, what)
    }

    /// Waits for the process to exit (returning as soon as it does), but
    /// kills it and fails after 60 s rather than hang the suite (say, a
    /// `serve` that should have refused its settings but started).
    fn finish(child: Child, what: String) -> Run {
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Output {
            status,
            stdout,
            stderr,
        } = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(out) => out.expect("latchkey runs"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("{what} did not finish within 60 s");
            }
        };
        Run {
            status,
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
            what,
        }
    }

    /// Exit 0; returns stdout.
    fn ok(self) -> String {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Exit 0 and JSON on stdout.
    fn json(self) -> Value {
        let what = self.what.clone();
        let out = self.ok();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
    }

    /// Non-zero exit, nothing on stdout, and exactly one stderr line starting
    /// with `latchkey:`, which is returned.
    fn fails(self) -> String {
        assert!(
            !self.status.success(),
            "{} should fail but succeeded:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.trim().is_empty(),
            "{}: a failure printed to stdout: {}",
            self.what,
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: stderr should be exactly one line, got:\n{}",
            self.what,
            self.stderr
        );
        assert!(
            lines[0].starts_with("latchkey: "),
            "{}: stderr should start with `latchkey: `: {}",
            self.what,
            lines[0]
        );
        lines[0].to_owned()
    }
}

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::of(&mut latchkey(dir, args))
}

/// `shop create --json` in `dir`; returns the shop id.
fn new_shop(dir: &Path) -> String {
    let out = run(
        dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "owner@fixit.example",
            "--json",
        ],
    )
    .json();
    out["shop_id"].as_str().expect("shop_id").to_owned()
}

/// `keys create --shop SHOP ARGS --json`; returns the key object.
fn new_key(dir: &Path, shop: &str, args: &[&str]) -> Value {
    let mut all = vec!["keys", "create", "--shop", shop];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run(dir, &all).json();
    out["key"].clone()
}

/// The ids of `keys list --shop SHOP --json`, sorted.
fn key_ids(dir: &Path, shop: &str) -> Vec<String> {
    let out = run(dir, &["keys", "list", "--shop", shop, "--json"]).json();
    let mut ids: Vec<String> = out["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not a string in {v}"))
}

// ---------------------------------------------------------------------------
// A running server.

struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// Everything the server wrote, after it stopped.
struct Stopped {
    status: ExitStatus,
    stderr: String,
    stdout: String,
}

impl Server {
    /// `latchkey serve --listen 127.0.0.1:0 --data-dir DIR`, logging at info;
    /// waits for the `listening on http://…` line.
    fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// [`Server::start`] with these environment variables set too.
    fn start_with(dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = latchkey(dir, &["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("LATCHKEY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();

        let mut pipe = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        let err_reader = std::thread::spawn(move || {
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match pipe.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                log.lock().unwrap().push_str(&line);
                if !sent && let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    sent = tx.send(url).is_ok();
                }
            }
        });
        let mut out_pipe = child.stdout.take().unwrap();
        let out = stdout.clone();
        let out_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out_pipe.read_to_string(&mut text);
            out.lock().unwrap().push_str(&text);
        });

        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve never logged `listening on http://…` ({e}); its stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
            "listening URL {url:?}"
        );
        Server {
            child,
            url: url.trim_end_matches('/').to_owned(),
            stderr,
            stdout,
            readers: vec![err_reader, out_reader],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, then waits (at most 15 s) for the process to exit.
    fn stop(mut self) -> Stopped {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "serve did not stop within 15 s of SIGTERM; its stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        Stopped {
            status,
            stderr: self.stderr.lock().unwrap().clone(),
            stdout: self.stdout.lock().unwrap().clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only when a test failed before `stop`: do not leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Status and body of a keyed GET.
async fn get(client: &reqwest::Client, url: &str, secret: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .bearer_auth(secret)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `GET /api/v1/me` every 20 ms until it answers 401 `code`; returns
/// the time since `since`. Gives up (panics) after 5 s, so a slow answer is
/// still measured and reported rather than cut off at the deadline.
async fn poll_until_refused(
    client: &reqwest::Client,
    server: &Server,
    secret: &str,
    code: &str,
    since: Instant,
) -> Duration {
    let url = server.url("/api/v1/me");
    loop {
        let (status, body) = get(client, &url, secret).await;
        let elapsed = since.elapsed();
        match status {
            401 => {
                assert_eq!(body["code"], code, "{body}");
                return elapsed;
            }
            200 => {}
            other => panic!("GET /api/v1/me answered {other} while waiting for {code}: {body}"),
        }
        assert!(
            elapsed < Duration::from_secs(5),
            "the server still accepts the key {} ms after the CLI finished",
            elapsed.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. --help

#[tokio::test]
async fn every_command_answers_help_and_serve_help_documents_every_spec_option() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["shop"],
        &["shop", "create"],
        &["shop", "list"],
        &["keys"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "show"],
        &["keys", "revoke"],
        &["keys", "delete"],
        &["users"],
        &["users", "reset-password"],
        &["db"],
        &["db", "copy"],
    ];
    for args in commands {
        let mut cmd = bare(dir.path());
        cmd.args(*args).arg("--help");
        let out = Run::of(&mut cmd).ok();
        assert!(
            out.contains("Usage:"),
            "latchkey {} --help: {out}",
            args.join(" ")
        );
    }
    // `--help` touches no data: nothing was created in the working directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let mut cmd = bare(dir.path());
    cmd.args(["serve", "--help"]);
    let help = Run::of(&mut cmd).ok();
    for option in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--redis-url",
        "--redis-unavailable",
        "--secret-file",
        "--public-url",
        "--trusted-proxies",
        "--legacy-sunset",
        "--default-rate-limit",
        "--failed-auth-limit",
        "--max-keys-per-shop",
        "--config",
    ] {
        assert!(
            help.contains(option),
            "serve --help lacks {option}:\n{help}"
        );
    }
    // Each is also `LATCHKEY_<NAME>`, and the documented defaults are shown.
    for env in [
        "LATCHKEY_LISTEN",
        "LATCHKEY_DATA_DIR",
        "LATCHKEY_DATABASE_URL",
        "LATCHKEY_REDIS_URL",
        "LATCHKEY_REDIS_UNAVAILABLE",
        "LATCHKEY_SECRET_FILE",
        "LATCHKEY_PUBLIC_URL",
        "LATCHKEY_TRUSTED_PROXIES",
        "LATCHKEY_LEGACY_SUNSET",
        "LATCHKEY_DEFAULT_RATE_LIMIT",
        "LATCHKEY_FAILED_AUTH_LIMIT",
        "LATCHKEY_MAX_KEYS_PER_SHOP",
    ] {
        assert!(
            help.contains(env),
            "serve --help does not mention {env}:\n{help}"
        );
    }
    for default in ["127.0.0.1:8080", "./latchkey-data", "2026-12-01T00:00:00Z"] {
        assert!(
            help.contains(default),
            "serve --help does not show the default {default}:\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. migrate, shop create

#[tokio::test]
async fn migrate_creates_the_data_dir_the_database_and_an_owner_only_secret() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("not").join("yet");
    let out = run(&dir, &["migrate"]).ok();
    assert!(out.is_empty(), "migrate printed to stdout: {out}");
    assert!(dir.is_dir());
    assert_database_exists(&dir).await;
    let secret = dir.join("secret.key");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secret.key mode {mode:o}");
    let first = std::fs::read(&secret).unwrap();
    assert!(!first.is_empty());

    // Running it again is harmless and keeps the secret.
    run(&dir, &["migrate"]).ok();
    assert_eq!(std::fs::read(&secret).unwrap(), first);
}

/// `latchkey ARGS --data-dir DIR` run under `umask 000`, the loosest there
/// is: what latchkey makes must be owner-only whatever the umask.
fn under_open_umask(dir: &Path, args: &[&str]) -> Run {
    let inner = latchkey(dir, args);
    let mut sh = Command::new("sh");
    sh.args(["-c", "umask 000; exec \"$@\"", "sh"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(v) => sh.env(name, v),
            None => sh.env_remove(name),
        };
    }
    if let Some(cwd) = inner.get_current_dir() {
        sh.current_dir(cwd);
    }
    sh.stdin(Stdio::null());
    Run::of(&mut sh)
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_dir_and_the_database_files_are_owner_only_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("data");
    under_open_umask(&dir, &["migrate"]).ok();
    assert_eq!(mode_of(&dir), 0o700, "the data directory");
    assert_eq!(
        mode_of(&tmp.path().join("new")),
        0o700,
        "a directory made for it"
    );
    assert_eq!(mode_of(&dir.join("secret.key")), 0o600);
    if postgres_of(&dir).is_some() {
        return;
    }
    let db = dir.join("latchkey.db");
    assert_eq!(mode_of(&db), 0o600, "the database");
    under_open_umask(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "o@fixit.example",
            "--json",
        ],
    )
    .ok();
    assert_eq!(mode_of(&db), 0o600, "the database after writes");
    // While a server has the database open, its -wal and -shm exist.
    let store = open_store(&dir).await;
    assert!(store.has_shops().await.unwrap());
    for side in ["latchkey.db-wal", "latchkey.db-shm"] {
        assert_eq!(mode_of(&dir.join(side)), 0o600, "{side}");
    }
    drop(store);

    // A database left world-readable by an older version is tightened.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    under_open_umask(&dir, &["migrate"]).ok();
    assert_eq!(mode_of(&db), 0o600, "an old database is tightened");
}

#[tokio::test]
async fn an_existing_data_dir_is_closed_when_it_is_latchkeys_and_warned_about_when_shared() {
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o755);
    let tmp = tempfile::tempdir().unwrap();

    // Empty, or already holding latchkey's secret: closed to others.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, open.clone()).unwrap();
    run(&empty, &["migrate"]).ok();
    assert_eq!(mode_of(&empty), 0o700, "an empty directory");
    std::fs::set_permissions(&empty, open.clone()).unwrap();
    let out = run(&empty, &["migrate"]);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    out.ok();
    assert_eq!(mode_of(&empty), 0o700, "latchkey's own directory");

    // Shared with other things: left open, with a warning saying how.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("someone-elses.txt"), "hello").unwrap();
    std::fs::set_permissions(&shared, open).unwrap();
    let out = run(&shared, &["migrate"]);
    let stderr = out.stderr.clone();
    out.ok();
    assert!(
        stderr.contains("chmod 700"),
        "a warning says how to close it: {stderr}"
    );
    assert_eq!(mode_of(&shared), 0o755, "a shared directory is not changed");
    if postgres_of(&shared).is_none() {
        assert_eq!(mode_of(&shared.join("latchkey.db")), 0o600);
    }
}

#[tokio::test]
async fn eight_commands_started_at_once_on_a_fresh_data_dir_share_one_whole_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let children: Vec<Child> = (0..8)
        .map(|_| {
            latchkey(&dir, &["migrate"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("latchkey starts")
        })
        .collect();
    for child in children {
        Run::finish(child, "latchkey migrate".into()).ok();
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("secret"))
        .collect();
    assert_eq!(names, ["secret.key"], "one secret file, no temporary left");
    let secret = std::fs::read_to_string(dir.join("secret.key")).unwrap();
    assert_eq!(secret.len(), 64, "a whole secret: {secret:?}");
    // Every one of them recorded (or matched) that secret's fingerprint: a
    // later command with it opens the database.
    let shop = new_shop(&dir);
    assert!(shop.starts_with("shop_"), "{shop}");
}

/// Runs `sql` on `dir`'s database (SQLite file or PostgreSQL); returns the
/// first column of the first row as bytes, if the statement returns one.
async fn sql_bytes(dir: &Path, sql: &str) -> Option<Vec<u8>> {
    match postgres_of(dir) {
        None => {
            let url = format!("sqlite://{}", dir.join("latchkey.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query_scalar(sql)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
        }
        Some((_, options)) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
                .await
                .unwrap();
            sqlx::query_scalar(sql)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
        }
    }
}

#[tokio::test]
async fn a_secret_other_than_the_databases_is_refused_in_one_line_naming_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let shop = new_shop(&dir);
    let fingerprint = "SELECT fingerprint FROM secret_fingerprint WHERE id = 1";
    let recorded = sql_bytes(&dir, fingerprint).await.expect("recorded");
    assert_eq!(recorded.len(), 32);
    let secret = std::fs::read(dir.join("secret.key")).unwrap();
    assert!(
        !recorded
            .windows(16)
            .any(|w| secret.windows(16).any(|s| s == w)),
        "the fingerprint is not the secret"
    );

    // The same secret, by any route, opens it.
    let same = tmp.path().join("same.key");
    std::fs::write(&same, &secret).unwrap();
    let list = ["keys", "list", "--shop", shop.as_str()];
    Run::of(latchkey(&dir, &list).arg("--secret-file").arg(&same)).ok();
    Run::of(latchkey(&dir, &list).env("LATCHKEY_SECRET", String::from_utf8(secret).unwrap())).ok();

    // Another one is refused, naming where it came from and what to do.
    let other = tmp.path().join("other.key");
    std::fs::write(&other, "b".repeat(64)).unwrap();
    let by_file = Run::of(latchkey(&dir, &list).arg("--secret-file").arg(&other)).fails();
    let by_env = Run::of(latchkey(&dir, &list).env("LATCHKEY_SECRET", "c".repeat(64))).fails();
    let serve = Run::of(
        latchkey(&dir, &["serve", "--listen", "127.0.0.1:0"])
            .arg("--secret-file")
            .arg(&other),
    )
    .fails();
    for (line, source) in [
        (&by_file, other.display().to_string()),
        (&by_env, "LATCHKEY_SECRET".to_owned()),
        (&serve, other.display().to_string()),
    ] {
        assert!(line.contains("server secret"), "{line}");
        assert!(line.contains(&source), "names {source}: {line}");
        assert!(
            line.contains("same --secret-file or LATCHKEY_SECRET"),
            "{line}"
        );
        assert!(!line.contains(&"b".repeat(16)) && !line.contains(&"c".repeat(16)));
    }
    // A different data directory's fresh secret too.
    let elsewhere = tmp.path().join("elsewhere");
    if let Some((url, _)) = postgres_of(&dir) {
        let line = Run::of(&mut {
            let mut c = bare(tmp.path());
            c.args(["keys", "list", "--shop", shop.as_str(), "--data-dir"])
                .arg(&elsewhere)
                .args(["--database-url", &url]);
            c
        })
        .fails();
        assert!(line.contains("secret.key"), "{line}");
    }
    assert_eq!(sql_bytes(&dir, fingerprint).await.unwrap(), recorded);

    // A database from before fingerprints gets one on its next open.
    sql_bytes(&dir, "DELETE FROM secret_fingerprint").await;
    Run::of(&mut latchkey(&dir, &list)).ok();
    assert_eq!(sql_bytes(&dir, fingerprint).await.unwrap(), recorded);
}

#[tokio::test]
async fn shop_create_prints_ids_and_a_generated_password_or_reads_one_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // A data command on a missing dir creates it, like migrate.
    let out = run(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "owner@fixit.example",
            "--json",
        ],
    )
    .json();
    assert!(dir.join("secret.key").is_file());
    assert_database_exists(&dir).await;
    assert!(!s(&out, "shop_id").is_empty());
    assert!(!s(&out, "owner_id").is_empty());
    assert_ne!(out["shop_id"], out["owner_id"]);
    let password = s(&out, "password");
    assert!(
        password.chars().count() >= 12,
        "generated password {password:?}"
    );

    // Two shops, two different generated passwords.
    let other = run(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Second Shop",
            "--owner-email",
            "two@fixit.example",
            "--json",
        ],
    )
    .json();
    assert_ne!(other["shop_id"], out["shop_id"]);
    assert_ne!(other["password"], out["password"]);

    // Human form.
    let text = run(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Third Shop",
            "--owner-email",
            "three@fixit.example",
        ],
    )
    .ok();
    for label in ["shop_id", "owner_id", "password"] {
        assert!(text.contains(label), "{text}");
    }

    // --password-stdin: the password is read, not generated nor printed.
    let chosen = "correct horse battery staple";
    let out = Run::with_stdin(
        &mut latchkey(
            &dir,
            &[
                "shop",
                "create",
                "--name",
                "Stdin Shop",
                "--owner-email",
                "stdin@fixit.example",
                "--password-stdin",
                "--json",
            ],
        ),
        &format!("{chosen}\n"),
    )
    .json();
    assert!(!s(&out, "shop_id").is_empty() && !s(&out, "owner_id").is_empty());
    assert!(out.get("password").is_none(), "{out}");
    assert!(!out.to_string().contains(chosen));
}

#[tokio::test]
async fn a_too_short_password_on_stdin_is_refused_and_creates_no_shop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    run(&dir, &["migrate"]).ok();
    let line = Run::with_stdin(
        &mut latchkey(
            &dir,
            &[
                "shop",
                "create",
                "--name",
                "Fix-It Phones",
                "--owner-email",
                "owner@fixit.example",
                "--password-stdin",
                "--json",
            ],
        ),
        "short\n",
    )
    .fails();
    assert!(line.contains("--password-stdin"), "{line}");
    assert!(
        !line.contains("short\n") && !line.contains(": short"),
        "{line}"
    );

    // Nothing prompts: with stdin closed and empty, it fails the same way.
    let line = run(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "owner@fixit.example",
            "--password-stdin",
        ],
    )
    .fails();
    assert!(line.contains("--password-stdin"), "{line}");

    let store = open_store(&dir).await;
    assert!(!store.has_shops().await.unwrap(), "a shop was created");
}

// ---------------------------------------------------------------------------
// 3. keys

#[tokio::test]
async fn users_reset_password_gives_the_owner_a_one_time_password_that_logs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    new_shop(&dir);

    let out = run(
        &dir,
        &[
            "users",
            "reset-password",
            "--email",
            "Owner@Fixit.example",
            "--json",
        ],
    )
    .json();
    assert_eq!(s(&out, "email"), "owner@fixit.example");
    let password = s(&out, "password").to_owned();
    assert!(password.chars().count() >= 12, "{password:?}");
    assert!(!s(&out, "valid_until").is_empty());

    // The new password is the one that works now, and it must be changed.
    let store = open_store(&dir).await;
    let email = latchkey::domain::user::Email::parse("owner@fixit.example").unwrap();
    let owner = store.find_user_by_email(&email).await.unwrap().unwrap();
    assert!(latchkey::domain::user::Password::verify(
        &password,
        &owner.password_hash
    ));
    assert!(
        store
            .one_time_password_expiry(&owner.id)
            .await
            .unwrap()
            .is_some()
    );

    let text = run(
        &dir,
        &["users", "reset-password", "--email", "owner@fixit.example"],
    )
    .ok();
    assert!(
        text.contains("password:") && text.contains("one-time"),
        "{text}"
    );

    let line = run(
        &dir,
        &["users", "reset-password", "--email", "nobody@fixit.example"],
    )
    .fails();
    assert!(
        line.contains("--email") && line.contains("nobody@fixit.example"),
        "{line}"
    );
}

#[tokio::test]
async fn keys_create_list_show_revoke_and_delete_work_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let shop = new_shop(&dir);

    // From a template.
    let zap = new_key(&dir, &shop, &["--template", "zapier"]);
    let zap_id = s(&zap, "id").to_owned();
    let zap_secret = s(&zap, "secret").to_owned();
    assert!(
        zap_secret.starts_with("lk_live_") && zap_secret.len() == 46,
        "{zap_secret}"
    );
    assert_eq!(zap["environment"], "live");
    assert_eq!(zap["status"], "active");
    assert_eq!(zap["template"], "zapier");
    assert_eq!(zap["name"], "Zapier");
    assert_eq!(zap["created_by"], "cli");
    let mut perms: Vec<&str> = zap["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    perms.sort();
    assert_eq!(
        perms,
        [
            "clients:read",
            "clients:write",
            "devices:read",
            "orders:read",
            "orders:write"
        ]
    );
    let display = s(&zap, "display");
    assert_eq!(
        display,
        format!("lk_live_{}…{}", &zap_secret[8..12], &zap_secret[42..])
    );

    // Permissions repeated, a test key, and the other options.
    let form = new_key(
        &dir,
        &shop,
        &[
            "--name",
            "Website contact form handler",
            "--permission",
            "orders:write",
            "--permission",
            "clients:write",
            "--environment",
            "test",
            "--allowed-ip",
            "203.0.113.0/24",
            "--allowed-ip",
            "2001:db8::1",
            "--expires-at",
            "2099-01-31T17:00:00Z",
            "--rate-limit",
            "250",
        ],
    );
    let form_id = s(&form, "id").to_owned();
    let form_secret = s(&form, "secret").to_owned();
    assert!(
        form_secret.starts_with("lk_test_") && form_secret.len() == 46,
        "{form_secret}"
    );
    assert_eq!(form["environment"], "test");
    assert_eq!(form["name"], "Website contact form handler");
    let mut perms: Vec<&str> = form["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    perms.sort();
    assert_eq!(perms, ["clients:write", "orders:write"]);
    assert_eq!(form["rate_limit_per_minute"], 250);
    assert!(
        s(&form, "expires_at").starts_with("2099-01-31T17:00:00"),
        "{form}"
    );
    let ips = form["allowed_ips"].to_string();
    assert!(
        ips.contains("203.0.113.0/24") && ips.contains("2001:db8::1"),
        "{ips}"
    );
    assert_ne!(zap_id, form_id);

    // Human form prints the secret too, once.
    let text = run(
        &dir,
        &["keys", "create", "--shop", &shop, "--template", "read-only"],
    )
    .ok();
    assert!(
        text.contains("secret:") && text.contains("lk_live_"),
        "{text}"
    );

    // The list never carries a secret.
    let list_raw = run(&dir, &["keys", "list", "--shop", &shop, "--json"]).ok();
    assert!(!list_raw.contains(&zap_secret) && !list_raw.contains(&form_secret));
    let list: Value = serde_json::from_str(&list_raw).unwrap();
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{list}");
    for k in keys {
        assert!(k.get("secret").is_none(), "a listed key has a secret: {k}");
    }
    let listed = keys
        .iter()
        .find(|k| k["id"] == zap_id.as_str())
        .expect("zapier key listed");
    assert_eq!(listed["display"], display);
    assert_eq!(listed["status"], "active");
    let text = run(&dir, &["keys", "list", "--shop", &shop]).ok();
    assert!(
        text.contains(&zap_id) && text.contains(&form_id) && !text.contains(&zap_secret),
        "{text}"
    );

    // Show.
    let shown_raw = run(&dir, &["keys", "show", &zap_id, "--json"]).ok();
    assert!(!shown_raw.contains(&zap_secret));
    let shown: Value = serde_json::from_str(&shown_raw).unwrap();
    assert_eq!(shown["key"]["id"], zap_id.as_str());
    assert_eq!(shown["key"]["name"], "Zapier");
    assert!(shown["key"].get("secret").is_none());
    let text = run(&dir, &["keys", "show", &form_id]).ok();
    assert!(
        text.contains(&form_id) && !text.contains(&form_secret),
        "{text}"
    );

    // Revoke: stays listed, as revoked.
    let revoked = run(&dir, &["keys", "revoke", &zap_id, "--json"]).json();
    assert_eq!(revoked["key"]["status"], "revoked", "{revoked}");
    assert!(revoked["key"]["revoked_at"].is_string(), "{revoked}");
    assert!(revoked["key"].get("secret").is_none());
    let shown = run(&dir, &["keys", "show", &zap_id, "--json"]).json();
    assert_eq!(shown["key"]["status"], "revoked");
    let list = run(&dir, &["keys", "list", "--shop", &shop, "--json"]).json();
    let listed = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == zap_id.as_str())
        .expect("a revoked key stays listed")
        .clone();
    assert_eq!(listed["status"], "revoked");

    // Delete: gone for good.
    run(&dir, &["keys", "delete", &zap_id, "--json"]).ok();
    let line = run(&dir, &["keys", "show", &zap_id, "--json"]).fails();
    assert!(line.contains(&zap_id), "{line}");
    let ids = key_ids(&dir, &shop);
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&zap_id) && ids.contains(&form_id));
    // Deleting again fails too.
    let line = run(&dir, &["keys", "delete", &zap_id]).fails();
    assert!(line.contains(&zap_id), "{line}");
}

// ---------------------------------------------------------------------------
// 4. bad input

#[tokio::test]
async fn bad_input_and_bad_settings_fail_with_one_line_naming_the_culprit_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let shop = new_shop(&dir);
    new_key(&dir, &shop, &["--template", "pax8"]);
    let before = key_ids(&dir, &shop);
    let create = |extra: &[&str]| -> Command {
        let mut args = vec![
            "keys",
            "create",
            "--shop",
            shop.as_str(),
            "--name",
            "Bad input check",
        ];
        args.extend_from_slice(extra);
        latchkey(&dir, &args)
    };

    // (what, command, what the line must name)
    let cases: Vec<(&str, Command, Vec<&str>)> = vec![
        (
            "unknown permission",
            create(&["--permission", "orders:read", "--permission", "orders:fly"]),
            vec!["orders:fly"],
        ),
        (
            "unknown template",
            create(&["--template", "zappier"]),
            vec!["zappier"],
        ),
        (
            "bad --allowed-ip",
            create(&["--template", "pax8", "--allowed-ip", "10.0.0.300/8"]),
            vec!["--allowed-ip", "10.0.0.300/8"],
        ),
        (
            "past --expires-at",
            create(&["--template", "pax8", "--expires-at", "2001-01-01T00:00:00Z"]),
            vec!["--expires-at"],
        ),
        (
            "unparseable --expires-at",
            create(&["--template", "pax8", "--expires-at", "next tuesday"]),
            vec!["--expires-at"],
        ),
        (
            "--rate-limit 0",
            create(&["--template", "pax8", "--rate-limit", "0"]),
            vec!["--rate-limit"],
        ),
        (
            "--rate-limit over 10000",
            create(&["--template", "pax8", "--rate-limit", "10001"]),
            vec!["--rate-limit"],
        ),
        (
            "unknown environment",
            create(&["--template", "pax8", "--environment", "staging"]),
            vec!["--environment", "staging"],
        ),
        (
            "unknown shop",
            latchkey(
                &dir,
                &[
                    "keys",
                    "create",
                    "--shop",
                    "shop_nosuchshop",
                    "--template",
                    "pax8",
                ],
            ),
            vec!["shop_nosuchshop"],
        ),
        (
            "unknown shop (list)",
            latchkey(&dir, &["keys", "list", "--shop", "shop_nosuchshop"]),
            vec!["shop_nosuchshop"],
        ),
        (
            "unknown key id (show)",
            latchkey(&dir, &["keys", "show", "key_nosuchkey"]),
            vec!["key_nosuchkey"],
        ),
        (
            "unknown key id (revoke)",
            latchkey(&dir, &["keys", "revoke", "key_nosuchkey", "--json"]),
            vec!["key_nosuchkey"],
        ),
        (
            "unknown key id (delete)",
            latchkey(&dir, &["keys", "delete", "key_nosuchkey"]),
            vec!["key_nosuchkey"],
        ),
        (
            "unknown variable LATCHKEY_LISTN",
            {
                let mut c = create(&["--template", "pax8"]);
                c.env("LATCHKEY_LISTN", "127.0.0.1:9000");
                c
            },
            vec!["LATCHKEY_LISTN"],
        ),
        (
            "bad LATCHKEY_DEFAULT_RATE_LIMIT (not a number)",
            {
                let mut c = create(&["--template", "pax8"]);
                c.env("LATCHKEY_DEFAULT_RATE_LIMIT", "lots");
                c
            },
            vec!["LATCHKEY_DEFAULT_RATE_LIMIT", "lots"],
        ),
        (
            "bad LATCHKEY_DEFAULT_RATE_LIMIT (0)",
            {
                let mut c = create(&["--template", "pax8"]);
                c.env("LATCHKEY_DEFAULT_RATE_LIMIT", "0");
                c
            },
            vec!["LATCHKEY_DEFAULT_RATE_LIMIT"],
        ),
    ];
    for (what, mut cmd, culprits) in cases {
        let line = Run::of(&mut cmd).fails();
        for c in culprits {
            assert!(
                line.contains(c),
                "{what}: the error does not name {c:?}: {line}"
            );
        }
        assert_eq!(key_ids(&dir, &shop), before, "{what}: the keys changed");
    }

    // The config file: an unknown key is refused by name; so is a bad value.
    let config = dir.join("latchkey.toml");
    for (text, culprit) in [
        ("listne = \"127.0.0.1:9000\"\n", "listne"),
        ("default_rate_limit = 0\n", "default-rate-limit"),
        ("listen = \"nowhere\"\n", "--listen"),
    ] {
        std::fs::write(&config, text).unwrap();
        let line = Run::of(&mut create(&["--template", "pax8"])).fails();
        assert!(
            line.contains(culprit),
            "config {text:?}: the error does not name {culprit:?}: {line}"
        );
        // `serve` refuses it the same way, before listening. (A `--listen`
        // flag would override the file's `listen`, so that case goes without.)
        let serve: &[&str] = if culprit == "--listen" {
            &["serve"]
        } else {
            &["serve", "--listen", "127.0.0.1:0"]
        };
        let line = run(&dir, serve).fails();
        assert!(line.contains(culprit), "serve with config {text:?}: {line}");
        std::fs::remove_file(&config).unwrap();
        assert_eq!(
            key_ids(&dir, &shop),
            before,
            "config {text:?}: the keys changed"
        );
    }
    // An explicit --config that does not exist is an error, not a default.
    let line = Run::of(&mut create(&[
        "--template",
        "pax8",
        "--config",
        "/nonexistent/latchkey.toml",
    ]))
    .fails();
    assert!(line.contains("/nonexistent/latchkey.toml"), "{line}");

    // Bad serve flags are refused before listening, by name.
    for (flag, value) in [
        ("--listen", "nowhere"),
        ("--default-rate-limit", "0"),
        ("--failed-auth-limit", "0"),
        ("--max-keys-per-shop", "many"),
        ("--legacy-sunset", "soon"),
        ("--trusted-proxies", "10.0.0.0/8,bogus"),
        ("--public-url", "ftp://example.com"),
        ("--redis-url", "localhost:6379"),
        ("--redis-url", "redis://:hunter2@127.0.0.1:6379/notanumber"),
        ("--redis-unavailable", "sometimes"),
    ] {
        let line = run(&dir, &["serve", flag, value]).fails();
        assert!(line.contains(flag), "serve {flag} {value}: {line}");
        assert!(
            !line.contains("hunter2"),
            "the password is redacted: {line}"
        );
        assert_eq!(line.trim().lines().count(), 1, "one line: {line}");
    }
    assert_eq!(key_ids(&dir, &shop), before);
}

// ---------------------------------------------------------------------------
// 5. a running server sees CLI changes within a second

#[tokio::test]
async fn a_cli_revoke_or_delete_reaches_a_running_server_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let server = Server::start(&dir);
    let shop = new_shop(&dir);
    let client = reqwest::Client::new();

    // A high per-key limit so polling is never throttled.
    let key = new_key(
        &dir,
        &shop,
        &["--template", "read-only", "--rate-limit", "10000"],
    );
    let (id, secret) = (s(&key, "id").to_owned(), s(&key, "secret").to_owned());
    let doomed = new_key(
        &dir,
        &shop,
        &[
            "--name",
            "Nightly export job",
            "--permission",
            "orders:read",
            "--rate-limit",
            "10000",
        ],
    );
    let (doomed_id, doomed_secret) = (s(&doomed, "id").to_owned(), s(&doomed, "secret").to_owned());

    // Both work, and are now cached by the server.
    for _ in 0..2 {
        let (status, body) = get(&client, &server.url("/api/v1/me"), &secret).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"]["id"], id.as_str());
        let (status, body) = get(&client, &server.url("/api/v1/me"), &doomed_secret).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"]["id"], doomed_id.as_str());
    }

    // Revoke from a separate process.
    run(&dir, &["keys", "revoke", &id]).ok();
    let exited = Instant::now();
    let delay = poll_until_refused(&client, &server, &secret, "revoked_key", exited).await;
    eprintln!("revoke reached the server after {} ms", delay.as_millis());
    assert!(
        delay < PROPAGATION_DEADLINE,
        "a CLI revoke took {} ms to reach the server (documented: within 1 s)",
        delay.as_millis()
    );
    // And it stays refused.
    let (status, body) = get(&client, &server.url("/api/v1/me"), &secret).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("revoked_key")),
        "{body}"
    );
    // The other key is untouched.
    let (status, _) = get(&client, &server.url("/api/v1/me"), &doomed_secret).await;
    assert_eq!(status, 200);

    // Delete from a separate process.
    run(&dir, &["keys", "delete", &doomed_id]).ok();
    let exited = Instant::now();
    let delay = poll_until_refused(&client, &server, &doomed_secret, "invalid_key", exited).await;
    eprintln!("delete reached the server after {} ms", delay.as_millis());
    assert!(
        delay < PROPAGATION_DEADLINE,
        "a CLI delete took {} ms to reach the server (documented: within 1 s)",
        delay.as_millis()
    );

    // An edit that matters (permissions, IPs, expiry) has no CLI command to
    // make it, so it is covered by the API tests, not here.

    drop(client);
    let stopped = server.stop();
    assert!(
        stopped.status.success(),
        "serve did not exit 0 on SIGTERM ({}); its stderr:\n{}",
        stopped.status,
        stopped.stderr
    );
}

// ---------------------------------------------------------------------------
// 6. no secret in the logs

#[tokio::test]
async fn the_server_log_holds_no_secret_password_or_query_string_but_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let server = Server::start(&dir);
    let client = reqwest::Client::new();

    let shop = run(
        &dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It Phones",
            "--owner-email",
            "owner@fixit.example",
            "--json",
        ],
    )
    .json();
    let password = s(&shop, "password").to_owned();
    let shop_id = s(&shop, "shop_id").to_owned();

    let key = new_key(
        &dir,
        &shop_id,
        &[
            "--name",
            "Key manager for the log check",
            "--permission",
            "keys:read",
            "--permission",
            "keys:write",
            "--permission",
            "orders:read",
            "--permission",
            "clients:read",
        ],
    );
    let (id, secret) = (s(&key, "id").to_owned(), s(&key, "secret").to_owned());

    // Several endpoints with the key.
    for path in [
        "/api/v1/me".to_owned(),
        "/api/v1/keys".to_owned(),
        format!("/api/v1/keys/{id}"),
        "/api/v1/key-templates".to_owned(),
        "/api/v1/audit-events".to_owned(),
    ] {
        let (status, body) = get(&client, &server.url(&path), &secret).await;
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    // Not found, with a key id in the path.
    let (status, _) = get(&client, &server.url("/api/v1/keys/key_nosuchkey"), &secret).await;
    assert_eq!(status, 404);

    // Invalid keys: well formed but unknown, mistyped (bad checksum).
    let unknown = generate(Environment::Live).expose().to_owned();
    let (status, body) = get(&client, &server.url("/api/v1/me"), &unknown).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_key")),
        "{body}"
    );
    let last = secret.chars().last().unwrap();
    let mistyped = format!(
        "{}{}",
        &secret[..secret.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let (status, body) = get(&client, &server.url("/api/v1/me"), &mistyped).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("malformed_key")),
        "{body}"
    );

    // The key in the URL: refused, and the query string never logged.
    let r = client
        .get(server.url(&format!("/api/v1/me?api_key={secret}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "key_in_url", "{body}");
    let r = client
        .get(server.url(&format!("/api/v1/keys?page=1&api_key={unknown}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A second key made through the API with the first one.
    let r = client
        .post(server.url("/api/v1/keys"))
        .bearer_auth(&secret)
        .json(&serde_json::json!({"name": "Reporting dashboard", "permissions": ["orders:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    let second_id = s(&body["key"], "id").to_owned();
    let second = s(&body["key"], "secret").to_owned();
    assert!(second.starts_with("lk_live_"));
    let (status, _) = get(&client, &server.url("/api/v1/me"), &second).await;
    assert_eq!(status, 200);
    // Sent the other accepted ways too.
    let r = client
        .get(server.url("/api/v1/me"))
        .header("x-api-key", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(server.url("/api/v1/me"))
        .header("authorization", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    drop(client);
    let stopped = server.stop();
    assert!(
        stopped.status.success(),
        "serve exit {}:\n{}",
        stopped.status,
        stopped.stderr
    );
    let log = format!("{}{}", stopped.stderr, stopped.stdout);

    for (what, value) in [
        ("the CLI-made key", secret.as_str()),
        ("the API-made key", second.as_str()),
        ("the unknown key", unknown.as_str()),
        ("the mistyped key", mistyped.as_str()),
        ("the owner's password", password.as_str()),
    ] {
        assert!(
            !log.contains(value),
            "the server log contains {what}:\n{log}"
        );
        // Nor its distinctive random part.
        if value.starts_with("lk_") {
            assert!(
                !log.contains(&value[8..40]),
                "the server log contains part of {what}:\n{log}"
            );
        }
    }
    assert!(
        !log.contains("api_key="),
        "the server log contains a query string:\n{log}"
    );
    assert!(
        !log.contains("page=1"),
        "the server log contains a query string:\n{log}"
    );

    // The request log names the key (by id) and the route template.
    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
    assert!(
        request_lines
            .iter()
            .any(|l| l.contains("request") && l.contains("/api/v1/me")),
        "no request log line names key {id}:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&id) && l.contains("/api/v1/keys/{id}")),
        "the request log should carry the route template, not the path:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&second_id) && l.contains("/api/v1/me")),
        "no request log line names key {second_id}:\n{log}"
    );
    assert!(
        !log.contains("key_nosuchkey"),
        "the log carries a raw path:\n{log}"
    );
}

#[tokio::test]
async fn legacy_import_then_upgrade_and_roll_work_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shop = new_shop(dir);

    // A bad row stops the whole import and names its line.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "key,name\nlegacy-abcdefghijklmnop1234,Old website\nbad key,Nope\n",
    )
    .unwrap();
    let r = run(
        dir,
        &[
            "legacy",
            "import",
            "--shop",
            &shop,
            "--file",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!r.status.success());
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(key_ids(dir, &shop).is_empty(), "nothing imported");

    // A good file imports every row, hashed, and flags short keys as weak.
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "key,name,permissions\nlegacy-abcdefghijklmnop1234,Old website,orders:write clients:write\nshort-key-123456,Old Zap,\n",
    )
    .unwrap();
    let out = run(
        dir,
        &[
            "legacy",
            "import",
            "--shop",
            &shop,
            "--file",
            good.to_str().unwrap(),
            "--json",
        ],
    )
    .json();
    assert_eq!(out["imported"], 2);
    assert_eq!(out["weak"].as_array().unwrap().len(), 1);
    let legacy_id = out["keys"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(out["keys"][0]["display"], "…1234");
    let needle: &[u8] = b"legacy-abcdefghijklmnop1234";
    assert!(
        !database_contains(dir, needle).await,
        "the legacy secret is not stored in plaintext"
    );

    // Upgrade: a standard key with the legacy key's name and permissions.
    let up = run(dir, &["keys", "upgrade", &legacy_id, "--json"]).json();
    assert!(s(&up["key"], "secret").starts_with("lk_live_"));
    assert_eq!(up["key"]["name"], "Old website");
    assert_eq!(
        up["key"]["permissions"],
        serde_json::json!(["orders:write", "clients:write"])
    );
    let new_id = s(&up["key"], "id").to_owned();

    // Roll it with a grace period; rolling the same key again is refused.
    let rolled = run(
        dir,
        &["keys", "roll", &new_id, "--expire-old-in", "60", "--json"],
    )
    .json();
    assert!(s(&rolled["key"], "secret").starts_with("lk_live_"));
    assert_ne!(s(&rolled["key"], "id"), new_id);
    let old = run(dir, &["keys", "show", &new_id, "--json"]).json();
    assert!(
        old["key"]["expires_at"].is_string(),
        "the old key now expires"
    );
    let line = run(dir, &["keys", "roll", &new_id]).fails();
    assert!(line.to_lowercase().contains("roll"), "{line}");
}

/// An RFC 3339 instant `days` from now (the CLI runs on the real clock).
fn days_from_now(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    latchkey::domain::clock::Timestamp::from_unix_seconds(now as i64 + days * 86_400).to_string()
}

#[tokio::test]
async fn legacy_import_warns_on_stderr_and_in_json_when_the_cut_off_is_past_or_near() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shop = new_shop(dir);
    let import = |key: &str, sunset: &str| {
        let file = dir.join(format!("{key}.csv"));
        std::fs::write(&file, format!("key,name\n{key},Old website\n")).unwrap();
        Run::of(
            latchkey(
                dir,
                &[
                    "legacy",
                    "import",
                    "--shop",
                    &shop,
                    "--file",
                    file.to_str().unwrap(),
                    "--json",
                ],
            )
            .env("LATCHKEY_LEGACY_SUNSET", sunset),
        )
    };

    // Past: imported all the same, with the warning on stderr and in JSON.
    let past = import("legacy-past-abcdefghijklmnop", "2026-01-01T00:00:00Z");
    let stderr = past.stderr.clone();
    let out = past.json();
    assert_eq!(out["imported"], 1);
    assert_eq!(out["warnings"][0]["code"], "legacy_cutoff_passed", "{out}");
    assert!(
        stderr.starts_with("latchkey: warning: the legacy cut-off (2026-01-01")
            && stderr.contains("legacy_key_retired")
            && stderr.contains("--legacy-sunset"),
        "{stderr}"
    );

    // Three days ahead: near.
    let near = import("legacy-near-abcdefghijklmnop", &days_from_now(3));
    let stderr = near.stderr.clone();
    let out = near.json();
    assert_eq!(out["warnings"][0]["code"], "legacy_cutoff_near", "{out}");
    assert!(stderr.contains("days away"), "{stderr}");

    // Two months ahead: silent, and no `warnings` member.
    let far = import("legacy-farr-abcdefghijklmnop", &days_from_now(60));
    assert!(far.stderr.is_empty(), "{}", far.stderr);
    let out = far.json();
    assert!(out.get("warnings").is_none(), "{out}");

    // The human form warns on stderr too.
    let file = dir.join("human.csv");
    std::fs::write(&file, "key,name\nlegacy-human-abcdefghijklmno,Old site\n").unwrap();
    let human = Run::of(
        latchkey(
            dir,
            &[
                "legacy",
                "import",
                "--shop",
                &shop,
                "--file",
                file.to_str().unwrap(),
            ],
        )
        .env("LATCHKEY_LEGACY_SUNSET", "2026-01-01T00:00:00Z"),
    );
    assert!(
        human.stderr.contains("warning: the legacy cut-off"),
        "{}",
        human.stderr
    );
    assert!(human.ok().contains("imported 1 legacy key(s)"));
}

#[tokio::test]
async fn serve_warns_at_start_when_legacy_keys_are_stored_and_the_cut_off_is_past_or_near() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shop = new_shop(dir);
    let past = [("LATCHKEY_LEGACY_SUNSET", "2026-01-01T00:00:00Z")];

    // No legacy key: nothing to warn about, whatever the cut-off.
    let quiet = Server::start_with(dir, &past).stop();
    assert!(!quiet.stderr.contains("legacy key"), "{}", quiet.stderr);

    let file = dir.join("keys.csv");
    std::fs::write(&file, "key,name\nlegacy-serve-abcdefghijklmn,Old site\n").unwrap();
    run(
        dir,
        &[
            "legacy",
            "import",
            "--shop",
            &shop,
            "--file",
            file.to_str().unwrap(),
        ],
    )
    .ok();

    let warned = Server::start_with(dir, &past).stop();
    let line = warned
        .stderr
        .lines()
        .find(|l| l.contains("legacy key(s) stored"))
        .unwrap_or_else(|| panic!("no legacy warning at start:\n{}", warned.stderr));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("1 legacy key(s) stored: the legacy cut-off"),
        "{line}"
    );

    let soon = days_from_now(5);
    let near = Server::start_with(dir, &[("LATCHKEY_LEGACY_SUNSET", soon.as_str())]).stop();
    assert!(
        near.stderr.contains("legacy key(s) stored") && near.stderr.contains("days away"),
        "{}",
        near.stderr
    );

    let later = days_from_now(60);
    let calm = Server::start_with(dir, &[("LATCHKEY_LEGACY_SUNSET", later.as_str())]).stop();
    assert!(!calm.stderr.contains("legacy key(s)"), "{}", calm.stderr);
}

#[tokio::test]
async fn shop_list_finds_every_shop_and_its_id_however_it_was_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let empty = run(dir, &["shop", "list", "--json"]).json();
    assert_eq!(empty, serde_json::json!({"shops": []}));
    assert!(run(dir, &["shop", "list"]).ok().contains("no shops yet"));

    let first = new_shop(dir);
    let second = run(
        dir,
        &[
            "shop",
            "create",
            "--name",
            "Screen Savers",
            "--owner-email",
            "boss@screensavers.example",
            "--json",
        ],
    )
    .json();
    let second = s(&second, "shop_id").to_owned();

    let out = run(dir, &["shop", "list", "--json"]).json();
    let shops = out["shops"].as_array().expect("shops");
    assert_eq!(shops.len(), 2, "{out}");
    assert_eq!(shops[0]["id"], first.as_str(), "oldest first");
    assert_eq!(shops[0]["name"], "Fix-It Phones");
    assert_eq!(shops[0]["owner_email"], "owner@fixit.example");
    assert_eq!(shops[1]["id"], second.as_str());
    assert_eq!(shops[1]["owner_email"], "boss@screensavers.example");
    assert!(s(&shops[1], "created_at").ends_with('Z'));

    let text = run(dir, &["shop", "list"]).ok();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with(&first) && rows[0].ends_with("Fix-It Phones"),
        "{text}"
    );
    assert!(rows[1].contains("boss@screensavers.example"), "{text}");
}

// ---------------------------------------------------------------------------
// Redis unreachable at start

/// `--redis-url` naming a Redis that does not answer: `local` starts, warns
/// and serves with its own limits (ready); `deny` starts and answers keyed
/// requests and readiness 503.
#[tokio::test]
async fn an_unreachable_redis_at_start_is_per_mode() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{closed}/0");
    let client = reqwest::Client::new();
    for (mode, ready, keyed) in [("local", 200, 200), ("deny", 503, 503)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let shop = new_shop(&dir);
        let key = new_key(&dir, &shop, &["--template", "read-only"]);
        let server = Server::start_with(
            &dir,
            &[
                ("LATCHKEY_REDIS_URL", url.as_str()),
                ("LATCHKEY_REDIS_UNAVAILABLE", mode),
            ],
        );
        let r = client
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), ready, "{mode}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["redis"], "unavailable", "{mode}: {body}");
        let r = client
            .get(format!("{}/api/v1/me", server.url))
            .bearer_auth(s(&key, "secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), keyed, "{mode}");
        let stopped = server.stop();
        assert!(
            stopped.stderr.contains("redis is not answering at start"),
            "{mode}: {}",
            stopped.stderr
        );
        assert!(!stopped.stderr.contains("hunter2"), "{}", stopped.stderr);
        assert!(
            !stopped
                .stderr
                .contains("kept per instance (no --redis-url)"),
            "no 'no Redis' warning when one is configured"
        );
    }
}

// ---------------------------------------------------------------------------
// pause and resume

#[tokio::test]
async fn keys_pause_and_resume_act_on_a_templates_keys_in_both_environments_or_on_named_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let shop = new_shop(&dir);
    let zap_live = new_key(&dir, &shop, &["--template", "zapier"]);
    let zap_test = new_key(
        &dir,
        &shop,
        &["--template", "zapier", "--environment", "test"],
    );
    let pax = new_key(&dir, &shop, &["--template", "pax8"]);
    let (zap_live, zap_test, pax) = (s(&zap_live, "id"), s(&zap_test, "id"), s(&pax, "id"));

    let out = run(
        &dir,
        &[
            "keys",
            "pause",
            "--shop",
            &shop,
            "--template",
            "zapier",
            "--reason",
            "Vendor incident",
            "--json",
        ],
    )
    .json();
    let mut paused: Vec<&str> = out["paused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    paused.sort();
    let mut want = vec![zap_live, zap_test];
    want.sort();
    assert_eq!(paused, want, "{out}");
    assert_eq!(out["skipped"], serde_json::json!([]));
    let shown = run(&dir, &["keys", "show", zap_live, "--json"]).json();
    assert_eq!(shown["key"]["status"], "paused");
    assert_eq!(
        run(&dir, &["keys", "show", pax, "--json"]).json()["key"]["status"],
        "active"
    );
    let text = run(&dir, &["keys", "show", zap_test]).ok();
    assert!(
        text.contains("paused") && text.contains("Vendor incident"),
        "{text}"
    );

    // Again: nothing more to pause; plain text names each skipped key.
    let text = run(&dir, &["keys", "pause", "--shop", &shop, "--key", zap_live]).ok();
    assert!(
        text.contains(&format!("skipped {zap_live} (already_paused)")),
        "{text}"
    );

    let out = run(
        &dir,
        &[
            "keys",
            "resume",
            "--shop",
            &shop,
            "--key",
            zap_live,
            "--key",
            "key_nosuchkey",
            "--json",
        ],
    )
    .json();
    assert_eq!(out["resumed"], serde_json::json!([zap_live]), "{out}");
    assert_eq!(
        out["skipped"],
        serde_json::json!([{"id": "key_nosuchkey", "reason": "not_found"}])
    );
    assert_eq!(
        run(&dir, &["keys", "show", zap_live, "--json"]).json()["key"]["status"],
        "active"
    );
    assert_eq!(
        run(&dir, &["keys", "show", zap_test, "--json"]).json()["key"]["status"],
        "paused"
    );

    // Bad input: one line naming the flag, nothing changed.
    let line = run(
        &dir,
        &["keys", "pause", "--shop", &shop, "--template", "nope"],
    )
    .fails();
    assert!(
        line.contains("--template") && line.contains("zapier"),
        "{line}"
    );
    let line = run(
        &dir,
        &[
            "keys",
            "pause",
            "--shop",
            &shop,
            "--template",
            "pax8",
            "--reason",
            &"x".repeat(201),
        ],
    )
    .fails();
    assert!(line.contains("--reason"), "{line}");
    let line = run(
        &dir,
        &["keys", "pause", "--shop", "shop_nope", "--template", "pax8"],
    )
    .fails();
    assert!(line.contains("--shop"), "{line}");
    let both = run(
        &dir,
        &[
            "keys",
            "pause",
            "--shop",
            &shop,
            "--template",
            "pax8",
            "--key",
            pax,
        ],
    );
    assert!(
        !both.status.success(),
        "--template and --key together are refused"
    );
    let neither = run(&dir, &["keys", "pause", "--shop", &shop]);
    assert!(
        !neither.status.success(),
        "one of --template or --key is needed"
    );
    assert_eq!(
        run(&dir, &["keys", "show", pax, "--json"]).json()["key"]["status"],
        "active"
    );
}
