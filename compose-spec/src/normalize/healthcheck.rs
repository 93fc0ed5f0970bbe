//! A service's `healthcheck`.

use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

pub(super) fn healthcheck(n: &Node, path: &str) -> R<Healthcheck> {
    let (m, extensions) = object(
        n,
        path,
        &["disable", "interval", "retries", "test", "timeout", "start_period", "start_interval"],
    )?;
    let test = match get(m, "test") {
        Some(t) => match &t.value {
            Value::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            _ => strings(t, &join(path, "test"))?,
        },
        None => Vec::new(),
    };
    if let (Some(first), Some(t)) = (test.first(), get(m, "test"))
        && t.as_seq().is_some()
        && !matches!(first.as_str(), "NONE" | "CMD" | "CMD-SHELL")
    {
        return Err(err(
            t,
            &join(path, "test"),
            format!("must start with NONE, CMD or CMD-SHELL, not \"{first}\""),
        ));
    }
    let retries = opt_int(m, "retries", path)?;
    if let (Some(r), Some(rn)) = (retries, get(m, "retries"))
        && r < 0
    {
        return Err(err(
            rn,
            &join(path, "retries"),
            format!("{r} is not a valid number of retries"),
        ));
    }
    Ok(Healthcheck {
        test,
        timeout: opt_duration(m, "timeout", path)?,
        interval: opt_duration(m, "interval", path)?,
        retries,
        start_period: opt_duration(m, "start_period", path)?,
        start_interval: opt_duration(m, "start_interval", path)?,
        disable: flag(m, "disable", path)?,
        extensions,
    })
}
