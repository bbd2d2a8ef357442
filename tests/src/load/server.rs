//! The product under load: the release `helpdesk` binary started as `helpdesk up` on a scratch
//! database and NATS prefix of its own, tokens it trusts, its metrics, and the cleanup after
//! it. (`crate::Product` does the same for the test suite, where the binary sits in
//! `target/<profile>/` one level above the test executables; a benchmark binary sits beside it.)

use std::path::{Path, PathBuf};

use helpdesk_platform::auth::{Claims, mint};
use tokio::process::{Child, Command};

/// The release `helpdesk` binary next to the running benchmark; exits with a message when it
/// is missing.
pub fn release_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark knows its path");
    let binary = exe.with_file_name(format!("helpdesk{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        eprintln!(
            "{} is missing: build it first with `cargo build --release -p helpdesk` \
             (with the same CARGO_TARGET_DIR as this benchmark)",
            binary.display()
        );
        std::process::exit(2);
    }
    binary
}

/// The soft limit on open files of this process (the server it starts inherits it).
pub fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok())
        .unwrap_or(u64::MAX)
}

/// Exits with a message when fewer than `needed` files may be open (`why` says what needs
/// them).
pub fn require_open_files(needed: u64, why: &str) {
    let open_files = open_files_limit();
    if open_files < needed {
        eprintln!(
            "the open-file limit is {open_files}; {why} need more: run `ulimit -n 8192` first \
             (the server inherits it)"
        );
        std::process::exit(2);
    }
}

/// Starts `helpdesk up` (default settings plus `env`) on a free port with the token secret
/// `secret`; waits until it prints its URL. Returns the child (killed on drop) and the base
/// URL (`http://127.0.0.1:<port>`).
pub async fn start_server(
    binary: &Path,
    database_url: &str,
    prefix: &str,
    data_dir: &Path,
    secret: &str,
    env: &[(String, String)],
) -> (Child, String) {
    let mut command = Command::new(binary);
    command
        .arg("up")
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", crate::nats_url())
        .env("HELPDESK_NATS_PREFIX", prefix)
        .env("HELPDESK_DATA_DIR", data_dir)
        .env("HELPDESK_JWT_SECRET", secret)
        .env("HELPDESK_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    crate::spawn_up(&mut command).await
}

/// A token with role `role` for user `sub`, signed with `secret`, valid for three hours.
pub fn token(secret: &str, role: &str, sub: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        role: role.into(),
        groups: vec![],
        customer_id: None,
        exp: (chrono::Utc::now().timestamp() + 3 * 3600) as u64,
        nbf: None,
        iat: None,
        iss: None,
        aud: None,
    };
    mint(secret.as_bytes(), &claims).expect("an HS256 token can always be signed")
}

/// An agent's token for user `sub`.
pub fn agent_token(secret: &str, sub: &str) -> String {
    token(secret, "agent", sub)
}

/// The server's `/metrics` text, when it answers.
pub async fn metrics_text(base: &str) -> Option<String> {
    reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The value of metric `name` (without labels) on the server's `/metrics`, or `?`.
pub async fn metric(base: &str, name: &str) -> String {
    let Some(text) = metrics_text(base).await else {
        return "?".into();
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or("?")
        .trim()
        .to_owned()
}

/// Deletes the prefix's streams and drops the scratch database (both best effort).
pub async fn cleanup(
    nats: &async_nats::Client,
    prefix: &str,
    server_url: &str,
    database_url: &str,
) {
    let js = async_nats::jetstream::new(nats.clone());
    for suffix in ["EVENTS", "DLQ"] {
        let _ = js
            .delete_stream(format!("{}_{suffix}", prefix.to_uppercase()))
            .await;
    }
    // The URL may carry options (`…/name?sslmode=prefer`).
    let path = database_url.split('?').next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let server = helpdesk_platform::Secret::new(server_url.to_owned());
    if let Ok(pool) = helpdesk_platform::db::connect(&server, 1).await {
        let drop = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            helpdesk_platform::db::quote_identifier(name)
        );
        let _ = sqlx::query(&drop).execute(&pool).await;
    }
}
