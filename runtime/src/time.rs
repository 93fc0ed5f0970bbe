//! Times as docker shows them: RFC 3339 timestamps with nanoseconds (records, logs, events)
//! and human durations ("5 seconds", "About an hour"). A leaf: it imports nothing of the crate.

/// Current time as docker prints it: RFC 3339 UTC with nanoseconds, trailing zeros trimmed.
pub fn now_rfc3339() -> String {
    format_time(chrono::Utc::now())
}

/// Formats a UTC time like Go's RFC3339Nano.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

/// Parses an RFC 3339 time; None for docker's zero time or garbage.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if s.starts_with("0001-") {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// docker's human durations ("5 seconds", "About a minute", "3 hours").
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s / 60 == 1 {
        "About a minute".into()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else if (s as f64 / 3600.0).round() as i64 == 1 {
        "About an hour".into()
    } else if s < 48 * 3600 {
        format!("{} hours", (s as f64 / 3600.0).round() as i64)
    } else if s < 7 * 24 * 3600 * 2 {
        format!("{} days", s / 86400)
    } else if s < 24 * 3600 * 30 * 3 {
        format!("{} weeks", s / (7 * 86400))
    } else if s < 24 * 3600 * 365 * 2 {
        format!("{} months", s / (30 * 86400))
    } else {
        format!("{} years", s / (365 * 86400))
    }
}
