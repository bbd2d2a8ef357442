//! Field-level validation of command input.
//!
//! Every rule reports the JSON Pointer (RFC 6901) of the request field it concerns, a stable
//! machine-readable `code` and a human message, so that the API can answer a 422 listing every
//! broken field at once instead of stopping at the first.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest subject, in characters, after trimming.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest description or interaction body, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 50;
/// Most tags one ticket may carry.
pub const MAX_TAGS_PER_TICKET: usize = 50;
/// Longest id of a customer, agent or group.
pub const MAX_ID_CHARS: usize = 100;
/// Longest display name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// One broken rule on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldViolation {
    /// JSON Pointer to the offending field of the request body, e.g. `/requester/email`.
    pub pointer: String,
    /// Stable code of the rule, e.g. `too_long`.
    pub code: String,
    /// Human explanation.
    pub detail: String,
}

/// Every rule a command broke. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// Records a broken rule.
    pub fn add(&mut self, pointer: impl Into<String>, code: &str, detail: impl Into<String>) {
        self.0.push(FieldViolation {
            pointer: pointer.into(),
            code: code.to_owned(),
            detail: detail.into(),
        });
    }

    /// True when no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no rule was broken, the violations otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.pointer, v.detail))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// True for characters we never store: every Unicode control character (category Cc, which
/// includes NUL and the C1 range) except newline and tab.
fn is_forbidden_char(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Normalises line endings of multi-line text: `\r\n` and a lone `\r` become `\n`.
///
/// Browsers submit textareas with CRLF and mail clients send CRLF; storing them as typed would
/// reject every such request under the "no control characters" rule, so we normalise first.
pub fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Checks a subject: 1–200 characters after trimming, a single line, no control characters.
/// Returns the trimmed subject.
pub fn subject(raw: &str, pointer: &str, errors: &mut Violations) -> String {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        errors.add(pointer, "required", "subject must not be empty");
    } else if chars > MAX_SUBJECT_CHARS {
        errors.add(
            pointer,
            "too_long",
            format!("subject has {chars} characters; the limit is {MAX_SUBJECT_CHARS}"),
        );
    }
    if trimmed.chars().any(char::is_control) {
        errors.add(
            pointer,
            "control_character",
            "subject must be a single line without control characters",
        );
    }
    trimmed.to_owned()
}

/// Checks multi-line text (description, reply body): at most 64 KiB, no control characters
/// other than newline and tab. Returns the text with normalised line endings.
pub fn long_text(raw: &str, pointer: &str, required: bool, errors: &mut Violations) -> String {
    let text = normalize_newlines(raw);
    if required && text.trim().is_empty() {
        errors.add(pointer, "required", "must not be empty");
    }
    if text.len() > MAX_TEXT_BYTES {
        errors.add(
            pointer,
            "too_long",
            format!(
                "text has {} bytes of UTF-8; the limit is {MAX_TEXT_BYTES}",
                text.len()
            ),
        );
    }
    if text.chars().any(is_forbidden_char) {
        errors.add(
            pointer,
            "control_character",
            "text may not contain NUL or control characters other than newline and tab",
        );
    }
    text
}

/// Checks an id of a customer, agent or group: 1–100 characters, no whitespace at either end,
/// no control characters.
pub fn id(raw: &str, pointer: &str, errors: &mut Violations) {
    let chars = raw.chars().count();
    if chars == 0 {
        errors.add(pointer, "required", "id must not be empty");
    } else if chars > MAX_ID_CHARS {
        errors.add(
            pointer,
            "too_long",
            format!("id has {chars} characters; the limit is {MAX_ID_CHARS}"),
        );
    }
    if raw.trim() != raw {
        errors.add(
            pointer,
            "surrounding_whitespace",
            "id must not start or end with whitespace",
        );
    }
    if raw.chars().any(char::is_control) {
        errors.add(
            pointer,
            "control_character",
            "id must not contain control characters",
        );
    }
}

/// Checks a display name: at most 200 characters, no control characters. Returns it trimmed.
pub fn name(raw: &str, pointer: &str, errors: &mut Violations) -> String {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars > MAX_NAME_CHARS {
        errors.add(
            pointer,
            "too_long",
            format!("name has {chars} characters; the limit is {MAX_NAME_CHARS}"),
        );
    }
    if trimmed.chars().any(char::is_control) {
        errors.add(
            pointer,
            "control_character",
            "name must not contain control characters",
        );
    }
    trimmed.to_owned()
}

/// Checks an email address loosely: `local@domain`, no whitespace or control characters, at
/// most 254 characters. Deliverability is not our business; obvious typos are.
pub fn email(raw: &str, pointer: &str, errors: &mut Violations) -> String {
    let trimmed = raw.trim();
    let well_formed = match trimmed.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
        }
        None => false,
    };
    if !well_formed || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add(
            pointer,
            "invalid_email",
            "email must look like name@example.org",
        );
    }
    if trimmed.chars().count() > MAX_EMAIL_CHARS {
        errors.add(
            pointer,
            "too_long",
            format!("email is longer than {MAX_EMAIL_CHARS} characters"),
        );
    }
    trimmed.to_owned()
}

/// Checks one tag: lowercase `[a-z0-9_-]`, 1–50 characters.
pub fn tag(raw: &str, pointer: &str, errors: &mut Violations) {
    let valid_chars = raw
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_TAG_CHARS || !valid_chars {
        errors.add(
            pointer,
            "invalid_tag",
            format!("tags are 1 to {MAX_TAG_CHARS} characters of a-z, 0-9, '_' and '-'"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_lone_cr_become_newlines() {
        assert_eq!(normalize_newlines("a\r\nb\rc\n"), "a\nb\nc\n");
    }

    #[test]
    fn it_counts_subject_length_in_characters_not_bytes() {
        let mut errors = Violations::default();
        subject(&"é".repeat(200), "/subject", &mut errors);
        assert!(errors.is_empty());
        subject(&"é".repeat(201), "/subject", &mut errors);
        assert_eq!(errors.0[0].code, "too_long");
    }

    #[test]
    fn it_rejects_c1_control_characters_in_text() {
        let mut errors = Violations::default();
        long_text("ok\u{85}", "/body", true, &mut errors);
        assert_eq!(errors.0[0].code, "control_character");
    }

    #[test]
    fn it_accepts_tabs_and_newlines_in_text() {
        let mut errors = Violations::default();
        long_text("line one\n\tline two\r\n", "/body", true, &mut errors);
        assert!(errors.is_empty());
    }

    #[test]
    fn it_rejects_uppercase_and_overlong_tags() {
        for bad in ["Urgent", "", "a b", &"x".repeat(51), "ünï"] {
            let mut errors = Violations::default();
            tag(bad, "/tags/0", &mut errors);
            assert_eq!(errors.0.len(), 1, "{bad:?} should be rejected");
        }
        let mut errors = Violations::default();
        tag("billing_2-eu", "/tags/0", &mut errors);
        assert!(errors.is_empty());
    }

    #[test]
    fn it_rejects_malformed_emails() {
        for bad in [
            "nobody",
            "@example.org",
            "a@b",
            "a b@example.org",
            "a@@b.org",
        ] {
            let mut errors = Violations::default();
            email(bad, "/email", &mut errors);
            assert!(!errors.is_empty(), "{bad:?} should be rejected");
        }
    }
}
