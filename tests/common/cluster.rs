//! Several real `latchkey serve` processes on one PostgreSQL database: the
//! scale-out docs/DEPLOY.md promises (a key change enforced everywhere within a
//! second, usage exact across instances, idempotency and order references
//! consistent, a shared secret checked) tested as a deployment runs them.
//!
//! [`Cluster::start`] launches N instances of the test build's binary, each
//! on `127.0.0.1:0` (the bound URL is read from its `listening on http://…`
//! log line), all sharing one data directory, one database URL and (unless
//! [`ClusterBuilder::data_dir_secret`]) one `--secret-file`; extra `serve`
//! arguments pass through (Redis flags, later). It waits until every
//! instance's `/readyz` answers 200. Instances can be stopped with SIGTERM
//! (graceful: a final usage flush) or SIGKILL (a crash); everything still
//! running is killed when the cluster is dropped, so a failing test leaves no
//! process behind.
//!
//! [`Cluster::cli`] runs a data command (`keys revoke …`) against the same
//! database, data directory and secret, as an operator would.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// How long an instance may take to log its URL and then to be ready: a
/// debug build on a loaded 2-core machine, several starting at once.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped instance may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A `latchkey` command with a clean environment (no `LATCHKEY_*` or
/// `RUST_LOG` from the user's), run in `cwd`.
pub fn bare(cwd: &Path) -> Command {
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

pub struct ClusterBuilder {
    database_url: String,
    instances: usize,
    extra_args: Vec<String>,
    secret_file: bool,
}

impl ClusterBuilder {
    /// How many instances start (default 3).
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n;
        self
    }

    /// Extra `serve` arguments for every instance.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// No `--secret-file`: the instances find (or race to create) the
    /// secret in the shared data directory, `<data-dir>/secret.key`.
    pub fn data_dir_secret(mut self) -> Self {
        self.secret_file = false;
        self
    }

    /// Starts every instance at once and waits until all are ready.
    pub async fn start(self) -> Cluster {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let data_dir = tmp.path().join("data");
        let secret_file = self.secret_file.then(|| {
            let path = tmp.path().join("cluster-secret.key");
            let secret: String = (0..64)
                .map(|i| char::from(b"0123456789abcdef"[(i * 7 + 3) % 16]))
                .collect();
            std::fs::write(&path, secret).expect("write the shared secret");
            path
        });
        let mut cluster = Cluster {
            tmp,
            data_dir,
            secret_file,
            database_url: self.database_url,
            extra_args: self.extra_args,
            instances: Vec::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
        };
        let spawned: Vec<Spawned> = (0..self.instances).map(|_| cluster.spawn(&[])).collect();
        for s in spawned {
            match s.wait_for_url() {
                Ok(instance) => cluster.instances.push(Some(instance)),
                Err(log) => panic!("an instance did not start:\n{log}"),
            }
        }
        for i in 0..cluster.instances.len() {
            cluster.wait_ready(i).await;
        }
        cluster
    }
}

/// Several `serve` processes on one database.
pub struct Cluster {
    tmp: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// The shared `--secret-file`, unless the data directory holds the secret.
    pub secret_file: Option<PathBuf>,
    pub database_url: String,
    extra_args: Vec<String>,
    /// `None` once stopped or killed.
    instances: Vec<Option<Instance>>,
    pub client: reqwest::Client,
}

/// One running `serve` process.
pub struct Instance {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

/// A spawned process, not yet known to be listening.
struct Spawned {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
    url: mpsc::Receiver<String>,
}

/// How an instance ended.
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it logged.
    pub log: String,
}

impl Spawned {
    /// The instance once it logged its URL, or (when it exited or never
    /// logged it) its log.
    fn wait_for_url(mut self) -> Result<Instance, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(url) = self.url.recv_timeout(Duration::from_millis(50)) {
                return Ok(Instance {
                    child: self.child,
                    url: url.trim_end_matches('/').to_owned(),
                    log: self.log,
                    reader: Some(self.reader),
                });
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let _ = self.reader.join();
                return Err(format!(
                    "exited with {status}; its log:\n{}",
                    self.log.lock().unwrap()
                ));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let _ = self.reader.join();
                return Err(format!(
                    "no `listening on` line within {START_TIMEOUT:?}; its log:\n{}",
                    self.log.lock().unwrap()
                ));
            }
        }
    }
}

impl Cluster {
    pub fn builder(database_url: &str) -> ClusterBuilder {
        ClusterBuilder {
            database_url: database_url.to_owned(),
            instances: 3,
            extra_args: Vec::new(),
            secret_file: true,
        }
    }

    /// Instances on the data directory's own SQLite database (the default
    /// install; one instance at a time makes sense there).
    pub fn sqlite() -> ClusterBuilder {
        Self::builder("").instances(1)
    }

    /// The base URL of instance `i` (which must be running).
    pub fn url(&self, i: usize) -> &str {
        &self.instance(i).url
    }

    fn instance(&self, i: usize) -> &Instance {
        self.instances[i]
            .as_ref()
            .unwrap_or_else(|| panic!("instance {i} is not running"))
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// The arguments naming the shared database, data directory and secret.
    fn shared_args(&self, cmd: &mut Command) {
        cmd.arg("--data-dir").arg(&self.data_dir);
        if !self.database_url.is_empty() {
            cmd.arg("--database-url").arg(&self.database_url);
        }
        if let Some(file) = &self.secret_file {
            cmd.arg("--secret-file").arg(file);
        }
    }

    /// Launches `latchkey serve` with the shared settings, then `extra`.
    fn spawn(&self, extra: &[&str]) -> Spawned {
        let mut cmd = bare(self.tmp.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        self.shared_args(&mut cmd);
        cmd.args(&self.extra_args)
            .args(extra)
            .env("LATCHKEY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("latchkey serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, url) = mpsc::channel();
        let mut pipe = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match pipe.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                sink.lock().unwrap().push_str(&line);
                if !sent && let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let found = rest.split_whitespace().next().unwrap_or("").to_owned();
                    sent = tx.send(found).is_ok();
                }
            }
        });
        Spawned {
            child,
            log,
            reader,
            url,
        }
    }

    /// Starts one more instance (with `extra` arguments besides the shared
    /// ones) and waits until it is ready; returns its index.
    pub async fn add(&mut self, extra: &[&str]) -> usize {
        match self.try_add(extra) {
            Ok(i) => {
                self.wait_ready(i).await;
                i
            }
            Err(log) => panic!("the added instance did not start: {log}"),
        }
    }

    /// Starts one more instance; `Err` with its log (and it has exited) when
    /// it refuses to start.
    pub fn try_add(&mut self, extra: &[&str]) -> Result<usize, String> {
        let instance = self.spawn(extra).wait_for_url()?;
        self.instances.push(Some(instance));
        Ok(self.instances.len() - 1)
    }

    /// Polls `/readyz` of instance `i` until it answers 200.
    async fn wait_ready(&self, i: usize) {
        let url = format!("{}/readyz", self.url(i));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = self.client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance {i} not ready within {START_TIMEOUT:?}; its log:\n{}",
                self.instance(i).log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`TERM`, `KILL`) to instance `i` and waits for it to
    /// exit.
    pub fn signal(&mut self, i: usize, signal: &str) -> Stopped {
        let mut instance = self.instances[i]
            .take()
            .unwrap_or_else(|| panic!("instance {i} is not running"));
        let pid = instance.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = instance.child.try_wait().expect("waitpid") {
                break status;
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = instance.child.kill();
                let _ = instance.child.wait();
                panic!(
                    "instance {i} did not exit within {STOP_TIMEOUT:?} of SIG{signal}; its log:\n{}",
                    instance.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = instance.reader.take() {
            let _ = r.join();
        }
        let log = instance.log.lock().unwrap().clone();
        Stopped { status, log }
    }

    /// SIGTERM: a graceful stop (requests in flight finish, usage is flushed).
    pub fn terminate(&mut self, i: usize) -> Stopped {
        self.signal(i, "TERM")
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self, i: usize) -> Stopped {
        self.signal(i, "KILL")
    }

    /// What instance `i` logged so far.
    pub fn log(&self, i: usize) -> String {
        self.instance(i).log.lock().unwrap().clone()
    }

    /// `latchkey ARGS` on the cluster's database, data directory and secret.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = bare(self.tmp.path());
        cmd.args(args);
        self.shared_args(&mut cmd);
        cmd.output().expect("latchkey runs")
    }

    /// [`Self::cli`] that must succeed; its stdout as JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "latchkey {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "latchkey {args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// A shop made by the CLI; returns its id.
    pub fn new_shop(&self, name: &str) -> String {
        let email = format!("owner@{}.example", name.to_lowercase().replace(' ', "-"));
        let out = self.cli_json(&[
            "shop",
            "create",
            "--name",
            name,
            "--owner-email",
            &email,
            "--json",
        ]);
        out["shop_id"].as_str().expect("shop_id").to_owned()
    }

    /// A key of `shop` made by the CLI with `permissions` and a limit high
    /// enough for any test; returns (id, secret).
    pub fn new_key(&self, shop: &str, name: &str, permissions: &[&str]) -> (String, String) {
        let mut args = vec![
            "keys",
            "create",
            "--shop",
            shop,
            "--name",
            name,
            "--rate-limit",
            "10000",
            "--json",
        ];
        for p in permissions {
            args.extend(["--permission", p]);
        }
        let out = self.cli_json(&args);
        let key = &out["key"];
        (
            key["id"].as_str().expect("key id").to_owned(),
            key["secret"].as_str().expect("key secret").to_owned(),
        )
    }

    /// The temporary directory everything lives in.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for instance in self.instances.iter_mut().flatten() {
            let _ = instance.child.kill();
            let _ = instance.child.wait();
        }
    }
}
