//! Search benchmark: indexing 100,000 tickets, search latency (free text, filters only, facets
//! over everything), and the lag from a command's response to the ticket being searchable
//! under 500 commands/s. Each figure sits next to a raw baseline measured in the same run.
//!
//! Run: `cargo run --release -p helpdesk-tests --bin search-bench` (Postgres and NATS as for
//! the tests). Prints a Markdown table for `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool, not a service

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Duration as Span, TimeZone, Utc};
use helpdesk_command_api::AppState;
use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_domain::ticket::{Channel, Priority, Status};
use helpdesk_platform::auth::{Claims, Verifier, mint};
use helpdesk_projections::runtime::{self, RuntimeSettings};
use helpdesk_search::parse::parse;
use helpdesk_search::projection::{SearchProjection, SearchSettings};
use helpdesk_search::tantivy_backend::TantivyBackend;
use helpdesk_search::{ParseContext, Scope, SearchBackend, SearchRequest, Sort, TicketDocument};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;
use tantivy::schema::{FAST, STRING, Schema, TEXT};
use tantivy::{Index, TantivyDocument};

const TICKETS: usize = 100_000;
const RUNS: usize = 300;
const WORDS: [&str; 40] = [
    "refund",
    "invoice",
    "login",
    "password",
    "printer",
    "toner",
    "shipping",
    "delayed",
    "broken",
    "screen",
    "charge",
    "twice",
    "account",
    "locked",
    "upgrade",
    "plan",
    "cancel",
    "subscription",
    "email",
    "bounce",
    "export",
    "report",
    "slow",
    "error",
    "timeout",
    "api",
    "token",
    "expired",
    "mobile",
    "crash",
    "sync",
    "calendar",
    "invite",
    "billing",
    "address",
    "vat",
    "receipt",
    "discount",
    "coupon",
    "order",
];

/// A deterministic pseudo-random sequence (no extra crate, the same corpus every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.next(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn corpus() -> Vec<TicketDocument> {
    let mut random = Lcg(42);
    let base = Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap();
    let statuses = [
        Status::New,
        Status::Open,
        Status::Open,
        Status::Pending,
        Status::OnHold,
        Status::Solved,
        Status::Closed,
    ];
    let priorities = [
        Priority::Low,
        Priority::Normal,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];
    let channels = [
        Channel::Web,
        Channel::Email,
        Channel::Api,
        Channel::Chat,
        Channel::Phone,
    ];
    (0..TICKETS)
        .map(|i| {
            let created = base + Span::seconds(random.next(365 * 86_400) as i64);
            let updated = created + Span::seconds(random.next(30 * 86_400) as i64);
            let status = statuses[random.next(statuses.len())];
            TicketDocument {
                id: format!("00000000-0000-4000-8000-{i:012}"),
                subject: random.words(5),
                description: random.words(40),
                public_text: random.words(30),
                internal_text: random.words(10),
                status,
                priority: priorities[random.next(priorities.len())],
                channel: channels[random.next(channels.len())],
                requester_id: format!("cust-{}", random.next(20_000)),
                requester_name: Some(format!("Customer {}", random.next(20_000))),
                requester_email: Some(format!("c{}@example.com", random.next(20_000))),
                assignee: (random.next(4) > 0).then(|| format!("agent-{}", random.next(50))),
                group: Some(["billing", "tech", "sales", "returns"][random.next(4)].to_owned()),
                tags: (0..random.next(3))
                    .map(|_| format!("tag{}", random.next(30)))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                created_at: created,
                updated_at: updated,
                solved_at: matches!(status, Status::Solved | Status::Closed).then_some(updated),
                reply_count: 2,
                public_reply_count: 1,
                last_sequence: 3,
                last_position: i as i64 + 1,
                opened_position: i as i64 + 1,
                sla_sequence: 0,
                sla_clocks: Default::default(),
            }
        })
        .collect()
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn row(name: &str, ours: f64, raw: f64) {
    println!("| {name} | {ours:.2} | {raw:.2} | {:.2} |", ours / raw);
}

/// The same documents in a bare tantivy index: text fields and a status column, one commit.
fn raw_index(documents: &[TicketDocument]) -> (Index, f64) {
    let mut builder = Schema::builder();
    let subject = builder.add_text_field("subject", TEXT);
    let description = builder.add_text_field("description", TEXT);
    let public_text = builder.add_text_field("public_text", TEXT);
    let status = builder.add_text_field("status", STRING | FAST);
    let index = Index::create_in_ram(builder.build());
    let started = Instant::now();
    let mut writer = index.writer_with_num_threads(2, 100_000_000).unwrap();
    for document in documents {
        let mut doc = TantivyDocument::new();
        doc.add_text(subject, &document.subject);
        doc.add_text(description, &document.description);
        doc.add_text(public_text, &document.public_text);
        doc.add_text(
            status,
            helpdesk_search::document::wire_name(&document.status),
        );
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    (
        index,
        documents.len() as f64 / started.elapsed().as_secs_f64(),
    )
}

/// p50 and p99 (ms) of the raw index answering `text` with the 25 best by score and a count.
fn raw_latency(index: &Index, text: &str) -> (f64, f64) {
    let reader = index.reader().unwrap();
    let schema = index.schema();
    let fields = ["subject", "description", "public_text", "status"]
        .map(|name| schema.get_field(name).unwrap())
        .to_vec();
    let mut parser = QueryParser::for_index(index, fields);
    parser.set_conjunction_by_default();
    let query = parser.parse_query(text).unwrap();
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 20 {
        let searcher = reader.searcher();
        let started = Instant::now();
        let _ = searcher
            .search(&query, &(TopDocs::with_limit(25).order_by_score(), Count))
            .unwrap();
        if run >= 20 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// p50 and p99 (ms) of our backend answering `text`: 25 hits sorted by `-updated_at` with the
/// tie-breaker, documents loaded, the total and six facets.
async fn our_latency(backend: &TantivyBackend, text: &str) -> (f64, f64) {
    let context = ParseContext {
        me: "agent-1".into(),
        now: Utc::now(),
        include_internal: true,
    };
    let request = SearchRequest {
        query: parse(text, &context).unwrap(),
        scope: Scope::All,
        include_internal: true,
        sort: Sort::default(),
        after: None,
        limit: 25,
    };
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 20 {
        let started = Instant::now();
        let results = backend.search(&request).await.unwrap();
        assert!(results.total > 0, "{text:?} matches something");
        if run >= 20 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--lag-only") {
        let (lag50, lag99, commit50) = lag_at(500).await;
        println!("lag p50 {lag50:.1} ms, p99 {lag99:.1} ms, raw commit {commit50:.1} ms");
        return;
    }
    let documents = corpus();
    println!("| measurement | ours | raw baseline | ratio |");
    println!("|---|---|---|---|");

    // 1. Indexing 100,000 tickets: our backend in batches of 5,000 (each a versioned upsert
    //    and a commit) against one bulk load of the same documents into a bare index.
    let directory = tempfile::tempdir().unwrap();
    let backend = TantivyBackend::open(directory.path()).unwrap();
    let started = Instant::now();
    for chunk in documents.chunks(5_000) {
        backend.write(chunk.to_vec(), None).await.unwrap();
    }
    let ours = TICKETS as f64 / started.elapsed().as_secs_f64();
    let (raw, raw_rate) = raw_index(&documents);
    row("index 100,000 tickets (tickets/s)", ours, raw_rate);

    // 2. Latency over the 100,000: ours does sorting, facets and loads the hits.
    let cases = [
        (
            "free text `refund invoice`",
            "refund invoice",
            "refund invoice",
        ),
        (
            "filters only `status:open group:billing`",
            "status:open group:billing",
            "status:open",
        ),
        ("facets over all 100,000 (empty query)", "", "*"),
    ];
    for (label, ours_query, raw_query) in cases {
        let (p50, p99) = our_latency(&backend, ours_query).await;
        let (raw50, raw99) = if raw_query == "*" {
            raw_all_latency(&raw)
        } else {
            raw_latency(&raw, raw_query)
        };
        row(&format!("{label}, p50 (ms)"), p50, raw50);
        row(&format!("{label}, p99 (ms)"), p99, raw99);
    }

    // 3. Command → searchable under 500 commands/s.
    let (lag50, lag99, commit50) = lag_at(500).await;
    row(
        "command → searchable at 500 commands/s, p50 (ms)",
        lag50,
        commit50,
    );
    row(
        "command → searchable at 500 commands/s, p99 (ms)",
        lag99,
        commit50,
    );
}

/// The raw index counting and ranking every document (the empty query's baseline).
fn raw_all_latency(index: &Index) -> (f64, f64) {
    let reader = index.reader().unwrap();
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 20 {
        let searcher = reader.searcher();
        let started = Instant::now();
        let _ = searcher
            .search(
                &tantivy::query::AllQuery,
                &(TopDocs::with_limit(25).order_by_score(), Count),
            )
            .unwrap();
        if run >= 20 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

const SECRET: &[u8] = b"search-bench-secret-search-bench";

/// Opens tickets through the HTTP API at `rate` per second for 10 s with the relay and the
/// search projection running in this process; returns the p50 and p99 lag (ms) from each
/// response to its ticket being searchable, and the p50 of a raw tantivy commit + reload of
/// a small batch (the floor any near-real-time index pays per visibility step).
async fn lag_at(rate: u32) -> (f64, f64, f64) {
    let database =
        helpdesk_platform::db::create_scratch_database(&helpdesk_tests::postgres_server_url())
            .await
            .unwrap();
    let pool = helpdesk_platform::db::connect(&database, 30).await.unwrap();
    let nats = helpdesk_platform::nats::connect(&helpdesk_tests::nats_url())
        .await
        .unwrap();
    let prefix = helpdesk_tests::unique_prefix();
    let verifier = Verifier::with_hs256_secret(SECRET, &Default::default());
    let directory = tempfile::tempdir().unwrap();
    let backend: Arc<dyn SearchBackend> = Arc::new(TantivyBackend::open(directory.path()).unwrap());
    let projection =
        SearchProjection::new(pool.clone(), backend.clone(), SearchSettings::default());
    let state = AppState::new(
        pool.clone(),
        nats.clone(),
        Duration::from_secs(3600),
        Arc::new(verifier),
    )
    .with_search(projection.reader());
    let (router, _) = helpdesk_command_api::app(state.clone(), helpdesk_query_api::routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let relay = Relay::new(
        pool.clone(),
        nats.clone(),
        RelaySettings {
            prefix: prefix.clone(),
            poll_interval: Duration::from_millis(500),
            batch_size: 256,
        },
        state.relay_wakeup.clone(),
        state.metrics.clone(),
    );
    tokio::spawn(relay.run());
    let mut commits = projection.reader().commits;
    tokio::spawn(runtime::run(
        nats.clone(),
        Arc::new(projection),
        RuntimeSettings::new(prefix.clone()),
    ));

    // Tickets answered but not yet seen in the index, with the time of their response.
    let waiting: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let watcher = {
        let (waiting, lags, backend) = (waiting.clone(), lags.clone(), backend.clone());
        tokio::spawn(async move {
            while commits.changed().await.is_ok() {
                let now = Instant::now();
                let ids: Vec<String> = waiting.lock().unwrap().keys().cloned().collect();
                let found = backend.get(&ids).await.unwrap();
                let mut waiting = waiting.lock().unwrap();
                let mut lags = lags.lock().unwrap();
                for id in found.keys() {
                    if let Some(answered) = waiting.remove(id) {
                        lags.push(now.duration_since(answered).as_secs_f64() * 1000.0);
                    }
                }
            }
        })
    };
    let client = reqwest::Client::new();
    let token = mint(
        SECRET,
        &Claims {
            sub: "agent-1".into(),
            role: "agent".into(),
            groups: vec![],
            customer_id: None,
            exp: (Utc::now().timestamp() + 3600) as u64,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
        },
    )
    .unwrap();
    let total = rate * 10;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let (client, token, url, waiting) =
            (client.clone(), token.clone(), url.clone(), waiting.clone());
        sent.spawn(async move {
            let response = client
                .post(format!("{url}/api/v1/tickets"))
                .bearer_auth(token)
                .json(&serde_json::json!({
                    "subject": format!("bench ticket {i}"),
                    "description": "the printer is on fire again",
                    "channel": "web",
                    "requester": {"customer_id": "cust-1"},
                }))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            let id = body["id"].as_str().unwrap().to_owned();
            waiting.lock().unwrap().insert(id, Instant::now());
        });
    }
    while sent.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(30);
    while lags.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    let mut lags = lags.lock().unwrap().clone();
    assert_eq!(lags.len(), total as usize, "every ticket became searchable");
    let (p50, p99) = (percentile(&mut lags, 0.5), percentile(&mut lags, 0.99));

    // Raw floor: commit + reload of 20-document batches into a bare tantivy index.
    let (raw, _) = raw_index(&corpus()[..1_000]);
    let schema = raw.schema();
    let subject = schema.get_field("subject").unwrap();
    let mut writer: tantivy::IndexWriter = raw.writer_with_num_threads(1, 50_000_000).unwrap();
    let reader = raw
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()
        .unwrap();
    let mut commits = Vec::new();
    for round in 0..100 {
        for n in 0..20 {
            let mut doc = TantivyDocument::new();
            doc.add_text(subject, format!("round {round} doc {n}"));
            writer.add_document(doc).unwrap();
        }
        let started = Instant::now();
        writer.commit().unwrap();
        reader.reload().unwrap();
        commits.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (p50, p99, percentile(&mut commits, 0.5))
}
