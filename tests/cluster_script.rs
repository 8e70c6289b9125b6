//! `scripts/cluster.sh`, the worked example of docs/DEPLOY.md: it starts a
//! throwaway PostgreSQL, Redis, three instances and HAProxy in front, answers
//! through HAProxy with every dependency ready, and Ctrl-C stops all of it and
//! removes its directory. Needs Debian's `postgresql`, `redis-server` and
//! `haproxy` (scripts/test.sh installs them).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_script_serves_through_haproxy_and_stops_on_ctrl_c() {
    let root = env!("CARGO_MANIFEST_DIR");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cluster");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let (port, pg_port, redis_port) = (ports[0], ports[1], ports[2]);
    // Three consecutive free ports for the instances.
    let first = (20_000..60_000)
        .step_by(7)
        .find(|p| (0..3).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok()))
        .unwrap();
    let mut script = Command::new("bash")
        .arg(format!("{root}/scripts/cluster.sh"))
        .env("LATCHKEY_BIN", env!("CARGO_BIN_EXE_latchkey"))
        .env("PORT", port.to_string())
        .env("PG_PORT", pg_port.to_string())
        .env("REDIS_PORT", redis_port.to_string())
        .env("FIRST_INSTANCE_PORT", first.to_string())
        .env("CLUSTER_DIR", &dir)
        .env_remove("LATCHKEY_DATABASE_URL")
        .env_remove("LATCHKEY_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs scripts/cluster.sh");

    // Its summary on stdout; its progress (and any failure) on stderr.
    let (tx, rx) = mpsc::channel::<String>();
    let out = script.stdout.take().unwrap();
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx_out.send(line);
        }
    });
    let err = script.stderr.take().unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr_w = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("cluster.sh: {line}");
            stderr_w.lock().unwrap().push_str(&line);
        }
    });
    let started = Instant::now();
    let mut setup_link = None;
    let mut summary = false;
    while started.elapsed() < Duration::from_secs(180) {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if line.contains("latchkey cluster:") {
                    summary = true;
                }
                if let Some(i) = line.find("http://")
                    && line.contains("/setup?token=")
                {
                    setup_link = Some(line[i..].split_whitespace().next().unwrap().to_owned());
                }
                if line.contains("stop everything with Ctrl-C") {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = script.try_wait().unwrap() {
                    panic!(
                        "cluster.sh ended ({status}) before it was up: {}",
                        stderr.lock().unwrap()
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    assert!(summary, "cluster.sh printed its summary");
    eprintln!("cluster up in {:?}", started.elapsed());

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok", "{body}");
    assert_eq!(body["redis"], "ok", "{body}");
    // HAProxy spreads requests over the three instances, each ready.
    for _ in 0..6 {
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let link = setup_link.expect("a setup link on an empty database");
    assert!(
        link.starts_with(&format!("{base}/setup?token=")),
        "the link names the cluster's URL: {link}"
    );
    let setup = client.get(&link).send().await.unwrap();
    assert_eq!(setup.status(), 200, "the setup link works through HAProxy");

    // Ctrl-C: everything stops and the directory goes.
    let pid = script.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(60),
            "cluster.sh stops within a minute of Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("stopped in {:?} ({status})", stopping.elapsed());
    assert_eq!(status.code(), Some(130), "Ctrl-C ends it as interrupted");
    for p in [port, pg_port, redis_port, first, first + 1, first + 2] {
        assert!(!listening(p), "nothing listens on {p} any more");
    }
    assert!(!dir.exists(), "its directory is removed");
}
