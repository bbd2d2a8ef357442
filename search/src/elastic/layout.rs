//! Index names, the mapping, and the alias bookkeeping behind zero-downtime rebuilds.
//!
//! Pure: request bodies and response parsers, no HTTP.

use serde_json::{Map, Value, json};

use crate::backend::BackendError;

/// The index mapping (`dynamic: strict`), shared with anyone who creates the index by hand.
const MAPPING: &str = include_str!("../../../schemas/search/tickets.mapping.json");

/// The parsed mapping.
pub(crate) fn mapping() -> Result<Value, BackendError> {
    serde_json::from_str(MAPPING)
        .map_err(|e| BackendError::Rejected(format!("the bundled index mapping is not JSON: {e}")))
}

/// Lower-cases `prefix` and checks it can start an index name.
///
/// Besides Elasticsearch's own rules (no `\ / * ? " < > | , #`, spaces or `:`; no leading
/// `_`, `-` or `+`), the prefix is kept to `[a-z0-9_.-]` without a leading `.` (hidden
/// indices), so the `<prefix>_tickets_v*` wildcard only ever matches our own names.
pub(crate) fn normalize_prefix(prefix: &str) -> Result<String, BackendError> {
    let prefix = prefix.trim().to_lowercase();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    let valid = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix.chars().all(allowed)
        && !prefix.starts_with(['_', '-', '+', '.']);
    if valid {
        Ok(prefix)
    } else {
        Err(BackendError::Rejected(format!(
            "{prefix:?} cannot prefix an Elasticsearch index name (use lower-case letters, digits, `_`, `-`, `.`)"
        )))
    }
}

/// The alias readers and the live projector use: `<prefix>_tickets`.
pub(crate) fn alias_name(prefix: &str) -> String {
    format!("{prefix}_tickets")
}

/// Generation `number`'s physical index: `<prefix>_tickets_v<number>`.
pub(crate) fn generation_name(prefix: &str, number: u64) -> String {
    format!("{prefix}_tickets_v{number}")
}

/// A wildcard expression matching every generation (and, harmlessly, a few other names that
/// [`generation_of`] then ignores).
pub(crate) fn generation_pattern(prefix: &str) -> String {
    format!("{prefix}_tickets_v*")
}

/// The generation number of a physical index name, when it is exactly
/// `<prefix>_tickets_v<digits>` (no sign, no leading zero).
pub(crate) fn generation_of(prefix: &str, index: &str) -> Option<u64> {
    let digits = index.strip_prefix(&format!("{prefix}_tickets_v"))?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

/// The generations that exist and which of them the alias points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Every existing generation number, ascending.
    pub generations: Vec<u64>,
    /// The physical indices carrying the alias (normally exactly one), sorted.
    pub serving: Vec<String>,
}

impl Layout {
    /// The number the next generation gets: one past the highest that exists.
    pub fn next_generation(&self) -> u64 {
        self.generations.last().map_or(1, |highest| highest + 1)
    }
}

/// Reads a `GET /<prefix>_tickets_v*/_alias` response: an object keyed by index name, each
/// with an `aliases` object (empty for an index without aliases).
pub(crate) fn parse_layout(prefix: &str, response: &Value) -> Result<Layout, BackendError> {
    let alias = alias_name(prefix);
    let indices = response.as_object().ok_or_else(|| {
        BackendError::Rejected(format!("unexpected get-alias response: {response}"))
    })?;
    let mut layout = Layout::default();
    for (index, entry) in indices {
        let Some(number) = generation_of(prefix, index) else {
            continue;
        };
        layout.generations.push(number);
        let carries_alias = entry
            .get("aliases")
            .and_then(Value::as_object)
            .is_some_and(|aliases| aliases.contains_key(&alias));
        if carries_alias {
            layout.serving.push(index.clone());
        }
    }
    layout.generations.sort_unstable();
    layout.serving.sort();
    Ok(layout)
}

/// The body of `PUT /<index>`: the mapping, and the alias (as the write index) when given, so
/// a first generation is created and made serving in one step.
pub(crate) fn create_index_body(mapping: Value, alias: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("mappings".into(), mapping);
    if let Some(alias) = alias {
        body.insert(
            "aliases".into(),
            json!({ alias: { "is_write_index": true } }),
        );
    }
    Value::Object(body)
}

/// The body of `POST /_aliases` moving `alias` from `old` to `new` in one atomic step.
///
/// `must_exist` makes the whole request fail (and change nothing) if another process moved
/// the alias since `old` was read.
pub(crate) fn swap_alias_body(alias: &str, old: &[String], new: &str) -> Value {
    let mut actions: Vec<Value> = old
        .iter()
        .map(|index| json!({ "remove": { "index": index, "alias": alias, "must_exist": true } }))
        .collect();
    actions.push(json!({ "add": { "index": new, "alias": alias, "is_write_index": true } }));
    json!({ "actions": actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        assert_eq!(normalize_prefix(" HelpDesk ").unwrap(), "helpdesk");
        assert_eq!(alias_name("helpdesk"), "helpdesk_tickets");
        assert_eq!(generation_name("helpdesk", 3), "helpdesk_tickets_v3");
        assert_eq!(generation_pattern("helpdesk"), "helpdesk_tickets_v*");
        for bad in ["", "_x", "-x", ".x", "a b", "a*", "a,b", "a/b", "a:b"] {
            assert!(
                matches!(normalize_prefix(bad), Err(BackendError::Rejected(_))),
                "{bad:?} accepted"
            );
        }
        assert_eq!(normalize_prefix("stage-2.eu_x").unwrap(), "stage-2.eu_x");
    }

    #[test]
    fn generation_numbers_are_parsed_strictly() {
        assert_eq!(generation_of("hd", "hd_tickets_v1"), Some(1));
        assert_eq!(generation_of("hd", "hd_tickets_v12"), Some(12));
        assert_eq!(generation_of("hd", "hd_tickets_v"), None);
        assert_eq!(generation_of("hd", "hd_tickets_v01"), None);
        assert_eq!(generation_of("hd", "hd_tickets_v1_old"), None);
        assert_eq!(generation_of("hd", "hd_tickets_v+1"), None);
        assert_eq!(generation_of("hd", "hd_tickets"), None);
        assert_eq!(generation_of("hd", "other_tickets_v1"), None);
        assert_eq!(
            generation_of("hd", "hd_tickets_v99999999999999999999999"),
            None
        );
    }

    #[test]
    fn layout_from_a_get_alias_response() {
        // GET /hd_tickets_v*/_alias?expand_wildcards=all, mid-rebuild: v2 serves, v3 is being
        // filled, and a stray index matched the wildcard.
        let response = json!({
            "hd_tickets_v3": { "aliases": {} },
            "hd_tickets_v2": {
                "aliases": { "hd_tickets": { "is_write_index": true } }
            },
            "hd_tickets_v2_backup": { "aliases": { "hd_tickets": {} } },
            "hd_tickets_v10": { "aliases": { "something_else": {} } }
        });
        let layout = parse_layout("hd", &response).unwrap();
        assert_eq!(layout.generations, vec![2, 3, 10]);
        assert_eq!(layout.serving, vec!["hd_tickets_v2".to_owned()]);
        assert_eq!(layout.next_generation(), 11);

        let empty = parse_layout("hd", &json!({})).unwrap();
        assert_eq!(empty, Layout::default());
        assert_eq!(empty.next_generation(), 1);

        assert!(matches!(
            parse_layout("hd", &json!([1])),
            Err(BackendError::Rejected(_))
        ));
    }

    #[test]
    fn create_body_embeds_the_mapping_and_optionally_the_alias() {
        let body = create_index_body(mapping().unwrap(), Some("hd_tickets"));
        assert_eq!(body["mappings"]["dynamic"], "strict");
        assert_eq!(body["aliases"]["hd_tickets"]["is_write_index"], true);
        let body = create_index_body(mapping().unwrap(), None);
        assert!(body.get("aliases").is_none());
        assert_eq!(body.as_object().unwrap().len(), 1);
    }

    #[test]
    fn swap_body_removes_then_adds_in_one_request() {
        let body = swap_alias_body("hd_tickets", &["hd_tickets_v1".to_owned()], "hd_tickets_v2");
        assert_eq!(
            body,
            json!({ "actions": [
                { "remove": { "index": "hd_tickets_v1", "alias": "hd_tickets", "must_exist": true } },
                { "add": { "index": "hd_tickets_v2", "alias": "hd_tickets", "is_write_index": true } }
            ]})
        );
        let first = swap_alias_body("hd_tickets", &[], "hd_tickets_v1");
        assert_eq!(first["actions"].as_array().unwrap().len(), 1);
        assert_eq!(first["actions"][0]["add"]["index"], "hd_tickets_v1");
    }
}
