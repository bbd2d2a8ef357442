//! `If-Match` (optimistic concurrency) and `Idempotency-Key` (safe retries) headers.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;

/// What the client's `If-Match` header allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`: write whatever the current version is.
    Absent,
    /// `If-Match: *`: the ticket must exist.
    Any,
    /// The ticket must be at one of these versions.
    Versions(Vec<u64>),
}

impl IfMatch {
    /// Whether a ticket at version `current` satisfies the header.
    pub fn matches(&self, current: u64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&current),
        }
    }

    /// Parses a header value: `*` or a comma-separated list of strong entity tags `"<n>"`.
    /// Weak tags (`W/"n"`) never match under If-Match's strong comparison (RFC 9110 §13.1.1).
    pub fn parse(value: &str) -> Result<IfMatch, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        for tag in value.split(',').map(str::trim) {
            if tag.starts_with("W/\"") && tag.ends_with('"') && tag.len() >= 4 {
                continue;
            }
            let inner = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| format!("{tag:?} is not a quoted entity tag like \"3\""))?;
            // An entity tag that is not one of our versions is valid syntax that matches nothing.
            if let Ok(version) = inner.parse::<u64>() {
                versions.push(version);
            }
        }
        Ok(IfMatch::Versions(versions))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch::Absent);
        };
        let invalid = |detail: String| ApiError::InvalidHeader {
            name: "If-Match",
            detail,
        };
        let text = value
            .to_str()
            .map_err(|_| invalid("must be visible ASCII".into()))?;
        IfMatch::parse(text).map_err(invalid)
    }
}

/// The optional `Idempotency-Key` of a POST: 1–255 visible ASCII characters or spaces.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let bytes = value.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 255
            && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        match value.to_str() {
            Ok(key) if valid => Ok(IdempotencyKey(Some(key.to_owned()))),
            _ => Err(ApiError::InvalidHeader {
                name: "Idempotency-Key",
                detail: "must be 1 to 255 visible ASCII characters or spaces".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IfMatch;

    #[test]
    fn it_parses_star_lists_and_weak_tags() {
        assert_eq!(IfMatch::parse("*"), Ok(IfMatch::Any));
        assert_eq!(
            IfMatch::parse("\"3\", W/\"4\", \"x\""),
            Ok(IfMatch::Versions(vec![3]))
        );
        assert!(IfMatch::parse("3").is_err());
        assert!(!IfMatch::parse("W/\"4\"").unwrap().matches(4));
    }
}
