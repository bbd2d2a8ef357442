//! Helpers for end-to-end scenarios: run the real `helpdesk` binary as a child process against
//! a database of its own and the real NATS server, and talk to it over HTTP.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod load;
pub mod realtime;

/// The Postgres server scenarios create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("HELPDESK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The NATS server scenarios use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The `helpdesk` binary built by `cargo test --workspace` next to the test binaries.
pub fn helpdesk_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in <target>/<profile>/deps");
    let binary = dir.join(format!("helpdesk{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace), which build it",
        binary.display()
    );
    binary
}

/// A metric's value from a Prometheus text exposition (`Product::metrics`); panics when the
/// text does not have it.
pub fn metric(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// A running `helpdesk up` process.
pub struct Product {
    /// Base URL of the API, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The HS256 secret it trusts.
    secret: String,
    /// Its NATS server and prefix (its stream is deleted on `stop`).
    nats: String,
    prefix: String,
    child: Child,
    /// Its `HELPDESK_DATA_DIR` (the search index), removed when the product is dropped.
    _data_dir: tempfile::TempDir,
}

impl Product {
    /// Starts `helpdesk up` on a free port with `database_url` and waits (up to 60 s) until it
    /// prints its URL.
    pub async fn start(database_url: &str) -> Product {
        Product::start_with(database_url, &[]).await
    }

    /// Starts `helpdesk up` with extra environment (for example its own `NATS_URL`).
    pub async fn start_with(database_url: &str, env: &[(&str, &str)]) -> Product {
        let setting = |name: &str, default: String| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map_or(default, |(_, value)| (*value).to_owned())
        };
        let secret = setting(
            "HELPDESK_JWT_SECRET",
            format!("e2e-{}", uuid::Uuid::new_v4().simple()),
        );
        let nats = setting("NATS_URL", nats_url());
        let prefix = setting("HELPDESK_NATS_PREFIX", unique_prefix());
        let data_dir = tempfile::tempdir().expect("a data directory");
        let mut command = Command::new(helpdesk_binary());
        command
            .env("NATS_URL", &nats)
            .env("HELPDESK_NATS_PREFIX", &prefix)
            .env("HELPDESK_DATA_DIR", data_dir.path())
            .env("RUST_LOG", "warn");
        for (name, value) in env {
            command.env(name, value);
        }
        command
            .arg("up")
            .env("HELPDESK_JWT_SECRET", &secret)
            .env("DATABASE_URL", database_url)
            .env("HELPDESK_ADDR", "127.0.0.1:0");
        let (child, url) = spawn_up(&mut command).await;
        Product {
            url,
            secret,
            nats,
            prefix,
            child,
            _data_dir: data_dir,
        }
    }

    /// Starts a second instance beside `other`: the same database, NATS prefix and token
    /// secret, with extra environment (for example `HELPDESK_RELAY=off`).
    pub async fn start_beside(
        other: &Product,
        database_url: &str,
        env: &[(&str, &str)],
    ) -> Product {
        let mut shared = vec![
            ("NATS_URL", other.nats.as_str()),
            ("HELPDESK_NATS_PREFIX", other.prefix.as_str()),
            ("HELPDESK_JWT_SECRET", other.secret.as_str()),
        ];
        shared.extend_from_slice(env);
        Product::start_with(database_url, &shared).await
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("the product answers /metrics")
            .text()
            .await
            .expect("a /metrics text")
    }

    /// Mints a token with `helpdesk token`, as an operator would.
    pub async fn token(&self, role: &str, sub: &str) -> String {
        let output = Command::new(helpdesk_binary())
            .args(["token", "--role", role, "--sub", sub, "--ttl", "10m"])
            .env("HELPDESK_JWT_SECRET", &self.secret)
            .env("RUST_LOG", "off")
            .output()
            .await
            .expect("run helpdesk token");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("a token is ASCII")
            .trim()
            .to_owned()
    }

    /// Runs another `helpdesk` command against the same database and NATS prefix; returns its
    /// standard output, failing the test if it fails.
    pub async fn cli(&self, database_url: &str, args: &[&str]) -> String {
        let output = Command::new(helpdesk_binary())
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("NATS_URL", &self.nats)
            .env("HELPDESK_NATS_PREFIX", &self.prefix)
            .env("HELPDESK_JWT_SECRET", &self.secret)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("run helpdesk");
        assert!(
            output.status.success(),
            "helpdesk {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Its `HELPDESK_NATS_PREFIX`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Stops the process and deletes its stream, if one is left.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Ok(client) = async_nats::connect(&self.nats).await {
            let js = async_nats::jetstream::new(client);
            for suffix in ["EVENTS", "DLQ"] {
                let _ = js
                    .delete_stream(format!("{}_{suffix}", self.prefix.to_uppercase()))
                    .await;
            }
        }
    }
}

/// Runs `helpdesk up` with extra environment and returns its exit status and standard error,
/// for start-up failures (it must exit by itself within 30 s).
pub async fn run_up_expecting_exit(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(helpdesk_binary());
    command
        .arg("up")
        .env("HELPDESK_ADDR", "127.0.0.1:0")
        .env("HELPDESK_JWT_SECRET", "unused-in-start-up-failures")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("helpdesk up exits within 30 s when a dependency is down")
        .expect("run helpdesk up");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A NATS prefix no other scenario uses.
pub fn unique_prefix() -> String {
    format!("e2e{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A background `helpdesk` process other than `up` (`relay`, `project <name>`).
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Starts `helpdesk relay` and waits until it says it started.
    pub async fn relay(database_url: &str, nats: &str, prefix: &str) -> Worker {
        Worker::start(&["relay"], database_url, nats, prefix, "relay started").await
    }

    /// Starts `helpdesk project <name>` and waits until it says it started.
    pub async fn projector(database_url: &str, nats: &str, prefix: &str, name: &str) -> Worker {
        Worker::start(&["project", name], database_url, nats, prefix, "projecting").await
    }

    async fn start(
        args: &[&str],
        database_url: &str,
        nats: &str,
        prefix: &str,
        ready_line: &str,
    ) -> Worker {
        let mut child = Command::new(helpdesk_binary())
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("NATS_URL", nats)
            .env("HELPDESK_NATS_PREFIX", prefix)
            .env("HELPDESK_RELAY_POLL_MS", "50")
            .env("HELPDESK_JWT_SECRET", "unused-by-workers")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start a helpdesk worker");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(ready_line) {
                    return;
                }
            }
            panic!("helpdesk {args:?} exited before starting");
        })
        .await
        .expect("the worker started within 60 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Worker { child }
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A nats-server of the scenario's own, on a free port with its own data directory, so that
/// it can be stopped and started again.
pub struct OwnNats {
    pub url: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts a JetStream-enabled nats-server on a free port.
    pub async fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("helpdesk-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create the NATS data directory");
        let mut nats = OwnNats {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
        };
        nats.restart().await;
        nats
    }

    /// Starts the server again (same port, same data).
    pub async fn restart(&mut self) {
        let binary =
            std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (up to 60 s) until the stream `<PREFIX>_EVENTS` on `nats` holds at least `count`
/// messages; returns how many it holds.
pub async fn wait_for_stream_count(nats: &str, prefix: &str, count: u64) -> u64 {
    let client = async_nats::connect(nats).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let name = format!("{}_EVENTS", prefix.to_uppercase());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = js.get_stream(&name).await {
            let messages = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
            if messages >= count {
                return messages;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream {name} did not reach {count} messages within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the stream holds `count` messages, returns their message ids in stream order,
/// and deletes the stream.
pub async fn wait_for_stream(nats: &str, prefix: &str, count: u64) -> Vec<String> {
    wait_for_stream_count(nats, prefix, count).await;
    let client = async_nats::connect(nats).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let name = format!("{}_EVENTS", prefix.to_uppercase());
    let mut stream = js.get_stream(&name).await.expect("the stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut ids = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned());
            ids.push(id.unwrap_or_default());
        }
    }
    let _ = js.delete_stream(&name).await;
    ids
}

/// Spawns a prepared `helpdesk up` command (killed when dropped) and waits, up to 60 s, for
/// the API address it prints; its standard output is drained from then on.
pub async fn spawn_up(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start helpdesk up");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(api) = line.trim().strip_prefix("API:") {
                return api.trim().trim_end_matches("/api/v1").to_owned();
            }
        }
        panic!("helpdesk up exited before printing its URL");
    })
    .await
    .expect("helpdesk up printed its URL within 60 s");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}
