//! Helpers for end-to-end scenarios: run the real `helpdesk` binary as a child process against
//! a database of its own and the real NATS server, and talk to it over HTTP.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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

/// A running `helpdesk up` process.
pub struct Product {
    /// Base URL of the API, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The HS256 secret it trusts.
    secret: String,
    child: Child,
}

impl Product {
    /// Starts `helpdesk up` on a free port with `database_url` and waits (up to 60 s) until it
    /// prints its URL.
    pub async fn start(database_url: &str) -> Product {
        let secret = format!("e2e-{}", uuid::Uuid::new_v4().simple());
        let mut child = Command::new(helpdesk_binary())
            .arg("up")
            .env("HELPDESK_JWT_SECRET", &secret)
            .env("DATABASE_URL", database_url)
            .env("NATS_URL", nats_url())
            .env("HELPDESK_ADDR", "127.0.0.1:0")
            .env(
                "HELPDESK_NATS_PREFIX",
                format!("e2e{}", uuid::Uuid::new_v4().simple()),
            )
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
        Product { url, secret, child }
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

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
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
