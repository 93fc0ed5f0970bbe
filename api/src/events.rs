//! `GET /events`: docker's events, streamed as JSON lines, from the state root's event journal
//! (`berth_runtime::events`), which every berth process appends to where it acts: the CLI
//! without the service, the service itself and the containers' monitors. `since` replays what
//! the journal still holds (its two rotated files, at most 2 MiB together), then the stream
//! follows new lines; `until` ends it (at once after the replay when it is in the past).
//! New lines are noticed by inotify on the root directory, so an event reaches the client
//! within a millisecond of being appended; a slow look every second is the fallback.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::events::{JournalEvent, JournalReader};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::http::{ApiError, Query, R};
use crate::state::State;

/// How often the journal is looked at for new lines when inotify said nothing (or could not
/// be set up).
const POLL: Duration = Duration::from_secs(1);

/// An inotify instance as tokio's `AsyncFd` wants it.
struct InotifyFd(nix::sys::inotify::Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Wakes the stream when the journal (`events.jsonl`, or its rotation) changes.
struct JournalWake(tokio::io::unix::AsyncFd<InotifyFd>);

impl JournalWake {
    /// Watches `root`; None when inotify is unavailable (the fallback look still runs).
    fn new(root: &Path) -> Option<JournalWake> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let what = AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE;
        ino.add_watch(root, what).ok()?;
        let ino = InotifyFd(ino);
        // SAFETY: `InotifyFd` owns the inotify descriptor (nix's `Inotify` holds an `OwnedFd`)
        // and never replaces it, so the fd stays open and the same for the AsyncFd's lifetime.
        let afd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(ino, tokio::io::Interest::READABLE)
        };
        afd.ok().map(JournalWake)
    }

    /// Returns when the journal may have new lines (never, if the watch broke).
    async fn changed(&self) {
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                return std::future::pending().await;
            };
            match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => {
                    let journal = |e: &nix::sys::inotify::InotifyEvent| {
                        e.name
                            .as_ref()
                            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"events.jsonl"))
                    };
                    if events.iter().any(journal) {
                        return;
                    }
                }
                Ok(Err(_)) => return std::future::pending().await,
                Err(_would_block) => {}
            }
        }
    }
}

/// Waits for `wake` (forever without one).
async fn journal_changed(wake: &Option<JournalWake>) {
    match wake {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// Waits until `until` (forever without one).
async fn until_passes(until: Option<DateTime<Utc>>) {
    match until.and_then(|u| (u - Utc::now()).to_std().ok()) {
        Some(left) => tokio::time::sleep(left).await,
        None if until.is_some() => {}
        None => std::future::pending().await,
    }
}

/// docker's event filters (`type`, `event`, `container`, `image`, `label`, `network`,
/// `volume`, `scope`), applied as dockerd does.
struct Filter(HashMap<String, Vec<String>>);

impl Filter {
    /// None when the filter is not given; else whether any value passes `f`.
    fn any(&self, k: &str, f: impl Fn(&str) -> bool) -> bool {
        self.0.get(k).is_none_or(|vals| vals.is_empty() || vals.iter().any(|v| f(v)))
    }

    /// dockerd's fuzzy match: a value equal to or a prefix of the actor's id or name.
    fn fuzzy(&self, k: &str, ev: &JournalEvent) -> bool {
        let name = ev.attributes.get("name").map(String::as_str).unwrap_or_default();
        self.any(k, |v| ev.id.starts_with(v) || (!name.is_empty() && name.starts_with(v)))
    }

    fn pass(&self, ev: &JournalEvent) -> bool {
        let base = ev.action.split(':').next().unwrap_or(&ev.action);
        // An image event names its image in `name`; any other names its image in `image`.
        let image = ev.attributes.get(if ev.kind == "image" { "name" } else { "image" });
        let untagged = |s: &str| s.rsplit_once(':').map(|(a, _)| a.to_string());
        let image_match = |v: &str| {
            let ids = [Some(ev.id.clone()), image.cloned()];
            ids.iter().flatten().any(|s| s == v || untagged(s).is_some_and(|u| u == v))
        };
        self.any("type", |v| v == ev.kind)
            && self.any("event", |v| v == base || v == ev.action)
            && self.any("scope", |v| v == "local")
            && self.fuzzy("container", ev)
            && self.fuzzy("network", ev)
            && self.fuzzy("volume", ev)
            && self.any("image", image_match)
            && self.0.get("label").is_none_or(|vals| {
                vals.iter().all(|f| match f.split_once('=') {
                    Some((k, v)) => ev.attributes.get(k).is_some_and(|x| x == v),
                    None => ev.attributes.contains_key(f.as_str()),
                })
            })
    }
}

/// docker's event message: `Type`, `Action`, `Actor`, `scope`, `time`, `timeNano`, and for
/// container and image events the older `status`, `id`, `from`.
fn event_json(ev: &JournalEvent) -> Bytes {
    let mut v = serde_json::json!({
        "Type": ev.kind, "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": ev.attributes}, "scope": "local",
        "time": ev.time.timestamp(), "timeNano": ev.time.timestamp_nanos_opt().unwrap_or(0),
    });
    if let Some(obj) = v.as_object_mut()
        && matches!(ev.kind.as_str(), "container" | "image")
    {
        obj.insert("status".into(), ev.action.clone().into());
        obj.insert("id".into(), ev.id.clone().into());
        if let Some(img) = ev.attributes.get("image").filter(|_| ev.kind == "container") {
            obj.insert("from".into(), img.clone().into());
        }
    }
    Bytes::from(format!("{v}\n"))
}

/// A Go duration as the docker CLI and dockerd accept them (`10m`, `1h30m`, `1.5s`, `300ms`).
fn go_duration(s: &str) -> Option<chrono::Duration> {
    compose_spec::convert::parse_go_duration(s).map(chrono::Duration::nanoseconds)
}

/// A `since`/`until` value in dockerd's forms: unix seconds with an optional fraction (what the
/// docker CLI and docker-py send: `1700000000.000000000`), RFC 3339 with or without a zone
/// (`2026-12-07T10:00:00Z`, `2026-12-07T10:00:00`, `2026-12-07`) or a duration before `now`
/// (`10m`).
fn parse_time(v: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(s) = v.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let bad = || ApiError::bad(format!("invalid time {s:?}: use unix seconds, RFC 3339 or 10m"));
    if let Some(d) = go_duration(s) {
        return Ok(Some(now - d));
    }
    if let Some((sec, frac)) = s.split_once('.').or(Some((s, "")))
        && !sec.is_empty()
        && sec.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let secs: i64 = sec.parse().map_err(|_| bad())?;
        // The fraction as nanoseconds: `.5` is half a second, digits past nine are dropped.
        let nanos: u32 =
            format!("{:0<9}", &frac[..frac.len().min(9)]).parse().map_err(|_| bad())?;
        return DateTime::from_timestamp(secs, nanos).map(Some).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(Some(t.and_utc()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(bad())
}

/// Streams events until the client goes or `until` passes: with `since`, first the journaled
/// ones from then on.
pub async fn events(state: Arc<State>, q: &Query) -> R {
    let filter = Filter(q.filters()?);
    let now = Utc::now();
    let since = parse_time(q.get("since"), now)?;
    let until = parse_time(q.get("until"), now)?;
    if let (Some(s), Some(u)) = (since, until)
        && u < s
    {
        return Err(ApiError::bad("`since` time must be before `until`"));
    }
    let root: PathBuf = state.engine.root().path().to_path_buf();
    // Watched, then opened, before answering: an event made after the response began is never
    // missed, and none appended between opening and watching waits for the fallback look.
    let wake = JournalWake::new(&root);
    let (mut journal, past) =
        tokio::task::spawn_blocking(move || JournalReader::with_history(&root))
            .await
            .map_err(|e| ApiError::internal(format!("reading the event journal: {e}")))?;
    let (tx, resp) = crate::stream::channel_body("application/json");
    let guard = state.activity.enter();
    let in_range = move |ev: &JournalEvent| {
        since.is_none_or(|s| ev.time >= s) && until.is_none_or(|u| ev.time <= u)
    };
    tokio::spawn(async move {
        let _guard = guard;
        if since.is_some() {
            for ev in past.iter().filter(|e| in_range(e) && filter.pass(e)) {
                if tx.send(event_json(ev)).await.is_err() {
                    return;
                }
            }
        }
        let mut tick = tokio::time::interval(POLL);
        loop {
            if until.is_some_and(|u| Utc::now() > u) {
                // The last lines written before `until` are still sent.
                for ev in journal.read_new().iter().filter(|e| in_range(e) && filter.pass(e)) {
                    let _ = tx.send(event_json(ev)).await;
                }
                return;
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = journal_changed(&wake) => {}
                _ = until_passes(until) => {}
                _ = tx.closed() => return,
            }
            for ev in journal.read_new().iter().filter(|e| in_range(e) && filter.pass(e)) {
                if tx.send(event_json(ev)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        parse_time(Some(v), now).expect(v)
    }

    #[test]
    fn times_take_dockers_forms() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let at = |s: i64, n: u32| DateTime::from_timestamp(s, n);
        assert_eq!(t("1700000000", now), at(1_700_000_000, 0));
        assert_eq!(t("1700000000.500000000", now), at(1_700_000_000, 500_000_000));
        assert_eq!(t("1700000000.5", now), at(1_700_000_000, 500_000_000));
        assert_eq!(t("10m", now), at(1_800_000_000 - 600, 0));
        assert_eq!(t("1h30m", now), at(1_800_000_000 - 5400, 0));
        assert_eq!(t("2023-11-14T22:13:20Z", now), at(1_700_000_000, 0));
        assert_eq!(t("2023-11-14T23:13:20+01:00", now), at(1_700_000_000, 0));
        assert_eq!(t("2023-11-14T22:13:20", now), at(1_700_000_000, 0));
        assert_eq!(t("2023-11-14", now), at(1_699_920_000, 0));
        assert_eq!(parse_time(Some(""), now).expect("empty"), None);
        let err = parse_time(Some("yesterday"), now).expect_err("bad");
        assert!(err.message.contains("\"yesterday\""), "{}", err.message);
    }

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> JournalEvent {
        let attrs: Vec<(&str, String)> = attrs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        JournalEvent::of(kind, action, id, &attrs)
    }

    fn filter(json: &str) -> Filter {
        let q = Query::parse(Some(&format!("filters={}", urlencode(json))));
        Filter(q.filters().expect("filters"))
    }

    fn urlencode(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn filters_match_as_dockerd() {
        let start = ev(
            "container",
            "start",
            "abc123",
            &[("name", "web"), ("image", "busybox:latest"), ("com.example", "x")],
        );
        let exec = ev("container", "exec_create: sh -c true", "abc123", &[("name", "web")]);
        let net = ev("network", "create", "def456", &[("name", "front"), ("type", "bridge")]);
        let tag = ev("image", "tag", "sha256:1", &[("name", "mine:1")]);
        let pass = |f: &str, e: &JournalEvent| filter(f).pass(e);
        assert!(pass(r#"{"type":["container"]}"#, &start));
        assert!(!pass(r#"{"type":["container"]}"#, &net));
        assert!(pass(r#"{"event":["exec_create"]}"#, &exec));
        assert!(!pass(r#"{"event":["start","die"]}"#, &exec));
        assert!(pass(r#"{"container":["web"]}"#, &start));
        assert!(pass(r#"{"container":["abc"]}"#, &start));
        assert!(!pass(r#"{"container":["db"]}"#, &start));
        assert!(pass(r#"{"label":["com.example=x"]}"#, &start));
        assert!(pass(r#"{"label":["com.example"]}"#, &start));
        assert!(!pass(r#"{"label":["com.example=y"]}"#, &start));
        assert!(pass(r#"{"network":["front"]}"#, &net));
        assert!(pass(r#"{"image":["busybox"]}"#, &start));
        assert!(pass(r#"{"image":["mine:1"]}"#, &tag));
        assert!(!pass(r#"{"image":["other"]}"#, &start));
    }

    #[test]
    fn messages_have_dockers_fields() {
        let e =
            ev("container", "die", "abc", &[("name", "web"), ("image", "bb"), ("exitCode", "3")]);
        let v: serde_json::Value = serde_json::from_slice(&event_json(&e)).expect("json");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["status"], "die");
        assert_eq!(v["from"], "bb");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64(), Some(e.time.timestamp()));
        assert_eq!(v["timeNano"].as_i64(), e.time.timestamp_nanos_opt());
        let n = ev("network", "connect", "n1", &[("container", "abc")]);
        let v: serde_json::Value = serde_json::from_slice(&event_json(&n)).expect("json");
        assert!(v.get("status").is_none(), "network events have no legacy fields");
    }
}
