//! Every `/api/v1` endpoint with every kind of credential: the status codes follow the access
//! rules (invariant 10). The table must list every endpoint of the OpenAPI document.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;

use helpdesk_platform::AuthConfig;
use helpdesk_platform::auth::{Claims, mint};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{SECRET, TestApp, claims, now, sample_ticket, token, unsigned_token};

/// The credentials every endpoint is tried with.
#[derive(Debug, Clone, Copy)]
enum Credential {
    None,
    Expired,
    WrongKey,
    AlgNone,
    OwnCustomer,
    OtherCustomer,
    Agent,
    Manager,
    Auditor,
    Admin,
}

const CREDENTIALS: [Credential; 10] = [
    Credential::None,
    Credential::Expired,
    Credential::WrongKey,
    Credential::AlgNone,
    Credential::OwnCustomer,
    Credential::OtherCustomer,
    Credential::Agent,
    Credential::Manager,
    Credential::Auditor,
    Credential::Admin,
];

fn bearer(credential: Credential) -> Option<String> {
    Some(match credential {
        Credential::None => return None,
        Credential::Expired => {
            let expired = Claims {
                exp: now() - 3600,
                ..claims("agent-1", "agent")
            };
            mint(SECRET, &expired).unwrap()
        }
        Credential::WrongKey => mint(
            b"not-the-secret-not-the-secret!!",
            &claims("agent-1", "agent"),
        )
        .unwrap(),
        Credential::AlgNone => unsigned_token("agent-1", "admin"),
        Credential::OwnCustomer => token("cust-1", "customer"),
        Credential::OtherCustomer => token("cust-2", "customer"),
        Credential::Agent => token("agent-1", "agent"),
        Credential::Manager => token("manager-1", "manager"),
        Credential::Auditor => token("auditor-1", "auditor"),
        Credential::Admin => token("admin-1", "admin"),
    })
}

/// One row: an endpoint, a body, and the expected status for
/// [own customer, other customer, agent, manager, auditor, admin]; every invalid credential is
/// always 401.
struct Row {
    method: Method,
    /// OpenAPI path template.
    path: &'static str,
    /// Query string appended to the path (`{id}` is replaced too), or "".
    query: &'static str,
    body: Option<Value>,
    expected: [u16; 6],
}

fn table() -> Vec<Row> {
    let internal = json!({"body": "internal note", "visibility": "internal"});
    let policy = json!({"name": "Standard", "position": 1,
                        "targets": {"normal": {"first_reply": 60}},
                        "calendar": {"kind": "always"}});
    vec![
        Row {
            method: Method::GET,
            path: "/api/v1/audit/events",
            query: "",
            body: None,
            expected: [403, 403, 403, 403, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/audit/verify",
            query: "?aggregate_id={id}",
            body: None,
            expected: [403, 403, 403, 403, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/tickets/search",
            query: "",
            body: None,
            expected: [200, 200, 200, 200, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/agents/me/tickets",
            query: "",
            body: None,
            expected: [403, 403, 200, 200, 403, 200],
        },
        Row {
            method: Method::POST,
            path: "/api/v1/search/rebuild",
            query: "",
            body: None,
            expected: [403, 403, 403, 403, 403, 202],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/search/rebuild",
            query: "",
            body: None,
            expected: [403, 403, 403, 200, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/realtime",
            query: "",
            body: None,
            // Every role may open the feed; what it carries is filtered per push.
            expected: [101, 101, 101, 101, 101, 101],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/realtime/sse",
            query: "?ticket={id}",
            body: None,
            expected: [200, 404, 200, 200, 200, 200],
        },
        Row {
            method: Method::POST,
            path: "/api/v1/sla-policies",
            query: "",
            body: Some(policy.clone()),
            expected: [403, 403, 403, 201, 403, 201],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/sla-policies",
            query: "",
            body: None,
            expected: [403, 403, 403, 200, 200, 200],
        },
        Row {
            method: Method::PUT,
            // `{id}` is a ticket id here: no such policy, once past the role check.
            path: "/api/v1/sla-policies/{id}",
            query: "",
            body: Some(policy),
            expected: [403, 403, 403, 404, 403, 404],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/reports/sla-compliance",
            query: "?from=2026-11-01&to=2026-11-21&metric=first_reply",
            body: None,
            expected: [403, 403, 403, 200, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/reports/sla-breaches",
            query: "?from=2026-11-01&to=2026-11-21",
            body: None,
            expected: [403, 403, 403, 200, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/projections",
            query: "",
            body: None,
            expected: [403, 403, 403, 200, 200, 200],
        },
        Row {
            method: Method::POST,
            path: "/api/v1/tickets",
            query: "",
            body: Some(sample_ticket()),
            expected: [201, 403, 201, 201, 403, 201],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/tickets/{id}/history",
            query: "",
            body: None,
            expected: [200, 404, 200, 200, 200, 200],
        },
        Row {
            method: Method::GET,
            path: "/api/v1/tickets/{id}",
            query: "",
            body: None,
            expected: [200, 404, 200, 200, 200, 200],
        },
        Row {
            method: Method::PUT,
            path: "/api/v1/tickets/{id}/status",
            query: "",
            body: Some(json!({"status": "solved"})),
            expected: [200, 404, 200, 200, 403, 200],
        },
        Row {
            method: Method::PUT,
            path: "/api/v1/tickets/{id}/priority",
            query: "",
            body: Some(json!({"priority": "low"})),
            expected: [403, 404, 200, 200, 403, 200],
        },
        Row {
            method: Method::PUT,
            path: "/api/v1/tickets/{id}/assign",
            query: "",
            body: Some(json!({"assignee": "agent-9"})),
            expected: [403, 404, 200, 200, 403, 200],
        },
        Row {
            method: Method::PUT,
            path: "/api/v1/tickets/{id}/tags",
            query: "",
            body: Some(json!({"add": ["vip"]})),
            expected: [403, 404, 200, 200, 403, 200],
        },
        Row {
            method: Method::POST,
            path: "/api/v1/tickets/{id}/interactions",
            query: "",
            body: Some(json!({"body": "public reply"})),
            expected: [201, 404, 201, 201, 403, 201],
        },
        Row {
            method: Method::POST,
            path: "/api/v1/tickets/{id}/interactions",
            query: "",
            body: Some(internal),
            expected: [403, 404, 201, 201, 403, 201],
        },
    ]
}

fn expected_status(row: &Row, credential: Credential) -> u16 {
    let index = match credential {
        Credential::None | Credential::Expired | Credential::WrongKey | Credential::AlgNone => {
            return 401;
        }
        Credential::OwnCustomer => 0,
        Credential::OtherCustomer => 1,
        Credential::Agent => 2,
        Credential::Manager => 3,
        Credential::Auditor => 4,
        Credential::Admin => 5,
    };
    row.expected[index]
}

#[test]
fn the_table_lists_every_api_endpoint_of_the_openapi_document() {
    let api = serde_json::to_value(helpdesk_command_api::openapi(helpdesk_query_api::routes::<
        helpdesk_command_api::AppState,
    >()))
    .unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let tabled: BTreeSet<(String, String)> = table()
        .iter()
        .map(|row| (row.method.to_string(), row.path.to_owned()))
        .collect();
    assert_eq!(
        documented, tabled,
        "every /api/v1 endpoint needs rows in the authorization table"
    );
}

#[tokio::test]
async fn every_endpoint_answers_every_credential_as_the_access_rules_say() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let mut mismatches = Vec::new();
    for row in table() {
        for credential in CREDENTIALS {
            // A fresh ticket of customer cust-1 for every case, so no case depends on another.
            let ticket = app.open_ticket().await;
            let path = format!("{}{}", row.path, row.query).replace("{id}", &ticket);
            let mut request = app
                .client
                .request(row.method.clone(), format!("{}{path}", app.url));
            if let Some(token) = bearer(credential) {
                request = request.bearer_auth(token);
            }
            if row.path == "/api/v1/realtime" {
                request = request
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
            }
            if let Some(body) = &row.body {
                let mut body = body.clone();
                if row.path == "/api/v1/tickets" {
                    body["requester"]["customer_id"] = Value::from("cust-1");
                }
                request = request.json(&body);
            }
            let before = app.event_count().await;
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let expected = expected_status(&row, credential);
            if status != expected {
                let text = response.text().await.unwrap_or_default();
                mismatches.push(format!(
                    "{} {} as {credential:?}: expected {expected}, got {status}: {text}",
                    row.method, row.path
                ));
                continue;
            }
            let wrote = app.event_count().await - before;
            // Every accepted command appends one event; a rebuild appends none.
            let writes = row.method != Method::GET
                && row.path != "/api/v1/search/rebuild"
                && (200..300).contains(&status);
            assert_eq!(
                wrote,
                i64::from(writes),
                "{} {} as {credential:?}",
                row.method,
                row.path
            );
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn the_actor_in_the_event_metadata_is_the_token_subject() {
    let app = TestApp::spawn().await;
    let ticket = app.open_ticket().await;
    let response = app
        .as_actor(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/interactions"),
            "cust-1",
            "customer",
        )
        .json(&json!({"body": "from the customer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let metadata: Value = sqlx::query_scalar(
        "SELECT metadata::jsonb FROM events WHERE aggregate_id = $1 AND sequence = 2",
    )
    .bind(&ticket)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(metadata["actor_id"], "cust-1");
    assert_eq!(metadata["actor_role"], "customer");
}

#[tokio::test]
async fn a_customer_reading_a_ticket_never_sees_internal_notes_or_other_customers_tickets() {
    let app = TestApp::spawn().await;
    let ticket = app.open_ticket().await;
    let notes = format!("/api/v1/tickets/{ticket}/interactions");
    for (body, visibility) in [
        ("SECRET-NOTE for staff", "internal"),
        ("Public answer", "public"),
    ] {
        let response = app
            .send(
                Method::POST,
                &notes,
                json!({"body": body, "visibility": visibility}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let read = |id: &str, role: &str| {
        app.as_actor(Method::GET, &format!("/api/v1/tickets/{ticket}"), id, role)
            .send()
    };

    let own = read("cust-1", "customer").await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(own.headers()["etag"], "\"3\"");
    let text = own.text().await.unwrap();
    assert!(text.contains("Public answer"));
    assert!(!text.contains("SECRET-NOTE"), "{text}");

    let other = read("cust-2", "customer").await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let text = other.text().await.unwrap();
    assert!(!text.contains("Printer on fire") && !text.contains("SECRET-NOTE"));

    for role in ["agent", "auditor"] {
        let staff = read("staff-1", role).await.unwrap().text().await.unwrap();
        assert!(staff.contains("SECRET-NOTE"), "{role} sees internal notes");
    }
}

#[tokio::test]
async fn group_scoped_agents_only_reach_their_groups_and_ungrouped_tickets() {
    let app = TestApp::spawn_with(AuthConfig {
        agent_scope: helpdesk_domain::AgentScope::Groups,
        ..AuthConfig::default()
    })
    .await;
    let mut opened = Vec::new();
    for group in [Some("billing"), Some("tech"), None] {
        let mut ticket = sample_ticket();
        ticket["group"] = group.map_or(Value::Null, Value::from);
        let response = app
            .as_actor(Method::POST, "/api/v1/tickets", "admin-1", "admin")
            .json(&ticket)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        opened.push(body["id"].as_str().unwrap().to_owned());
    }
    // support::token gives agents the group "billing".
    let expected = [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::OK];
    for (ticket, status) in opened.iter().zip(expected) {
        let response = app
            .as_actor(
                Method::PUT,
                &format!("/api/v1/tickets/{ticket}/priority"),
                "agent-1",
                "agent",
            )
            .json(&json!({"priority": "low"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = TestApp::spawn_with(AuthConfig {
        issuer: Some("https://id.example".into()),
        audience: Some("helpdesk".into()),
        ..AuthConfig::default()
    })
    .await;
    let send = |claims: Claims| {
        app.client
            .post(format!("{}/api/v1/tickets", app.url))
            .bearer_auth(mint(SECRET, &claims).unwrap())
            .json(&sample_ticket())
            .send()
    };
    let good = Claims {
        iss: Some("https://id.example".into()),
        aud: Some(json!(["other", "helpdesk"])),
        ..claims("agent-1", "agent")
    };
    assert_eq!(
        send(good.clone()).await.unwrap().status(),
        StatusCode::CREATED
    );
    let wrong_issuer = Claims {
        iss: Some("https://evil.example".into()),
        ..good.clone()
    };
    assert_eq!(
        send(wrong_issuer).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong_audience = Claims {
        aud: Some(json!("other")),
        ..good.clone()
    };
    assert_eq!(
        send(wrong_audience).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    for missing in [
        Claims {
            iss: None,
            ..good.clone()
        },
        Claims {
            aud: None,
            ..good.clone()
        },
    ] {
        assert_eq!(
            send(missing).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let not_yet = Claims {
        nbf: Some(now() + 3600),
        ..good
    };
    assert_eq!(
        send(not_yet).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
