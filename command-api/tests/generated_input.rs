//! Generated input against every command endpoint: random bytes, random JSON, valid requests
//! with one field replaced by something hostile, odd headers. The server must never answer 5xx,
//! every error must be problem+json, and only a 2xx may write (exactly one) event.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use support::TestApp;
use tokio::runtime::Runtime;

const CASES: u32 = 400;

/// One app and one ticket shared by every case of this test binary (cases run one at a time).
struct Fixture {
    runtime: Runtime,
    app: TestApp,
    ticket: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, ticket) = runtime.block_on(async {
            let app = TestApp::spawn().await;
            let ticket = app.open_ticket().await;
            (app, ticket)
        });
        Fixture {
            runtime,
            app,
            ticket,
        }
    })
}

/// Strings a careless parser trips on.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        Just(String::new()),
        Just("\0".into()),
        Just("\u{202e}gnp.exe".into()),
        Just("👩‍👩‍👧‍👦".repeat(60)),
        Just("e\u{301}".repeat(150)),
        Just("x".repeat(70_000)),
        Just("\u{85}\u{2028}\u{feff}".into()),
        Just("Robert'); DROP TABLE events;--".into()),
        Just("a\r\nb\rc".into()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "subject",
            "description",
            "priority",
            "channel",
            "requester",
            "customer_id",
            "name",
            "email",
            "tags",
            "group",
            "status",
            "assignee",
            "add",
            "remove",
            "body",
            "visibility",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
}

/// A valid body for each endpoint.
fn valid_body(endpoint: usize) -> Value {
    match endpoint {
        0 => support::sample_ticket(),
        1 => json!({"status": "pending"}),
        2 => json!({"priority": "low"}),
        3 => json!({"assignee": "agent-9", "group": null}),
        4 => json!({"add": ["generated"], "remove": []}),
        _ => json!({"body": "generated reply", "visibility": "public"}),
    }
}

/// A valid body with one field (possibly nested) replaced by `replacement`.
fn mutate(mut body: Value, field: &str, replacement: Value) -> Value {
    if let Some(object) = body.as_object_mut() {
        if field == "customer_id"
            && let Some(requester) = object.get_mut("requester").and_then(Value::as_object_mut)
        {
            requester.insert(field.to_owned(), replacement);
            return body;
        }
        object.insert(field.to_owned(), replacement);
    }
    body
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
}

fn body() -> impl Strategy<Value = (usize, Body)> {
    let endpoint = 0usize..6;
    prop_oneof![
        1 => (endpoint.clone(), prop::collection::vec(any::<u8>(), 0..512)).prop_map(|(e, b)| (e, Body::Bytes(b))),
        2 => (endpoint.clone(), json_value()).prop_map(|(e, v)| (e, Body::Json(v))),
        3 => (endpoint.clone(), field_name(), json_value())
            .prop_map(|(e, f, v)| (e, Body::Json(mutate(valid_body(e), &f, v)))),
        3 => (endpoint.clone(), field_name(), hostile_string())
            .prop_map(|(e, f, s)| (e, Body::Json(mutate(valid_body(e), &f, Value::from(s))))),
        2 => endpoint.clone().prop_map(|e| (e, Body::Json(valid_body(e)))),
        // Raw text that is almost JSON: lone surrogate escapes, deep nesting, huge numbers.
        1 => (endpoint, prop::sample::select(vec![
            r#"{"subject":"\ud800","requester":{"customer_id":"c"}}"#.to_owned(),
            r#"{"body":"\udfff\ud800"}"#.to_owned(),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            r#"{"priority":1e999999}"#.to_owned(),
            r#"{"subject":"a","subject":"b","requester":{"customer_id":"c"}}"#.to_owned(),
        ])).prop_map(|(e, s)| (e, Body::Bytes(s.into_bytes()))),
    ]
}

/// Header bytes: visible ASCII plus obs-text (non-UTF-8) bytes.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..300)
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let sometimes = prop::option::weighted(
        0.3,
        (
            prop::sample::select(vec![
                "if-match",
                "idempotency-key",
                "authorization",
                "x-request-id",
                "x-correlation-id",
                "content-type",
            ]),
            header_bytes(),
        ),
    );
    sometimes.prop_map(|header| header.into_iter().collect())
}

fn path_for(endpoint: usize, ticket: &str, random_id: Option<&str>) -> (Method, String) {
    let id = random_id.unwrap_or(ticket);
    match endpoint {
        0 => (Method::POST, "/api/v1/tickets".to_owned()),
        1 => (Method::PUT, format!("/api/v1/tickets/{id}/status")),
        2 => (Method::PUT, format!("/api/v1/tickets/{id}/priority")),
        3 => (Method::PUT, format!("/api/v1/tickets/{id}/assign")),
        4 => (Method::PUT, format!("/api/v1/tickets/{id}/tags")),
        _ => (Method::POST, format!("/api/v1/tickets/{id}/interactions")),
    }
}

async fn check(
    fixture: &Fixture,
    endpoint: usize,
    body: Body,
    headers: Vec<(&'static str, Vec<u8>)>,
    random_id: Option<String>,
) {
    let app = &fixture.app;
    let before = app.event_count().await;
    let encoded = |s: &str| {
        s.replace('%', "%25")
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('#', "%23")
    };
    let random_id = random_id.map(|id| encoded(&id));
    let (method, path) = path_for(endpoint, &fixture.ticket, random_id.as_deref());
    let mut request = app
        .request(method, &path)
        .header("content-type", "application/json");
    for (name, value) in &headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request = request.header(HeaderName::from_static(name), value);
        }
    }
    let request = match body {
        Body::Bytes(bytes) => request.body(bytes),
        Body::Json(value) => request.body(value.to_string()),
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    let after = app.event_count().await;
    assert!(status.as_u16() < 500, "{status} for {path}: {text}");
    if status.is_success() {
        assert_eq!(after, before + 1, "a 2xx must write exactly one event");
    } else {
        assert_eq!(content_type, "application/problem+json", "{status}: {text}");
        assert_eq!(after, before, "{status} wrote an event: {text}");
        assert_ne!(status, StatusCode::OK);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_input_gets_a_5xx_or_writes_an_event_when_rejected(
        (endpoint, body) in body(),
        headers in headers(),
        random_id in prop::option::weighted(0.1, "\\PC{0,40}"),
    ) {
        let fixture = fixture();
        fixture.runtime.block_on(check(fixture, endpoint, body, headers, random_id));
    }
}
