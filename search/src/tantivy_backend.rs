//! The embedded backend: a tantivy index in a directory of its own.
//!
//! Layout under the configured directory: `CURRENT` names the serving generation
//! (`tickets_v<N>`), and each generation is a tantivy index directory. A rebuild writes the
//! next generation beside the serving one and [`TantivyBackend::promote`]s it: readers and the
//! writer switch over at once, `CURRENT` is rewritten, and the old directory is removed.
//!
//! One writer per generation, behind a mutex; every [`SearchBackend::write`] is one tantivy
//! commit (carrying the checkpoint as its payload), after which the reader is reloaded, so a
//! write that returned is searchable.
//!
//! A serving generation written with another schema (by an older version, before a field was
//! added) cannot be opened with this one: [`TantivyBackend::open`] then starts the next
//! generation, empty and without a checkpoint, which is what start-up fills from the event
//! store.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{AggregationResult, AggregationResults, BucketResult};
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard, Key};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query as TantivyQuery,
    RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument, Value,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Term};

use crate::backend::{BackendError, SearchBackend};
use crate::document::{TicketDocument, priority_rank, status_rank, wire_name};
use crate::query::{Condition, TimeRange};
use crate::request::{
    Cursor, FACET_SIZE, FACETS, FacetCount, NONE_BUCKET, Scope, SearchRequest, SearchResults,
    order_buckets,
};

/// Text fields free text searches, besides internal notes.
const PUBLIC_TEXT_FIELDS: [&str; 5] = [
    "subject",
    "description",
    "public_text",
    "requester_name",
    "requester_email_text",
];
/// Memory the writer may buffer before flushing a segment.
const WRITER_MEMORY: usize = 50_000_000;
/// Indexing threads of the writer. Each commit flushes one segment per thread that received
/// documents, and each thread starts its next segment by allocating and zeroing a 4 MB term
/// table; the projection commits several times a second, so under load a second thread
/// doubled that work and the merges behind it (about a fifth of the server's CPU in the load
/// benchmark) while one thread indexes ticket documents far faster than they arrive.
const WRITER_THREADS: usize = 1;
/// The file naming the serving generation.
const CURRENT: &str = "CURRENT";

/// The tantivy backend.
pub struct TantivyBackend {
    root: PathBuf,
    generation: RwLock<Arc<Generation>>,
}

impl std::fmt::Debug for TantivyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyBackend")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// One physical index.
struct Generation {
    number: u64,
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Set while the rebuild that created this generation is its only writer (until it is
    /// promoted): every document it writes was folded onto what the generation holds, so the
    /// version check of [`Generation::write`], a lookup and a parse of the stored document per
    /// write, cannot reject anything and is skipped.
    sole_writer: AtomicBool,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    source: Field,
    opened_position: Field,
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("id", STRING);
    builder.add_text_field("source", STORED);
    for text in PUBLIC_TEXT_FIELDS.iter().chain(["internal_text"].iter()) {
        builder.add_text_field(text, TEXT);
    }
    for keyword in [
        "status",
        "priority",
        "channel",
        "requester_id",
        "requester_email",
        "assignee",
        "group",
        "tags",
    ] {
        builder.add_text_field(keyword, STRING | FAST);
    }
    // The derived SLA state (`breached`, `active`, `paused`); absent without an open activation.
    builder.add_text_field("sla", STRING);
    for number in [
        "created_us",
        "updated_us",
        "solved_us",
        "status_rank",
        "priority_rank",
        "opened_position",
    ] {
        builder.add_i64_field(number, INDEXED | FAST);
    }
    builder.build()
}

fn unavailable(error: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(error.to_string())
}

impl Generation {
    fn open(root: &Path, number: u64) -> Result<Generation, BackendError> {
        let path = root.join(format!("tickets_v{number}"));
        std::fs::create_dir_all(&path).map_err(unavailable)?;
        let directory = tantivy::directory::MmapDirectory::open(&path).map_err(unavailable)?;
        let index = Index::open_or_create(directory, schema()).map_err(unavailable)?;
        let writer = index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)
            .map_err(unavailable)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(unavailable)?;
        let field = |name: &str| index.schema().get_field(name).map_err(unavailable);
        let fields = Fields {
            id: field("id")?,
            source: field("source")?,
            opened_position: field("opened_position")?,
        };
        Ok(Generation {
            number,
            path,
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            sole_writer: AtomicBool::new(false),
        })
    }

    fn field(&self, name: &str) -> Result<Field, BackendError> {
        self.index
            .schema()
            .get_field(name)
            .map_err(|e| BackendError::Rejected(e.to_string()))
    }

    fn stored(
        &self,
        searcher: &tantivy::Searcher,
        id: &str,
    ) -> Result<Option<TicketDocument>, BackendError> {
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(unavailable)?;
        match top.first() {
            Some((_, address)) => self.load(searcher, *address).map(Some),
            None => Ok(None),
        }
    }

    fn load(
        &self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
    ) -> Result<TicketDocument, BackendError> {
        let stored: TantivyDocument = searcher.doc(address).map_err(unavailable)?;
        let source = stored
            .get_first(self.fields.source)
            .and_then(|value| value.as_str())
            .ok_or_else(|| BackendError::Rejected("a document without its source".into()))?;
        serde_json::from_str(source).map_err(|e| BackendError::Rejected(e.to_string()))
    }

    fn to_tantivy(&self, document: &TicketDocument) -> Result<TantivyDocument, BackendError> {
        let mut doc = TantivyDocument::new();
        let source =
            serde_json::to_string(document).map_err(|e| BackendError::Rejected(e.to_string()))?;
        doc.add_text(self.fields.id, &document.id);
        doc.add_text(self.fields.source, source);
        let texts: [(&str, Option<&str>); 6] = [
            ("subject", Some(&document.subject)),
            ("description", Some(&document.description)),
            ("public_text", Some(&document.public_text)),
            ("internal_text", Some(&document.internal_text)),
            ("requester_name", document.requester_name.as_deref()),
            ("requester_email_text", document.requester_email.as_deref()),
        ];
        let keywords: [(&str, Option<String>); 8] = [
            ("status", Some(wire_name(&document.status))),
            ("priority", Some(wire_name(&document.priority))),
            ("channel", Some(wire_name(&document.channel))),
            ("requester_id", Some(document.requester_id.clone())),
            ("requester_email", document.requester_email.clone()),
            ("assignee", document.assignee.clone()),
            ("group", document.group.clone()),
            ("sla", document.sla_state().as_ref().map(wire_name)),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                doc.add_text(self.field(name)?, value);
            }
        }
        for (name, value) in keywords {
            if let Some(value) = value {
                doc.add_text(self.field(name)?, value);
            }
        }
        let tags = self.field("tags")?;
        for tag in &document.tags {
            doc.add_text(tags, tag);
        }
        let numbers: [(&str, Option<i64>); 6] = [
            ("created_us", Some(document.created_at.timestamp_micros())),
            ("updated_us", Some(document.updated_at.timestamp_micros())),
            (
                "solved_us",
                document.solved_at.map(|at| at.timestamp_micros()),
            ),
            ("status_rank", Some(status_rank(document.status) as i64)),
            (
                "priority_rank",
                Some(priority_rank(document.priority) as i64),
            ),
            ("opened_position", Some(document.opened_position)),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                doc.add_i64(self.field(name)?, value);
            }
        }
        Ok(doc)
    }

    fn write(
        &self,
        documents: Vec<TicketDocument>,
        checkpoint: Option<i64>,
    ) -> Result<(), BackendError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| unavailable("the index writer panicked"))?;
        // The newest version of each document in the batch.
        let mut newest: HashMap<&str, &TicketDocument> = HashMap::new();
        for document in &documents {
            let slot = newest.entry(document.id.as_str()).or_insert(document);
            if document.version() > slot.version() {
                *slot = document;
            }
        }
        let searcher = self.reader.searcher();
        let checked = !self.sole_writer.load(Ordering::Acquire);
        for document in newest.into_values() {
            if checked
                && self
                    .stored(&searcher, &document.id)?
                    .is_some_and(|stored| stored.version() >= document.version())
            {
                continue;
            }
            writer.delete_term(Term::from_field_text(self.fields.id, &document.id));
            writer
                .add_document(self.to_tantivy(document)?)
                .map_err(unavailable)?;
        }
        // A commit without a checkpoint keeps the previous one.
        let checkpoint = checkpoint.or_else(|| self.checkpoint());
        let mut prepared = writer.prepare_commit().map_err(unavailable)?;
        if let Some(position) = checkpoint {
            prepared.set_payload(&format!("{{\"position\":{position}}}"));
        }
        prepared.commit().map_err(unavailable)?;
        self.reader.reload().map_err(unavailable)
    }

    fn clear(&self) -> Result<(), BackendError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| unavailable("the index writer panicked"))?;
        writer.delete_all_documents().map_err(unavailable)?;
        writer.commit().map_err(unavailable)?;
        self.reader.reload().map_err(unavailable)
    }

    /// The checkpoint stored with the last commit.
    fn checkpoint(&self) -> Option<i64> {
        let payload = self.index.load_metas().ok()?.payload?;
        let value: serde_json::Value = serde_json::from_str(&payload).ok()?;
        value.get("position")?.as_i64()
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResults, BackendError> {
        let searcher = self.reader.searcher();
        let matching = self.query(request, false)?;
        let page_query = self.query(request, true)?;
        let order = if request.sort.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let top = TopDocs::with_limit(request.limit.max(1) + 1).order_by((
            (
                SortByStaticFastValue::<i64>::for_field(request.sort.key_field()),
                order,
            ),
            (
                SortByStaticFastValue::<i64>::for_field("opened_position"),
                Order::Asc,
            ),
        ));
        let hits = searcher.search(&page_query, &top).map_err(unavailable)?;
        let (total, aggregations) = searcher
            .search(&matching, &(Count, self.facet_collector()?))
            .map_err(unavailable)?;
        let mut documents = hits
            .iter()
            .map(|(_, address)| self.load(&searcher, *address))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if documents.len() > request.limit {
            documents.truncate(request.limit);
            documents.last().map(|last| request.sort.cursor_after(last))
        } else {
            None
        };
        Ok(SearchResults {
            hits: documents,
            total: total as u64,
            facets: facets_of(aggregations),
            next,
        })
    }

    fn facet_collector(&self) -> Result<AggregationCollector, BackendError> {
        let mut request = serde_json::Map::new();
        for facet in FACETS {
            let mut terms = serde_json::json!({ "field": facet, "size": FACET_SIZE });
            if facet == "assignee" || facet == "group" {
                terms["missing"] = NONE_BUCKET.into();
            }
            request.insert(facet.to_owned(), serde_json::json!({ "terms": terms }));
        }
        let aggregations: Aggregations = serde_json::from_value(request.into())
            .map_err(|e| BackendError::Rejected(e.to_string()))?;
        Ok(AggregationCollector::from_aggs(
            aggregations,
            AggContextParams::new(
                AggregationLimitsGuard::default(),
                self.index.tokenizers().clone(),
            ),
        ))
    }

    /// The query of the request, with the page's `search_after` condition when `paged`.
    fn query(
        &self,
        request: &SearchRequest,
        paged: bool,
    ) -> Result<Box<dyn TantivyQuery>, BackendError> {
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> =
            vec![(Occur::Must, Box::new(AllQuery))];
        if let Some(scope) = self.scope(&request.scope)? {
            clauses.push((Occur::Must, scope));
        }
        for clause in &request.query.clauses {
            let occur = if clause.negated {
                Occur::MustNot
            } else {
                Occur::Must
            };
            clauses.push((
                occur,
                self.condition(&clause.condition, request.include_internal)?,
            ));
        }
        if paged && let Some(after) = request.after {
            clauses.push((
                Occur::Must,
                self.after(request.sort.key_field(), request.sort.descending, after)?,
            ));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn scope(&self, scope: &Scope) -> Result<Option<Box<dyn TantivyQuery>>, BackendError> {
        Ok(match scope {
            Scope::All => None,
            Scope::Customer(id) => Some(self.term("requester_id", id)?),
            Scope::Groups(groups) => {
                let mut any: Vec<(Occur, Box<dyn TantivyQuery>)> = groups
                    .iter()
                    .map(|group| Ok((Occur::Should, self.term("group", group)?)))
                    .collect::<Result<_, BackendError>>()?;
                any.push((Occur::Should, self.missing("group")));
                Some(Box::new(BooleanQuery::new(any)))
            }
        })
    }

    fn term(&self, field: &str, value: &str) -> Result<Box<dyn TantivyQuery>, BackendError> {
        Ok(Box::new(TermQuery::new(
            Term::from_field_text(self.field(field)?, value),
            IndexRecordOption::Basic,
        )))
    }

    fn missing(&self, field: &str) -> Box<dyn TantivyQuery> {
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn TantivyQuery>),
            (
                Occur::MustNot,
                Box::new(ExistsQuery::new(field.to_owned(), false)),
            ),
        ]))
    }

    fn any_of(
        &self,
        field: &str,
        values: &[String],
    ) -> Result<Box<dyn TantivyQuery>, BackendError> {
        if values.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let any = values
            .iter()
            .map(|value| Ok((Occur::Should, self.term(field, value)?)))
            .collect::<Result<Vec<_>, BackendError>>()?;
        Ok(Box::new(BooleanQuery::new(any)))
    }

    fn range(&self, field: &str, range: TimeRange) -> Result<Box<dyn TantivyQuery>, BackendError> {
        let field = self.field(field)?;
        let from = range.from.map_or(Bound::Unbounded, |at| {
            Bound::Included(Term::from_field_i64(field, at.timestamp_micros()))
        });
        let until = range.until.map_or(Bound::Unbounded, |at| {
            Bound::Excluded(Term::from_field_i64(field, at.timestamp_micros()))
        });
        if from == Bound::Unbounded && until == Bound::Unbounded {
            return Ok(Box::new(ExistsQuery::new(
                self.index.schema().get_field_name(field).to_owned(),
                false,
            )));
        }
        Ok(Box::new(RangeQuery::new(from, until)))
    }

    /// Hits strictly after the cursor in the page order.
    fn after(
        &self,
        key_field: &str,
        descending: bool,
        after: Cursor,
    ) -> Result<Box<dyn TantivyQuery>, BackendError> {
        let key = self.field(key_field)?;
        let beyond = if descending {
            RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(Term::from_field_i64(key, after.key)),
            )
        } else {
            RangeQuery::new(
                Bound::Excluded(Term::from_field_i64(key, after.key)),
                Bound::Unbounded,
            )
        };
        let same_key_later = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_i64(key, after.key),
                    IndexRecordOption::Basic,
                )) as Box<dyn TantivyQuery>,
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Excluded(Term::from_field_i64(self.fields.opened_position, after.tie)),
                    Bound::Unbounded,
                )),
            ),
        ]);
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(beyond) as Box<dyn TantivyQuery>),
            (Occur::Should, Box::new(same_key_later)),
        ])))
    }

    fn text_fields(&self, include_internal: bool) -> Result<Vec<Field>, BackendError> {
        let internal = include_internal.then_some("internal_text");
        PUBLIC_TEXT_FIELDS
            .iter()
            .copied()
            .chain(internal)
            .map(|name| self.field(name))
            .collect()
    }

    fn tokens(&self, text: &str) -> Result<Vec<String>, BackendError> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get("default")
            .ok_or_else(|| BackendError::Rejected("no default tokenizer".into()))?;
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            tokens.push(token.text.clone());
        }
        Ok(tokens)
    }

    fn condition(
        &self,
        condition: &Condition,
        include_internal: bool,
    ) -> Result<Box<dyn TantivyQuery>, BackendError> {
        let fields = || self.text_fields(include_internal);
        Ok(match condition {
            Condition::Word(word) => {
                let tokens = self.tokens(word)?;
                if tokens.is_empty() {
                    return Ok(Box::new(EmptyQuery));
                }
                let fields = fields()?;
                // Every token, each in any text field.
                let all = tokens
                    .iter()
                    .map(|token| {
                        let any = fields
                            .iter()
                            .map(|field| {
                                (
                                    Occur::Should,
                                    Box::new(TermQuery::new(
                                        Term::from_field_text(*field, token),
                                        IndexRecordOption::WithFreqs,
                                    )) as Box<dyn TantivyQuery>,
                                )
                            })
                            .collect();
                        (
                            Occur::Must,
                            Box::new(BooleanQuery::new(any)) as Box<dyn TantivyQuery>,
                        )
                    })
                    .collect();
                Box::new(BooleanQuery::new(all))
            }
            Condition::Phrase(phrase) => {
                let tokens = self.tokens(phrase)?;
                if tokens.len() < 2 {
                    return self.condition(&Condition::Word(phrase.clone()), include_internal);
                }
                let any = fields()?
                    .into_iter()
                    .map(|field| {
                        let terms = tokens
                            .iter()
                            .map(|token| Term::from_field_text(field, token))
                            .collect();
                        (
                            Occur::Should,
                            Box::new(PhraseQuery::new(terms)) as Box<dyn TantivyQuery>,
                        )
                    })
                    .collect();
                Box::new(BooleanQuery::new(any))
            }
            Condition::Status(statuses) => {
                let names: Vec<String> = statuses.iter().map(wire_name).collect();
                self.any_of("status", &names)?
            }
            Condition::Priority(priorities) => {
                let names: Vec<String> = priorities.iter().map(wire_name).collect();
                self.any_of("priority", &names)?
            }
            Condition::Assignee(Some(assignee)) => self.term("assignee", assignee)?,
            Condition::Assignee(None) => self.missing("assignee"),
            Condition::Group(Some(group)) => self.term("group", group)?,
            Condition::Group(None) => self.missing("group"),
            Condition::Tag(tag) => self.term("tags", tag)?,
            Condition::RequesterId(id) => self.term("requester_id", id)?,
            Condition::RequesterEmail(email) => {
                self.term("requester_email", &email.to_lowercase())?
            }
            Condition::Channel(channel) => self.term("channel", &wire_name(channel))?,
            Condition::Created(range) => self.range("created_us", *range)?,
            Condition::Updated(range) => self.range("updated_us", *range)?,
            Condition::Solved(range) => self.range("solved_us", *range)?,
            Condition::Sla(state) => self.term("sla", &wire_name(state))?,
        })
    }
}

fn facets_of(results: AggregationResults) -> HashMap<String, Vec<FacetCount>> {
    let mut facets = HashMap::new();
    for facet in FACETS {
        let buckets = match results.0.get(facet) {
            Some(AggregationResult::BucketResult(BucketResult::Terms { buckets, .. })) => buckets
                .iter()
                .map(|bucket| FacetCount {
                    value: match &bucket.key {
                        Key::Str(text) => text.clone(),
                        other => format!("{other:?}"),
                    },
                    count: bucket.doc_count,
                })
                .collect(),
            _ => Vec::new(),
        };
        facets.insert(facet.to_owned(), order_buckets(buckets));
    }
    facets
}

impl TantivyBackend {
    /// Opens (or creates) the index under `root`, serving the generation `CURRENT` names.
    pub fn open(root: impl Into<PathBuf>) -> Result<TantivyBackend, BackendError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(unavailable)?;
        let number = match std::fs::read_to_string(root.join(CURRENT)) {
            Ok(current) => parse_generation(current.trim()).ok_or_else(|| {
                BackendError::Rejected(format!(
                    "{} does not name a generation (tickets_v<N>)",
                    root.join(CURRENT).display()
                ))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(root.join(CURRENT), "tickets_v1").map_err(unavailable)?;
                1
            }
            Err(error) => return Err(unavailable(error)),
        };
        let generation = if written_with_another_schema(&root, number)? {
            replace_outdated(&root, number)?
        } else {
            Generation::open(&root, number)?
        };
        Ok(TantivyBackend {
            root,
            generation: RwLock::new(Arc::new(generation)),
        })
    }

    fn current(&self) -> Result<Arc<Generation>, BackendError> {
        self.generation
            .read()
            .map(|generation| generation.clone())
            .map_err(|_| unavailable("the index lock is poisoned"))
    }

    /// The serving generation's number.
    pub fn generation_number(&self) -> Result<u64, BackendError> {
        Ok(self.current()?.number)
    }

    /// The checkpoint stored with the serving generation's last commit.
    pub fn checkpoint(&self) -> Result<Option<i64>, BackendError> {
        Ok(self.current()?.checkpoint())
    }

    /// A fresh, empty next generation beside the serving one; it serves nothing until
    /// [`TantivyBackend::promote`]d. Until then its writer must be the one that folds every
    /// document onto what the generation holds (the rebuild's replay): its writes are not
    /// checked against the stored versions.
    pub fn new_generation(&self) -> Result<TantivyBackend, BackendError> {
        let number = self.current()?.number + 1;
        let path = self.root.join(format!("tickets_v{number}"));
        if path.exists() {
            // Left over from an interrupted rebuild.
            std::fs::remove_dir_all(&path).map_err(unavailable)?;
        }
        let generation = Generation::open(&self.root, number)?;
        generation.sole_writer.store(true, Ordering::Release);
        Ok(TantivyBackend {
            root: self.root.clone(),
            generation: RwLock::new(Arc::new(generation)),
        })
    }

    /// Serves `next` from now on (both readers and writes), records it in `CURRENT`, and
    /// removes the previous generation's directory.
    pub fn promote(&self, next: TantivyBackend) -> Result<(), BackendError> {
        let next = next.current()?;
        // From now on the live projector writes it too.
        next.sole_writer.store(false, Ordering::Release);
        let previous = {
            let mut serving = self
                .generation
                .write()
                .map_err(|_| unavailable("the index lock is poisoned"))?;
            std::mem::replace(&mut *serving, next.clone())
        };
        point_current_at(&self.root, next.number)?;
        // Wait for in-flight writes to the old generation before removing it.
        drop(previous.writer.lock());
        let path = previous.path.clone();
        drop(previous);
        if let Err(error) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove the previous search generation");
        }
        Ok(())
    }
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix("tickets_v")?.parse().ok()
}

/// Rewrites `CURRENT` to name generation `number`, atomically (write beside, then rename).
fn point_current_at(root: &Path, number: u64) -> Result<(), BackendError> {
    let pointer = root.join(format!("{CURRENT}.tmp"));
    std::fs::write(&pointer, format!("tickets_v{number}")).map_err(unavailable)?;
    std::fs::rename(&pointer, root.join(CURRENT)).map_err(unavailable)
}

/// Serves an empty generation `number + 1` in place of the outdated generation `number`, which
/// is removed. Without a checkpoint, it is what start-up fills from the event store.
fn replace_outdated(root: &Path, number: u64) -> Result<Generation, BackendError> {
    let next = number + 1;
    tracing::warn!(
        outdated = number,
        next,
        "the search index was written with another schema (an older version); starting an \
         empty generation, which start-up fills from the event store"
    );
    let path = root.join(format!("tickets_v{next}"));
    if path.exists() {
        // Left over from an interrupted rebuild.
        std::fs::remove_dir_all(&path).map_err(unavailable)?;
    }
    let generation = Generation::open(root, next)?;
    point_current_at(root, next)?;
    let outdated = root.join(format!("tickets_v{number}"));
    if let Err(error) = std::fs::remove_dir_all(&outdated) {
        tracing::warn!(path = %outdated.display(), %error, "could not remove the outdated search generation");
    }
    Ok(generation)
}

/// Whether generation `number` holds an index whose schema is not [`schema`] (written by an
/// older version). A generation not created yet has none.
fn written_with_another_schema(root: &Path, number: u64) -> Result<bool, BackendError> {
    let path = root.join(format!("tickets_v{number}"));
    if !path.exists() {
        return Ok(false);
    }
    let directory = tantivy::directory::MmapDirectory::open(&path).map_err(unavailable)?;
    if !Index::exists(&directory).map_err(unavailable)? {
        return Ok(false);
    }
    let index = Index::open(directory).map_err(unavailable)?;
    Ok(index.schema() != schema())
}

/// Runs blocking index work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| unavailable(format!("index task failed: {e}")))?
}

#[async_trait]
impl SearchBackend for TantivyBackend {
    fn kind(&self) -> &'static str {
        "tantivy"
    }

    async fn get(&self, ids: &[String]) -> Result<HashMap<String, TicketDocument>, BackendError> {
        let generation = self.current()?;
        let ids = ids.to_vec();
        blocking(move || {
            let searcher = generation.reader.searcher();
            let mut found = HashMap::new();
            for id in ids {
                if let Some(document) = generation.stored(&searcher, &id)? {
                    found.insert(id, document);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn write(
        &self,
        documents: Vec<TicketDocument>,
        checkpoint: Option<i64>,
    ) -> Result<(), BackendError> {
        let generation = self.current()?;
        blocking(move || generation.write(documents, checkpoint)).await
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchResults, BackendError> {
        let generation = self.current()?;
        let request = request.clone();
        blocking(move || generation.search(&request)).await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        let generation = self.current()?;
        blocking(move || generation.clear()).await
    }
}
