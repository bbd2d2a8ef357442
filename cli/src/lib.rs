//! The `helpdesk` binary's commands: `up` runs the whole product in one process, `migrate`
//! prepares the database, `openapi` prints the API contract.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_command_api::{AppState, DOCS_PATH};
use helpdesk_platform::auth::{self, Claims, Verifier};
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
    let verifier = Verifier::from_config(&config.auth, &config.data_dir).await?;
    let state = AppState::new(
        pool.clone(),
        nats,
        config.idempotency_ttl,
        Arc::new(verifier),
    );
    if config.relay_in_process {
        tokio::spawn(relay(&config, &state).run());
    }
    let (router, _) = router(state);
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

/// The relay of this process, woken by its own commits.
fn relay(config: &Config, state: &AppState) -> Relay {
    Relay::new(
        state.pool.clone(),
        state.nats.clone(),
        relay_settings(config),
        state.relay_wakeup.clone(),
        state.metrics.clone(),
    )
}

fn relay_settings(config: &Config) -> RelaySettings {
    RelaySettings {
        prefix: config.nats_prefix.clone(),
        poll_interval: config.relay_poll_interval,
        batch_size: 256,
    }
}

/// `helpdesk relay`: only the relay, until SIGINT or SIGTERM (for running it apart from the
/// API; only one relay per database is active at a time).
pub async fn relay_alone(config: Config) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let nats = nats::connect(&config.nats_url).await?;
    let relay = Relay::new(
        pool,
        nats,
        relay_settings(&config),
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(helpdesk_command_api::metrics::Metrics::new()),
    );
    announce("relay started\n");
    tokio::select! {
        () = relay.run() => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

/// What `helpdesk token` puts in a development token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub sub: String,
    pub role: String,
    pub groups: Vec<String>,
    pub customer_id: Option<String>,
    pub ttl: Duration,
}

/// `helpdesk token`: mints an HS256 token with `HELPDESK_JWT_SECRET`, or with the development
/// secret that `helpdesk up` uses when no key is configured.
pub fn mint_token(config: &Config, request: TokenRequest) -> Result<String, StartError> {
    if config.auth.jwt_secret.is_none() && config.auth.jwks_url.is_some() {
        return Err("tokens for a JWKS setup come from your identity provider; \
                    set HELPDESK_JWT_SECRET to mint development tokens"
            .into());
    }
    let secret = match &config.auth.jwt_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => auth::load_or_create_dev_secret(&config.data_dir)?,
    };
    if !is_token_role(&request.role) {
        return Err(format!(
            "--role {:?} must be customer, agent, manager, auditor or admin",
            request.role
        )
        .into());
    }
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let customer_id = match (request.customer_id, request.role.as_str()) {
        (Some(id), _) => Some(id),
        (None, "customer") => Some(request.sub.clone()),
        (None, _) => None,
    };
    let claims = Claims {
        sub: request.sub,
        role: request.role,
        groups: request.groups,
        customer_id,
        exp: now + request.ttl.as_secs(),
        nbf: None,
        iat: Some(now),
        iss: config.auth.issuer.clone(),
        aud: config.auth.audience.clone().map(serde_json::Value::from),
    };
    Ok(auth::mint(&secret, &claims)?)
}

/// The whole HTTP surface: command routes, read routes, docs, probes, metrics.
pub fn router(state: AppState) -> (axum::Router, utoipa::openapi::OpenApi) {
    helpdesk_command_api::app(state, helpdesk_query_api::routes())
}

fn is_token_role(role: &str) -> bool {
    ["customer", "agent", "manager", "auditor", "admin"].contains(&role)
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
