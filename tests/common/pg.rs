//! A throwaway PostgreSQL for tests: any machine with Debian's `postgresql`
//! package (or the PostgreSQL server binaries on PATH) runs the PostgreSQL
//! tests with no set-up, and no cluster service needs to be running.
//!
//! The first test of a binary that asks for a database starts one server for
//! the whole binary: `initdb` into a fresh temporary directory (trust
//! authentication, fsync off), then `pg_ctl start` on a free port of
//! 127.0.0.1 with the socket in that directory. A watchdog shell owns the
//! server: it stops it and removes the directory when its stdin closes, which
//! happens when the test process exits, however it exits. As root, the server
//! runs as the `postgres` user (PostgreSQL refuses root).
//!
//! Each test gets its own empty database (`CREATE DATABASE t_<random>`), so
//! tests run in parallel without seeing each other's rows.
//!
//! With `LATCHKEY_TEST_DATABASE_URL` set (a superuser URL), that server is used
//! instead, and each test's database is dropped when the test ends.
//!
//! No server binaries and no URL: the test fails saying what to install. A
//! silent skip would read as "PostgreSQL passes" when nothing ran.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The server tests create their databases on.
enum Server {
    Throwaway(Throwaway),
    External(PgConnectOptions),
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("LATCHKEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External(
            PgConnectOptions::from_str(&url)
                .unwrap_or_else(|e| panic!("LATCHKEY_TEST_DATABASE_URL does not parse: {e}")),
        ),
        _ => Server::Throwaway(Throwaway::launch()),
    })
}

/// The throwaway server of this test binary, to stop and start it (outage
/// tests). `None` when tests run on `LATCHKEY_TEST_DATABASE_URL`.
pub fn throwaway() -> Option<&'static Throwaway> {
    match server() {
        Server::Throwaway(t) => Some(t),
        Server::External(_) => None,
    }
}

/// Options reaching the server's maintenance database, as a superuser.
fn admin_options() -> PgConnectOptions {
    match server() {
        Server::Throwaway(t) => t.options("postgres"),
        Server::External(o) => o.clone(),
    }
}

/// A fresh, empty database for one test; dropped (on an external server) with
/// this value.
pub struct TestDatabase {
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDatabase {
    /// `postgres://…` for this database, for code that takes a URL.
    pub fn url(&self) -> String {
        match server() {
            Server::Throwaway(t) => {
                format!("postgres://postgres@127.0.0.1:{}/{}", t.port, self.name)
            }
            Server::External(_) => {
                let base = std::env::var("LATCHKEY_TEST_DATABASE_URL").unwrap_or_default();
                replace_database(&base, &self.name)
            }
        }
    }
}

/// `url` with its database (the path) replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let authority_end = main
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| main[start..].find('/').map(|j| start + j))
        .unwrap_or(main.len());
    let mut out = format!("{}/{name}", &main[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The throwaway cluster goes as a whole when the process exits.
        if !matches!(server(), Server::External(_)) {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread
        // with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect_with(&admin_options()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Creates an empty database for one test.
pub async fn fresh_database() -> TestDatabase {
    let name = format!("t_{}", random_suffix());
    let mut admin = PgConnection::connect_with(&admin_options())
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
    // template0: never connected to, so concurrent creations do not collide.
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
    ))
    .execute(&mut admin)
    .await
    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = admin.close().await;
    TestDatabase {
        options: admin_options().database(&name),
        name,
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// A PostgreSQL server this test process started, and stops on exit.
pub struct Throwaway {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
    /// Closing the watchdog's stdin (at process exit) stops the server and
    /// removes its directory.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

const INSTALL_HINT: &str = "PostgreSQL tests need the PostgreSQL server binaries (initdb, pg_ctl, postgres) under \
     /usr/lib/postgresql/*/bin or on PATH: install the `postgresql` package (Debian/Ubuntu: \
     `apt-get install postgresql`; scripts/test.sh does it), or set LATCHKEY_TEST_DATABASE_URL to a \
     PostgreSQL superuser URL the tests may create databases on";

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the newest
/// `/usr/lib/postgresql/<version>/bin`, else the one on PATH.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|dir| has_all(dir)))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port for the test PostgreSQL: {e}"))
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Throwaway {
    fn launch() -> Throwaway {
        let bin = find_binaries().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let as_postgres_user = is_root();
        let root = std::env::temp_dir().join(format!(
            "latchkey-pg-{}-{}",
            std::process::id(),
            random_suffix()
        ));
        let data = root.join("data");
        let socket_dir = root.join("socket");
        let log = root.join("postgres.log");
        std::fs::create_dir_all(&socket_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", socket_dir.display()));
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&root)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown {} to the postgres user failed (running as root, PostgreSQL refuses root)",
                root.display()
            );
        }
        let port = free_port();
        let t = Throwaway {
            bin,
            data,
            log,
            socket_dir,
            port,
            as_postgres_user,
            _watchdog: Mutex::new(Self::spawn_watchdog(&root)),
        };
        let initdb = t
            .command("initdb")
            .arg("-D")
            .arg(&t.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        t.start_server();
        t
    }

    /// The watchdog: waits for its stdin to close (this process exiting),
    /// then stops the server at once and removes `root`.
    fn spawn_watchdog(root: &Path) -> (Child, ChildStdin) {
        // $0 is the root directory. SIGQUIT is PostgreSQL's immediate
        // shutdown; wait for the postmaster to go before removing its files.
        let script = "read _ignored; \
             pid=$(head -n 1 \"$0/data/postmaster.pid\" 2>/dev/null) && kill -QUIT \"$pid\" 2>/dev/null; \
             n=0; while [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done; \
             rm -rf \"$0\"";
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the PostgreSQL watchdog: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        (child, stdin)
    }

    /// A command for one of the server binaries, as the postgres user when
    /// running as root.
    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            sh_quote(&self.socket_dir.display().to_string())
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl start: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stops the server at once (connections are cut, as in a crash).
    pub fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl stop: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again after [`Self::stop`], on the same port.
    pub fn start(&self) {
        self.start_server();
    }

    /// Options reaching database `db` on this server as the superuser.
    pub fn options(&self, db: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database(db)
    }

    /// The server log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether the HTTP-level suites (`TestApp`, the CLI tests) run on PostgreSQL:
/// `LATCHKEY_TEST_BACKEND=postgres`; unset, empty or `sqlite` is SQLite. Any
/// other value fails the test rather than silently run SQLite.
pub fn http_backend_is_postgres() -> bool {
    match std::env::var("LATCHKEY_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("LATCHKEY_TEST_BACKEND={other:?}: expected `sqlite` or `postgres`"),
    }
}

/// Every row of every table of the database, as PostgreSQL's text form, for
/// tests that check a secret is not stored in plaintext. `bytea` columns show
/// as hex, so callers look for the hex form of a needle too
/// ([`hex_of`]).
pub async fn dump_text(options: &PgConnectOptions) -> String {
    let mut conn = PgConnection::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name)::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!tables.is_empty(), "the database has no tables");
    let mut out = String::new();
    for table in tables {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} t"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.push_str(&table);
        out.push('\n');
        out.push_str(&rows.unwrap_or_default());
        out.push('\n');
    }
    let _ = conn.close().await;
    out
}

/// `bytes` as lower-case hex, the way `bytea` prints.
pub fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
