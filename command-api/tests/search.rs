//! Search end to end: commands through the API, the relay into the real NATS, the search
//! projection into a tantivy index, and the search API reading it back, with `min_position`
//! instead of sleeps.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::HashSet;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use helpdesk_domain::ticket::{Channel, Priority, Status};
use helpdesk_platform::AuthConfig;
use helpdesk_search::TicketDocument;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, expect_problem, sample_ticket};

/// A word no other test uses, so a search for it finds only this test's tickets (stems of at
/// most 8 letters: tokens over 40 characters are not indexed).
fn unique_word(stem: &str) -> String {
    format!("{stem}{}", uuid::Uuid::new_v4().simple())
}

/// Sends a command as `agent-1` and returns the global position it reports.
async fn command(app: &TestApp, method: Method, path: &str, body: Value) -> (Value, i64) {
    let response = app.send(method, path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    let position = body["position"].as_i64().unwrap();
    (body, position)
}

async fn open(app: &TestApp, ticket: Value) -> (String, i64) {
    let (body, position) = command(app, Method::POST, "/api/v1/tickets", ticket).await;
    (body["id"].as_str().unwrap().to_owned(), position)
}

/// Searches as `actor` (role `role`) and returns the body; asserts 200.
async fn search_as(app: &TestApp, actor: &str, role: &str, query: &[(&str, String)]) -> Value {
    let response = app
        .as_actor(Method::GET, "/api/v1/tickets/search", actor, role)
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query:?}");
    response.json().await.unwrap()
}

/// What agent-1 finds for `q` once the index has reached `position`.
async fn agent_search(app: &TestApp, q: String, position: i64) -> Value {
    search_as(
        app,
        "agent-1",
        "agent",
        &[("q", q), ("min_position", position.to_string())],
    )
    .await
}

/// Waits until the index has reached global position `position`.
async fn wait_until_indexed(app: &TestApp, position: i64) {
    search_as(
        app,
        "agent-1",
        "agent",
        &[("min_position", position.to_string())],
    )
    .await;
}

fn ids(page: &Value) -> Vec<String> {
    page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_new_ticket_is_found_by_a_word_of_its_body_and_follows_its_status() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("quokka");
    let mut ticket = sample_ticket();
    ticket["description"] = Value::from(format!("The {word} ate the toner."));
    let (id, opened) = open(&app, ticket).await;

    let found = agent_search(&app, word.clone(), opened).await;
    assert_eq!(ids(&found), vec![id.clone()]);
    assert_eq!(found["total"], 1);
    assert_eq!(found["hits"][0]["status"], "new");
    assert_eq!(found["hits"][0]["subject"], "Printer on fire");

    let status = format!("/api/v1/tickets/{id}/status");
    for (to, other) in [("open", "solved"), ("solved", "open")] {
        let (_, position) = command(&app, Method::PUT, &status, json!({"status": to})).await;
        let matching = agent_search(&app, format!("{word} status:{to}"), position).await;
        assert_eq!(ids(&matching), vec![id.clone()], "status:{to}");
        let other = search_as(
            &app,
            "agent-1",
            "agent",
            &[("q", format!("{word} status:{other}"))],
        )
        .await;
        assert!(ids(&other).is_empty(), "status:{other} after becoming {to}");
    }
}

#[tokio::test]
async fn customers_find_only_their_own_tickets_and_never_by_internal_notes() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let (secret, public) = (unique_word("secret"), unique_word("public"));
    let (own, _) = open(&app, sample_ticket()).await;
    let mut others = sample_ticket();
    others["requester"]["customer_id"] = Value::from("cust-2");
    others["description"] = Value::from(format!("{public} and more"));
    let (other, _) = open(&app, others).await;
    let notes = format!("/api/v1/tickets/{own}/interactions");
    command(
        &app,
        Method::POST,
        &notes,
        json!({"body": format!("{secret} account flagged"), "visibility": "internal"}),
    )
    .await;
    let (_, last) = command(
        &app,
        Method::POST,
        &notes,
        json!({"body": format!("we replied {public}")}),
    )
    .await;
    let wait = [("min_position", last.to_string())];

    let everything = search_as(&app, "cust-1", "customer", &wait).await;
    assert_eq!(ids(&everything), vec![own.clone()]);
    assert_eq!(everything["total"], 1);
    assert_eq!(
        everything["facets"]["status"],
        json!([{"value": "new", "count": 1}])
    );
    let by_public_word = search_as(&app, "cust-1", "customer", &[("q", public.clone())]).await;
    assert_eq!(
        ids(&by_public_word),
        vec![own.clone()],
        "the other customer's match is hidden"
    );
    let by_note = search_as(&app, "cust-1", "customer", &[("q", secret.clone())]).await;
    assert!(
        ids(&by_note).is_empty(),
        "internal notes are not searchable by customers"
    );

    let agent = search_as(&app, "agent-1", "agent", &[("q", secret)]).await;
    assert_eq!(ids(&agent), vec![own.clone()]);
    assert_eq!(agent["hits"][0]["reply_count"], 2);
    let agent_public = search_as(&app, "agent-1", "agent", &[("q", public)]).await;
    let mut both = vec![own, other];
    let mut found = ids(&agent_public);
    both.sort();
    found.sort();
    assert_eq!(found, both);
}

#[tokio::test]
async fn a_malformed_search_is_a_clear_client_error_never_a_500() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    type Case = (Vec<(&'static str, &'static str)>, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("q", "status:bogus")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-query",
        ),
        (
            vec![("q", "refund \"never closed")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-query",
        ),
        (
            vec![("q", "created>yesterday")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-query",
        ),
        (
            vec![("sort", "subject")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("cursor", "garbage")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("cursor", "-updated_at~1~2"), ("sort", "priority")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("limit", "0")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("limit", "101")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("limit", "many")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("min_position", "-3")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            vec![("min_position", "x")],
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
    ];
    for (query, status, slug) in cases {
        let response = app
            .request(Method::GET, "/api/v1/tickets/search")
            .query(&query)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, status, slug).await;
        if slug == "invalid-query" {
            assert!(problem["position"].is_u64(), "{query:?}: {problem}");
        }
    }
    let response = app
        .request(Method::GET, "/api/v1/tickets/search")
        .query(&[("q", "priority:high status:nope")])
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-query").await;
    assert_eq!(
        problem["position"], 21,
        "points at the bad value: {problem}"
    );
}

#[tokio::test]
async fn a_position_the_index_never_reaches_is_503_with_retry_after() {
    // Search is served, but no projection feeds it.
    let app = TestApp::spawn_with_idle_search(AuthConfig::default()).await;
    let (_, position) = open(&app, sample_ticket()).await;
    let response = app
        .request(Method::GET, "/api/v1/tickets/search")
        .query(&[("min_position", position.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    expect_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "not-yet-consistent",
    )
    .await;
}

#[tokio::test]
async fn my_queue_lists_what_is_assigned_to_me_open_states_first() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let (first, _) = open(&app, sample_ticket()).await;
    let (second, _) = open(&app, sample_ticket()).await;
    let (someone_elses, _) = open(&app, sample_ticket()).await;
    for (id, assignee) in [
        (&first, "agent-1"),
        (&second, "agent-1"),
        (&someone_elses, "agent-2"),
    ] {
        command(
            &app,
            Method::PUT,
            &format!("/api/v1/tickets/{id}/assign"),
            json!({"assignee": assignee}),
        )
        .await;
    }
    let (_, last) = command(
        &app,
        Method::PUT,
        &format!("/api/v1/tickets/{first}/status"),
        json!({"status": "solved"}),
    )
    .await;
    let response = app
        .request(Method::GET, "/api/v1/agents/me/tickets")
        .query(&[("min_position", last.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let queue: Value = response.json().await.unwrap();
    assert_eq!(ids(&queue), vec![second, first], "new before solved");
    assert_eq!(queue["hits"][1]["status"], "solved");
}

/// `n` documents matching `tags:bulk`, 40 to each `updated_at` value so that most of the
/// order comes from the tie-breaker.
fn bulk_documents(n: usize) -> Vec<TicketDocument> {
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let at = base + Span::seconds((i / 40) as i64);
            TicketDocument {
                id: format!("bulk-{i:06}"),
                subject: format!("bulk ticket {i}"),
                description: String::new(),
                public_text: String::new(),
                internal_text: String::new(),
                status: Status::Open,
                priority: Priority::Normal,
                channel: Channel::Email,
                requester_id: "cust-bulk".into(),
                requester_name: None,
                requester_email: None,
                assignee: None,
                group: None,
                tags: vec!["bulk".into()],
                created_at: at,
                updated_at: at,
                solved_at: None,
                reply_count: 0,
                public_reply_count: 0,
                last_sequence: 1,
                last_position: i as i64 + 1,
                // Interleaved so the tie-breaker order differs from the id order.
                opened_position: ((i * 7919) % n) as i64 + 1,
                sla_sequence: 0,
                sla_clocks: Default::default(),
            }
        })
        .collect()
}

#[tokio::test]
async fn paging_through_25_000_matches_returns_each_exactly_once_in_order() {
    const TOTAL: usize = 25_000;
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let (_, index, _) = app.search.clone().unwrap();
    let documents = bulk_documents(TOTAL);
    for chunk in documents.chunks(5_000) {
        index.backend().write(chunk.to_vec(), None).await.unwrap();
    }
    let mut expected = documents.clone();
    expected.sort_by_key(|d| (std::cmp::Reverse(d.updated_at), d.opened_position));
    let expected: Vec<String> = expected.into_iter().map(|d| d.id).collect();

    let mut seen = Vec::with_capacity(TOTAL);
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("q", "tags:bulk".to_owned()), ("limit", "100".to_owned())];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page = search_as(&app, "agent-1", "agent", &query).await;
        assert_eq!(page["total"], TOTAL);
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), TOTAL);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        TOTAL,
        "no ticket twice"
    );
    assert!(
        seen == expected,
        "pages follow -updated_at, then creation order"
    );
}

/// The answers to a fixed set of queries, as the API gives them.
async fn answers(app: &TestApp, word: &str) -> Vec<Value> {
    let queries = [
        word.to_owned(),
        format!("{word} status<solved"),
        format!("{word} priority>normal"),
        format!("{word} tags:vip -tags:spam"),
        format!("{word} assignee:none"),
        format!("{word} assignee:agent-2"),
        format!("{word} \"toner cartridge\""),
        format!("{word} created>2020-01-01"),
    ];
    let mut all = Vec::new();
    for q in queries {
        for sort in ["-updated_at", "priority", "created_at"] {
            let mut page = search_as(
                app,
                "agent-1",
                "agent",
                &[
                    ("q", q.clone()),
                    ("sort", sort.to_owned()),
                    ("limit", "100".to_owned()),
                ],
            )
            .await;
            page.as_object_mut().unwrap().remove("next");
            all.push(page);
        }
    }
    all
}

#[tokio::test]
async fn a_rebuilt_index_answers_exactly_as_the_live_one_did() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("replay");
    let mut last = 0;
    for i in 0..30 {
        let mut ticket = sample_ticket();
        ticket["description"] = Value::from(format!("{word} toner cartridge {i}"));
        ticket["priority"] = Value::from(["low", "normal", "high", "urgent"][i % 4]);
        ticket["tags"] = json!(
            [
                json!(["vip"]),
                json!(["spam"]),
                json!(["vip", "spam"]),
                json!([])
            ][i % 4]
        );
        let (id, position) = open(&app, ticket).await;
        last = position;
        if i % 3 == 0 {
            let path = format!("/api/v1/tickets/{id}/assign");
            (_, last) = command(&app, Method::PUT, &path, json!({"assignee": "agent-2"})).await;
        }
        if i % 2 == 0 {
            let path = format!("/api/v1/tickets/{id}/interactions");
            (_, last) = command(&app, Method::POST, &path, json!({"body": "on its way"})).await;
        }
        if i % 5 == 0 {
            let path = format!("/api/v1/tickets/{id}/status");
            (_, last) = command(&app, Method::PUT, &path, json!({"status": "solved"})).await;
        }
    }
    wait_until_indexed(&app, last).await;
    let before = answers(&app, &word).await;
    assert_eq!(before[0]["total"], 30);

    let (projection, index, _) = app.search.clone().unwrap();
    let helpdesk_search::rebuild::SearchIndex::Tantivy(tantivy) = &index else {
        panic!("the test app runs tantivy");
    };
    assert_eq!(tantivy.generation_number().unwrap(), 1);
    let replayed = helpdesk_search::rebuild::rebuild(&app.pool, &index, Some(&projection), |_| {})
        .await
        .unwrap();
    assert!(replayed >= app.event_count().await as u64);
    assert_eq!(tantivy.generation_number().unwrap(), 2);
    assert_eq!(answers(&app, &word).await, before);

    // The live path writes into the new generation.
    let mut ticket = sample_ticket();
    ticket["description"] = Value::from(format!("{word} after the rebuild"));
    let (id, position) = open(&app, ticket).await;
    let found = agent_search(&app, format!("{word} rebuild"), position).await;
    assert_eq!(ids(&found), vec![id]);
}

/// The rebuild status as a manager reads it.
async fn rebuild_status(app: &TestApp) -> Value {
    let response = app
        .as_actor(
            Method::GET,
            "/api/v1/search/rebuild",
            "manager-1",
            "manager",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_admin_rebuilds_the_running_index_through_the_api() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("regen");
    let mut last = 0;
    for _ in 0..5 {
        let mut ticket = sample_ticket();
        ticket["description"] = Value::from(format!("{word} twice"));
        (_, last) = open(&app, ticket).await;
    }
    let query = [("q", word.clone()), ("min_position", last.to_string())];
    let before = search_as(&app, "agent-1", "agent", &query).await;
    assert_eq!(before["total"], 5);
    assert_eq!(rebuild_status(&app).await["generation"], 1);

    let refused = app
        .request(Method::POST, "/api/v1/search/rebuild")
        .send()
        .await
        .unwrap();
    expect_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let started = app
        .as_actor(Method::POST, "/api/v1/search/rebuild", "admin-1", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["state"], "running");
    assert_eq!(started["backend"], "tantivy");

    // Searches keep answering while it runs, and after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let during = search_as(&app, "agent-1", "agent", &[("q", word.clone())]).await;
        assert_eq!(
            during["total"], 5,
            "the serving generation answers during the rebuild"
        );
        let status = rebuild_status(&app).await;
        if status["state"] != "running" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rebuild did not finish: {status}"
        );
    };
    assert_eq!(status["state"], "idle", "{status}");
    assert_eq!(status["generation"], 2);
    assert!(status["replayed"].as_u64().unwrap() >= 5);
    let after = search_as(&app, "agent-1", "agent", &[("q", word)]).await;
    assert_eq!(ids(&after), ids(&before));
}

#[tokio::test]
async fn group_scoped_agents_find_their_groups_and_ungrouped_tickets_only() {
    let app = TestApp::spawn_with_search(AuthConfig {
        agent_scope: helpdesk_domain::AgentScope::Groups,
        ..AuthConfig::default()
    })
    .await;
    let word = unique_word("scoped");
    let mut opened = Vec::new();
    let mut last = 0;
    // Test tokens carry groups ["billing"].
    for group in [Some("billing"), Some("tech"), None] {
        let mut ticket = sample_ticket();
        ticket["description"] = Value::from(format!("{word} here"));
        if let Some(group) = group {
            ticket["group"] = Value::from(group);
        }
        let (id, position) = open(&app, ticket).await;
        opened.push(id);
        last = position;
    }
    let query = [("q", word.clone()), ("min_position", last.to_string())];
    let agent = search_as(&app, "agent-1", "agent", &query).await;
    let mut found = ids(&agent);
    found.sort();
    let mut expected = vec![opened[0].clone(), opened[2].clone()];
    expected.sort();
    assert_eq!(found, expected, "billing and ungrouped, not tech");
    assert_eq!(agent["total"], 2);
    let groups: Vec<&str> = agent["facets"]["group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["value"].as_str().unwrap())
        .collect();
    assert!(
        !groups.contains(&"tech"),
        "facets count only visible tickets: {groups:?}"
    );
    let manager = search_as(&app, "manager-1", "manager", &[("q", word)]).await;
    assert_eq!(manager["total"], 3, "managers see every group");
}

// --- SLA state ---------------------------------------------------------------------------------

/// The ticket's first-reply clock: activated at `at`, due an hour later.
fn first_reply_activated(at: DateTime<Utc>) -> helpdesk_domain::sla::SlaEvent {
    helpdesk_domain::sla::SlaEvent::Activated {
        metric: helpdesk_domain::sla::SlaMetric::FirstReply,
        activation: 1,
        policy: helpdesk_domain::sla::PolicyRef {
            id: "policy-1".into(),
            version: 1,
        },
        at,
        started_at: at,
        due_at: at + Span::hours(1),
        target_minutes: 60,
    }
}

fn first_reply_breached(at: DateTime<Utc>) -> helpdesk_domain::sla::SlaEvent {
    helpdesk_domain::sla::SlaEvent::Breached {
        metric: helpdesk_domain::sla::SlaMetric::FirstReply,
        activation: 1,
        at,
    }
}

fn first_reply_fulfilled(at: DateTime<Utc>) -> helpdesk_domain::sla::SlaEvent {
    helpdesk_domain::sla::SlaEvent::Fulfilled {
        metric: helpdesk_domain::sla::SlaMetric::FirstReply,
        activation: 1,
        at,
        business_minutes: 90,
    }
}

/// Appends SLA events to a ticket's `TicketSla` aggregate the way the SLA projection does
/// (`store::append`), one transaction per call; `state` carries the sequence on.
async fn append_sla_events(
    app: &TestApp,
    state: &mut helpdesk_projections::sla::store::TicketState,
    events: &[helpdesk_domain::sla::SlaEvent],
) {
    let cause = helpdesk_projections::sla::store::Cause {
        causation_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: uuid::Uuid::new_v4().to_string(),
        ticket_sequence: 1,
        command: "sla_breach_watcher",
    };
    let mut tx = app.pool.begin().await.unwrap();
    helpdesk_projections::sla::store::append(&mut tx, state, events, &cause)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The SLA state of a freshly opened sample ticket, before any SLA event.
fn sla_state_of(ticket_id: &str) -> helpdesk_projections::sla::store::TicketState {
    helpdesk_projections::sla::store::TicketState::new(
        ticket_id,
        helpdesk_projections::sla::model::Dims {
            priority: "high".into(),
            group_id: None,
            assignee: None,
            channel: "email".into(),
        },
    )
}

/// Searches as `actor` until the hits are `expected` (30 s at most). SLA events are not what
/// `min_position` waits for (it follows ticket events), so the test waits on the answer.
async fn wait_for_hits(app: &TestApp, actor: &str, role: &str, q: &str, expected: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = search_as(app, actor, role, &[("q", q.to_owned())]).await;
        if ids(&page) == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{q:?} still answers {:?}, expected {expected:?}",
            ids(&page)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_finds_a_breached_ticket_by_sla_until_its_clock_is_fulfilled() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("overdue");
    let mut ticket = sample_ticket();
    ticket["description"] = Value::from(format!("{word} since Monday"));
    let (id, opened) = open(&app, ticket).await;
    let (calm, _) = open(&app, {
        let mut other = sample_ticket();
        other["description"] = Value::from(format!("{word} but calm"));
        other
    })
    .await;
    wait_until_indexed(&app, opened).await;
    let start = Utc::now();
    let mut state = sla_state_of(&id);

    append_sla_events(&app, &mut state, &[first_reply_activated(start)]).await;
    wait_for_hits(
        &app,
        "agent-1",
        "agent",
        &format!("{word} sla:active"),
        &[&id],
    )
    .await;
    let breached = format!("{word} sla:breached");
    assert!(ids(&search_as(&app, "agent-1", "agent", &[("q", breached.clone())]).await).is_empty());

    append_sla_events(
        &app,
        &mut state,
        &[first_reply_breached(start + Span::hours(1))],
    )
    .await;
    wait_for_hits(&app, "agent-1", "agent", &breached, &[&id]).await;
    let not_breached = search_as(
        &app,
        "manager-1",
        "manager",
        &[("q", format!("{word} -sla:breached"))],
    )
    .await;
    assert_eq!(ids(&not_breached), vec![calm.clone()]);

    // A ticket event in between leaves the SLA state alone.
    let (_, assigned) = command(
        &app,
        Method::PUT,
        &format!("/api/v1/tickets/{id}/assign"),
        json!({"assignee": "agent-2"}),
    )
    .await;
    let after_assign = agent_search(&app, format!("{breached} assignee:agent-2"), assigned).await;
    assert_eq!(ids(&after_assign), vec![id.clone()]);

    append_sla_events(
        &app,
        &mut state,
        &[first_reply_fulfilled(start + Span::minutes(90))],
    )
    .await;
    wait_for_hits(&app, "agent-1", "agent", &breached, &[]).await;
    let without_sla = search_as(
        &app,
        "agent-1",
        "agent",
        &[("q", format!("{word} -sla:breached -sla:active -sla:paused"))],
    )
    .await;
    assert_eq!(ids(&without_sla).len(), 2, "no open SLA clock on either");
}

#[tokio::test]
async fn a_customer_may_not_search_by_sla_state() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    for q in ["sla:breached", "refund -sla:active"] {
        let response = app
            .as_actor(Method::GET, "/api/v1/tickets/search", "cust-1", "customer")
            .query(&[("q", q)])
            .send()
            .await
            .unwrap();
        let problem =
            expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-query").await;
        let at = q.find("sla").unwrap();
        assert_eq!(problem["position"], at, "{q}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("staff information"),
            "{problem}"
        );
    }
    let auditor = search_as(
        &app,
        "auditor-1",
        "auditor",
        &[("q", "sla:breached".into())],
    )
    .await;
    assert_eq!(auditor["total"], 0);
}

/// Opens `count` sample tickets described as "`word` 0", "`word` 1", …; their ids, and the
/// position of the last.
async fn open_numbered(app: &TestApp, word: &str, count: usize) -> (Vec<String>, i64) {
    let mut opened = Vec::new();
    let mut last = 0;
    for i in 0..count {
        let mut ticket = sample_ticket();
        ticket["description"] = Value::from(format!("{word} {i}"));
        let (id, position) = open(app, ticket).await;
        opened.push(id);
        last = position;
    }
    (opened, last)
}

#[tokio::test]
async fn a_rebuilt_index_keeps_the_sla_state_of_every_ticket() {
    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("rebuilt");
    let (opened, last) = open_numbered(&app, &word, 3).await;
    wait_until_indexed(&app, last).await;
    let start = Utc::now();
    let mut breached = sla_state_of(&opened[0]);
    append_sla_events(
        &app,
        &mut breached,
        &[
            first_reply_activated(start),
            first_reply_breached(start + Span::hours(1)),
        ],
    )
    .await;
    let mut active = sla_state_of(&opened[1]);
    append_sla_events(&app, &mut active, &[first_reply_activated(start)]).await;
    wait_for_hits(
        &app,
        "agent-1",
        "agent",
        &format!("{word} sla:breached"),
        &[&opened[0]],
    )
    .await;
    wait_for_hits(
        &app,
        "agent-1",
        "agent",
        &format!("{word} sla:active"),
        &[&opened[1]],
    )
    .await;
    let before: Vec<Value> = {
        let mut pages = Vec::new();
        for state in ["breached", "active", "paused"] {
            let q = format!("{word} sla:{state}");
            pages.push(search_as(&app, "agent-1", "agent", &[("q", q)]).await);
        }
        pages
    };

    let (projection, index, _) = app.search.clone().unwrap();
    helpdesk_search::rebuild::rebuild(&app.pool, &index, Some(&projection), |_| {})
        .await
        .unwrap();
    for (state, page) in ["breached", "active", "paused"].into_iter().zip(&before) {
        let q = format!("{word} sla:{state}");
        let after = search_as(&app, "agent-1", "agent", &[("q", q)]).await;
        assert_eq!(&after, page, "sla:{state} after the rebuild");
    }
    let documents = index.backend().get(&opened).await.unwrap();
    assert_eq!(documents[&opened[0]].sla_sequence, 2);
    assert_eq!(documents[&opened[1]].sla_sequence, 1);
    assert_eq!(documents[&opened[2]].sla_sequence, 0);
}

#[tokio::test]
async fn a_replay_committing_every_few_events_folds_the_documents_the_live_index_holds() {
    use helpdesk_search::SearchBackend;
    use helpdesk_search::projection::{ReplayBounds, replay_bounded, replay_by_ticket_bounded};
    use helpdesk_search::tantivy_backend::TantivyBackend;

    let app = TestApp::spawn_with_search(AuthConfig::default()).await;
    let word = unique_word("commits");
    let (opened, mut last) = open_numbered(&app, &word, 6).await;
    // Each ticket's events are spread over the whole store, so with a commit every few
    // events most documents are written, dropped and read back from the index several times.
    for (round, status) in ["open", "pending", "solved"].into_iter().enumerate() {
        for (i, id) in opened.iter().enumerate() {
            let (method, path, body) = match (round + i) % 3 {
                0 => (
                    Method::POST,
                    format!("/api/v1/tickets/{id}/interactions"),
                    json!({"body": format!("reply {round} to {i}")}),
                ),
                1 => (
                    Method::PUT,
                    format!("/api/v1/tickets/{id}/assign"),
                    json!({"assignee": format!("agent-{round}")}),
                ),
                _ => (
                    Method::PUT,
                    format!("/api/v1/tickets/{id}/status"),
                    json!({"status": status}),
                ),
            };
            (_, last) = command(&app, method, &path, body).await;
        }
    }
    wait_until_indexed(&app, last).await;
    let start = Utc::now();
    let mut sla = sla_state_of(&opened[2]);
    append_sla_events(&app, &mut sla, &[first_reply_activated(start)]).await;
    append_sla_events(
        &app,
        &mut sla,
        &[first_reply_breached(start + Span::hours(1))],
    )
    .await;
    let q = format!("{word} sla:breached");
    wait_for_hits(&app, "agent-1", "agent", &q, &[&opened[2]]).await;

    let (_, index, _) = app.search.clone().unwrap();
    let live = index.backend().get(&opened).await.unwrap();
    assert_eq!(live.len(), opened.len());
    let stored = app.event_count().await as u64;
    let every_five_events = ReplayBounds {
        batch: 3,
        events: 5,
        bytes: usize::MAX,
    };
    let every_read = ReplayBounds {
        batch: 3,
        events: u64::MAX,
        bytes: 1,
    };
    for bounds in [every_five_events, every_read] {
        let directory = tempfile::tempdir().unwrap();
        let backend = TantivyBackend::open(directory.path()).unwrap();
        let (cursor, replayed) =
            replay_bounded(&app.pool, &backend, Default::default(), bounds, |_| {})
                .await
                .unwrap();
        assert!(replayed >= stored, "{bounds:?}: {replayed} of {stored}");
        assert_eq!(
            backend.checkpoint().unwrap(),
            Some(cursor.position),
            "{bounds:?}"
        );
        assert_eq!(backend.get(&opened).await.unwrap(), live, "{bounds:?}");
    }
    // And so does a replay ticket by ticket (a rebuild's), one or two tickets per read,
    // committing every few events or every read, and the replay in commit order from its cut
    let folded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type IN ('Ticket', 'TicketSla')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let two_tickets_every_five_events = ReplayBounds {
        batch: 2,
        ..every_five_events
    };
    let one_ticket_every_read = ReplayBounds {
        batch: 1,
        ..every_read
    };
    for bounds in [two_tickets_every_five_events, one_ticket_every_read] {
        let directory = tempfile::tempdir().unwrap();
        let backend = TantivyBackend::open(directory.path()).unwrap();
        let (cut, replayed) = replay_by_ticket_bounded(&app.pool, &backend, bounds, |_| {})
            .await
            .unwrap();
        assert_eq!(replayed as i64, folded, "{bounds:?}");
        assert_eq!(
            backend.checkpoint().unwrap(),
            Some(cut.position),
            "{bounds:?}"
        );
        assert_eq!(backend.get(&opened).await.unwrap(), live, "{bounds:?}");
        replay_bounded(&app.pool, &backend, cut, bounds, |_| {})
            .await
            .unwrap();
        assert_eq!(backend.get(&opened).await.unwrap(), live, "{bounds:?}");
    }
}
