//! Time and duration arguments as docker takes them (`--since`, `--until`, `--health-interval`).

/// A `--since`/`--until` value as unix nanoseconds: RFC 3339, unix seconds, or a duration back
/// from now (`10m`); anything else is a command-line error.
pub fn parse_time_arg(s: &str) -> anyhow::Result<i128> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0) as i128);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i128);
    }
    let d = parse_duration(s).map_err(|_| super::ExitWith {
        code: super::EXIT_USAGE,
        message: format!("invalid time {s:?}: use RFC 3339, unix seconds or a duration like 10m"),
    })?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
    Ok(now - d as i128)
}

/// Parses Go-style durations (`1h2m3s`, `500ms`, `1.5s`, plain seconds) into nanoseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok((n * 1e9) as i64);
    }
    compose_spec::convert::parse_go_duration(s)
        .ok_or_else(|| anyhow::anyhow!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), 1_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("5x").is_err());
    }
}
