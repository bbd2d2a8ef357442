//! Searching: a [`SearchRequest`] as an Elasticsearch query body, and the response back as
//! [`SearchResults`].
//!
//! Pure: request bodies and response parsers, no HTTP.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::backend::BackendError;
use crate::document::{TicketDocument, wire_name};
use crate::query::{Condition, TimeRange};
use crate::request::{
    FACET_SIZE, FACETS, FacetCount, NONE_BUCKET, Scope, SearchRequest, SearchResults, order_buckets,
};

use super::error_reason;

/// Text fields free text searches, besides internal notes.
const PUBLIC_TEXT_FIELDS: [&str; 5] = [
    "subject",
    "description",
    "public_text",
    "requester_name",
    "requester_email.text",
];
/// Staff-only text.
const INTERNAL_TEXT_FIELD: &str = "internal_text";
/// The sort tie-breaker: unique per ticket and never changing.
const TIE_FIELD: &str = "opened_position";
/// Facets counting documents without a value as [`NONE_BUCKET`].
const FACETS_WITH_NONE: [&str; 2] = ["assignee", "group"];

/// The `_search` body for `request`.
///
/// One hit more than the page is asked for, so [`parse_search`] can tell whether a next page
/// exists without a second request.
pub(crate) fn search_body(request: &SearchRequest) -> Value {
    let mut must = Vec::new();
    let mut must_not = Vec::new();
    for clause in &request.query.clauses {
        let (query, holds_when_matching) =
            condition_query(&clause.condition, request.include_internal);
        if holds_when_matching != clause.negated {
            must.push(query);
        } else {
            must_not.push(query);
        }
    }
    let mut body = json!({
        "query": {
            "bool": {
                "filter": scope_filter(&request.scope),
                "must": must,
                "must_not": must_not,
            }
        },
        "sort": [
            { request.sort.key_field(): { "order": if request.sort.descending { "desc" } else { "asc" } } },
            { TIE_FIELD: { "order": "asc" } },
        ],
        "size": request.limit + 1,
        "track_total_hits": true,
        "aggs": facet_aggregations(),
    });
    if let (Some(after), Some(fields)) = (request.after, body.as_object_mut()) {
        fields.insert("search_after".into(), json!([after.key, after.tie]));
    }
    body
}

/// What the caller may see, as filter clauses.
fn scope_filter(scope: &Scope) -> Vec<Value> {
    match scope {
        Scope::All => Vec::new(),
        Scope::Customer(id) => vec![json!({ "term": { "requester_id": id } })],
        Scope::Groups(groups) => vec![json!({
            "bool": {
                "should": [
                    { "terms": { "group": groups } },
                    { "bool": { "must_not": [{ "exists": { "field": "group" } }] } },
                ],
                "minimum_should_match": 1,
            }
        })],
    }
}

/// The query for one condition, and whether the condition holds when that query matches
/// (`true`) or when it does not (`false`, for "has no assignee" as "not: has an assignee").
fn condition_query(condition: &Condition, include_internal: bool) -> (Value, bool) {
    let fields = || {
        let mut fields = PUBLIC_TEXT_FIELDS.to_vec();
        if include_internal {
            fields.push(INTERNAL_TEXT_FIELD);
        }
        fields
    };
    let query = match condition {
        // Every analysed token must occur, each in any of the fields, like one big field.
        Condition::Word(word) => json!({
            "multi_match": {
                "query": word,
                "fields": fields(),
                "type": "cross_fields",
                "operator": "and",
            }
        }),
        Condition::Phrase(phrase) => json!({
            "multi_match": { "query": phrase, "fields": fields(), "type": "phrase" }
        }),
        Condition::Status(statuses) => any_of("status", statuses.iter().map(wire_name).collect()),
        Condition::Priority(priorities) => {
            any_of("priority", priorities.iter().map(wire_name).collect())
        }
        Condition::Assignee(Some(assignee)) => term("assignee", assignee),
        Condition::Assignee(None) => return (exists("assignee"), false),
        Condition::Group(Some(group)) => term("group", group),
        Condition::Group(None) => return (exists("group"), false),
        Condition::Tag(tag) => term("tags", tag),
        Condition::RequesterId(id) => term("requester_id", id),
        Condition::RequesterEmail(email) => term("requester_email", &email.to_lowercase()),
        Condition::Channel(channel) => term("channel", &wire_name(channel)),
        Condition::Created(range) => time_range("created_us", *range),
        Condition::Updated(range) => time_range("updated_us", *range),
        Condition::Solved(range) => time_range("solved_us", *range),
        Condition::Sla(state) => term("sla", &wire_name(state)),
    };
    (query, true)
}

fn term(field: &str, value: &str) -> Value {
    json!({ "term": { field: value } })
}

fn exists(field: &str) -> Value {
    json!({ "exists": { "field": field } })
}

/// The field holds one of `values`; no values matches nothing.
fn any_of(field: &str, values: Vec<String>) -> Value {
    if values.is_empty() {
        json!({ "match_none": {} })
    } else {
        json!({ "terms": { field: values } })
    }
}

/// `[from, until)` over a microsecond field. Without either bound it still requires a value
/// (`solved` with no bounds: solved at some point and not reopened since).
fn time_range(field: &str, range: TimeRange) -> Value {
    let mut bounds = Map::new();
    if let Some(from) = range.from {
        bounds.insert("gte".into(), from.timestamp_micros().into());
    }
    if let Some(until) = range.until {
        bounds.insert("lt".into(), until.timestamp_micros().into());
    }
    if bounds.is_empty() {
        exists(field)
    } else {
        json!({ "range": { field: bounds } })
    }
}

/// One `terms` aggregation per facet.
fn facet_aggregations() -> Value {
    let mut aggs = Map::new();
    for facet in FACETS {
        let mut terms = Map::new();
        terms.insert("field".into(), facet.into());
        terms.insert("size".into(), FACET_SIZE.into());
        if FACETS_WITH_NONE.contains(&facet) {
            terms.insert("missing".into(), NONE_BUCKET.into());
        }
        aggs.insert(facet.to_owned(), json!({ "terms": terms }));
    }
    Value::Object(aggs)
}

/// Reads a `_search` response for `request` (which built the body with [`search_body`]).
///
/// Partial results (a timeout or failed shards) are [`BackendError::Unavailable`] rather than
/// a page with a wrong total.
pub(crate) fn parse_search(
    response: &Value,
    request: &SearchRequest,
) -> Result<SearchResults, BackendError> {
    let unexpected = || BackendError::Rejected(format!("unexpected search response: {response}"));
    if response.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(BackendError::Unavailable("the search timed out".into()));
    }
    let shards = response.get("_shards");
    let failed = shards
        .and_then(|s| s.get("failed"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 {
        let reason = shards
            .and_then(|s| s.get("failures"))
            .and_then(|f| f.get(0))
            .and_then(|f| f.get("reason"))
            .map_or_else(|| "no reason given".to_owned(), error_reason);
        return Err(BackendError::Unavailable(format!(
            "the search failed on {failed} shard(s): {reason}"
        )));
    }
    let hits = response.get("hits").ok_or_else(unexpected)?;
    let total = match hits.get("total") {
        Some(total) => total
            .get("value")
            .and_then(Value::as_u64)
            .or_else(|| total.as_u64())
            .ok_or_else(unexpected)?,
        None => return Err(unexpected()),
    };
    let mut documents = Vec::new();
    for hit in hits
        .get("hits")
        .and_then(Value::as_array)
        .ok_or_else(unexpected)?
    {
        let source = hit.get("_source").cloned().unwrap_or(Value::Null);
        let document: TicketDocument = serde_json::from_value(source).map_err(|e| {
            let id = hit.get("_id").and_then(Value::as_str).unwrap_or("?");
            BackendError::Rejected(format!("stored document {id} does not parse: {e}"))
        })?;
        documents.push(document);
    }
    let next = if documents.len() > request.limit {
        documents.truncate(request.limit);
        documents.last().map(|last| request.sort.cursor_after(last))
    } else {
        None
    };
    let aggregations = response.get("aggregations");
    let mut facets = HashMap::with_capacity(FACETS.len());
    for facet in FACETS {
        let buckets = aggregations
            .and_then(|a| a.get(facet))
            .and_then(|a| a.get("buckets"))
            .and_then(Value::as_array)
            .map(|buckets| buckets.iter().filter_map(facet_count).collect())
            .unwrap_or_default();
        facets.insert(facet.to_owned(), order_buckets(buckets));
    }
    Ok(SearchResults {
        hits: documents,
        total,
        facets,
        next,
    })
}

fn facet_count(bucket: &Value) -> Option<FacetCount> {
    let value = match bucket.get("key")? {
        Value::String(key) => key.clone(),
        other => other.to_string(),
    };
    let count = bucket.get("doc_count")?.as_u64()?;
    Some(FacetCount { value, count })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use helpdesk_domain::ticket::{Channel, Priority, Status};

    use super::super::documents::indexed_source;
    use super::super::fixtures::sample_document;
    use super::*;
    use crate::query::{Clause, Query};
    use crate::request::{Cursor, Sort, SortField};

    fn request(clauses: Vec<Clause>) -> SearchRequest {
        SearchRequest {
            query: Query { clauses },
            scope: Scope::All,
            include_internal: false,
            sort: Sort::default(),
            after: None,
            limit: 25,
        }
    }

    fn when(condition: Condition) -> Clause {
        Clause {
            negated: false,
            condition,
        }
    }

    fn not(condition: Condition) -> Clause {
        Clause {
            negated: true,
            condition,
        }
    }

    /// The body's `must` and `must_not` for one clause.
    fn translated(clause: Clause) -> (Vec<Value>, Vec<Value>) {
        let body = search_body(&request(vec![clause]));
        let bool_query = &body["query"]["bool"];
        (
            bool_query["must"].as_array().unwrap().clone(),
            bool_query["must_not"].as_array().unwrap().clone(),
        )
    }

    fn must(clause: Clause) -> Value {
        let (must, must_not) = translated(clause);
        assert!(must_not.is_empty(), "{must_not:?}");
        assert_eq!(must.len(), 1, "{must:?}");
        must[0].clone()
    }

    fn must_not(clause: Clause) -> Value {
        let (must, must_not) = translated(clause);
        assert!(must.is_empty(), "{must:?}");
        assert_eq!(must_not.len(), 1, "{must_not:?}");
        must_not[0].clone()
    }

    #[test]
    fn an_empty_query_matches_everything_in_default_order() {
        let body = search_body(&request(Vec::new()));
        assert_eq!(
            body["query"],
            json!({ "bool": { "filter": [], "must": [], "must_not": [] } })
        );
        assert_eq!(
            body["sort"],
            json!([{ "updated_us": { "order": "desc" } }, { "opened_position": { "order": "asc" } }])
        );
        assert_eq!(body["size"], 26);
        assert_eq!(body["track_total_hits"], true);
        assert!(body.get("search_after").is_none());
    }

    #[test]
    fn words_and_phrases_search_the_public_text_fields() {
        let public = json!([
            "subject",
            "description",
            "public_text",
            "requester_name",
            "requester_email.text"
        ]);
        assert_eq!(
            must(when(Condition::Word("refund".into()))),
            json!({ "multi_match": {
                "query": "refund", "fields": public, "type": "cross_fields", "operator": "and"
            }})
        );
        assert_eq!(
            must(when(Condition::Phrase("card declined".into()))),
            json!({ "multi_match": { "query": "card declined", "fields": public, "type": "phrase" } })
        );
        assert_eq!(
            must_not(not(Condition::Word("spam".into())))["multi_match"]["query"],
            "spam"
        );
    }

    #[test]
    fn internal_text_is_searched_only_when_allowed() {
        let mut staff = request(vec![when(Condition::Word("escalate".into()))]);
        staff.include_internal = true;
        let fields = &search_body(&staff)["query"]["bool"]["must"][0]["multi_match"]["fields"];
        assert!(fields.as_array().unwrap().contains(&json!("internal_text")));
        assert_eq!(fields.as_array().unwrap().len(), 6);
        let mut phrase = request(vec![when(Condition::Phrase("call back".into()))]);
        phrase.include_internal = true;
        let fields = &search_body(&phrase)["query"]["bool"]["must"][0]["multi_match"]["fields"];
        assert!(fields.as_array().unwrap().contains(&json!("internal_text")));

        let customer = request(vec![when(Condition::Word("escalate".into()))]);
        let body = search_body(&customer).to_string();
        assert!(!body.contains("internal_text"), "{body}");
    }

    #[test]
    fn vocabulary_conditions_use_wire_names() {
        assert_eq!(
            must(when(Condition::Status(vec![Status::New, Status::OnHold]))),
            json!({ "terms": { "status": ["new", "on_hold"] } })
        );
        assert_eq!(
            must(when(Condition::Priority(vec![Priority::Urgent]))),
            json!({ "terms": { "priority": ["urgent"] } })
        );
        assert_eq!(
            must(when(Condition::Channel(Channel::Email))),
            json!({ "term": { "channel": "email" } })
        );
        // Nothing to match: a query that matches nothing (and, negated, everything).
        assert_eq!(
            must(when(Condition::Status(Vec::new()))),
            json!({ "match_none": {} })
        );
        assert_eq!(
            must_not(not(Condition::Priority(Vec::new()))),
            json!({ "match_none": {} })
        );
        assert_eq!(
            must_not(not(Condition::Status(vec![Status::Closed]))),
            json!({ "terms": { "status": ["closed"] } })
        );
    }

    #[test]
    fn keyword_conditions_are_terms() {
        assert_eq!(
            must(when(Condition::Assignee(Some("agent-7".into())))),
            json!({ "term": { "assignee": "agent-7" } })
        );
        assert_eq!(
            must(when(Condition::Group(Some("billing".into())))),
            json!({ "term": { "group": "billing" } })
        );
        assert_eq!(
            must(when(Condition::Tag("vip".into()))),
            json!({ "term": { "tags": "vip" } })
        );
        assert_eq!(
            must_not(not(Condition::Tag("spam".into()))),
            json!({ "term": { "tags": "spam" } })
        );
        assert_eq!(
            must(when(Condition::RequesterId("cust-1".into()))),
            json!({ "term": { "requester_id": "cust-1" } })
        );
        assert_eq!(
            must(when(Condition::RequesterEmail("Ann@Example.com".into()))),
            json!({ "term": { "requester_email": "ann@example.com" } })
        );
    }

    #[test]
    fn missing_assignee_or_group_is_a_negated_exists() {
        assert_eq!(
            must_not(when(Condition::Assignee(None))),
            json!({ "exists": { "field": "assignee" } })
        );
        assert_eq!(
            must(not(Condition::Assignee(None))),
            json!({ "exists": { "field": "assignee" } })
        );
        assert_eq!(
            must_not(when(Condition::Group(None))),
            json!({ "exists": { "field": "group" } })
        );
        assert_eq!(
            must(not(Condition::Group(None))),
            json!({ "exists": { "field": "group" } })
        );
    }

    #[test]
    fn sla_states_are_terms_on_the_derived_keyword() {
        use crate::sla::SlaState;
        for (state, name) in [
            (SlaState::Breached, "breached"),
            (SlaState::Active, "active"),
            (SlaState::Paused, "paused"),
        ] {
            assert_eq!(
                must(when(Condition::Sla(state))),
                json!({ "term": { "sla": name } })
            );
        }
        // Negated: tickets in another state and tickets without an open SLA activation.
        assert_eq!(
            must_not(not(Condition::Sla(SlaState::Breached))),
            json!({ "term": { "sla": "breached" } })
        );
    }

    #[test]
    fn time_ranges_are_half_open_in_microseconds() {
        let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2024, 3, 8, 0, 0, 0).unwrap();
        assert_eq!(
            must(when(Condition::Created(TimeRange {
                from: Some(from),
                until: Some(until)
            }))),
            json!({ "range": { "created_us": {
                "gte": from.timestamp_micros(), "lt": until.timestamp_micros()
            }}})
        );
        assert_eq!(
            must(when(Condition::Updated(TimeRange {
                from: Some(from),
                until: None
            }))),
            json!({ "range": { "updated_us": { "gte": 1_709_251_200_000_000_i64 } } })
        );
        assert_eq!(
            must_not(not(Condition::Solved(TimeRange {
                from: None,
                until: Some(until)
            }))),
            json!({ "range": { "solved_us": { "lt": until.timestamp_micros() } } })
        );
        assert_eq!(
            must(when(Condition::Solved(TimeRange::default()))),
            json!({ "exists": { "field": "solved_us" } })
        );
    }

    #[test]
    fn clauses_combine() {
        let body = search_body(&request(vec![
            when(Condition::Word("refund".into())),
            not(Condition::Tag("spam".into())),
            when(Condition::Assignee(None)),
            when(Condition::Status(vec![Status::Open])),
        ]));
        let bool_query = &body["query"]["bool"];
        assert_eq!(bool_query["must"].as_array().unwrap().len(), 2);
        assert_eq!(
            bool_query["must_not"],
            json!([{ "term": { "tags": "spam" } }, { "exists": { "field": "assignee" } }])
        );
    }

    #[test]
    fn scopes_become_filters() {
        let mut customer = request(vec![when(Condition::Word("x".into()))]);
        customer.scope = Scope::Customer("cust-9".into());
        assert_eq!(
            search_body(&customer)["query"]["bool"]["filter"],
            json!([{ "term": { "requester_id": "cust-9" } }])
        );
        let mut groups = request(Vec::new());
        groups.scope = Scope::Groups(vec!["billing".into(), "tier-2".into()]);
        assert_eq!(
            search_body(&groups)["query"]["bool"]["filter"],
            json!([{ "bool": {
                "should": [
                    { "terms": { "group": ["billing", "tier-2"] } },
                    { "bool": { "must_not": [{ "exists": { "field": "group" } }] } }
                ],
                "minimum_should_match": 1
            }}])
        );
        assert_eq!(
            search_body(&request(Vec::new()))["query"]["bool"]["filter"],
            json!([])
        );
    }

    #[test]
    fn sort_and_cursor() {
        let mut page = request(Vec::new());
        page.sort = Sort {
            field: SortField::Priority,
            descending: false,
        };
        page.after = Some(Cursor { key: 2, tie: 1234 });
        page.limit = 10;
        let body = search_body(&page);
        assert_eq!(
            body["sort"],
            json!([{ "priority_rank": { "order": "asc" } }, { "opened_position": { "order": "asc" } }])
        );
        assert_eq!(body["search_after"], json!([2, 1234]));
        assert_eq!(body["size"], 11);
        for (field, key) in [
            (SortField::CreatedAt, "created_us"),
            (SortField::Status, "status_rank"),
            (SortField::UpdatedAt, "updated_us"),
        ] {
            page.sort = Sort {
                field,
                descending: true,
            };
            let body = search_body(&page);
            assert_eq!(body["sort"][0][key]["order"], "desc");
        }
    }

    #[test]
    fn facets_are_terms_aggregations() {
        let aggs = &search_body(&request(Vec::new()))["aggs"];
        assert_eq!(aggs.as_object().unwrap().len(), FACETS.len());
        assert_eq!(
            aggs["status"],
            json!({ "terms": { "field": "status", "size": FACET_SIZE } })
        );
        assert_eq!(
            aggs["assignee"],
            json!({ "terms": { "field": "assignee", "size": FACET_SIZE, "missing": "none" } })
        );
        assert_eq!(aggs["group"]["terms"]["missing"], "none");
        for facet in ["tags", "channel", "priority"] {
            assert!(aggs[facet]["terms"].get("missing").is_none());
        }
    }

    fn hit(document: &TicketDocument, sort: &Sort) -> Value {
        json!({
            "_index": "hd_tickets_v1",
            "_id": document.id,
            "_score": null,
            "_source": indexed_source(document).unwrap(),
            "sort": [sort.key_of(document), document.opened_position],
        })
    }

    fn response(hits: Vec<Value>, total: u64) -> Value {
        json!({
            "took": 4,
            "timed_out": false,
            "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
            "hits": {
                "total": { "value": total, "relation": "eq" },
                "max_score": null,
                "hits": hits,
            },
            "aggregations": {
                "status": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{ "key": "open", "doc_count": 2 }, { "key": "new", "doc_count": 5 }] },
                "priority": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{ "key": "high", "doc_count": 7 }] },
                "assignee": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{ "key": "agent-1", "doc_count": 3 }, { "key": "none", "doc_count": 3 }, { "key": "agent-2", "doc_count": 1 }] },
                "group": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{ "key": "none", "doc_count": 7 }] },
                "tags": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [] },
                "channel": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{ "key": "web", "doc_count": 7 }] }
            }
        })
    }

    fn documents(count: i64) -> Vec<TicketDocument> {
        (0..count)
            .map(|n| {
                let mut document = sample_document(&format!("t-{n}"));
                document.opened_position = 100 + n;
                document
            })
            .collect()
    }

    #[test]
    fn a_full_extra_hit_means_a_next_page() {
        let mut page = request(Vec::new());
        page.limit = 2;
        let all = documents(3);
        let hits = all.iter().map(|d| hit(d, &page.sort)).collect();
        let results = parse_search(&response(hits, 7), &page).unwrap();
        assert_eq!(results.total, 7);
        assert_eq!(results.hits, all[..2].to_vec());
        assert_eq!(results.next, Some(page.sort.cursor_after(&all[1])));
        assert_eq!(results.next.unwrap().tie, 101);
    }

    #[test]
    fn the_last_page_has_no_next() {
        let mut page = request(Vec::new());
        page.limit = 3;
        let all = documents(3);
        let hits = all.iter().map(|d| hit(d, &page.sort)).collect();
        let results = parse_search(&response(hits, 3), &page).unwrap();
        assert_eq!(results.hits, all);
        assert_eq!(results.next, None);
        let empty = parse_search(&response(Vec::new(), 0), &page).unwrap();
        assert!(empty.hits.is_empty());
        assert_eq!(empty.next, None);
    }

    #[test]
    fn facets_are_parsed_and_ordered_with_a_none_bucket() {
        let results = parse_search(&response(Vec::new(), 7), &request(Vec::new())).unwrap();
        let count = |value: &str, count: u64| FacetCount {
            value: value.into(),
            count,
        };
        assert_eq!(results.facets.len(), FACETS.len());
        assert_eq!(
            results.facets["status"],
            vec![count("new", 5), count("open", 2)]
        );
        assert_eq!(
            results.facets["assignee"],
            vec![count("agent-1", 3), count("none", 3), count("agent-2", 1)]
        );
        assert_eq!(results.facets["group"], vec![count("none", 7)]);
        assert!(results.facets["tags"].is_empty());
    }

    #[test]
    fn partial_results_are_unavailable() {
        let mut partial = response(Vec::new(), 0);
        partial["_shards"] = json!({
            "total": 2, "successful": 1, "skipped": 0, "failed": 1,
            "failures": [{ "shard": 1, "index": "hd_tickets_v1", "node": "n1",
                "reason": { "type": "node_not_connected_exception", "reason": "[n2] Node not connected" } }]
        });
        let Err(BackendError::Unavailable(message)) = parse_search(&partial, &request(Vec::new()))
        else {
            panic!("not unavailable");
        };
        assert!(message.contains("Node not connected"), "{message}");
        let mut timed_out = response(Vec::new(), 0);
        timed_out["timed_out"] = json!(true);
        assert!(matches!(
            parse_search(&timed_out, &request(Vec::new())),
            Err(BackendError::Unavailable(_))
        ));
        assert!(matches!(
            parse_search(&json!({ "took": 1 }), &request(Vec::new())),
            Err(BackendError::Rejected(_))
        ));
    }
}
