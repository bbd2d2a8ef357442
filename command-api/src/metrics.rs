//! Prometheus metrics: HTTP requests by route and status with a latency histogram, commands by
//! type and outcome, the relay (published, lag, checkpoint) and the projections (position,
//! pending, dead letters, read at scrape time). Served as text at `/metrics`.
//!
//! Each app owns its registry (no global recorder), so tests can run many apps in one process.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use helpdesk_query_api::realtime::RealtimeStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;
use helpdesk_platform::overload::InFlight;
use helpdesk_platform::pipeline::ProjectionStatus;
use helpdesk_projections::sla::{self, FoldStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The metrics of one app.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    commands: Family<CommandLabels, Counter>,
    relay_published: Counter,
    relay_lag: Gauge,
    relay_checkpoint: Gauge,
    projection_position: Family<ProjectionLabels, Gauge>,
    projection_pending: Family<ProjectionLabels, Gauge>,
    projection_dead_letters: Family<ProjectionLabels, Gauge>,
    realtime_connections: Gauge,
    realtime_dropped: Gauge,
    realtime_position: Gauge,
    realtime_lag: Gauge,
    realtime_summary_reads: Gauge,
    realtime_summary_read_seconds: Gauge<f64, AtomicU64>,
    http_in_flight: Gauge,
    http_turned_away: Gauge,
    count_changes_unfolded: Gauge,
    count_folds: Gauge,
    count_changes_folded: Gauge,
    count_fold_seconds: Gauge<f64, AtomicU64>,
    counts_below_zero: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("helpdesk");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_duration.clone(),
        );
        registry.register(
            "commands",
            "Ticket commands by type and outcome (accepted, rejected, conflict, unavailable, error)",
            commands.clone(),
        );
        let relay_published = Counter::default();
        let relay_lag = Gauge::default();
        let relay_checkpoint = Gauge::default();
        registry.register(
            "relay_published_events",
            "Events the relay published to JetStream and saw acknowledged",
            relay_published.clone(),
        );
        registry.register(
            "relay_lag_events",
            "Events committed after the relay checkpoint, not yet published",
            relay_lag.clone(),
        );
        registry.register(
            "relay_checkpoint_position",
            "Highest global position the relay has published",
            relay_checkpoint.clone(),
        );
        let projection_position = Family::<ProjectionLabels, Gauge>::default();
        let projection_pending = Family::<ProjectionLabels, Gauge>::default();
        let projection_dead_letters = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_position",
            "Highest global position each projection has applied",
            projection_position.clone(),
        );
        registry.register(
            "projection_pending_events",
            "Events each projection's consumer has not acknowledged yet (its lag)",
            projection_pending.clone(),
        );
        registry.register(
            "projection_dead_letters",
            "Events each projection dead-lettered and nobody redrove yet",
            projection_dead_letters.clone(),
        );
        let realtime_connections = Gauge::default();
        let realtime_dropped = Gauge::default();
        let realtime_position = Gauge::default();
        let realtime_lag = Gauge::default();
        registry.register(
            "realtime_connections",
            "Real-time sessions (WebSocket and SSE) open on this instance",
            realtime_connections.clone(),
        );
        registry.register(
            "realtime_dropped_connections",
            "Real-time sessions dropped since start-up because they did not keep up",
            realtime_dropped.clone(),
        );
        registry.register(
            "realtime_cursor",
            "Events-stream sequence of the last message this instance's real-time feed handled",
            realtime_position.clone(),
        );
        registry.register(
            "realtime_lag",
            "Messages of the events stream this instance's real-time feed has not handled yet \
             (read at scrape time; -1 when the stream could not be read)",
            realtime_lag.clone(),
        );
        let realtime_summary_reads = Gauge::default();
        let realtime_summary_read_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "realtime_summary_reads",
            "Tickets the real-time feed read from the store since start-up because its summary \
             cache (HELPDESK_REALTIME_SUMMARY_CACHE) did not hold them",
            realtime_summary_reads.clone(),
        );
        registry.register(
            "realtime_summary_read_seconds",
            "Time the real-time feed spent on those reads since start-up",
            realtime_summary_read_seconds.clone(),
        );
        let http_in_flight = Gauge::default();
        let http_turned_away = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "API requests being handled now (read at scrape time; bounded by \
             HELPDESK_MAX_IN_FLIGHT)",
            http_in_flight.clone(),
        );
        registry.register(
            "http_requests_turned_away",
            "API requests answered 503 overloaded at the door since start-up, because \
             HELPDESK_MAX_IN_FLIGHT were in flight",
            http_turned_away.clone(),
        );
        let count_changes_unfolded = Gauge::default();
        let count_folds = Gauge::default();
        let count_changes_folded = Gauge::default();
        let count_fold_seconds = Gauge::<f64, AtomicU64>::default();
        let counts_below_zero = Gauge::default();
        registry.register(
            "sla_report_count_changes_unfolded",
            "SLA report count changes not folded into the report counts yet (read at scrape \
             time, counted up to a million; -1 when the database could not be read)",
            count_changes_unfolded.clone(),
        );
        registry.register(
            "sla_report_count_folds",
            "Folds of SLA report count changes this instance's folder did since start-up, \
             those that found nothing to fold included",
            count_folds.clone(),
        );
        registry.register(
            "sla_report_count_changes_folded",
            "SLA report count changes this instance's folder folded since start-up",
            count_changes_folded.clone(),
        );
        registry.register(
            "sla_report_count_fold_seconds",
            "Time this instance's folder spent folding since start-up (waiting for a \
             connection and for a rebuild's lock included)",
            count_fold_seconds.clone(),
        );
        registry.register(
            "sla_report_counts_below_zero",
            "SLA report count rows this instance's folds left below zero since start-up, \
             summed over the folds (a bug: the report figures around them are too low until \
             `helpdesk projections rebuild sla`)",
            counts_below_zero.clone(),
        );
        Metrics {
            count_changes_unfolded,
            count_folds,
            count_changes_folded,
            count_fold_seconds,
            counts_below_zero,
            http_in_flight,
            http_turned_away,
            realtime_connections,
            realtime_dropped,
            realtime_position,
            realtime_lag,
            realtime_summary_reads,
            realtime_summary_read_seconds,
            projection_position,
            projection_pending,
            projection_dead_letters,
            registry,
            http_requests,
            http_duration,
            commands,
            relay_published,
            relay_lag,
            relay_checkpoint,
        }
    }

    /// Counts one command and how it ended.
    pub fn record_command(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts `count` events published, up to `position`.
    pub fn relay_published(&self, count: u64, position: i64) {
        self.relay_published.inc_by(count);
        // Batches end in (tx_id, position) order, so positions can step back; report the highest.
        if position > self.relay_checkpoint.get() {
            self.relay_checkpoint.set(position);
        }
    }

    /// Sets the number of events committed but not yet published.
    pub fn relay_lag(&self, events: i64) {
        self.relay_lag.set(events);
    }

    /// Records the pipeline's state (read at scrape time).
    pub fn record_projections(&self, statuses: &[ProjectionStatus]) {
        for status in statuses {
            let labels = ProjectionLabels {
                projection: status.name.clone(),
            };
            self.projection_position
                .get_or_create(&labels)
                .set(status.last_position);
            if let Some(pending) = status.pending {
                let pending = i64::try_from(pending).unwrap_or(i64::MAX);
                self.projection_pending.get_or_create(&labels).set(pending);
            }
            if let Some(dead) = status.dead_letters {
                let dead = i64::try_from(dead).unwrap_or(i64::MAX);
                self.projection_dead_letters
                    .get_or_create(&labels)
                    .set(dead);
            }
        }
    }

    /// Records the real-time feed's counters (read at scrape time).
    pub fn record_realtime(&self, stats: RealtimeStats, cursor: u64, lag: Option<u64>) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.realtime_connections.set(count(stats.open));
        self.realtime_dropped.set(count(stats.dropped));
        self.realtime_position.set(count(cursor));
        self.realtime_lag.set(lag.map_or(-1, count));
        self.realtime_summary_reads.set(count(stats.summary_reads));
        self.realtime_summary_read_seconds
            .set(stats.summary_read_seconds);
    }

    /// Records the admission bound's state (at scrape time).
    pub fn record_in_flight(&self, in_flight: &InFlight) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.http_in_flight.set(count(in_flight.current() as u64));
        self.http_turned_away.set(count(in_flight.turned_away()));
    }

    /// Records the report count folder's figures (at scrape time): the changes not folded yet
    /// (`None`: unreadable), and what this process's folder did, when it runs one.
    pub fn record_count_folder(&self, unfolded: Option<i64>, folder: Option<&FoldStats>) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.count_changes_unfolded.set(unfolded.unwrap_or(-1));
        if let Some(folder) = folder {
            self.count_folds.set(count(folder.folds()));
            self.count_changes_folded.set(count(folder.changes()));
            self.count_fold_seconds.set(folder.seconds());
            self.counts_below_zero.set(count(folder.below_zero()));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: counts and times every request under its route template (never the raw path,
/// which would give one series per ticket).
pub async fn track_http(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Only standard methods become label values: any token is a valid HTTP method, and
    // unbounded label values would grow memory without limit.
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RouteLabels { method, route };
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: labels.method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`. Projection gauges are read from the pipeline at scrape time.
pub async fn serve_metrics(State(state): State<AppState>) -> Response {
    // Side by side: with PostgreSQL unreachable each waits out the pool's timeout, and one
    // after the other they would outlast a scraper's (Prometheus: 10 s).
    let (statuses, unfolded) = tokio::join!(
        state.pipeline.status(&state.pool),
        sla::store::unfolded_count_changes(&state.pool)
    );
    match statuses {
        Ok(statuses) => state.metrics.record_projections(&statuses),
        Err(error) => tracing::warn!(%error, "could not read projection status for /metrics"),
    }
    if let Some(realtime) = &state.realtime {
        let lag = realtime
            .lag()
            .await
            .inspect_err(|error| tracing::warn!(%error, "could not read the real-time lag"))
            .ok();
        state
            .metrics
            .record_realtime(realtime.stats(), realtime.cursor(), lag);
    }
    state.metrics.record_in_flight(&state.in_flight);
    let unfolded = unfolded
        .inspect_err(|error| tracing::warn!(%error, "could not count the unfolded SLA changes"))
        .ok();
    state
        .metrics
        .record_count_folder(unfolded, state.count_folder.as_deref());
    match state.metrics.render() {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}
