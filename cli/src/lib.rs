//! The `helpdesk` binary's commands: `up` runs the whole product in one process, `migrate`
//! prepares the database, `openapi` prints the API contract.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use helpdesk_command_api::{AppState, DOCS_PATH};
use helpdesk_platform::{Config, db, nats, telemetry};

/// How often expired idempotency keys are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// A start-up failure: printed as one line, then the process exits non-zero.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the configuration and sets up logging.
pub fn load_config() -> Result<Config, StartError> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    Ok(config)
}

/// `helpdesk migrate`: creates the database when missing and applies every migration.
pub async fn migrate(config: &Config) -> Result<sqlx::PgPool, StartError> {
    db::ensure_database(&config.database_url).await?;
    let pool = db::connect(&config.database_url, config.db_max_connections).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

/// `helpdesk up`: migrates, connects to NATS, serves the API until SIGINT or SIGTERM.
pub async fn up(config: Config) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let nats = nats::connect(&config.nats_url).await?;
    let state = AppState::new(pool.clone(), nats, config.idempotency_ttl);
    let (router, _) = helpdesk_command_api::app(state, helpdesk_query_api::routes());
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {} (HELPDESK_ADDR): {e}", config.addr))?;
    let addr = listener.local_addr()?;
    announce(&format!(
        "helpdesk is up\n  API:      http://{addr}/api/v1\n  API docs: http://{addr}{DOCS_PATH}\n"
    ));
    tokio::spawn(purge_idempotency_keys(pool));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// `helpdesk openapi`: the OpenAPI document as pretty JSON.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    let api = helpdesk_command_api::openapi(helpdesk_query_api::routes());
    let mut text = serde_json::to_string_pretty(&api)?;
    text.push('\n');
    Ok(text)
}

/// Writes to standard output and flushes (the end-to-end tests read the URLs from it).
pub fn announce(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Reports a start-up failure as one line on standard error.
pub fn fail(error: &StartError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "helpdesk: {error}");
    ExitCode::FAILURE
}

async fn purge_idempotency_keys(pool: sqlx::PgPool) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match helpdesk_command_api::idempotency::purge_expired(&pool).await {
            Ok(deleted) => tracing::debug!(deleted, "purged expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not purge idempotency keys"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
