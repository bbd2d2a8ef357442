//! `JsonBody<T>`: the only way a command body enters the API.
//!
//! It enforces, in this order: a JSON content type (415), at most 1 MiB (413), well-formed JSON
//! (400) and the request's shape (422, with the JSON Pointer of each offending field). It keeps
//! the raw bytes too, so that idempotency can compare request bodies.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use helpdesk_domain::validation::Violations;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A parsed JSON body together with its raw bytes.
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The deserialized request.
    pub value: T,
    /// The body as received.
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = read_limited(request.into_body()).await?;
        let value = parse(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

fn has_json_content_type(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_limited(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Err(error) => Err(ApiError::MalformedJson(format!(
            "could not read the request body: {error}"
        ))),
    }
}

/// Parses `raw` as JSON into `T`: syntax errors are 400, shape errors 422.
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let value = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => return Err(shape_or_syntax_error(error)),
    };
    deserializer
        .end()
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    Ok(value)
}

fn shape_or_syntax_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let pointer = json_pointer(error.path());
    let inner = error.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(inner.to_string())
        }
        Category::Data => ApiError::Validation(describe_data_error(&pointer, &inner)),
    }
}

/// Turns a serde "data" error into a field violation with a useful pointer and code.
fn describe_data_error(pointer: &str, error: &serde_json::Error) -> Violations {
    // serde_json appends " at line X column Y"; the pointer says where, so drop it.
    let message = error.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    let mut violations = Violations::default();
    if let Some(field) = backticked(&message, "missing field `") {
        violations.add(format!("{pointer}/{field}"), "required", message.clone());
    } else if backticked(&message, "unknown field `").is_some() {
        // serde_path_to_error already counts the unknown key as part of the path.
        violations.add(pointer, "unknown_field", message.clone());
    } else {
        violations.add(pointer, "invalid_value", message);
    }
    violations
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// `requester.customer_id` → `/requester/customer_id`, `tags[2]` → `/tags/2` (RFC 6901).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        let token = match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.replace('~', "~0").replace('/', "~1"),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        pointer.push('/');
        pointer.push_str(&token);
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        tags: Vec<u8>,
    }

    fn violation(raw: &str) -> (String, String) {
        match parse::<Sample>(raw.as_bytes()) {
            Err(ApiError::Validation(v)) => (v.0[0].pointer.clone(), v.0[0].code.clone()),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn it_points_at_the_element_with_the_wrong_type() {
        let (pointer, code) = violation(r#"{"name":"a","tags":[1,"x"]}"#);
        assert_eq!(
            (pointer.as_str(), code.as_str()),
            ("/tags/1", "invalid_value")
        );
    }

    #[test]
    fn it_names_missing_and_unknown_fields() {
        assert_eq!(
            violation(r#"{"tags":[]}"#),
            ("/name".into(), "required".into())
        );
        assert_eq!(
            violation(r#"{"name":"a","tags":[],"nope":1}"#),
            ("/nope".into(), "unknown_field".into())
        );
    }

    #[test]
    fn it_calls_broken_or_trailing_json_malformed() {
        for raw in ["{", "", r#"{"name":"a","tags":[]} x"#, r#"{"name":"#] {
            assert!(matches!(
                parse::<Sample>(raw.as_bytes()),
                Err(ApiError::MalformedJson(_))
            ));
        }
    }
}
