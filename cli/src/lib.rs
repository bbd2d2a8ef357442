//! The `helpdesk` binary's commands: `up` runs the whole product in one process, `migrate`
//! prepares the database, `openapi` prints the API contract, `audit` checks the event store's
//! hash chains (in [`audit`]).

pub mod audit;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_command_api::{AppState, DOCS_PATH};
use helpdesk_platform::auth::{self, Claims, Verifier};
use helpdesk_platform::{Config, db, nats, telemetry};
use helpdesk_projections::runtime::{self, Gather, RuntimeSettings};
use helpdesk_projections::sla::{self, BreachWatcher, CountFolder, SlaProjection};
use helpdesk_projections::ticket_summary::TicketSummary;
use helpdesk_projections::{Projection, dead_letters, rebuild};
use helpdesk_query_api::realtime::{Realtime, RealtimeSettings};
use helpdesk_search::SearchBackend;
use helpdesk_search::projection::{self as search, SearchProjection, SearchSettings};
use helpdesk_search::rebuild::{self as search_rebuild, RebuildStep, SearchAdmin, SearchIndex};

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

/// `helpdesk up`: migrates, connects to NATS, serves the API until SIGINT or SIGTERM. Runs the
/// relay unless `HELPDESK_RELAY=off`, and the projectors (search included) unless
/// `HELPDESK_PROJECTORS=off`; the real-time feed always.
pub async fn up(config: Config) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let nats = nats::connect(&config.nats_url).await?;
    let verifier = Verifier::from_config(&config.auth, &config.data_dir).await?;
    let realtime = Realtime::start(pool.clone(), nats.clone(), realtime_settings(&config))
        .await
        .map_err(|error| format!("cannot start the real-time feed: {error}"))?;
    let mut state = AppState::new(
        pool.clone(),
        nats,
        config.idempotency_ttl,
        Arc::new(verifier),
    )
    .with_realtime(realtime)
    .with_max_in_flight(config.max_in_flight);
    let mut running = Vec::new();
    if config.projectors {
        let (search, index) = search_projection(&config, &pool).await?;
        state = state
            .with_search(search.reader())
            .with_search_admin(SearchAdmin::new(pool.clone(), index, search.clone()));
        running = projections(&pool);
        running.push(Arc::new(search));
        // Breaches that fall due between ticket events; several processes may each run one.
        tokio::spawn(BreachWatcher::new(pool.clone()).run());
        // Report count changes into the report counts; likewise one per process.
        let folder = CountFolder::new(pool.clone());
        state = state.with_count_folder(folder.stats());
        tokio::spawn(folder.run());
    }
    let names = running.iter().map(|p| p.name().to_owned()).collect();
    let state = state.with_pipeline(&config.nats_prefix, names);
    if config.relay_in_process && config.relay_thread {
        spawn_relay_thread(&config, &state)?;
    } else if config.relay_in_process {
        tokio::spawn(relay(&config, &state).run());
    }
    for projection in running {
        let settings = runtime_settings(&config, projection.name());
        tokio::spawn(runtime::run(state.nats.clone(), projection, settings));
    }
    let (router, _) = router(state);
    let listener = listen(&config)
        .map_err(|e| format!("cannot listen on {} (HELPDESK_ADDR): {e}", config.addr))?;
    let addr = listener.local_addr()?;
    announce(&format!(
        "helpdesk is up\n  API:      http://{addr}/api/v1\n  API docs: http://{addr}{DOCS_PATH}\n"
    ));
    tokio::spawn(audit::anchor_periodically(
        pool.clone(),
        config.audit_anchor_interval,
    ));
    tokio::spawn(purge_idempotency_keys(pool));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// The API's listening socket; accepted connections inherit its send buffer size.
fn listen(config: &Config) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if config.addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(bytes) = config.socket_send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(config.addr)?;
    socket.listen(1024)
}

fn realtime_settings(config: &Config) -> RealtimeSettings {
    RealtimeSettings {
        replay_limit: config.realtime.replay_limit,
        buffer: config.realtime.buffer,
        summary_cache: config.realtime.summary_cache,
        ..RealtimeSettings::new(config.nats_prefix.clone())
    }
}

/// The relay of this process as a task among the API's, woken by its own commits.
fn relay(config: &Config, state: &AppState) -> Relay {
    Relay::new(
        state.pool.clone(),
        state.nats.clone(),
        relay_settings(config),
        state.relay_wakeup.clone(),
        state.metrics.clone(),
    )
}

/// Postgres connections of the relay's own pool (its leader lock holds one more, detached).
const RELAY_CONNECTIONS: u32 = 2;

/// Starts the relay of this process (`HELPDESK_RELAY_THREAD=on`), woken by its own commits, on
/// a thread of its own with a single-threaded runtime, its own Postgres pool and its own NATS
/// connection. As a task among the API's, a busy host leaves it waiting its turn behind every
/// request at each step of a batch; on its own thread the operating system shares the cores
/// between it and the API's workers: the events reach the bus sooner, and on an overloaded
/// host the commands wait instead (docs/benchmarks.md, "The relay on a thread of its own").
fn spawn_relay_thread(config: &Config, state: &AppState) -> Result<(), StartError> {
    let database_url = config.database_url.clone();
    let nats_url = config.nats_url.clone();
    let settings = relay_settings(config);
    let wakeup = state.relay_wakeup.clone();
    let metrics = state.metrics.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (pool, nats) = loop {
                    match (
                        db::connect(&database_url, RELAY_CONNECTIONS).await,
                        nats::connect(&nats_url).await,
                    ) {
                        (Ok(pool), Ok(nats)) => break (pool, nats),
                        (Err(error), _) => {
                            tracing::warn!(%error, "relay cannot connect to Postgres")
                        }
                        (_, Err(error)) => tracing::warn!(%error, "relay cannot connect to NATS"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                };
                Relay::new(pool, nats, settings, wakeup, metrics)
                    .run()
                    .await;
            });
        })?;
    Ok(())
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

/// The configured search index (tantivy, or Elasticsearch when `ELASTICSEARCH_URL` is set).
async fn search_index(config: &Config) -> Result<SearchIndex, StartError> {
    SearchIndex::open(&config.search, &config.nats_prefix)
        .await
        .map_err(|error| match &config.search.elasticsearch_url {
            Some(_) => format!("cannot open the search index (ELASTICSEARCH_URL): {error}").into(),
            None => format!(
                "cannot open the search index in {} (SEARCH_INDEX_DIR; only one process may \
                 write it): {error}",
                config.search.index_dir.display()
            )
            .into(),
        })
}

/// The search projection over the configured index.
async fn search_projection(
    config: &Config,
    pool: &sqlx::PgPool,
) -> Result<(SearchProjection, SearchIndex), StartError> {
    let index = search_index(config).await?;
    let settings = SearchSettings {
        commit_interval: config.search.commit_interval,
        ..SearchSettings::default()
    };
    if let SearchIndex::Tantivy(tantivy) = &index
        && tantivy.checkpoint()?.is_none()
    {
        // A new (or lost) index: the consumer may have acknowledged history long ago, so
        // fill it from the event store beside the live projector (versioned writes make the
        // overlap harmless).
        tokio::spawn(backfill(pool.clone(), index.backend()));
    }
    let projection = SearchProjection::new(pool.clone(), index.backend(), settings);
    Ok((projection, index))
}

/// Replays the whole event store into an index that has never been written.
async fn backfill(pool: sqlx::PgPool, backend: Arc<dyn SearchBackend>) {
    let started = std::time::Instant::now();
    match search::replay(&pool, backend.as_ref(), Default::default(), |_| {}).await {
        Ok((_, 0)) => {}
        Ok((_, replayed)) => tracing::info!(
            replayed,
            seconds = started.elapsed().as_secs_f64(),
            "filled the new search index from the event store"
        ),
        Err(error) => tracing::error!(
            %error,
            "could not fill the new search index; run `helpdesk projections rebuild search`"
        ),
    }
}

/// A projection by name, search included.
async fn any_projection_named(
    config: &Config,
    pool: &sqlx::PgPool,
    name: &str,
) -> Result<Arc<dyn Projection>, StartError> {
    if name == search::NAME {
        Ok(Arc::new(search_projection(config, pool).await?.0))
    } else {
        projection_named(pool, name)
    }
}

/// Every projection the product runs besides search (which needs its index opened first).
pub fn projections(pool: &sqlx::PgPool) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(TicketSummary::new(pool.clone())),
        Arc::new(SlaProjection::new(pool.clone())),
    ]
}

/// The projection called `name`, or an error listing the known ones.
fn projection_named(pool: &sqlx::PgPool, name: &str) -> Result<Arc<dyn Projection>, StartError> {
    let all = projections(pool);
    let known: Vec<String> = all.iter().map(|p| p.name().to_owned()).collect();
    all.into_iter().find(|p| p.name() == name).ok_or_else(|| {
        format!(
            "no projection {name:?}; known: {}, {}",
            known.join(", "),
            search::NAME
        )
        .into()
    })
}

/// How the runtime feeds the projection called `name`: the `sla` projection's lanes gather
/// its transactions (`HELPDESK_SLA_BATCH_WAIT_MS`), the others hand over what they hold.
fn runtime_settings(config: &Config, name: &str) -> RuntimeSettings {
    let mut settings = RuntimeSettings::new(config.nats_prefix.clone());
    settings.max_deliver = config.projection_max_deliver;
    if name == sla::NAME {
        settings.gather = Gather {
            wait: config.sla_batch_wait,
            enough: sla::BATCH_ENOUGH,
        };
    }
    settings
}

/// `helpdesk project <name>`: runs one projection's consumer alone until SIGINT or SIGTERM.
/// Several copies share the work (for `search`, only with Elasticsearch: a tantivy index has
/// one writer, `helpdesk up`).
pub async fn project(config: Config, name: &str) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let projection = any_projection_named(&config, &pool, name).await?;
    let nats = nats::connect(&config.nats_url).await?;
    announce(&format!("projecting {name}\n"));
    if name == sla::NAME {
        // The changes this process's SLA writes append must reach the report counts even when
        // no `helpdesk up` runs.
        tokio::spawn(CountFolder::new(pool.clone()).run());
    }
    tokio::select! {
        () = runtime::run(nats, projection, runtime_settings(&config, name)) => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

/// `helpdesk projections rebuild <name>`: resets the read model and replays the event store,
/// printing progress (events/s, ETA) to standard error.
pub async fn rebuild_projection(config: Config, name: &str) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    if name == search::NAME {
        return rebuild_search(&config, &pool).await;
    }
    if name == sla::NAME {
        return rebuild_sla(&pool).await;
    }
    let projection = projection_named(&pool, name)?;
    let replayed = rebuild::rebuild(&pool, projection.as_ref(), |progress| {
        let _ = writeln!(
            std::io::stderr(),
            "{name}: {}/{} events, {:.0} events/s, ETA {}s",
            progress.done,
            progress.total,
            progress.events_per_second(),
            progress.eta().as_secs()
        );
    })
    .await?;
    announce(&format!("rebuilt {name} from {replayed} events\n"));
    Ok(())
}

/// `helpdesk projections rebuild sla`: replays the stored SLA events (never decides them
/// again) into copies of the SLA tables that replace them at commit, in one transaction;
/// reports read the old rows until then.
async fn rebuild_sla(pool: &sqlx::PgPool) -> Result<(), StartError> {
    let rebuilt = sla::rebuild::rebuild(pool, |progress| {
        let _ = writeln!(
            std::io::stderr(),
            "sla: {}/{} tickets, {}s",
            progress.done,
            progress.total,
            progress.elapsed.as_secs()
        );
    })
    .await?;
    announce(&format!(
        "rebuilt sla from {} ticket events and {} SLA events of {} tickets\n",
        rebuilt.ticket_events, rebuilt.sla_events, rebuilt.tickets
    ));
    Ok(())
}

/// `helpdesk projections rebuild search`: builds a new index generation from the event store
/// while the serving one keeps answering, then switches over (alias swap in Elasticsearch,
/// directory swap in tantivy, which needs `helpdesk up` stopped because it holds the index;
/// while it runs, `POST /api/v1/search/rebuild` does the same inside it).
async fn rebuild_search(config: &Config, pool: &sqlx::PgPool) -> Result<(), StartError> {
    let index = search_index(config).await.map_err(|error| -> StartError {
        if config.search.elasticsearch_url.is_none() {
            format!(
                "{error}\nwhile `helpdesk up` runs, rebuild without downtime through it: \
                 POST /api/v1/search/rebuild with an admin token"
            )
            .into()
        } else {
            error
        }
    })?;
    let replayed = search_rebuild::rebuild(pool, &index, None, |step| match step {
        RebuildStep::Replayed(done) => {
            let _ = writeln!(std::io::stderr(), "search: {done} events replayed");
        }
        RebuildStep::Promoted => {
            let _ = writeln!(std::io::stderr(), "search: the new index serves");
        }
    })
    .await?;
    announce(&format!("rebuilt search from {replayed} events\n"));
    Ok(())
}

/// `helpdesk dlq list <name>`: prints the dead letters of a projection.
pub async fn list_dead_letters(config: Config, name: &str) -> Result<(), StartError> {
    let nats = nats::connect(&config.nats_url).await?;
    let letters = dead_letters::list(&nats, &config.nats_prefix, name).await?;
    let mut text = format!("{} dead letters for {name}\n", letters.len());
    for letter in letters {
        let what = match &letter.envelope {
            Ok(event) => format!(
                "{} {}:{} seq {} position {}",
                event.event_type,
                event.aggregate_type,
                event.aggregate_id,
                event.sequence,
                event.global_position
            ),
            Err(unreadable) => unreadable.clone(),
        };
        text.push_str(&format!(
            "#{} {what} after {} deliveries: {}\n",
            letter.stream_sequence, letter.deliveries, letter.error
        ));
    }
    announce(&text);
    Ok(())
}

/// `helpdesk dlq redrive <name>`: applies the dead letters again; the ones that work are
/// removed.
pub async fn redrive_dead_letters(config: Config, name: &str) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let projection = any_projection_named(&config, &pool, name).await?;
    let nats = nats::connect(&config.nats_url).await?;
    let report = dead_letters::redrive(&nats, &config.nats_prefix, projection.as_ref()).await?;
    let mut text = format!(
        "{name}: {} applied, {} still failing\n",
        report.applied,
        report.failed.len()
    );
    for (sequence, error) in &report.failed {
        text.push_str(&format!("#{sequence}: {error}\n"));
    }
    announce(&text);
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} dead letters still fail", report.failed.len()).into())
    }
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
        exp: now
            .checked_add(request.ttl.as_secs())
            .ok_or("--ttl is too long")?,
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
