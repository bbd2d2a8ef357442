//! The compliance report as CSV (RFC 4180), for `Accept: text/csv`.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ComplianceReport;

const CSV: &str = "text/csv";

/// Whether the client asked for CSV.
pub(super) fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim() == CSV))
}

/// The report as `text/csv; charset=utf-8`, one line per row after the header.
pub(super) fn csv_response(report: &ComplianceReport) -> Response {
    let mut text = String::from(
        "key,total,achieved,breached,in_progress,compliance_pct,median_business_minutes,p90_business_minutes\n",
    );
    let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    for row in &report.rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(row.key.as_deref().unwrap_or("")),
            row.total,
            row.achieved,
            row.breached,
            row.in_progress,
            number(row.compliance_pct),
            number(row.median_business_minutes),
            number(row.p90_business_minutes),
        ));
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading `=`,
/// `+`, `-` or `@` is prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(raw: &str) -> String {
    let safe = if raw.starts_with(['=', '+', '-', '@']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("vip"), "vip");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
