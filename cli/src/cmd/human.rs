//! Docker's human-readable sizes and ages for image listings (`4.26MB`, `3 weeks ago`), shared
//! by `image ls`, `image history`, `image pull` and the prune reports.

/// Docker's human size: decimal units, three significant digits (`4.26MB`).
pub fn human_size(n: u64) -> String {
    super::system::human_size_with_precision(n, 3)
}

/// Docker's "3 weeks ago" style.
pub fn human_since(ts: i64) -> String {
    if ts <= 0 {
        return "N/A".to_string();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let secs = (now - ts).max(0);
    let d = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        0 => "Less than a second ago".into(),
        s if s < 60 => d(s, "second"),
        s if s < 120 => "About a minute ago".into(),
        s if s < 3600 => d(s / 60, "minute"),
        s if s < 7200 => "About an hour ago".into(),
        s if s < 48 * 3600 => d(s / 3600, "hour"),
        s if s < 14 * 86400 => d(s / 86400, "day"),
        s if s < 60 * 86400 => d(s / (7 * 86400), "week"),
        s if s < 2 * 365 * 86400 => d(s / (30 * 86400), "month"),
        s => d(s / (365 * 86400), "year"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_263_000), "4.26MB");
        assert_eq!(human_size(42_630_000), "42.6MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(123_456_789_000), "123GB");
    }
}
