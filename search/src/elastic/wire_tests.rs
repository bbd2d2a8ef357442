//! The real HTTP client against a scripted HTTP/1.1 server on localhost: proves the request
//! wiring (methods, paths, query parameters, content types, bodies) with recorded responses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elasticsearch::http::Url;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::documents::indexed_source;
use super::fixtures::sample_document;
use super::*;
use crate::query::Query;
use crate::request::{Scope, Sort};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query string.
    target: String,
    content_type: String,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    fn query(&self) -> Vec<&str> {
        self.target
            .split_once('?')
            .map(|(_, query)| query.split('&').collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<(u16, String)>,
    seen: Vec<Seen>,
}

/// Starts a server answering `replies` in order; returns its URL and what it saw.
async fn serve(replies: Vec<(u16, Value)>) -> (String, Arc<Mutex<Script>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let script = Arc::new(Mutex::new(Script {
        replies: replies
            .into_iter()
            .map(|(status, body)| (status, body.to_string()))
            .collect(),
        seen: Vec::new(),
    }));
    let shared = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, shared.clone()));
        }
    });
    (format!("http://{address}"), script)
}

/// Answers the requests on one (keep-alive) connection.
async fn answer(mut stream: TcpStream, script: Arc<Mutex<Script>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap().split(' ');
        let method = request_line.next().unwrap().to_owned();
        let target = request_line.next().unwrap().to_owned();
        let mut content_length = 0;
        let mut content_type = String::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                "transfer-encoding" => panic!("chunked request bodies are not scripted"),
                _ => {}
            }
        }
        let body_start = head_end + 4;
        while buffer.len() < body_start + content_length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body =
            String::from_utf8_lossy(&buffer[body_start..body_start + content_length]).into_owned();
        buffer.drain(..body_start + content_length);
        let (status, reply) = {
            let mut script = script.lock().unwrap();
            script.seen.push(Seen {
                method,
                target,
                content_type,
                body,
            });
            script
                .replies
                .pop_front()
                .unwrap_or((500, r#"{"error":"no scripted reply left"}"#.into()))
        };
        let response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\nx-elastic-product: Elasticsearch\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn backend(url: &str, prefix: &str) -> Result<ElasticBackend, BackendError> {
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(Url::parse(url).unwrap()))
        .disable_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    ElasticBackend::connect_with(transport, prefix).await
}

fn acknowledged(index: &str) -> Value {
    json!({ "acknowledged": true, "shards_acknowledged": true, "index": index })
}

#[tokio::test]
async fn the_client_sends_what_the_bodies_say() {
    let first = sample_document("t-1");
    let second = sample_document("t-2");
    let request = SearchRequest {
        query: Query::default(),
        scope: Scope::Customer("cust-1".into()),
        include_internal: false,
        sort: Sort::default(),
        after: None,
        limit: 1,
    };
    let replies = vec![
        // connect: no generation yet, so v1 is created with the alias.
        (200, json!({})),
        (200, acknowledged("hd_tickets_v1")),
        // write: one created, one already newer.
        (
            200,
            json!({ "errors": true, "took": 3, "items": [
                { "index": { "_index": "hd_tickets_v1", "_id": "t-1", "_version": 4, "result": "created",
                    "_shards": { "total": 2, "successful": 1, "failed": 0 }, "_seq_no": 0, "_primary_term": 1, "status": 201 } },
                { "index": { "_index": "hd_tickets_v1", "_id": "t-2", "status": 409,
                    "error": { "type": "version_conflict_engine_exception",
                        "reason": "[t-2]: version conflict, current version [6] is higher or equal to the one provided [4]",
                        "index_uuid": "Kq3vY0pTQ1GmDkqW3nV3xA", "shard": "0", "index": "hd_tickets_v1" } } }
            ]}),
        ),
        // get
        (
            200,
            json!({ "docs": [
                { "_index": "hd_tickets_v1", "_id": "t-1", "_version": 4, "_seq_no": 0, "_primary_term": 1,
                  "found": true, "_source": indexed_source(&first).unwrap() },
                { "_index": "hd_tickets_v1", "_id": "t-3", "found": false }
            ]}),
        ),
        // search: two hits for a page of one.
        (
            200,
            json!({
                "took": 2, "timed_out": false,
                "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
                "hits": { "total": { "value": 2, "relation": "eq" }, "max_score": null, "hits": [
                    { "_index": "hd_tickets_v1", "_id": "t-1", "_score": null,
                      "_source": indexed_source(&first).unwrap(), "sort": [1, 100] },
                    { "_index": "hd_tickets_v1", "_id": "t-2", "_score": null,
                      "_source": indexed_source(&second).unwrap(), "sort": [1, 100] }
                ]},
                "aggregations": {
                    "status": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                        "buckets": [{ "key": "open", "doc_count": 2 }] }
                }
            }),
        ),
        // new_generation
        (
            200,
            json!({ "hd_tickets_v1": { "aliases": { "hd_tickets": { "is_write_index": true } } } }),
        ),
        (200, acknowledged("hd_tickets_v2")),
        // promote
        (
            200,
            json!({
                "hd_tickets_v1": { "aliases": { "hd_tickets": { "is_write_index": true } } },
                "hd_tickets_v2": { "aliases": {} }
            }),
        ),
        (200, json!({ "acknowledged": true, "errors": false })),
        (200, json!({ "acknowledged": true })),
        // failures
        (
            503,
            json!({ "error": { "type": "search_phase_execution_exception", "reason": "all shards failed" }, "status": 503 }),
        ),
        (
            400,
            json!({ "error": { "type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]" }, "status": 400 }),
        ),
    ];
    let (url, script) = serve(replies).await;

    let backend = backend(&url, "HD").await.unwrap();
    assert_eq!(backend.kind(), "elasticsearch");
    assert_eq!(backend.target(), "hd_tickets");
    assert_eq!(backend.generation(), None);
    backend
        .write(vec![first.clone(), second.clone()], Some(42))
        .await
        .unwrap();
    let found = backend.get(&["t-1".into(), "t-3".into()]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found["t-1"], first);
    let results = backend.search(&request).await.unwrap();
    assert_eq!(results.total, 2);
    assert_eq!(results.hits, vec![first.clone()]);
    assert_eq!(results.next, Some(request.sort.cursor_after(&first)));
    let next = backend.new_generation().await.unwrap();
    assert_eq!(next.target(), "hd_tickets_v2");
    assert_eq!(next.generation(), Some(2));
    backend.promote(&next).await.unwrap();
    assert!(matches!(
        backend.search(&request).await,
        Err(BackendError::Unavailable(_))
    ));
    assert!(matches!(
        next.write(vec![first.clone()], None).await,
        Err(BackendError::Rejected(_))
    ));
    // Nothing is sent for nothing to do.
    backend.write(Vec::new(), None).await.unwrap();
    assert!(backend.get(&[]).await.unwrap().is_empty());

    let seen = script.lock().unwrap().seen.clone();
    let summary: Vec<(&str, &str)> = seen.iter().map(|s| (s.method.as_str(), s.path())).collect();
    assert_eq!(
        summary,
        vec![
            ("GET", "/hd_tickets_v*/_alias"),
            ("PUT", "/hd_tickets_v1"),
            ("POST", "/hd_tickets/_bulk"),
            ("POST", "/hd_tickets/_mget"),
            ("POST", "/hd_tickets/_search"),
            ("GET", "/hd_tickets_v*/_alias"),
            ("PUT", "/hd_tickets_v2"),
            ("GET", "/hd_tickets_v*/_alias"),
            ("POST", "/_aliases"),
            ("DELETE", "/hd_tickets_v1"),
            ("POST", "/hd_tickets/_search"),
            ("POST", "/hd_tickets_v2/_bulk"),
        ]
    );

    // connect
    assert_eq!(seen[0].query(), vec!["expand_wildcards=all"]);
    let created = seen[1].json();
    assert_eq!(seen[1].content_type, "application/json");
    assert_eq!(created["mappings"]["dynamic"], "strict");
    assert_eq!(
        created["aliases"],
        json!({ "hd_tickets": { "is_write_index": true } })
    );

    // write
    let bulk = &seen[2];
    assert_eq!(bulk.content_type, "application/x-ndjson");
    let mut query = bulk.query();
    query.sort_unstable();
    assert_eq!(query, vec!["refresh=wait_for", "require_alias=true"]);
    assert!(
        bulk.body.ends_with('\n'),
        "the bulk body must end with a newline"
    );
    let lines: Vec<Value> = bulk
        .body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        json!({ "index": { "_id": "t-1", "version": 4, "version_type": "external" } })
    );
    assert_eq!(lines[1], indexed_source(&first).unwrap());
    assert_eq!(lines[2]["index"]["_id"], "t-2");

    // get
    assert_eq!(seen[3].query(), vec!["realtime=true"]);
    assert_eq!(seen[3].json(), json!({ "ids": ["t-1", "t-3"] }));

    // search
    let body = seen[4].json();
    assert_eq!(body, search::search_body(&request));
    assert_eq!(body["size"], 2);
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([{ "term": { "requester_id": "cust-1" } }])
    );

    // new generation: no alias on the new index
    assert!(seen[6].json().get("aliases").is_none());

    // promote
    assert_eq!(
        seen[8].json(),
        json!({ "actions": [
            { "remove": { "index": "hd_tickets_v1", "alias": "hd_tickets", "must_exist": true } },
            { "add": { "index": "hd_tickets_v2", "alias": "hd_tickets", "is_write_index": true } }
        ]})
    );
    assert!(seen[9].body.is_empty());

    // a generation is written directly, without requiring an alias
    assert_eq!(
        seen[11].query(),
        vec!["refresh=wait_for", "require_alias=false"]
    );
}

#[tokio::test]
async fn an_existing_alias_is_used_as_is_with_the_bundled_mapping_put_on_it() {
    let (url, script) = serve(vec![
        (
            200,
            json!({
                "hd_tickets_v3": { "aliases": { "hd_tickets": { "is_write_index": true } } },
                "hd_tickets_v4": { "aliases": {} }
            }),
        ),
        (200, json!({ "acknowledged": true })),
    ])
    .await;
    let backend = backend(&url, "hd").await.unwrap();
    assert_eq!(backend.target(), "hd_tickets");
    let seen = script.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path()),
        ("PUT", "/hd_tickets/_mapping")
    );
    assert_eq!(seen[1].content_type, "application/json");
    let body = seen[1].json();
    assert_eq!(body, mapping().unwrap());
    assert_eq!(body["properties"]["sla"]["type"], "keyword");
}

#[tokio::test]
async fn a_refused_mapping_update_keeps_the_old_mapping_but_an_unreachable_one_fails() {
    let serving = json!({ "hd_tickets_v1": { "aliases": { "hd_tickets": {} } } });
    let conflict = json!({
        "error": { "type": "illegal_argument_exception",
            "reason": "mapper [sla] cannot be changed from type [text] to [keyword]" },
        "status": 400
    });
    let (url, _) = serve(vec![(200, serving.clone()), (400, conflict)]).await;
    let connected = backend(&url, "hd").await.unwrap();
    assert_eq!(connected.target(), "hd_tickets");

    let busy = json!({ "error": { "type": "process_cluster_event_timeout_exception",
        "reason": "failed to process cluster event (put-mapping) within 30s" }, "status": 503 });
    let (url, _) = serve(vec![(200, serving), (503, busy)]).await;
    assert!(matches!(
        backend(&url, "hd").await,
        Err(BackendError::Unavailable(_))
    ));
}

#[tokio::test]
async fn clearing_through_the_alias_swaps_in_an_empty_generation() {
    let serving = json!({ "hd_tickets_v1": { "aliases": { "hd_tickets": {} } } });
    let (url, script) = serve(vec![
        (200, serving.clone()),
        (200, json!({ "acknowledged": true })),
        // clear: new generation, then promote
        (200, serving),
        (200, acknowledged("hd_tickets_v2")),
        (
            200,
            json!({
                "hd_tickets_v1": { "aliases": { "hd_tickets": {} } },
                "hd_tickets_v2": { "aliases": {} }
            }),
        ),
        (200, json!({ "acknowledged": true })),
        (200, json!({ "acknowledged": true })),
    ])
    .await;
    let backend = backend(&url, "hd").await.unwrap();
    backend.clear().await.unwrap();
    let seen = script.lock().unwrap().seen.clone();
    let summary: Vec<(&str, &str)> = seen.iter().map(|s| (s.method.as_str(), s.path())).collect();
    assert_eq!(
        summary,
        vec![
            ("GET", "/hd_tickets_v*/_alias"),
            ("PUT", "/hd_tickets/_mapping"),
            ("GET", "/hd_tickets_v*/_alias"),
            ("PUT", "/hd_tickets_v2"),
            ("GET", "/hd_tickets_v*/_alias"),
            ("POST", "/_aliases"),
            ("DELETE", "/hd_tickets_v1"),
        ]
    );
}

#[tokio::test]
async fn losing_a_creation_race_is_fine() {
    let (url, _script) = serve(vec![
        (200, json!({})),
        (
            400,
            json!({ "error": { "type": "resource_already_exists_exception",
                "reason": "index [hd_tickets_v1/abc] already exists", "index": "hd_tickets_v1" }, "status": 400 }),
        ),
        (200, json!({ "hd_tickets_v1": { "aliases": { "hd_tickets": { "is_write_index": true } } } })),
    ])
    .await;
    backend(&url, "hd").await.unwrap();
}

#[tokio::test]
async fn promote_refuses_what_is_not_a_generation() {
    let serving = json!({ "hd_tickets_v1": { "aliases": { "hd_tickets": {} } } });
    let (url, script) = serve(vec![
        (200, serving.clone()),
        (200, json!({ "acknowledged": true })),
        (200, serving),
    ])
    .await;
    let backend = backend(&url, "hd").await.unwrap();
    // The alias backend itself is not a generation: nothing is sent.
    assert!(matches!(
        backend.promote(&backend).await,
        Err(BackendError::Rejected(_))
    ));
    // The serving generation promoted again: only a look.
    let mut current = backend.clone();
    current.target = "hd_tickets_v1".into();
    backend.promote(&current).await.unwrap();
    assert_eq!(script.lock().unwrap().seen.len(), 3);
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let result = backend(&format!("http://{address}"), "hd").await;
    assert!(
        matches!(result, Err(BackendError::Unavailable(_))),
        "{result:?}"
    );
    assert!(matches!(
        ElasticBackend::connect("not a url", "hd").await,
        Err(BackendError::Rejected(_))
    ));
    assert!(matches!(
        ElasticBackend::connect(&format!("http://{address}"), "bad prefix").await,
        Err(BackendError::Rejected(_))
    ));
}
