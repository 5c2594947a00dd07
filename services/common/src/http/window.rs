//! A time window from a query's `start` and `end` (Nova's simple tenant usage form:
//! ISO 8601, UTC when no offset is given), as usage reports take it.

use super::{ApiError, ApiResult};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// `start` and `end` from the query; a missing `start` is `default_span` before now, a
/// missing `end` is now. A start after the end, or a time that does not parse, is 400.
pub fn window(q: &HashMap<String, String>, default_span: Duration) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let now = Utc::now();
    let parse = |k: &str, d: DateTime<Utc>| -> ApiResult<DateTime<Utc>> {
        match q.get(k) {
            None => Ok(d),
            Some(t) => {
                let t2 = if t.ends_with('Z') || t.contains('+') { t.clone() } else { format!("{t}Z") };
                crate::db::parse_time(&t2).ok_or_else(|| ApiError::bad_request(format!("Invalid {k}: {t}")))
            }
        }
    };
    let start = parse("start", now - default_span)?;
    let end = parse("end", now)?;
    if start > end {
        return Err(ApiError::bad_request("Invalid start time. The start time cannot occur after the end time."));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_default_parse_and_refuse() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (s, e) = window(&q(&[]), Duration::days(1)).unwrap();
        assert_eq!((e - s).num_hours(), 24);
        let (s, e) =
            window(&q(&[("start", "2026-01-01T00:00:00"), ("end", "2026-01-02T00:00:00Z")]), Duration::days(1))
                .unwrap();
        assert_eq!((e - s).num_hours(), 24);
        assert!(window(&q(&[("start", "yesterday")]), Duration::days(1)).is_err());
        assert!(
            window(&q(&[("start", "2026-01-03T00:00:00"), ("end", "2026-01-02T00:00:00")]), Duration::days(1)).is_err()
        );
    }
}
