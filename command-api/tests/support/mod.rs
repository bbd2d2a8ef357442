//! Test helpers: the real app on port 0, a fresh database per test, the real NATS server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use std::sync::Arc;

use helpdesk_command_api::AppState;
use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_platform::AuthConfig;
use helpdesk_platform::auth::{Claims, Verifier, mint};
use helpdesk_query_api::realtime::{Realtime, RealtimeSettings};
use helpdesk_schemas::EventEnvelope;
use helpdesk_search::projection::{SearchProjection, SearchSettings};
use helpdesk_search::rebuild::{SearchAdmin, SearchIndex};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The Postgres server tests create their databases on.
fn server_url() -> String {
    std::env::var("HELPDESK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A running app with its own database and its own NATS prefix.
pub struct TestApp {
    pub url: String,
    pub pool: PgPool,
    pub state: AppState,
    pub client: reqwest::Client,
    /// `HELPDESK_NATS_PREFIX` of this app: its stream is `<PREFIX>_EVENTS`.
    pub prefix: String,
    /// The search projection and its tantivy directory, for apps spawned with search.
    pub search: Option<(SearchProjection, SearchIndex, Arc<tempfile::TempDir>)>,
}

/// Settings a test may shrink to provoke overload.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tuning {
    /// `HELPDESK_MAX_IN_FLIGHT`.
    pub max_in_flight: Option<usize>,
    /// The pool's size and acquire timeout (default: 30 connections, 5 s).
    pub pool: Option<(u32, Duration)>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(AuthConfig::default()).await
    }

    /// Spawns with token settings (issuer, audience, agent scope).
    pub async fn spawn_with(auth: AuthConfig) -> TestApp {
        TestApp::spawn_inner(auth, false, Tuning::default()).await
    }

    /// Spawns with a search index (tantivy in a temporary directory) served by the app; the
    /// relay and the search projection run too, so commands become searchable.
    pub async fn spawn_with_search(auth: AuthConfig) -> TestApp {
        let app = TestApp::spawn_inner(auth, true, Tuning::default()).await;
        app.start_relay();
        let (projection, _, _) = app.search.clone().unwrap();
        tokio::spawn(helpdesk_projections::runtime::run(
            app.state.nats.clone(),
            Arc::new(projection),
            helpdesk_projections::runtime::RuntimeSettings::new(app.prefix.clone()),
        ));
        app
    }

    /// Spawns with a search index that nothing feeds (no relay, no projection).
    pub async fn spawn_with_idle_search(auth: AuthConfig) -> TestApp {
        TestApp::spawn_inner(auth, true, Tuning::default()).await
    }

    /// Spawns with a smaller pool or admission bound than the defaults.
    pub async fn spawn_tuned(tuning: Tuning) -> TestApp {
        TestApp::spawn_inner(AuthConfig::default(), false, tuning).await
    }

    async fn spawn_inner(auth: AuthConfig, with_search: bool, tuning: Tuning) -> TestApp {
        let database = helpdesk_platform::db::create_scratch_database(&server_url())
            .await
            .expect("create a scratch database");
        let pool = match tuning.pool {
            None => helpdesk_platform::db::connect(&database, 30).await.unwrap(),
            Some((size, acquire_timeout)) => sqlx::postgres::PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(acquire_timeout)
                .connect(database.expose())
                .await
                .unwrap(),
        };
        let nats = helpdesk_platform::nats::connect(&nats_url()).await.unwrap();
        let verifier = Verifier::with_hs256_secret(SECRET, &auth);
        let prefix = test_prefix();
        let realtime = Realtime::start(pool.clone(), nats.clone(), RealtimeSettings::new(&prefix))
            .await
            .unwrap();
        let mut state = AppState::new(
            pool.clone(),
            nats,
            Duration::from_secs(24 * 3600),
            Arc::new(verifier),
        )
        .with_realtime(realtime);
        if let Some(limit) = tuning.max_in_flight {
            state = state.with_max_in_flight(limit);
        }
        let search = if with_search {
            let directory = Arc::new(tempfile::tempdir().unwrap());
            let config = helpdesk_platform::SearchConfig {
                index_dir: directory.path().to_owned(),
                elasticsearch_url: None,
                commit_interval: Duration::from_millis(50),
            };
            let index = SearchIndex::open(&config, "test").await.unwrap();
            let projection = SearchProjection::new(
                pool.clone(),
                index.backend(),
                SearchSettings {
                    commit_interval: config.commit_interval,
                    ..SearchSettings::default()
                },
            );
            state = state
                .with_search(projection.reader())
                .with_search_admin(SearchAdmin::new(
                    pool.clone(),
                    index.clone(),
                    projection.clone(),
                ));
            Some((projection, index, directory))
        } else {
            None
        };
        let (router, _) = helpdesk_command_api::app(state.clone(), helpdesk_query_api::routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        prune_old_test_streams(&state.nats).await;
        TestApp {
            url,
            pool,
            state,
            client: reqwest::Client::new(),
            prefix,
            search,
        }
    }

    /// Starts a relay for this app (woken by its commits); abort the handle to kill it.
    pub fn start_relay(&self) -> tokio::task::JoinHandle<()> {
        self.start_relay_polling(Duration::from_millis(100))
    }

    /// [`TestApp::start_relay`] with another backstop poll interval.
    pub fn start_relay_polling(&self, poll_interval: Duration) -> tokio::task::JoinHandle<()> {
        let relay = Relay::new(
            self.pool.clone(),
            self.state.nats.clone(),
            RelaySettings {
                prefix: self.prefix.clone(),
                poll_interval,
                batch_size: 256,
            },
            self.state.relay_wakeup.clone(),
            self.state.metrics.clone(),
        );
        tokio::spawn(relay.run())
    }

    /// Waits (up to 30 s) until the app's stream holds `count` messages, then returns them all
    /// in stream order as (subject, Nats-Msg-Id, envelope).
    pub async fn stream_messages(&self, count: u64) -> Vec<(String, String, EventEnvelope)> {
        let js = async_nats::jetstream::new(self.state.nats.clone());
        let name = helpdesk_schemas::events_stream_name(&self.prefix);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let stream = loop {
            if let Ok(mut stream) = js.get_stream(&name).await
                && stream.info().await.unwrap().state.messages >= count
            {
                break stream;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stream {name} did not reach {count} messages within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let last = stream.cached_info().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let envelope: EventEnvelope = serde_json::from_slice(&message.payload).unwrap();
            messages.push((message.subject.to_string(), id, envelope));
        }
        messages
    }

    /// Deletes the app's stream.
    pub async fn delete_stream(&self) {
        let js = async_nats::jetstream::new(self.state.nats.clone());
        let _ = js
            .delete_stream(helpdesk_schemas::events_stream_name(&self.prefix))
            .await;
    }

    /// A request acting as `agent-1`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.as_actor(method, path, "agent-1", "agent")
    }

    /// A request with a valid token for `id` in `role` (customers speak for customer `id`).
    pub fn as_actor(&self, method: Method, path: &str, id: &str, role: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token(id, role))
    }

    /// Opens a valid ticket and returns its id.
    pub async fn open_ticket(&self) -> String {
        let response = self
            .request(Method::POST, "/api/v1/tickets")
            .json(&sample_ticket())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Sends `body` as JSON with `method` to `path` as agent-1.
    pub async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }

    /// `GET path` without a token (the probes).
    pub async fn probe(&self, path: &str) -> Response {
        let url = format!("{}{path}", self.url);
        self.client.get(url).send().await.unwrap()
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await;
        response.unwrap().text().await.unwrap()
    }

    /// Number of rows in the events table.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// Claims of a valid one-hour token for `id` in `role` (customers speak for customer `id`).
pub fn claims(id: &str, role: &str) -> Claims {
    let now = now();
    Claims {
        sub: id.to_owned(),
        role: role.to_owned(),
        groups: vec!["billing".to_owned()],
        customer_id: (role == "customer").then(|| id.to_owned()),
        exp: now + 3600,
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
    }
}

/// The HS256 secret the test apps trust.
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

/// A valid token (one hour) for `id` in `role`.
pub fn token(id: &str, role: &str) -> String {
    mint(SECRET, &claims(id, role)).unwrap()
}

/// A token that says `alg: none` and carries no signature.
pub fn unsigned_token(id: &str, role: &str) -> String {
    use base64::Engine;
    let encode = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let header = encode(json!({"alg": "none", "typ": "JWT"}));
    let body = encode(serde_json::to_value(claims(id, role)).unwrap());
    format!("{header}.{body}.")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn sample_ticket() -> Value {
    json!({
        "subject": "Printer on fire",
        "description": "Third floor.",
        "priority": "high",
        "channel": "email",
        "requester": {"customer_id": "cust-1", "name": "Ada", "email": "ada@example.org"},
        "tags": ["hardware"],
    })
}

/// Asserts the response is problem+json with `status` and type `/problems/<slug>`; returns it.
pub async fn expect_problem(response: Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// A NATS prefix of its own for each test app: `t<unix seconds>x<random>`.
fn test_prefix() -> String {
    format!(
        "t{}x{}",
        now(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Deletes streams that earlier test runs left behind (older than an hour).
async fn prune_old_test_streams(nats: &async_nats::Client) {
    use futures::StreamExt;
    let js = async_nats::jetstream::new(nats.clone());
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|name| async move { name.ok() })
        .collect()
        .await;
    for name in names {
        let created = name
            .strip_prefix('T')
            .and_then(|rest| rest.split('X').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs + 3600 < now()) {
            let _ = js.delete_stream(&name).await;
        }
    }
}
