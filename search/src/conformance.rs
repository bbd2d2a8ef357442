//! The search conformance suite: documents in, queries, and the exact answers (ids in order,
//! totals, facet counts) every backend must give. tantivy runs it in every test run;
//! Elasticsearch when `ELASTICSEARCH_URL` is set.
//!
//! [`run`] writes the corpus into an emptied backend and returns the failures (empty when the
//! backend conforms), so a test can show every difference at once.

use chrono::{DateTime, TimeZone, Utc};
use helpdesk_domain::sla::engine::SlaClocks;
use helpdesk_domain::sla::{PolicyRef, SlaEvent, SlaMetric};
use helpdesk_domain::ticket::{Channel, Priority, Status};

use crate::backend::SearchBackend;
use crate::document::TicketDocument;
use crate::parse::parse;
use crate::query::ParseContext;
use crate::request::{FacetCount, Scope, SearchRequest, Sort};

/// The caller `assignee:me` means in the scenarios.
pub const ME: &str = "agent-1";

/// "Now" for relative dates in the scenarios: 2026-06-01T00:00:00Z.
pub fn now() -> DateTime<Utc> {
    at("2026-06-01T00:00:00Z")
}

fn at(instant: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(instant)
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc.timestamp_opt(0, 0).single().unwrap_or_default())
}

/// The id of corpus ticket `n` (1-based).
pub fn ticket_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

struct Spec {
    subject: &'static str,
    description: &'static str,
    public_text: &'static str,
    internal_text: &'static str,
    status: Status,
    priority: Priority,
    channel: Channel,
    requester: (&'static str, Option<&'static str>, Option<&'static str>),
    assignee: Option<&'static str>,
    group: Option<&'static str>,
    tags: &'static [&'static str],
    created: &'static str,
    updated: &'static str,
    solved: Option<&'static str>,
}

fn specs() -> Vec<Spec> {
    use Channel::*;
    use Priority::*;
    use Status::*;
    let alice = ("cust-a", Some("Alice Archer"), Some("alice@example.com"));
    let bob = ("cust-b", Some("Bob Baker"), Some("bob@example.com"));
    vec![
        Spec {
            subject: "Refund for double charge",
            description: "I was charged twice for my subscription",
            public_text: "",
            internal_text: "",
            status: Open,
            priority: High,
            channel: Email,
            requester: alice,
            assignee: Some("agent-1"),
            group: Some("billing"),
            tags: &["refund", "vip"],
            created: "2026-01-10T10:00:00Z",
            updated: "2026-05-30T10:00:00Z",
            solved: None,
        },
        Spec {
            subject: "Login broken",
            description: "cannot log in since the update",
            public_text: "",
            internal_text: "",
            status: New,
            priority: Urgent,
            channel: Web,
            requester: bob,
            assignee: None,
            group: Some("tech"),
            tags: &["login"],
            created: "2026-02-01T10:00:00Z",
            updated: "2026-05-31T12:00:00Z",
            solved: None,
        },
        Spec {
            subject: "Invoice copy",
            description: "please send the invoice for March",
            public_text: "Here is your invoice copy",
            internal_text: "",
            status: Pending,
            priority: Normal,
            channel: Email,
            requester: alice,
            assignee: Some("agent-2"),
            group: Some("billing"),
            tags: &[],
            created: "2025-12-20T10:00:00Z",
            updated: "2026-03-01T10:00:00Z",
            solved: None,
        },
        Spec {
            subject: "Spam offer",
            description: "cheap watches",
            public_text: "",
            internal_text: "",
            status: Closed,
            priority: Low,
            channel: Email,
            requester: ("cust-c", None, None),
            assignee: None,
            group: None,
            tags: &["spam"],
            created: "2026-01-05T10:00:00Z",
            updated: "2026-01-06T10:00:00Z",
            solved: Some("2026-01-05T11:00:00Z"),
        },
        Spec {
            subject: "Password reset",
            description: "reset link expired",
            public_text: "a new link is on its way",
            internal_text: "customer is on the legacy plan",
            status: Solved,
            priority: Normal,
            channel: Chat,
            requester: bob,
            assignee: Some("agent-1"),
            group: Some("tech"),
            tags: &["login", "vip"],
            created: "2026-04-01T10:00:00Z",
            updated: "2026-04-02T10:00:00Z",
            solved: Some("2026-04-02T10:00:00Z"),
        },
        Spec {
            subject: "Refund request",
            description: "I want my money back",
            public_text: "",
            internal_text: "",
            status: OnHold,
            priority: High,
            channel: Phone,
            requester: ("cust-d", Some("Dana Dune"), None),
            assignee: Some("agent-1"),
            group: Some("billing"),
            tags: &["refund"],
            created: "2026-05-25T09:00:00Z",
            updated: "2026-05-25T10:00:00Z",
            solved: None,
        },
        Spec {
            subject: "Feature idea",
            description: "dark mode please",
            public_text: "",
            internal_text: "",
            status: Open,
            priority: Low,
            channel: Api,
            requester: ("cust-d", Some("Dana Dune"), None),
            assignee: None,
            group: None,
            tags: &[],
            created: "2026-05-20T10:00:00Z",
            updated: "2026-05-25T10:00:00Z",
            solved: None,
        },
        Spec {
            subject: "Double charge again",
            description: "charged twice once more",
            public_text: "",
            internal_text: "",
            status: New,
            priority: High,
            channel: Email,
            requester: ("cust-e", None, Some("Eve@Example.com")),
            assignee: None,
            group: Some("billing"),
            tags: &["vip"],
            created: "2026-05-31T09:00:00Z",
            updated: "2026-05-31T09:00:00Z",
            solved: None,
        },
    ]
}

/// The SLA events of corpus ticket `n`, in order. The states they leave: 1 and 3 `breached`
/// (3 beside a running clock of another metric), 2 and 7 `active`, 6 `paused`, 8 none (its
/// breach was fulfilled), the rest never had an SLA.
fn sla_events(n: usize) -> Vec<SlaEvent> {
    use SlaMetric::{FirstReply, NextReply, Resolution};
    let start = at("2026-05-01T09:00:00Z");
    let due = at("2026-05-01T10:00:00Z");
    let activated = |metric| SlaEvent::Activated {
        metric,
        activation: 1,
        policy: PolicyRef {
            id: "policy-1".into(),
            version: 1,
        },
        at: start,
        started_at: start,
        due_at: due,
        target_minutes: 60,
    };
    let breached = |metric| SlaEvent::Breached {
        metric,
        activation: 1,
        at: due,
    };
    match n {
        1 => vec![activated(FirstReply), breached(FirstReply)],
        2 => vec![activated(FirstReply)],
        3 => vec![
            activated(Resolution),
            activated(FirstReply),
            breached(FirstReply),
        ],
        6 => vec![
            activated(Resolution),
            SlaEvent::Paused {
                metric: Resolution,
                activation: 1,
                at: start,
            },
        ],
        7 => vec![activated(NextReply)],
        8 => vec![
            activated(FirstReply),
            breached(FirstReply),
            SlaEvent::Fulfilled {
                metric: FirstReply,
                activation: 1,
                at: due,
                business_minutes: 60,
            },
        ],
        _ => Vec::new(),
    }
}

/// Corpus ticket `n`'s SLA clocks and the number of SLA events behind them.
fn sla_of(n: usize) -> (SlaClocks, i64) {
    let events = sla_events(n);
    let mut clocks = SlaClocks::default();
    for event in &events {
        clocks.apply(event);
    }
    (clocks, events.len() as i64)
}

/// The corpus: eight tickets covering every field, a tie on `updated_at` (tickets 6 and 7),
/// internal-note text, unassigned and ungrouped tickets, and every SLA state.
pub fn corpus() -> Vec<TicketDocument> {
    specs()
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let n = index + 1;
            let (sla_clocks, sla_sequence) = sla_of(n);
            TicketDocument {
                id: ticket_id(n),
                subject: spec.subject.into(),
                description: spec.description.into(),
                public_text: spec.public_text.into(),
                internal_text: spec.internal_text.into(),
                status: spec.status,
                priority: spec.priority,
                channel: spec.channel,
                requester_id: spec.requester.0.into(),
                requester_name: spec.requester.1.map(Into::into),
                requester_email: spec.requester.2.map(str::to_lowercase),
                assignee: spec.assignee.map(Into::into),
                group: spec.group.map(Into::into),
                tags: spec.tags.iter().map(|t| t.to_string()).collect(),
                created_at: at(spec.created),
                updated_at: at(spec.updated),
                solved_at: spec.solved.map(at),
                reply_count: u64::from(!spec.public_text.is_empty())
                    + u64::from(!spec.internal_text.is_empty()),
                public_reply_count: u64::from(!spec.public_text.is_empty()),
                last_sequence: 5,
                last_position: 1000 + n as i64,
                opened_position: n as i64 * 10,
                sla_sequence,
                sla_clocks,
            }
        })
        .collect()
}

/// One query and its exact answer.
struct Case {
    query: &'static str,
    scope: Scope,
    include_internal: bool,
    sort: Sort,
    /// Corpus ticket numbers in the expected order.
    expected: Vec<usize>,
}

fn case(query: &'static str, expected: &[usize]) -> Case {
    Case {
        query,
        scope: Scope::All,
        include_internal: true,
        sort: Sort::default(),
        expected: expected.to_vec(),
    }
}

fn sorted(query: &'static str, sort: &str, expected: &[usize]) -> Case {
    Case {
        sort: Sort::parse(sort).unwrap_or_default(),
        ..case(query, expected)
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("", &[2, 8, 1, 6, 7, 5, 3, 4]),
        case("charged twice", &[8, 1]),
        case("CHARGED", &[8, 1]),
        case("\"double charge\"", &[8, 1]),
        case("\"charge double\"", &[]),
        case("invoice", &[3]),
        case("alice", &[1, 3]),
        case("status:open", &[1, 7]),
        case("status<solved", &[2, 8, 1, 6, 7, 3]),
        case("status>=solved", &[5, 4]),
        case("priority>normal", &[2, 8, 1, 6]),
        case("priority<low", &[]),
        case("assignee:me", &[1, 6, 5]),
        case("assignee:none", &[2, 8, 7, 4]),
        case("-assignee:none", &[1, 6, 5, 3]),
        case("group:billing", &[8, 1, 6, 3]),
        case("group:none", &[7, 4]),
        case("tags:vip", &[8, 1, 5]),
        case("-tags:spam", &[2, 8, 1, 6, 7, 5, 3]),
        case("tags:vip tags:login", &[5]),
        case("requester:alice@example.com", &[1, 3]),
        case("requester:EVE@example.com", &[8]),
        case("requester:cust-d", &[6, 7]),
        case("channel:email", &[8, 1, 3, 4]),
        case("created>2026-05-01", &[8, 6, 7]),
        case("created<2026-01-01", &[3]),
        case("created:2026-05-25", &[6]),
        case("updated<7d", &[2, 8, 1, 6, 7]),
        case("updated>7d", &[5, 3, 4]),
        case("solved>2026-03-01", &[5]),
        case("refund status:open", &[1]),
        case("refund -status:open", &[6]),
        case("-refund -spam", &[2, 8, 7, 5, 3]),
        case("legacy", &[5]),
        case("sla:breached", &[1, 3]),
        case("sla:active", &[2, 7]),
        case("sla:paused", &[6]),
        case("-sla:breached", &[2, 8, 6, 7, 5, 4]),
        case("sla:breached assignee:me", &[1]),
        case("sla:active -group:none", &[2]),
        sorted("sla:breached", "-created_at", &[1, 3]),
        Case {
            include_internal: false,
            ..case("legacy", &[])
        },
        Case {
            scope: Scope::Customer("cust-a".into()),
            ..case("", &[1, 3])
        },
        Case {
            scope: Scope::Customer("cust-a".into()),
            ..case("refund", &[1])
        },
        Case {
            scope: Scope::Groups(vec!["tech".into()]),
            ..case("", &[2, 7, 5, 4])
        },
        sorted("", "created_at", &[3, 4, 1, 2, 5, 7, 6, 8]),
        sorted("", "-created_at", &[8, 6, 7, 5, 2, 1, 4, 3]),
        sorted("", "updated_at", &[4, 3, 5, 6, 7, 1, 8, 2]),
        sorted("", "-priority", &[2, 1, 6, 8, 3, 5, 4, 7]),
        sorted("", "priority", &[4, 7, 3, 5, 1, 6, 8, 2]),
        sorted("", "status", &[2, 8, 1, 7, 3, 6, 5, 4]),
    ]
}

fn facet(pairs: &[(&str, u64)]) -> Vec<FacetCount> {
    pairs
        .iter()
        .map(|(value, count)| FacetCount {
            value: (*value).to_owned(),
            count: *count,
        })
        .collect()
}

/// Writes the corpus into `backend` (emptied first) and checks every scenario; returns a
/// description of each difference.
pub async fn run(backend: &dyn SearchBackend) -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(error) = backend.clear().await {
        return vec![format!("clear: {error}")];
    }
    let corpus = corpus();
    if let Err(error) = backend.write(corpus.clone(), Some(1008)).await {
        return vec![format!("write: {error}")];
    }
    check_reads(backend, &corpus, &mut failures).await;
    let context = ParseContext {
        me: ME.into(),
        now: now(),
        include_internal: true,
    };
    for case in cases() {
        let query = match parse(case.query, &context) {
            Ok(query) => query,
            Err(error) => {
                failures.push(format!("{:?}: does not parse: {error}", case.query));
                continue;
            }
        };
        let request = SearchRequest {
            query,
            scope: case.scope.clone(),
            include_internal: case.include_internal,
            sort: case.sort,
            after: None,
            limit: 100,
        };
        let label = format!(
            "{:?} (scope {:?}, internal {}, sort {})",
            case.query,
            case.scope,
            case.include_internal,
            case.sort.as_string()
        );
        match backend.search(&request).await {
            Ok(results) => {
                let got: Vec<String> = results.hits.iter().map(|h| h.id.clone()).collect();
                let expected: Vec<String> = case.expected.iter().map(|n| ticket_id(*n)).collect();
                if got != expected {
                    failures.push(format!("{label}: ids {got:?}, expected {expected:?}"));
                }
                if results.total != case.expected.len() as u64 {
                    failures.push(format!(
                        "{label}: total {}, expected {}",
                        results.total,
                        case.expected.len()
                    ));
                }
                if results.next.is_some() {
                    failures.push(format!("{label}: a next cursor on the only page"));
                }
            }
            Err(error) => failures.push(format!("{label}: {error}")),
        }
    }
    check_facets(backend, &context, &mut failures).await;
    check_paging(backend, &mut failures).await;
    check_versions(backend, &corpus, &mut failures).await;
    failures
}

async fn check_reads(
    backend: &dyn SearchBackend,
    corpus: &[TicketDocument],
    failures: &mut Vec<String>,
) {
    let ids = vec![ticket_id(1), ticket_id(5), ticket_id(99)];
    match backend.get(&ids).await {
        Ok(found) => {
            if found.len() != 2 {
                failures.push(format!("get: {} documents, expected 2", found.len()));
            }
            if found.get(&ticket_id(5)) != Some(&corpus[4]) {
                failures.push("get: ticket 5 does not read back as written".into());
            }
        }
        Err(error) => failures.push(format!("get: {error}")),
    }
}

async fn check_facets(
    backend: &dyn SearchBackend,
    context: &ParseContext,
    failures: &mut Vec<String>,
) {
    let expectations: Vec<(&str, &str, Vec<FacetCount>)> = vec![
        (
            "",
            "status",
            facet(&[
                ("new", 2),
                ("open", 2),
                ("closed", 1),
                ("on_hold", 1),
                ("pending", 1),
                ("solved", 1),
            ]),
        ),
        (
            "",
            "priority",
            facet(&[("high", 3), ("low", 2), ("normal", 2), ("urgent", 1)]),
        ),
        (
            "",
            "assignee",
            facet(&[("none", 4), ("agent-1", 3), ("agent-2", 1)]),
        ),
        (
            "",
            "group",
            facet(&[("billing", 4), ("none", 2), ("tech", 2)]),
        ),
        (
            "",
            "tags",
            facet(&[("vip", 3), ("login", 2), ("refund", 2), ("spam", 1)]),
        ),
        (
            "",
            "channel",
            facet(&[
                ("email", 4),
                ("api", 1),
                ("chat", 1),
                ("phone", 1),
                ("web", 1),
            ]),
        ),
        (
            "status<solved",
            "tags",
            facet(&[("refund", 2), ("vip", 2), ("login", 1)]),
        ),
        (
            "charged twice",
            "assignee",
            facet(&[("agent-1", 1), ("none", 1)]),
        ),
    ];
    for (text, name, expected) in expectations {
        let Ok(query) = parse(text, context) else {
            failures.push(format!("{text:?}: does not parse"));
            continue;
        };
        let request = SearchRequest {
            query,
            scope: Scope::All,
            include_internal: true,
            sort: Sort::default(),
            after: None,
            // Facets count every match, not just the page.
            limit: 1,
        };
        match backend.search(&request).await {
            Ok(results) => {
                let got = results.facets.get(name).cloned().unwrap_or_default();
                if got != expected {
                    failures.push(format!(
                        "facet {name} of {text:?}: {got:?}, expected {expected:?}"
                    ));
                }
            }
            Err(error) => failures.push(format!("facets of {text:?}: {error}")),
        }
    }
}

async fn check_paging(backend: &dyn SearchBackend, failures: &mut Vec<String>) {
    for sort in ["-updated_at", "priority", "-status"] {
        let sort = Sort::parse(sort).unwrap_or_default();
        let mut seen = Vec::new();
        let mut after = None;
        for _page in 0..10 {
            let request = SearchRequest {
                query: Default::default(),
                scope: Scope::All,
                include_internal: true,
                sort,
                after,
                limit: 3,
            };
            match backend.search(&request).await {
                Ok(results) => {
                    seen.extend(results.hits.iter().map(|h| h.id.clone()));
                    match results.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                Err(error) => {
                    failures.push(format!("paging by {}: {error}", sort.as_string()));
                    return;
                }
            }
        }
        let all = SearchRequest {
            query: Default::default(),
            scope: Scope::All,
            include_internal: true,
            sort,
            after: None,
            limit: 100,
        };
        match backend.search(&all).await {
            Ok(results) => {
                let expected: Vec<String> = results.hits.iter().map(|h| h.id.clone()).collect();
                if seen != expected {
                    failures.push(format!(
                        "paging by {} in threes: {seen:?}, one page: {expected:?}",
                        sort.as_string()
                    ));
                }
            }
            Err(error) => failures.push(format!("paging by {}: {error}", sort.as_string())),
        }
    }
}

async fn check_versions(
    backend: &dyn SearchBackend,
    corpus: &[TicketDocument],
    failures: &mut Vec<String>,
) {
    // An older version never replaces a newer one; a newer one does.
    let mut stale = corpus[0].clone();
    stale.last_sequence = 4;
    stale.subject = "stale subject".into();
    let mut newer = corpus[1].clone();
    newer.last_sequence = 6;
    newer.status = Status::Open;
    // SLA events count too: the same ticket version with fewer SLA events is older, with
    // more it is newer (and searchable in its new SLA state).
    let mut stale_sla = corpus[2].clone();
    stale_sla.sla_sequence -= 1;
    stale_sla.subject = "stale subject".into();
    let mut newer_sla = corpus[7].clone();
    newer_sla.sla_clocks = corpus[0].sla_clocks.clone();
    newer_sla.sla_sequence += 1;
    let batch = vec![stale, newer.clone(), stale_sla, newer_sla.clone()];
    if let Err(error) = backend.write(batch, None).await {
        failures.push(format!("versioned write: {error}"));
        return;
    }
    let ids = [1, 2, 3, 8].map(ticket_id);
    match backend.get(&ids).await {
        Ok(found) => {
            if found.get(&ticket_id(1)) != Some(&corpus[0]) {
                failures.push("an older version replaced a newer one".into());
            }
            if found.get(&ticket_id(2)) != Some(&newer) {
                failures.push("a newer version was not stored".into());
            }
            if found.get(&ticket_id(3)) != Some(&corpus[2]) {
                failures.push("fewer SLA events replaced more".into());
            }
            if found.get(&ticket_id(8)) != Some(&newer_sla) {
                failures.push("a newer SLA state was not stored".into());
            }
        }
        Err(error) => failures.push(format!("get after versioned write: {error}")),
    }
    let request = SearchRequest {
        query: match parse(
            "sla:breached",
            &ParseContext {
                me: ME.into(),
                now: now(),
                include_internal: true,
            },
        ) {
            Ok(query) => query,
            Err(error) => {
                failures.push(format!("sla:breached does not parse: {error}"));
                return;
            }
        },
        scope: Scope::All,
        include_internal: true,
        sort: Sort::default(),
        after: None,
        limit: 100,
    };
    match backend.search(&request).await {
        Ok(results) => {
            let got: Vec<String> = results.hits.iter().map(|h| h.id.clone()).collect();
            let expected = vec![ticket_id(8), ticket_id(1), ticket_id(3)];
            if got != expected {
                failures.push(format!(
                    "sla:breached after a newer SLA state: {got:?}, expected {expected:?}"
                ));
            }
        }
        Err(error) => failures.push(format!("sla:breached after versioned write: {error}")),
    }
}
