//! The real-time feed end to end: the real `helpdesk up` process(es), real Postgres, real NATS,
//! clients over WebSocket and SSE. No sleeps: every wait is for a message, with a deadline.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use helpdesk_tests::realtime::{SseClient, WsClient};
use helpdesk_tests::{Product, metric, postgres_server_url};
use reqwest::Method;
use serde_json::{Value, json};

/// Commands over HTTP as one caller.
struct Caller {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Caller {
    async fn new(product: &Product, role: &str, sub: &str) -> Caller {
        Caller {
            base: product.url.clone(),
            token: product.token(role, sub).await,
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Value {
        let response = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Opens a ticket for `customer`; returns its id.
    async fn open(&self, customer: &str, subject: &str) -> String {
        let body = json!({"subject": subject, "description": "Details.", "channel": "web",
                          "requester": {"customer_id": customer}});
        let opened = self.send(Method::POST, "/tickets", body).await;
        opened["id"].as_str().unwrap().to_owned()
    }

    async fn priority(&self, ticket: &str, priority: &str) {
        let body = json!({"priority": priority});
        self.send(Method::PUT, &format!("/tickets/{ticket}/priority"), body)
            .await;
    }

    async fn status(&self, ticket: &str, status: &str) {
        let body = json!({"status": status});
        self.send(Method::PUT, &format!("/tickets/{ticket}/status"), body)
            .await;
    }

    async fn tag(&self, ticket: &str, tag: &str) {
        let body = json!({"add": [tag]});
        self.send(Method::PUT, &format!("/tickets/{ticket}/tags"), body)
            .await;
    }

    async fn reply(&self, ticket: &str, text: &str, visibility: &str) {
        let body = json!({"body": text, "visibility": visibility});
        self.send(
            Method::POST,
            &format!("/tickets/{ticket}/interactions"),
            body,
        )
        .await;
    }
}

async fn product() -> (Product, String) {
    product_with(&[]).await
}

async fn product_with(env: &[(&str, &str)]) -> (Product, String) {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let url = database.expose().to_owned();
    (Product::start_with(&url, env).await, url)
}

/// (ticket id, version, event type) of an update message.
fn key(update: &Value) -> (String, u64, String) {
    (
        update["ticket"]["id"].as_str().unwrap().to_owned(),
        update["ticket"]["version"].as_u64().unwrap(),
        update["event_type"].as_str().unwrap().to_owned(),
    )
}

/// Reads messages until `count` updates arrived; returns them.
async fn updates(client: &mut WsClient, count: usize) -> Vec<Value> {
    updates_after(client, count, 0).await
}

/// Like [`updates`], skipping updates to ticket versions up to `seen_version` (a ticket opened
/// just before the client connected may still arrive live, depending on the feed's progress).
async fn updates_after(client: &mut WsClient, count: usize, seen_version: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let message = client.next().await;
        assert_ne!(message["type"], "resync", "{message}");
        if message["type"] == "update"
            && message["ticket"]["version"].as_u64().unwrap() > seen_version
        {
            seen.push(message);
        }
    }
    seen
}

#[tokio::test]
async fn a_queue_subscriber_gets_the_push_for_a_command_and_a_left_when_the_ticket_leaves() {
    let (product, _) = product().await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let mut client = WsClient::connect(&product.url, &agent.token).await;
    client
        .subscribe(json!({"id": "urgent-open", "queue": {"priorities": ["urgent"], "statuses": ["new", "open"]}}))
        .await;

    let ticket = agent.open("cust-1", "Printer on fire").await;
    agent.priority(&ticket, "urgent").await;
    let pushed = client.next_of("update").await;
    assert_eq!(pushed["event_type"], "TicketPriorityChanged");
    assert_eq!(pushed["subscriptions"], json!(["urgent-open"]));
    let summary = &pushed["ticket"];
    assert_eq!(summary["id"], ticket.as_str());
    assert_eq!(summary["subject"], "Printer on fire");
    assert_eq!(summary["priority"], "urgent");
    assert_eq!(summary["status"], "new");
    assert_eq!(summary["version"], 2);
    assert_eq!(summary["requester"]["customer_id"], "cust-1");
    assert!(pushed["position"].as_i64().unwrap() > 0);
    assert!(pushed["cursor"].as_u64().unwrap() > 0);

    agent.status(&ticket, "pending").await;
    let left = client.next().await;
    assert_eq!(left["type"], "left", "{left}");
    assert_eq!(left["ticket_id"], ticket.as_str());
    assert_eq!(left["subscriptions"], json!(["urgent-open"]));
    assert!(left["cursor"].as_u64().unwrap() > pushed["cursor"].as_u64().unwrap());
    product.stop().await;
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_the_missed_updates_in_order_then_live_ones() {
    let (product, _) = product().await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let mut client = WsClient::connect(&product.url, &agent.token).await;
    client.subscribe(json!({"id": "all", "queue": {}})).await;
    let first = agent.open("cust-1", "First").await;
    let seen = client.next_of("update").await;
    let resume_at = seen["cursor"].as_u64().unwrap();
    client.close().await;

    // 100 commands while disconnected, over two tickets.
    let second = agent.open("cust-2", "Second").await;
    let mut expected = vec![(second.clone(), 1, "TicketOpened".to_owned())];
    let mut versions = std::collections::HashMap::from([(first.clone(), 1), (second.clone(), 1)]);
    let mut priorities = std::collections::HashMap::new();
    for turn in 0..99 {
        let ticket = if turn % 2 == 0 { &first } else { &second };
        let kind = if turn % 3 == 0 {
            agent
                .reply(ticket, &format!("reply {turn}"), "public")
                .await;
            "ReplyAdded"
        } else {
            let priority = priorities.entry(ticket.clone()).or_insert("low");
            *priority = if *priority == "high" { "low" } else { "high" };
            agent.priority(ticket, priority).await;
            "TicketPriorityChanged"
        };
        let version = versions.get_mut(ticket).unwrap();
        *version += 1;
        expected.push((ticket.clone(), *version, kind.to_owned()));
    }
    assert_eq!(expected.len(), 100);

    let mut client = WsClient::connect(&product.url, &agent.token).await;
    let (replayed, _) = client
        .subscribe(json!({"id": "all", "queue": {}, "since": resume_at}))
        .await;
    let mut received: Vec<Value> = replayed;
    let live_needed = 100 - received.len();
    received.extend(updates(&mut client, live_needed).await);
    let keys: Vec<_> = received.iter().map(key).collect();
    assert_eq!(keys, expected, "exactly the missed updates, in order");
    let cursors: Vec<u64> = received
        .iter()
        .map(|m| m["cursor"].as_u64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert!(cursors[0] > resume_at);

    agent.status(&first, "open").await;
    let live = client.next_of("update").await;
    assert_eq!(
        key(&live),
        (
            first.clone(),
            versions[&first] + 1,
            "TicketStatusChanged".to_owned()
        )
    );
    assert!(live["cursor"].as_u64().unwrap() > *cursors.last().unwrap());
    product.stop().await;
}

#[tokio::test]
async fn sse_carries_the_cursor_as_event_id_and_resumes_from_last_event_id() {
    let (product, _) = product().await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let ticket = agent.open("cust-1", "Invoice wrong").await;
    let (status, stream) = SseClient::open(
        &product.url,
        &agent.token,
        &format!("ticket={ticket}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut stream = stream.unwrap();
    assert_eq!(stream.next().await.event, "subscribed");
    agent.priority(&ticket, "high").await;
    // The opening may still arrive live if the feed had not seen it at connect time.
    let event = loop {
        let event = stream.next().await;
        if event.event == "update" && event.data["event_type"] == "TicketPriorityChanged" {
            break event;
        }
    };
    let cursor = event.data["cursor"].as_u64().unwrap();
    assert_eq!(event.id, Some(cursor.to_string()));
    assert_eq!(event.data["ticket"]["priority"], "high");
    drop(stream);

    agent.reply(&ticket, "We are on it.", "public").await;
    agent.priority(&ticket, "low").await;
    let (_, stream) = SseClient::open(
        &product.url,
        &agent.token,
        &format!("ticket={ticket}"),
        Some(cursor),
    )
    .await;
    let mut stream = stream.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let event = stream.next().await;
        if event.event == "update" {
            kinds.push(event.data["event_type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(kinds, ["ReplyAdded", "TicketPriorityChanged"]);

    let (status, _) =
        SseClient::open(&product.url, &agent.token, "ticket=not-a-ticket", None).await;
    assert_eq!(status, 404);
    let (status, _) = SseClient::open(&product.url, &agent.token, "status=bogus", None).await;
    assert_eq!(status, 400);
    product.stop().await;
}

#[tokio::test]
async fn a_customer_feed_never_carries_another_customers_ticket_or_an_internal_note() {
    let (product, _) = product().await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let alice = Caller::new(&product, "customer", "alice").await;
    let mut live = WsClient::connect(&product.url, &alice.token).await;
    // An empty queue filter matches every ticket: only access rules keep others out.
    live.subscribe(json!({"id": "everything", "queue": {}}))
        .await;
    let (_, sse) = SseClient::open(&product.url, &alice.token, "", None).await;
    let mut sse = sse.unwrap();

    let mine = alice.open("alice", "My order").await;
    let theirs = agent.open("bob", "Bob's order, same words: My order").await;
    agent.reply(&theirs, "Bob's reply", "public").await;
    agent
        .reply(&mine, "Secret internal note about alice", "internal")
        .await;
    agent.reply(&mine, "Public answer", "public").await;
    // The last command is public on alice's ticket: once it arrived, everything before it has
    // been routed too.
    let pushed = updates(&mut live, 2).await;
    let (after, _) = WsClient::connect(&product.url, &alice.token)
        .await
        .subscribe(json!({"id": "resumed", "queue": {}, "since": 0}))
        .await;
    let mut from_sse = Vec::new();
    while from_sse.len() < 2 {
        let event = sse.next().await;
        if event.event == "update" {
            from_sse.push(event.data);
        }
    }
    for feed in [&pushed, &after, &from_sse] {
        let keys: Vec<_> = feed.iter().map(key).collect();
        assert_eq!(
            keys,
            [
                (mine.clone(), 1, "TicketOpened".to_owned()),
                (mine.clone(), 3, "ReplyAdded".to_owned()),
            ],
            "only alice's ticket, and not the internal note"
        );
        let text = serde_json::to_string(feed).unwrap();
        assert!(!text.contains("Secret") && !text.contains("bob"), "{text}");
    }
    live.send(json!({"type": "subscribe", "id": "peek", "ticket": theirs}))
        .await;
    let refused = live.next_of("error").await;
    assert_eq!(refused["id"], "peek");
    assert_eq!(refused["detail"], "no such ticket");
    let (status, _) = SseClient::open(
        &product.url,
        &alice.token,
        &format!("ticket={theirs}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    live.send(json!({"type": "presence", "ticket": mine, "state": "viewing"}))
        .await;
    assert_eq!(live.next_of("error").await["id"], Value::Null);
    product.stop().await;
}

/// `helpdesk_realtime_lag` from the product's `/metrics`.
async fn feed_lag(product: &Product) -> i64 {
    metric(&product.metrics().await, "helpdesk_realtime_lag")
}

/// Polls the feed's lag until `wanted` holds, for at most `seconds`; returns the last value.
async fn lag_until(product: &Product, seconds: u64, wanted: impl Fn(i64) -> bool) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let lag = feed_lag(product).await;
        if wanted(lag) || std::time::Instant::now() > deadline {
            return lag;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_lag_gauge_shows_a_feed_held_up_by_an_event_and_zero_once_past_it() {
    let (product, _) = product_with(&[]).await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let mut ws = WsClient::connect(&product.url, &agent.token).await;
    ws.subscribe(json!({"id": "all", "queue": {}})).await;
    let ticket = agent.open("cust-1", "Held up").await;
    agent.status(&ticket, "open").await;
    ws.read_until(|m| m["event_type"] == "TicketStatusChanged")
        .await;
    assert_eq!(lag_until(&product, 10, |lag| lag == 0).await, 0);

    // That status change again, as the second event of a ticket the store does not hold: the
    // feed cannot fold it, retries it (a store that is briefly unreachable looks the same), and
    // meanwhile pushes nothing.
    let js = async_nats::jetstream::new(
        async_nats::connect(helpdesk_tests::nats_url())
            .await
            .unwrap(),
    );
    let mut stream = helpdesk_platform::nats::ensure_events_stream(&js, product.prefix())
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let changed = stream.get_raw_message(last).await.unwrap();
    let mut stray: helpdesk_schemas::EventEnvelope =
        serde_json::from_slice(&changed.payload).unwrap();
    assert_eq!(stray.event_type, "TicketStatusChanged");
    stray.aggregate_id = uuid::Uuid::now_v7().to_string();
    js.publish(
        stray.subject(product.prefix()),
        serde_json::to_vec(&stray).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    assert_eq!(
        lag_until(&product, 10, |lag| lag >= 1).await,
        1,
        "the feed is one message behind the stream while it retries"
    );
    // After its retries the feed skips the event it cannot fold and catches up.
    assert_eq!(lag_until(&product, 30, |lag| lag == 0).await, 0);
    agent.status(&ticket, "pending").await;
    let pushed = ws.next_of("update").await;
    assert_eq!(
        (&pushed["ticket"]["id"], &pushed["ticket"]["status"]),
        (&json!(ticket), &json!("pending"))
    );
    product.stop().await;
}

#[tokio::test]
async fn a_ticket_the_summary_cache_let_go_is_read_once_then_folded_from_the_cache_again() {
    let (product, _) = product_with(&[("HELPDESK_REALTIME_SUMMARY_CACHE", "1")]).await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let mut ws = WsClient::connect(&product.url, &agent.token).await;
    ws.subscribe(json!({"id": "all", "queue": {}})).await;
    let first = agent.open("cust-1", "Evicted").await;
    agent.tag(&first, "printer").await;
    // A second ticket takes the cache's one place.
    let second = agent.open("cust-2", "Newer").await;
    let reads = |text: &str| metric(text, "helpdesk_realtime_summary_reads");
    let seen = updates(&mut ws, 3).await;
    assert_eq!(key(&seen[2]), (second, 1, "TicketOpened".into()));
    assert_eq!(reads(&product.metrics().await), 0);

    agent.priority(&first, "high").await;
    let pushed = ws.next_of("update").await;
    let summary = &pushed["ticket"];
    assert_eq!(
        (&summary["id"], &summary["version"], &summary["subject"]),
        (&json!(first), &json!(3), &json!("Evicted"))
    );
    assert_eq!(
        (&summary["tags"], &summary["priority"]),
        (&json!(["printer"]), &json!("high"))
    );
    assert_eq!(
        reads(&product.metrics().await),
        1,
        "the evicted ticket is read once"
    );

    agent.status(&first, "open").await;
    let pushed = ws.next_of("update").await;
    assert_eq!(
        (&pushed["ticket"]["version"], &pushed["ticket"]["status"]),
        (&json!(4), &json!("open"))
    );
    let text = product.metrics().await;
    assert_eq!(
        reads(&text),
        1,
        "the ticket read back is in the cache again"
    );
    assert!(text.contains("helpdesk_realtime_summary_read_seconds "));
    product.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_while_others_keep_receiving() {
    // The buffer is every connection's: small enough that the slow client overflows it within
    // the command loop's bound, large enough that the reading client, on a host busy with the
    // rest of the suite, is not descheduled for a whole buffer's worth of pushes (with 16 it
    // was, in about one run in three of this file, and was dropped too).
    let (product, _) = product_with(&[
        ("HELPDESK_REALTIME_BUFFER", "64"),
        ("HELPDESK_SOCKET_SEND_BUFFER", "16384"),
    ])
    .await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let metrics = || product.metrics();
    let mut slow = WsClient::connect_with_small_buffer(&product.url, &agent.token).await;
    slow.subscribe(json!({"id": "all", "queue": {}})).await;
    let mut fast = WsClient::connect(&product.url, &agent.token).await;
    fast.subscribe(json!({"id": "all", "queue": {}})).await;
    let reader = tokio::spawn(async move {
        let mut versions = Vec::new();
        loop {
            let message = fast.next().await;
            assert_ne!(
                message["type"], "resync",
                "the reading client is never dropped"
            );
            if message["type"] == "update" {
                let version = message["ticket"]["version"].as_u64().unwrap();
                versions.push(version);
                if message["event_type"] == "TicketStatusChanged" {
                    return versions;
                }
            }
        }
    });

    let subject = "A long subject that makes every pushed summary a little heavier ".repeat(3);
    let ticket = agent.open("cust-1", subject.trim()).await;
    let mut commands = 1;
    let priorities = ["high", "low"];
    while metric(&metrics().await, "helpdesk_realtime_dropped_connections") == 0 {
        assert!(commands < 3_000, "the slow client was never dropped");
        for _ in 0..25 {
            agent.priority(&ticket, priorities[commands % 2]).await;
            commands += 1;
        }
    }
    agent.status(&ticket, "open").await;
    commands += 1;
    let versions = reader.await.unwrap();
    assert_eq!(
        versions,
        (1..=commands as u64).collect::<Vec<_>>(),
        "the reading client got every update while the other was dropped"
    );
    let text = metrics().await;
    assert_eq!(metric(&text, "helpdesk_realtime_dropped_connections"), 1);
    assert!(metric(&text, "helpdesk_realtime_connections") <= 1);
    // What the silent client finds when it finally reads: a bounded backlog, then the end.
    let mut backlog = 0;
    while let Some(message) = slow.receive().await {
        backlog += 1;
        assert!(backlog < commands, "{message}");
    }
    product.stop().await;
}

#[tokio::test]
async fn two_instances_each_deliver_every_update_and_share_presence() {
    let (first, database) = product().await;
    let second = Product::start_beside(
        &first,
        &database,
        &[("HELPDESK_RELAY", "off"), ("HELPDESK_PROJECTORS", "off")],
    )
    .await;
    let agent = Caller::new(&first, "agent", "agent-7").await;
    let other_agent = Caller::new(&second, "agent", "agent-9").await;
    let ticket = agent.open("cust-1", "Shared").await;
    let mut on_first = WsClient::connect(&first.url, &agent.token).await;
    let mut on_second = WsClient::connect(&second.url, &other_agent.token).await;
    on_first
        .subscribe(json!({"id": "t", "ticket": ticket}))
        .await;
    on_second
        .subscribe(json!({"id": "t", "ticket": ticket}))
        .await;

    // Commands through either instance reach clients of both.
    agent.priority(&ticket, "high").await;
    other_agent
        .reply(&ticket, "Seen from the second", "public")
        .await;
    for client in [&mut on_first, &mut on_second] {
        let keys: Vec<_> = updates_after(client, 2, 1).await.iter().map(key).collect();
        assert_eq!(
            keys,
            [
                (ticket.clone(), 2, "TicketPriorityChanged".to_owned()),
                (ticket.clone(), 3, "ReplyAdded".to_owned()),
            ]
        );
    }

    // Presence announced on one instance shows on the other, and goes when the client does.
    on_first
        .send(json!({"type": "presence", "ticket": ticket, "state": "replying"}))
        .await;
    let viewers = loop {
        let message = on_second.next_of("presence").await;
        if message["viewers"] != json!([]) {
            break message["viewers"].clone();
        }
    };
    assert_eq!(viewers, json!([{"agent": "agent-7", "state": "replying"}]));
    on_first.close().await;
    let gone = on_second.next_of("presence").await;
    assert_eq!(gone["ticket"], ticket.as_str());
    assert_eq!(gone["viewers"], json!([]));
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_client_further_behind_than_the_replay_limit_is_told_to_resync_and_goes_live() {
    let (product, _) = product_with(&[("HELPDESK_REALTIME_REPLAY_LIMIT", "5")]).await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let ticket = agent.open("cust-1", "Busy ticket").await;
    let mut client = WsClient::connect(&product.url, &agent.token).await;
    client.subscribe(json!({"id": "t", "ticket": ticket})).await;
    agent.priority(&ticket, "high").await;
    let resume_at = updates_after(&mut client, 1, 1).await[0]["cursor"]
        .as_u64()
        .unwrap();
    // Stays connected, so we know when the instance's feed has passed the six commands.
    let mut watcher = client;
    for priority in ["low", "high", "low", "high", "low", "high"] {
        agent.priority(&ticket, priority).await;
    }
    assert_eq!(updates(&mut watcher, 6).await[5]["ticket"]["version"], 8);

    let mut client = WsClient::connect(&product.url, &agent.token).await;
    let (before, _) = client
        .subscribe(json!({"id": "t", "ticket": ticket, "since": resume_at}))
        .await;
    let kinds: Vec<&str> = before.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["resync"], "{before:?}");
    assert_eq!(before[0]["id"], "t");
    agent.status(&ticket, "open").await;
    let live = client.next_of("update").await;
    assert_eq!(live["event_type"], "TicketStatusChanged");
    assert_eq!(live["ticket"]["version"], 9);
    product.stop().await;
}

#[tokio::test]
async fn concurrent_writers_reach_a_subscriber_once_each_and_a_replay_repeats_the_same_order() {
    let (product, _) = product().await;
    let agent = std::sync::Arc::new(Caller::new(&product, "agent", "agent-7").await);
    let mut live = WsClient::connect(&product.url, &agent.token).await;
    let (_, start) = live.subscribe(json!({"id": "all", "queue": {}})).await;
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let agent = agent.clone();
            tokio::spawn(async move {
                let ticket = agent.open("cust-1", &format!("Writer {writer}")).await;
                for turn in 0..15 {
                    let priority = if turn % 2 == 0 { "high" } else { "low" };
                    agent.priority(&ticket, priority).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let pushed = updates(&mut live, 8 * 16).await;
    let keys: Vec<_> = pushed.iter().map(key).collect();
    let distinct: std::collections::BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(distinct.len(), keys.len(), "no update twice");
    let mut by_ticket: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (ticket, version, _) in &keys {
        by_ticket.entry(ticket.clone()).or_default().push(*version);
    }
    assert_eq!(by_ticket.len(), 8);
    for versions in by_ticket.values() {
        assert_eq!(
            *versions,
            (1..=16).collect::<Vec<u64>>(),
            "each ticket in order"
        );
    }
    let (replayed, _) = WsClient::connect(&product.url, &agent.token)
        .await
        .subscribe(json!({"id": "again", "queue": {}, "since": start}))
        .await;
    let cursors = |messages: &[Value]| -> Vec<(u64, (String, u64, String))> {
        messages
            .iter()
            .map(|m| (m["cursor"].as_u64().unwrap(), key(m)))
            .collect()
    };
    assert_eq!(
        cursors(&replayed),
        cursors(&pushed),
        "a replay is the live feed again"
    );
    product.stop().await;
}

/// A policy that measures every normal ticket around the clock, with targets far enough away
/// that nothing breaches during a test.
async fn given_an_sla_policy(product: &Product) {
    let manager = Caller::new(product, "manager", "manager-1").await;
    let policy = json!({"name": "Standard", "position": 10,
                        "targets": {"normal": {"first_reply": 30, "resolution": 240}},
                        "calendar": {"kind": "always"}});
    manager.send(Method::POST, "/sla-policies", policy).await;
}

/// What a feed message says, without the subscriptions it names: (cursor, type, event type,
/// the SLA event).
fn pushed(message: &Value) -> (u64, String, String, Value) {
    (
        message["cursor"].as_u64().unwrap(),
        message["type"].as_str().unwrap().to_owned(),
        message["event_type"].as_str().unwrap().to_owned(),
        message["sla"].clone(),
    )
}

/// The `update`, `left` and `sla` messages among `messages`.
fn pushes(messages: &[Value]) -> Vec<(u64, String, String, Value)> {
    messages
        .iter()
        .filter(|m| ["update", "left", "sla"].contains(&m["type"].as_str().unwrap()))
        .map(pushed)
        .collect()
}

#[tokio::test]
async fn sla_events_reach_staff_in_feed_order_live_and_on_resume_but_never_a_customer() {
    let (product, _) = product().await;
    given_an_sla_policy(&product).await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let alice = Caller::new(&product, "customer", "alice").await;
    let mut staff = WsClient::connect(&product.url, &agent.token).await;
    let (_, start) = staff.subscribe(json!({"id": "all", "queue": {}})).await;

    // Opening the ticket starts two measurements (first reply, resolution): two `sla` pushes
    // after the ticket's own update.
    let ticket = alice.open("alice", "Printer on fire").await;
    let mut activated = 0;
    let mut live = staff
        .read_until(|m| {
            activated += usize::from(m["event_type"] == "SlaMetricActivated");
            activated == 2
        })
        .await;
    // The customer follows their ticket from before it was opened.
    let mut customer = WsClient::connect(&product.url, &alice.token).await;
    let (mut seen_by_customer, _) = customer
        .subscribe(json!({"id": "mine", "ticket": ticket, "since": start}))
        .await;

    // The first public reply fulfils the first-reply measurement.
    agent.reply(&ticket, "We are on it.", "public").await;
    live.extend(
        staff
            .read_until(|m| m["event_type"] == "SlaMetricFulfilled")
            .await,
    );
    // A change the SLA does not react to: once it arrived, everything before it was routed.
    agent.tag(&ticket, "printers").await;
    live.extend(staff.read_until(|m| m["event_type"] == "TagsChanged").await);
    seen_by_customer.extend(
        customer
            .read_until(|m| m["event_type"] == "TagsChanged")
            .await,
    );

    let kinds: Vec<(String, String)> = pushes(&live)
        .into_iter()
        .map(|(_, kind, event_type, _)| (kind, event_type))
        .collect();
    let expected = [
        ("update", "TicketOpened"),
        ("sla", "SlaMetricActivated"),
        ("sla", "SlaMetricActivated"),
        ("update", "ReplyAdded"),
        ("sla", "SlaMetricFulfilled"),
        ("update", "TagsChanged"),
    ]
    .map(|(kind, event_type)| (kind.to_owned(), event_type.to_owned()));
    assert_eq!(kinds, expected, "{live:#?}");
    let cursors: Vec<u64> = live.iter().map(|m| m["cursor"].as_u64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert!(cursors[0] > start);
    let slas: Vec<&Value> = live.iter().filter(|m| m["type"] == "sla").collect();
    for sla in &slas {
        assert_eq!(sla["ticket_id"], ticket.as_str());
        assert_eq!(sla["subscriptions"], json!(["all"]));
        assert_eq!(sla["sla"]["activation"], 1);
    }
    let mut metrics: Vec<&str> = slas[..2]
        .iter()
        .map(|m| {
            assert_eq!(m["sla"]["type"], "activated");
            assert!(m["sla"]["due_at"].is_string(), "{m}");
            m["sla"]["metric"].as_str().unwrap()
        })
        .collect();
    metrics.sort_unstable();
    assert_eq!(metrics, ["first_reply", "resolution"]);
    assert_eq!(slas[2]["sla"]["type"], "fulfilled");
    assert_eq!(slas[2]["sla"]["metric"], "first_reply");

    // The customer had every update of their ticket, and not one SLA push.
    let kinds: Vec<(&str, &str)> = seen_by_customer
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap(),
                m["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("update", "TicketOpened"),
            ("update", "ReplyAdded"),
            ("update", "TagsChanged"),
        ]
    );

    // Resuming replays the SLA pushes in their place: a ticket subscription from before the
    // opening, and a queue from right after it.
    let mut again = WsClient::connect(&product.url, &agent.token).await;
    let (replayed, _) = again
        .subscribe(json!({"id": "t", "ticket": ticket, "since": start}))
        .await;
    assert_eq!(
        pushes(&replayed),
        pushes(&live),
        "a replay is the live feed again"
    );
    assert!(
        replayed
            .iter()
            .all(|m| m["type"] == "presence" || m["subscriptions"] == json!(["t"]))
    );
    let (replayed, _) = again
        .subscribe(json!({"id": "q", "queue": {"statuses": ["new"]}, "since": cursors[0]}))
        .await;
    assert_eq!(pushes(&replayed), pushes(&live)[1..]);

    // SSE: the same pushes, `sla` events with the cursor as their id.
    let (_, sse) = SseClient::open(
        &product.url,
        &agent.token,
        &format!("ticket={ticket}"),
        Some(start),
    )
    .await;
    let mut sse = sse.unwrap();
    let mut events = Vec::new();
    loop {
        let event = sse.next().await;
        if event.event == "subscribed" {
            break;
        }
        events.push(event);
    }
    assert_eq!(
        pushes(&events.iter().map(|e| e.data.clone()).collect::<Vec<_>>()),
        pushes(&live)
    );
    for event in &events {
        assert_eq!(event.event, event.data["type"].as_str().unwrap());
        assert_eq!(event.id, Some(event.data["cursor"].to_string()));
    }
    product.stop().await;
}

/// The ids of the tickets `caller` finds with `query`.
async fn found(caller: &Caller, query: &str) -> Vec<String> {
    let page: Value = caller
        .client
        .get(format!("{}/api/v1/tickets/search", caller.base))
        .bearer_auth(&caller.token)
        .query(&[("q", query)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {page}"))
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Searches until `query` finds `ticket` (or, with `present` false, no longer does), within
/// `PATIENCE`: the index follows the stream a moment after the push.
async fn until_found(caller: &Caller, query: &str, ticket: &str, present: bool) {
    let deadline = tokio::time::Instant::now() + helpdesk_tests::realtime::PATIENCE;
    while found(caller, query).await.iter().any(|id| id == ticket) != present {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{query} should {}find {ticket}",
            if present { "" } else { "no longer " }
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_missed_first_reply_is_pushed_to_staff_and_searchable_seconds_after_its_due_time() {
    // Given a one-minute first reply target around the clock (the smallest a policy allows;
    // the test waits that minute on the real clock), and an agent following every ticket
    let (product, _) = product().await;
    let manager = Caller::new(&product, "manager", "manager-1").await;
    let policy = json!({"name": "Fast", "position": 1,
                        "targets": {"normal": {"first_reply": 1}},
                        "calendar": {"kind": "always"}});
    manager.send(Method::POST, "/sla-policies", policy).await;
    let agent = Caller::new(&product, "agent", "agent-7").await;
    let mut staff = WsClient::connect(&product.url, &agent.token).await;
    staff.subscribe(json!({"id": "all", "queue": {}})).await;

    // When a ticket is opened and nobody answers it
    let ticket = agent.open("alice", "Nobody answers").await;
    let activated = staff
        .read_until(|m| m["event_type"] == "SlaMetricActivated")
        .await;
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(activated.last().unwrap()["sla"]["due_at"].clone()).unwrap();
    until_found(&agent, "sla:active", &ticket, true).await;

    // Then the breach is pushed to the agent a few seconds after the due time at most
    let breach = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let message = staff.receive().await.expect("the connection stays open");
            if message["event_type"] == "SlaBreached" {
                return message;
            }
        }
    })
    .await
    .expect("a breach within two minutes");
    let late = chrono::Utc::now() - due;
    assert_eq!(breach["type"], "sla");
    assert_eq!(breach["ticket_id"], ticket.as_str());
    assert_eq!(breach["sla"]["metric"], "first_reply");
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(breach["sla"]["at"].clone()).unwrap();
    assert_eq!(at, due, "the breach is dated at the due time");
    // The watcher records it within 5 s (asserted exactly in `projections/tests/sla.rs`);
    // relay and feed add milliseconds on a quiet machine, a little more on a loaded one.
    assert!(
        late < chrono::TimeDelta::seconds(8),
        "pushed {late} after it was due"
    );

    // And search finds it as breached (and no longer as active)
    until_found(&agent, "sla:breached", &ticket, true).await;
    assert!(!found(&agent, "sla:active").await.contains(&ticket));

    // When the agent answers at last, it is no longer breached
    agent.reply(&ticket, "Sorry for the wait.", "public").await;
    staff
        .read_until(|m| m["event_type"] == "SlaMetricFulfilled")
        .await;
    until_found(&agent, "sla:breached", &ticket, false).await;
    assert!(found(&agent, "-sla:breached").await.contains(&ticket));
}
