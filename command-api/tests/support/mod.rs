//! Test helpers: the real app on port 0, a fresh database per test, the real NATS server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use std::sync::Arc;

use helpdesk_command_api::AppState;
use helpdesk_platform::AuthConfig;
use helpdesk_platform::auth::{Claims, Verifier, mint};
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

/// A running app with its own database.
pub struct TestApp {
    pub url: String,
    pub pool: PgPool,
    pub state: AppState,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(AuthConfig::default()).await
    }

    /// Spawns with token settings (issuer, audience, agent scope).
    pub async fn spawn_with(auth: AuthConfig) -> TestApp {
        let database = helpdesk_platform::db::create_scratch_database(&server_url())
            .await
            .expect("create a scratch database");
        let pool = helpdesk_platform::db::connect(&database, 30).await.unwrap();
        let nats = helpdesk_platform::nats::connect(&nats_url()).await.unwrap();
        let verifier = Verifier::with_hs256_secret(SECRET, &auth);
        let state = AppState::new(
            pool.clone(),
            nats,
            Duration::from_secs(24 * 3600),
            Arc::new(verifier),
        );
        let (router, _) = helpdesk_command_api::app(state.clone(), helpdesk_query_api::routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        TestApp {
            url,
            pool,
            state,
            client: reqwest::Client::new(),
        }
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
