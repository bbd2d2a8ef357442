//! Every status code of the command API, against the real app, Postgres and NATS.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, expect_problem, sample_ticket};

#[tokio::test]
async fn opening_a_ticket_answers_201_with_location_etag_and_position() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/api/v1/tickets")
        .json(&sample_ticket())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        headers["location"],
        format!("/api/v1/tickets/{id}").as_str()
    );
    assert_eq!(headers["etag"], "\"1\"");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(body["version"], 1);
    let position: i64 = sqlx::query_scalar("SELECT global_position FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(body["position"], position);
}

#[tokio::test]
async fn a_command_answers_200_with_the_new_version_as_etag() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let response = app
        .send(
            Method::PUT,
            &format!("/api/v1/tickets/{id}/priority"),
            json!({"priority": "urgent"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn malformed_json_is_400_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/api/v1/tickets")
        .header("content-type", "application/json")
        .body("{\"subject\": ")
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST, "malformed-json").await;
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = TestApp::spawn().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .request(Method::POST, "/api/v1/tickets")
            .body(sample_ticket().to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        expect_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_json_content_type_with_charset_or_suffix_is_accepted() {
    let app = TestApp::spawn().await;
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let response = app
            .request(Method::POST, "/api/v1/tickets")
            .header("content-type", content_type)
            .body(sample_ticket().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
}

#[tokio::test]
async fn a_body_over_1_mib_is_413() {
    let app = TestApp::spawn().await;
    let mut ticket = sample_ticket();
    ticket["description"] = Value::from("x".repeat(1024 * 1024 + 1));
    let response = app.send(Method::POST, "/api/v1/tickets", ticket).await;
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn an_unknown_ticket_is_404() {
    let app = TestApp::spawn().await;
    for id in [
        "0190a5d2-0000-7000-8000-000000000000",
        "not-a-uuid",
        "%00",
        "..%2F",
    ] {
        let response = app
            .send(
                Method::PUT,
                &format!("/api/v1/tickets/{id}/status"),
                json!({"status": "open"}),
            )
            .await;
        expect_problem(response, StatusCode::NOT_FOUND, "ticket-not-found").await;
    }
    for path in [
        "/api/v1/tickets/%FF",
        "/api/v1/tickets/%FF/history",
        "/api/v1/tickets/x/history",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND, "ticket-not-found").await;
    }
}

#[tokio::test]
async fn an_unknown_route_is_404_and_a_wrong_method_405_both_as_problems() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, "/api/v1/nothing-here")
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND, "not-found").await;
    let response = app
        .request(Method::DELETE, "/api/v1/tickets")
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
    // Made-up methods are answered the same way and counted under one label.
    let made_up = Method::from_bytes(b"BREW").unwrap();
    let response = app
        .request(made_up, "/api/v1/tickets")
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
    let metrics = app.metrics().await;
    assert!(!metrics.contains("BREW"));
    assert!(metrics.contains(r#"method="other""#));
}

#[tokio::test]
async fn invalid_fields_are_422_with_a_pointer_per_field() {
    let app = TestApp::spawn().await;
    let mut ticket = sample_ticket();
    ticket["subject"] = Value::from("   ");
    ticket["tags"] = json!(["ok", "Not OK"]);
    ticket["requester"]["email"] = Value::from("nope");
    let response = app.send(Method::POST, "/api/v1/tickets", ticket).await;
    let problem = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/subject", "/requester/email", "/tags/1"]);
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_wrongly_typed_or_unknown_field_is_422() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"subject": 5, "requester": {"customer_id": "c"}}),
            "/subject",
        ),
        (
            json!({"subject": "s", "requester": {"customer_id": "c"}, "priority": "meh"}),
            "/priority",
        ),
        (json!({"subject": "s"}), "/requester"),
        (
            json!({"subject": "s", "requester": {"customer_id": "c"}, "colour": "red"}),
            "/colour",
        ),
    ];
    for (body, pointer) in cases {
        let response = app.send(Method::POST, "/api/v1/tickets", body).await;
        let problem = expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["pointer"], pointer);
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_command_that_changes_nothing_is_422_no_change() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let response = app
        .send(
            Method::PUT,
            &format!("/api/v1/tickets/{id}/priority"),
            json!({"priority": "high"}),
        )
        .await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "no-change").await;
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn a_forbidden_transition_and_a_closed_ticket_are_409() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let status = format!("/api/v1/tickets/{id}/status");
    let response = app
        .send(Method::PUT, &status, json!({"status": "closed"}))
        .await;
    expect_problem(response, StatusCode::CONFLICT, "invalid-status-transition").await;

    for to in ["solved", "closed"] {
        let response = app.send(Method::PUT, &status, json!({"status": to})).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/interactions"),
            json!({"body": "hi"}),
        )
        .await;
    expect_problem(response, StatusCode::CONFLICT, "ticket-closed").await;
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn a_solved_ticket_only_accepts_reopening() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let status = format!("/api/v1/tickets/{id}/status");
    app.send(Method::PUT, &status, json!({"status": "solved"}))
        .await;
    let response = app
        .send(
            Method::PUT,
            &format!("/api/v1/tickets/{id}/tags"),
            json!({"add": ["vip"]}),
        )
        .await;
    expect_problem(response, StatusCode::CONFLICT, "ticket-solved").await;
    let response = app
        .send(Method::PUT, &status, json!({"status": "open"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_version() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let path = format!("/api/v1/tickets/{id}/priority");
    let response = app
        .request(Method::PUT, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"priority": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .request(Method::PUT, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"priority": "urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], "\"2\"");
    let problem = expect_problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(problem["current_version"], 2);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn a_stale_reply_gets_412_naming_what_happened_since_without_internal_notes_for_customers() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let replies = format!("/api/v1/tickets/{id}/interactions");
    for (body, visibility) in [
        ("On it.", "public"),
        ("Looks like a billing bug.", "internal"),
    ] {
        let response = app
            .as_actor(Method::POST, &replies, "agent-2", "agent")
            .json(&json!({"body": body, "visibility": visibility}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let stale_reply = |id: &str, role: &str| {
        app.as_actor(Method::POST, &replies, id, role)
            .header("if-match", "\"1\"")
            .json(&json!({"body": "Any news?"}))
    };
    let response = stale_reply("agent-1", "agent").send().await.unwrap();
    let problem = expect_problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    let seen: Vec<(u64, &str, &str)> = problem["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["version"].as_u64().unwrap(),
                c["event_type"].as_str().unwrap(),
                c["actor_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(2, "ReplyAdded", "agent-2"), (3, "ReplyAdded", "agent-2")]
    );
    let customer = sample_ticket()["requester"]["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = stale_reply(&customer, "customer").send().await.unwrap();
    let problem = expect_problem(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(problem["current_version"], 3);
    let versions: Vec<u64> = problem["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [2],
        "the internal note is not named to the customer"
    );
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn a_malformed_if_match_is_400() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let response = app
        .request(Method::PUT, &format!("/api/v1/tickets/{id}/priority"))
        .header("if-match", "1")
        .json(&json!({"priority": "low"}))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1/tickets", app.url);
    let anonymous = app
        .client
        .post(&url)
        .json(&sample_ticket())
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"helpdesk\""
    );
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let garbage = app
        .client
        .post(&url)
        .bearer_auth("not.a.token")
        .json(&sample_ticket())
        .send()
        .await
        .unwrap();
    let challenge = garbage.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    expect_problem(garbage, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn an_internal_note_from_a_customer_is_403() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let response = app
        .as_actor(
            Method::POST,
            &format!("/api/v1/tickets/{id}/interactions"),
            "cust-1",
            "customer",
        )
        .json(&json!({"body": "psst", "visibility": "internal"}))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_returns_the_first_response() {
    let app = TestApp::spawn().await;
    let send = |body: Value| {
        app.request(Method::POST, "/api/v1/tickets")
            .header("idempotency-key", "open-42")
            .json(&body)
            .send()
    };
    let first = send(sample_ticket()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_location = first.headers()["location"].clone();
    let first_body: Value = first.json().await.unwrap();

    let second = send(sample_ticket()).await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["location"], first_location);
    assert_eq!(second.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let path = format!("/api/v1/tickets/{id}/interactions");
    let send = |text: &str| {
        app.request(Method::POST, &path)
            .header("idempotency-key", "reply-1")
            .json(&json!({"body": text}))
            .send()
    };
    assert_eq!(send("first").await.unwrap().status(), StatusCode::CREATED);
    let response = send("second").await.unwrap();
    expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn a_failed_request_releases_its_idempotency_key() {
    let app = TestApp::spawn().await;
    let send = |body: Value| {
        app.request(Method::POST, "/api/v1/tickets")
            .header("idempotency-key", "k")
            .json(&body)
            .send()
    };
    let mut invalid = sample_ticket();
    invalid["subject"] = Value::from("");
    assert_eq!(
        send(invalid).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        send(sample_ticket()).await.unwrap().status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_400() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/api/v1/tickets")
        .header("idempotency-key", "x".repeat(256))
        .json(&sample_ticket())
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
}

#[tokio::test]
async fn probes_answer_and_metrics_count_requests_and_commands() {
    let app = TestApp::spawn().await;
    assert_eq!(app.probe("/healthz").await.status(), StatusCode::OK);
    let ready = app.probe("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["postgres"], "ok");
    assert_eq!(ready["checks"]["nats"], "ok");

    app.open_ticket().await;
    let metrics = app.metrics().await;
    assert!(metrics.contains(
        r#"helpdesk_http_requests_total{method="POST",route="/api/v1/tickets",status="201"} 1"#
    ));
    assert!(
        metrics.contains(r#"helpdesk_commands_total{command="open_ticket",outcome="accepted"} 1"#)
    );
    assert!(metrics.contains("helpdesk_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_are_served() {
    let app = TestApp::spawn().await;
    let api: Value = app
        .client
        .get(format!("{}/api-docs/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["paths"]["/api/v1/tickets"]["post"].is_object());
    let docs = app
        .client
        .get(format!("{}/docs/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}
