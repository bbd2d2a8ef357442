//! The Elasticsearch backend.
//!
//! Layout: each generation is a physical index `<prefix>_tickets_v<N>` created with the
//! mapping in `schemas/search/tickets.mapping.json` (`dynamic: strict`), and the alias
//! `<prefix>_tickets` points at the serving one (as its write index). Connecting to an existing
//! alias puts the bundled mapping on it again, so fields added since it was created (the SLA
//! state, say) are mapped before a document carries them. The live backend reads
//! and writes through the alias; a rebuild writes a [`new_generation`] directly and
//! [`promote`]s it, which moves the alias in one atomic `_aliases` request and then deletes the
//! previous generation.
//!
//! Documents are written with `_bulk`, each versioned externally by
//! [`TicketDocument::version`] (ticket and SLA events folded in), so
//! redeliveries and a rebuild running beside the live projector never move a document
//! backwards. The indexed source is the [`TicketDocument`] JSON plus the keys searches sort
//! and filter on (`created_us`, `updated_us`, `solved_us`, `status_rank`, `priority_rank`, and
//! the SLA state `sla`); `search_after` over `[key, opened_position]` pages through results.
//!
//! The request bodies and response parsers are pure functions in the submodules; this module
//! only sends them.
//!
//! [`new_generation`]: ElasticBackend::new_generation
//! [`promote`]: ElasticBackend::promote

mod documents;
mod layout;
mod search;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod wire_tests;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use elasticsearch::http::Url;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts, IndicesPutMappingParts,
};
use elasticsearch::params::{ExpandWildcards, Refresh};
use elasticsearch::{BulkParts, Elasticsearch, MgetParts, SearchParts};
use serde_json::Value;

use crate::backend::{BackendError, SearchBackend};
use crate::document::TicketDocument;
use crate::request::{SearchRequest, SearchResults};

use documents::{bulk_lines, bulk_outcome, mget_body, parse_mget};
use layout::{
    Layout, alias_name, create_index_body, generation_name, generation_of, generation_pattern,
    mapping, normalize_prefix, parse_layout, swap_alias_body,
};
use search::{parse_search, search_body};

/// How long one request may take, connecting included, before it counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The content type Elasticsearch documents for `_bulk` bodies.
const NDJSON: &str = "application/x-ndjson";

/// Ticket search on an Elasticsearch (8 or 9) cluster.
///
/// Cheap to clone: clones share the HTTP connection pool.
#[derive(Clone)]
pub struct ElasticBackend {
    client: Elasticsearch,
    /// Lower-cased.
    prefix: String,
    /// `<prefix>_tickets`.
    alias: String,
    /// What this backend reads and writes: the alias, or (for a backend returned by
    /// [`ElasticBackend::new_generation`]) one physical generation.
    target: String,
}

/// Leaves the client out: its connection pool holds the URL, credentials included.
impl std::fmt::Debug for ElasticBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticBackend")
            .field("alias", &self.alias)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl ElasticBackend {
    /// Connects to the cluster at `url` (credentials may be given in the URL, as
    /// `https://user:password@host:9200`) and makes sure the alias `<prefix>_tickets` exists,
    /// creating the first generation `<prefix>_tickets_v1` behind it when it does not.
    ///
    /// That check is the first request, so an unreachable cluster is reported here, as
    /// [`BackendError::Unavailable`]; a malformed URL or prefix is [`BackendError::Rejected`].
    /// Requests time out after 30 seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<ElasticBackend, BackendError> {
        // The URL is not repeated in the message: it may carry a password.
        let url = Url::parse(url).map_err(|e| {
            BackendError::Rejected(format!("the Elasticsearch URL does not parse: {e}"))
        })?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| BackendError::Rejected(format!("building the HTTP client: {e}")))?;
        ElasticBackend::connect_with(transport, prefix).await
    }

    /// Like [`ElasticBackend::connect`], over a transport configured by the caller (API keys,
    /// certificates, several nodes, proxies, timeouts).
    pub async fn connect_with(
        transport: Transport,
        prefix: &str,
    ) -> Result<ElasticBackend, BackendError> {
        let prefix = normalize_prefix(prefix)?;
        let alias = alias_name(&prefix);
        let backend = ElasticBackend {
            client: Elasticsearch::new(transport),
            target: alias.clone(),
            alias,
            prefix,
        };
        backend.ensure_alias().await?;
        Ok(backend)
    }

    /// The index or alias this backend reads and writes.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The generation number, for a backend on one physical generation (from
    /// [`ElasticBackend::new_generation`]); `None` for a backend on the alias.
    pub fn generation(&self) -> Option<u64> {
        generation_of(&self.prefix, &self.target)
    }

    /// The generation the alias currently points at.
    pub async fn serving_generation(&self) -> Result<Option<u64>, BackendError> {
        let layout = self.layout().await?;
        Ok(layout
            .serving
            .first()
            .and_then(|index| generation_of(&self.prefix, index)))
    }

    /// Creates the next generation (one past the highest that exists, serving or not), empty,
    /// and returns a backend that reads and writes it directly. It serves nothing until
    /// [`ElasticBackend::promote`]d.
    ///
    /// A generation left behind by an interrupted rebuild is not reused (its number is
    /// skipped) and not deleted; remove it by hand.
    pub async fn new_generation(&self) -> Result<ElasticBackend, BackendError> {
        let layout = self.layout().await?;
        let name = generation_name(&self.prefix, layout.next_generation());
        self.create_index(&name, None).await?;
        tracing::info!(index = %name, "created a search index generation");
        Ok(ElasticBackend {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            alias: self.alias.clone(),
            target: name,
        })
    }

    /// Makes `generation` the serving one: moves the alias to it in one atomic `_aliases`
    /// request (readers and the live projector switch at once), then deletes the previously
    /// serving index. Promoting the generation that already serves changes nothing.
    ///
    /// Fails, changing nothing, when the alias moved since it was read (another promotion).
    /// A failure to delete the old index after the switch is only logged.
    pub async fn promote(&self, generation: &ElasticBackend) -> Result<(), BackendError> {
        let number = match generation.generation() {
            Some(number) if generation.prefix == self.prefix => number,
            _ => {
                return Err(BackendError::Rejected(format!(
                    "{} is not a generation of {}; promote a backend from new_generation",
                    generation.target, self.alias
                )));
            }
        };
        let layout = self.layout().await?;
        if !layout.generations.contains(&number) {
            return Err(BackendError::Rejected(format!(
                "cannot promote {}: the index does not exist",
                generation.target
            )));
        }
        let old: Vec<String> = layout
            .serving
            .iter()
            .filter(|index| **index != generation.target)
            .cloned()
            .collect();
        if old.is_empty() && layout.serving.contains(&generation.target) {
            return Ok(());
        }
        let body = swap_alias_body(&self.alias, &old, &generation.target);
        let sent = self
            .client
            .indices()
            .update_aliases()
            .body(body)
            .send()
            .await;
        let answer = receive("moving the alias", sent)
            .await?
            .success("moving the alias")?;
        if answer.get("errors").and_then(Value::as_bool) == Some(true) {
            return Err(BackendError::Rejected(format!(
                "moving the alias {} partly failed: {answer}",
                self.alias
            )));
        }
        tracing::info!(alias = %self.alias, index = %generation.target, previous = ?old, "promoted a search index generation");
        for index in &old {
            if let Err(error) = self.delete_index(index).await {
                tracing::warn!(%index, %error, "could not delete the previous search index generation");
            }
        }
        Ok(())
    }

    /// Creates the first generation behind the alias unless the alias exists; an existing one
    /// gets the bundled mapping again ([`ElasticBackend::update_mapping`]).
    async fn ensure_alias(&self) -> Result<(), BackendError> {
        let layout = self.layout().await?;
        if !layout.serving.is_empty() {
            return self.update_mapping().await;
        }
        // No alias: start a generation above any existing one (a leftover without the alias
        // is not trusted to be complete).
        let name = generation_name(&self.prefix, layout.next_generation());
        if let Err(error) = self.create_index(&name, Some(&self.alias)).await {
            // Another process may have created it at the same moment.
            if self.layout().await?.serving.is_empty() {
                return Err(error);
            }
            return Ok(());
        }
        tracing::info!(index = %name, alias = %self.alias, "created the search index");
        Ok(())
    }

    /// Puts the bundled mapping on the serving generation through the alias: fields added
    /// since it was created get mapped (mappings only ever gain fields), the rest is unchanged.
    ///
    /// A refusal (a field whose type changed, which only a rebuild can apply) is logged, not
    /// returned: searches keep working on the old mapping, and a rebuild makes a generation
    /// with the new one. An unreachable cluster is an error, as for any first request.
    async fn update_mapping(&self) -> Result<(), BackendError> {
        const WHAT: &str = "updating the index mapping";
        let sent = self
            .client
            .indices()
            .put_mapping(IndicesPutMappingParts::Index(&[&self.alias]))
            .body(mapping()?)
            .send()
            .await;
        match receive(WHAT, sent).await?.success(WHAT) {
            Ok(_) => Ok(()),
            Err(error @ BackendError::Unavailable(_)) => Err(error),
            Err(error) => {
                tracing::warn!(alias = %self.alias, %error, "the serving search index keeps its older mapping; rebuild the index to apply the new one");
                Ok(())
            }
        }
    }

    /// The generations and where the alias points.
    async fn layout(&self) -> Result<Layout, BackendError> {
        const WHAT: &str = "reading the index aliases";
        let pattern = generation_pattern(&self.prefix);
        let sent = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Index(&[&pattern]))
            .expand_wildcards(&[ExpandWildcards::All])
            .send()
            .await;
        let reply = receive(WHAT, sent).await?;
        if reply.status == 404 {
            return Ok(Layout::default());
        }
        parse_layout(&self.prefix, &reply.success(WHAT)?)
    }

    /// Creates a physical index with the mapping, and the alias when given.
    async fn create_index(&self, name: &str, alias: Option<&str>) -> Result<(), BackendError> {
        let what = format!("creating index {name}");
        let body = create_index_body(mapping()?, alias);
        let sent = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(name))
            .body(body)
            .send()
            .await;
        receive(&what, sent).await?.success(&what)?;
        Ok(())
    }

    /// Deletes a physical index; one that does not exist is fine.
    async fn delete_index(&self, name: &str) -> Result<(), BackendError> {
        let what = format!("deleting index {name}");
        let sent = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[name]))
            .send()
            .await;
        let reply = receive(&what, sent).await?;
        if reply.status == 404 {
            return Ok(());
        }
        reply.success(&what)?;
        Ok(())
    }
}

#[async_trait]
impl SearchBackend for ElasticBackend {
    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    async fn get(&self, ids: &[String]) -> Result<HashMap<String, TicketDocument>, BackendError> {
        const WHAT: &str = "reading documents";
        if ids.is_empty() {
            // Elasticsearch refuses an `_mget` without ids.
            return Ok(HashMap::new());
        }
        let sent = self
            .client
            .mget(MgetParts::Index(&self.target))
            .body(mget_body(ids))
            .realtime(true)
            .send()
            .await;
        parse_mget(&receive(WHAT, sent).await?.success(WHAT)?)
    }

    /// `checkpoint` is not stored: a `_bulk` request is not atomic across documents, so a
    /// checkpoint kept in the index could claim documents that failed. The Elasticsearch
    /// projector records its checkpoint in its Postgres checkpoint row instead, after this
    /// returns; replaying from there is harmless thanks to the external versions.
    async fn write(
        &self,
        documents: Vec<TicketDocument>,
        _checkpoint: Option<i64>,
    ) -> Result<(), BackendError> {
        const WHAT: &str = "writing documents";
        if documents.is_empty() {
            // Elasticsearch refuses an empty `_bulk` body.
            return Ok(());
        }
        let lines = bulk_lines(&documents)?;
        let sent = self
            .client
            .bulk(BulkParts::Index(&self.target))
            .header(CONTENT_TYPE, HeaderValue::from_static(NDJSON))
            .body(lines)
            // Searchable when this returns: waits for the next refresh rather than forcing one.
            .refresh(Refresh::WaitFor)
            // Through the alias, never let a missing alias auto-create an unmapped index.
            .require_alias(self.target == self.alias)
            .send()
            .await;
        bulk_outcome(&receive(WHAT, sent).await?.success(WHAT)?)
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchResults, BackendError> {
        const WHAT: &str = "searching";
        let sent = self
            .client
            .search(SearchParts::Index(&[&self.target]))
            .body(search_body(request))
            .send()
            .await;
        parse_search(&receive(WHAT, sent).await?.success(WHAT)?, request)
    }

    /// Asks the search side (not the realtime get), so the answer is what searches see.
    async fn searchable_version(&self, id: &str) -> Result<Option<i64>, BackendError> {
        const WHAT: &str = "reading a searchable version";
        let sent = self
            .client
            .search(SearchParts::Index(&[&self.target]))
            .body(searchable_version_body(id))
            .send()
            .await;
        Ok(parse_searchable_version(
            &receive(WHAT, sent).await?.success(WHAT)?,
        ))
    }

    /// Replaces the index with an empty one rather than deleting documents: deleted documents
    /// leave version tombstones for `index.gc_deletes` (60 s), during which writing a document
    /// again at its old version would be refused as a conflict and silently dropped.
    ///
    /// Through the alias this is a fresh generation, promoted; a backend on one generation
    /// deletes and recreates its index (keeping the alias on it if it was serving).
    async fn clear(&self) -> Result<(), BackendError> {
        if self.target == self.alias {
            let next = self.new_generation().await?;
            return self.promote(&next).await;
        }
        let serving = self.layout().await?.serving.contains(&self.target);
        self.delete_index(&self.target).await?;
        self.create_index(&self.target, serving.then_some(self.alias.as_str()))
            .await
    }
}

/// The search for one ticket's searchable `last_sequence`.
fn searchable_version_body(id: &str) -> Value {
    serde_json::json!({
        "size": 1,
        "_source": ["last_sequence"],
        "query": { "term": { "id": id } },
    })
}

/// The `last_sequence` of the hit, when there is one.
fn parse_searchable_version(body: &Value) -> Option<i64> {
    body["hits"]["hits"]
        .as_array()?
        .first()?
        .get("_source")?
        .get("last_sequence")?
        .as_i64()
}

/// A response as status and body.
struct Reply {
    status: u16,
    /// The JSON body, or the raw text (as a string) when it was not JSON.
    body: Value,
    json: bool,
}

impl Reply {
    /// The body of a successful response, or the error the status stands for.
    fn success(self, what: &str) -> Result<Value, BackendError> {
        if !(200..300).contains(&self.status) {
            return Err(status_error(what, self.status, &self.body));
        }
        if !self.json {
            return Err(BackendError::Unavailable(format!(
                "{what}: the response is not JSON: {}",
                self.body
            )));
        }
        Ok(self.body)
    }
}

/// Reads a response; transport failures (connecting, timeouts, a cut body) are
/// [`BackendError::Unavailable`].
async fn receive(
    what: &str,
    sent: Result<Response, elasticsearch::Error>,
) -> Result<Reply, BackendError> {
    let response = sent.map_err(|e| BackendError::Unavailable(format!("{what}: {e}")))?;
    let status = response.status_code().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| BackendError::Unavailable(format!("{what}: reading the response: {e}")))?;
    Ok(match serde_json::from_str(&text) {
        Ok(body) => Reply {
            status,
            body,
            json: true,
        },
        Err(_) => Reply {
            status,
            body: Value::String(text.chars().take(500).collect()),
            json: false,
        },
    })
}

/// The error an HTTP error status stands for: overload (429), timeouts (408), server errors
/// (5xx) and a missing index (which a clear or a first connect is about to create) are
/// [`BackendError::Unavailable`]; any other refusal is [`BackendError::Rejected`].
fn status_error(what: &str, status: u16, body: &Value) -> BackendError {
    let error = body.get("error").unwrap_or(body);
    let kind = error_type(error);
    let message = match kind {
        Some(kind) => format!("{what}: HTTP {status} {kind}: {}", error_reason(error)),
        None => format!("{what}: HTTP {status}: {}", error_reason(error)),
    };
    if status == 408 || status == 429 || status >= 500 || kind == Some("index_not_found_exception")
    {
        BackendError::Unavailable(message)
    } else {
        BackendError::Rejected(message)
    }
}

/// The `type` of an Elasticsearch error object.
fn error_type(error: &Value) -> Option<&str> {
    error.get("type").and_then(Value::as_str)
}

/// The reason of an Elasticsearch error object (`{"type", "reason", "caused_by"}`), or of an
/// error given as plain text.
fn error_reason(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        Value::Object(fields) => {
            let mut reason = fields
                .get("reason")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            if let Some(cause) = fields.get("caused_by") {
                reason.push_str(" (caused by ");
                if let Some(kind) = error_type(cause) {
                    reason.push_str(kind);
                    reason.push_str(": ");
                }
                reason.push_str(&error_reason(cause));
                reason.push(')');
            }
            reason
        }
        Value::Null => "no reason given".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_searchable_version_comes_from_a_search_hit() {
        let body = searchable_version_body("t-1");
        assert_eq!(body["query"], json!({"term": {"id": "t-1"}}));
        let found = json!({
            "took": 1, "timed_out": false,
            "hits": {"total": {"value": 1, "relation": "eq"}, "max_score": 1.0,
                     "hits": [{"_index": "hd_tickets_v1", "_id": "t-1", "_score": 1.0,
                               "_source": {"last_sequence": 7}}]}
        });
        assert_eq!(parse_searchable_version(&found), Some(7));
        let missing = json!({"took": 1, "timed_out": false,
            "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}});
        assert_eq!(parse_searchable_version(&missing), None);
    }

    #[test]
    fn http_statuses_map_to_errors() {
        let body = json!({
            "error": {
                "root_cause": [{ "type": "index_not_found_exception", "reason": "no such index [hd_tickets]" }],
                "type": "index_not_found_exception",
                "reason": "no such index [hd_tickets]",
                "index": "hd_tickets"
            },
            "status": 404
        });
        let BackendError::Unavailable(message) = status_error("searching", 404, &body) else {
            panic!("a missing index is not unavailable");
        };
        assert!(message.contains("no such index"), "{message}");

        let parse = json!({
            "error": {
                "type": "x_content_parse_exception",
                "reason": "[1:10] [bool] failed to parse field [must]",
                "caused_by": { "type": "illegal_argument_exception", "reason": "unknown query [nope]" }
            },
            "status": 400
        });
        let BackendError::Rejected(message) = status_error("searching", 400, &parse) else {
            panic!("a parse error is not rejected");
        };
        assert!(message.contains("x_content_parse_exception"), "{message}");
        assert!(message.contains("unknown query [nope]"), "{message}");

        let busy = json!({ "error": { "type": "circuit_breaking_exception", "reason": "[parent] Data too large" }, "status": 429 });
        assert!(matches!(
            status_error("w", 429, &busy),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(
            status_error("w", 503, &json!("<html>Service Unavailable</html>")),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(
            status_error("w", 502, &Value::Null),
            BackendError::Unavailable(_)
        ));
        let missing_alias = json!({ "error": "alias [hd_tickets] missing", "status": 404 });
        let BackendError::Rejected(message) = status_error("reading", 404, &missing_alias) else {
            panic!("not rejected");
        };
        assert!(message.contains("alias [hd_tickets] missing"), "{message}");
        assert!(matches!(
            status_error(
                "w",
                401,
                &json!({ "error": { "type": "security_exception", "reason": "missing authentication credentials" } })
            ),
            BackendError::Rejected(_)
        ));
    }

    #[test]
    fn replies_need_json_to_succeed() {
        let reply = Reply {
            status: 200,
            body: Value::String("<html>".into()),
            json: false,
        };
        assert!(matches!(
            reply.success("x"),
            Err(BackendError::Unavailable(_))
        ));
        let reply = Reply {
            status: 201,
            body: json!({ "acknowledged": true }),
            json: true,
        };
        assert_eq!(reply.success("x").unwrap(), json!({ "acknowledged": true }));
    }
}
