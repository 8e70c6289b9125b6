//! A throwaway Redis for tests: any machine with Debian's `redis-server`
//! package runs the Redis tests with no set-up and no service running.
//!
//! The first test of a binary that asks for Redis starts one server for the
//! whole binary: `redis-server` on a free port of 127.0.0.1, with its files
//! in a fresh temporary directory, no persistence (`--save "" --appendonly
//! no`). A watchdog shell owns it: when its stdin closes (this process
//! exiting, however it exits), it kills the server and removes the directory.
//! [`Throwaway::stop`] and [`Throwaway::start`] stop it and start it again,
//! empty, on the same port (outage tests).
//!
//! Tests share the server but not their keys: each takes its own key prefix
//! ([`prefix`]).
//!
//! With `LATCHKEY_TEST_REDIS_URL` set, that Redis is used instead (outage
//! tests then skip, saying so). No `redis-server` and no URL: the test fails
//! saying what to install.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

enum Server {
    Throwaway(Throwaway),
    External(String),
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("LATCHKEY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Server::External(url),
        _ => Server::Throwaway(Throwaway::launch()),
    })
}

/// The URL of the test Redis.
pub fn url() -> String {
    match server() {
        Server::Throwaway(t) => t.url(),
        Server::External(u) => u.clone(),
    }
}

/// The throwaway server, to stop and start it; `None` on `LATCHKEY_TEST_REDIS_URL`.
pub fn throwaway() -> Option<&'static Throwaway> {
    match server() {
        Server::Throwaway(t) => Some(t),
        Server::External(_) => None,
    }
}

/// A key prefix of this test's own, under latchkey's namespace.
pub fn prefix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let s: String = (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("latchkey:test-{s}:")
}

const INSTALL_HINT: &str = "Redis tests need `redis-server` on PATH: install the `redis-server` package \
     (Debian/Ubuntu: `apt-get install redis-server`; scripts/test.sh does it), or set \
     LATCHKEY_TEST_REDIS_URL to a Redis the tests may write keys to";

pub struct Throwaway {
    dir: PathBuf,
    pub port: u16,
    _watchdog: Mutex<(Child, ChildStdin)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port for the test Redis: {e}"))
}

impl Throwaway {
    fn launch() -> Throwaway {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            panic!("{INSTALL_HINT}");
        }
        let dir = std::env::temp_dir().join(format!(
            "latchkey-redis-{}-{}",
            std::process::id(),
            prefix()
                .trim_start_matches("latchkey:test-")
                .trim_end_matches(':')
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let t = Throwaway {
            port: free_port(),
            _watchdog: Mutex::new(Self::spawn_watchdog(&dir)),
            dir,
        };
        t.start();
        t
    }

    /// Waits for stdin to close (this process exiting), then kills the server
    /// and removes its directory ($0).
    fn spawn_watchdog(dir: &Path) -> (Child, ChildStdin) {
        let script = "read _ignored; \
             pid=$(cat \"$0/redis.pid\" 2>/dev/null) && kill -9 \"$pid\" 2>/dev/null; \
             rm -rf \"$0\"";
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the Redis watchdog: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        (child, stdin)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    /// Starts the server (empty) and waits until it answers.
    pub fn start(&self) {
        let out = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.pid_file())
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-server: {e}"));
        assert!(
            out.status.success(),
            "redis-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "the test Redis did not answer within 10 s: {}",
                std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (connections are cut) and waits until it is gone.
    pub fn stop(&self) {
        let pid = std::fs::read_to_string(self.pid_file())
            .unwrap_or_else(|e| panic!("no Redis pid file: {e}"));
        let pid = pid.trim().to_owned();
        let _ = Command::new("kill").args(["-9", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "the test Redis did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Whether the server answers PING.
    pub fn answers(&self) -> bool {
        command(self.port, "PING").is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one inline command (e.g. `SCRIPT FLUSH`); the raw reply.
    pub fn command(&self, line: &str) -> Option<String> {
        command(self.port, line)
    }
}

fn command(port: u16, line: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Sends `line` to the test Redis, throwaway or external.
pub fn send(line: &str) -> Option<String> {
    match server() {
        Server::Throwaway(t) => t.command(line),
        Server::External(u) => {
            let port = u
                .rsplit(':')
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(6379);
            command(port, line)
        }
    }
}
