//! Semantic checks on a normalised [`Project`]: references between services and to top-level
//! resources, dependency cycles, `container_name` with replicas, image-or-build. Type and key
//! checks happen while normalising (see [`crate::normalize`]), where positions are at hand.

use crate::error::LoadError;
use crate::model::Project;
use crate::normalize::Marks;

/// Checks `p`; the first problem found is returned, pointing at the key it concerns.
pub fn validate(p: &Project, marks: &Marks) -> Result<Vec<String>, LoadError> {
    let mut warnings = Vec::new();
    let fail = |path: String, msg: String| LoadError::invalid(marks.find(&path), path, msg);
    for (name, s) in &p.services {
        let sp = format!("services.{name}");
        if s.image.is_none() && s.build.is_none() && s.provider.is_none() {
            return Err(fail(sp, "has neither an image nor a build context specified".into()));
        }
        for (i, link) in s.links.iter().enumerate() {
            let target = link.split(':').next().unwrap_or(link);
            if !p.services.contains_key(target) {
                return Err(fail(
                    format!("{sp}.links[{i}]"),
                    format!("links to undefined service \"{target}\""),
                ));
            }
        }
        for (key, val) in [
            ("network_mode", &s.network_mode),
            ("ipc", &s.ipc),
            ("pid", &s.pid),
            ("uts", &s.uts),
            ("cgroup", &s.cgroup),
        ] {
            if let Some(target) = val.as_deref().and_then(|v| v.strip_prefix("service:"))
                && !p.services.contains_key(target)
            {
                return Err(fail(
                    format!("{sp}.{key}"),
                    format!("refers to undefined service \"{target}\""),
                ));
            }
        }
        if s.network_mode.is_some() && !s.networks.is_empty() {
            return Err(fail(
                format!("{sp}.network_mode"),
                "\"network_mode\" and \"networks\" are mutually exclusive".into(),
            ));
        }
        for (i, vf) in s.volumes_from.iter().enumerate() {
            if vf.starts_with("container:") {
                continue;
            }
            let target = vf.split(':').next().unwrap_or(vf);
            if !p.services.contains_key(target) {
                return Err(fail(
                    format!("{sp}.volumes_from[{i}]"),
                    format!("refers to undefined service \"{target}\""),
                ));
            }
        }
        for (dep, d) in &s.depends_on {
            if dep == name {
                return Err(fail(
                    format!("{sp}.depends_on.{dep}"),
                    format!("service \"{name}\" depends on itself"),
                ));
            }
            if d.required && p.disabled_services.contains(dep) {
                return Err(fail(
                    format!("{sp}.depends_on.{dep}"),
                    format!(
                        "service \"{dep}\" is required but disabled by its profiles; enable one of them with --profile"
                    ),
                ));
            }
            if !p.services.contains_key(dep) {
                if d.required {
                    return Err(fail(
                        format!("{sp}.depends_on.{dep}"),
                        format!("service \"{dep}\" is not defined"),
                    ));
                }
                warnings.push(format!("service \"{name}\" depends on undefined service \"{dep}\" (not required), ignoring"));
            }
        }
        if let Some(ext) = &s.extends
            && ext.file.is_none()
            && !p.services.contains_key(&ext.service)
        {
            return Err(fail(
                format!("{sp}.extends"),
                format!("extends undefined service \"{}\"", ext.service),
            ));
        }
        for net in s.networks.keys() {
            if net != "default" && !p.networks.contains_key(net) {
                return Err(fail(
                    format!("{sp}.networks.{net}"),
                    format!("network \"{net}\" is not defined in the top-level networks"),
                ));
            }
        }
        for (i, v) in s.volumes.iter().enumerate() {
            if v.kind != "volume" {
                continue;
            }
            // An uninterpolated `${VAR}` source (`--no-interpolate`) cannot be checked.
            if let Some(src) = &v.source
                && !src.contains('$')
                && !p.volumes.contains_key(src)
            {
                return Err(fail(
                    format!("{sp}.volumes[{i}]"),
                    format!("volume \"{src}\" is not defined in the top-level volumes"),
                ));
            }
        }
        for (i, r) in s.secrets.iter().enumerate() {
            if !p.secrets.contains_key(&r.source) {
                return Err(fail(
                    format!("{sp}.secrets[{i}]"),
                    format!("secret \"{}\" is not defined in the top-level secrets", r.source),
                ));
            }
        }
        if let Some(b) = &s.build {
            for (i, r) in b.secrets.iter().enumerate() {
                if !p.secrets.contains_key(&r.source) {
                    return Err(fail(
                        format!("{sp}.build.secrets[{i}]"),
                        format!("secret \"{}\" is not defined in the top-level secrets", r.source),
                    ));
                }
            }
        }
        for (i, r) in s.configs.iter().enumerate() {
            if !p.configs.contains_key(&r.source) {
                return Err(fail(
                    format!("{sp}.configs[{i}]"),
                    format!("config \"{}\" is not defined in the top-level configs", r.source),
                ));
            }
        }
        for m in s.models.keys() {
            if !p.models.contains_key(m) {
                return Err(fail(
                    format!("{sp}.models.{m}"),
                    format!("model \"{m}\" is not defined in the top-level models"),
                ));
            }
        }
        resource_consistency(s, &sp).map_err(|(path, msg)| fail(path, msg))?;
        if let Some(b) = &s.build {
            for (key, ctx) in &b.additional_contexts {
                let Some(target) = ctx.strip_prefix("service:") else { continue };
                let msg = match p.services.get(target) {
                    None => format!("refers to undefined service \"{target}\""),
                    Some(t) if t.build.is_none() => {
                        format!("refers to service \"{target}\", which has no build section")
                    }
                    Some(_) => continue,
                };
                return Err(fail(format!("{sp}.build.additional_contexts.{key}"), msg));
            }
            if let Some(pf) = &s.platform
                && !b.platforms.is_empty()
                && !b.platforms.contains(pf)
            {
                return Err(fail(
                    format!("{sp}.build.platforms"),
                    format!("must include the service's platform \"{pf}\""),
                ));
            }
        }
        let mut targets: std::collections::HashMap<&str, String> = Default::default();
        let tmpfs = s
            .tmpfs
            .iter()
            .enumerate()
            .map(|(i, t)| (t.split(':').next().unwrap_or(t), format!("{sp}.tmpfs[{i}]")));
        let volumes = s
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (v.target.as_str(), format!("{sp}.volumes[{i}]")));
        for (target, at) in tmpfs.chain(volumes) {
            if target.is_empty() {
                continue;
            }
            if let Some(first) = targets.get(target) {
                return Err(fail(at, format!("target {target} already mounted as {first}")));
            }
            targets.insert(target, at);
        }
        if let Some((key, msg)) = bad_limit(s) {
            return Err(fail(format!("{sp}.{key}"), msg));
        }
        if s.container_name.is_some() && s.replicas() > 1 {
            return Err(fail(
                format!("{sp}.container_name"),
                format!(
                    "cannot be set when the service has {} replicas, as container names must be unique",
                    s.replicas()
                ),
            ));
        }
        if let (Some(scale), Some(r)) = (s.scale, s.deploy.as_ref().and_then(|d| d.replicas))
            && scale != r
        {
            return Err(fail(
                format!("{sp}.scale"),
                format!("{scale} differs from deploy.replicas {r}"),
            ));
        }
    }
    if let Some(cycle) = find_cycle(p) {
        let first = cycle.first().cloned().unwrap_or_default();
        let second = cycle.get(1).cloned().unwrap_or_default();
        return Err(fail(
            format!("services.{first}.depends_on.{second}"),
            format!("dependency cycle detected: {}", cycle.join(" -> ")),
        ));
    }
    Ok(warnings)
}

/// Values given twice (a service key and its `deploy.resources` twin) must agree, as compose
/// requires; returns the key path and message of the first disagreement.
fn resource_consistency(s: &crate::model::Service, sp: &str) -> Result<(), (String, String)> {
    let Some(res) = s.deploy.as_ref().map(|d| &d.resources) else { return Ok(()) };
    let lim = res.limits.as_ref();
    let resv = res.reservations.as_ref();
    let pairs: [(&str, &str, bool); 4] = [
        (
            "cpus",
            "deploy.resources.limits.cpus",
            s.cpus.is_some_and(|c| c != 0.0)
                && lim.and_then(|l| l.cpus).is_some_and(|c| Some(c) != s.cpus),
        ),
        (
            "mem_limit",
            "deploy.resources.limits.memory",
            s.mem_limit.as_ref().is_some_and(|m| m.0 != 0)
                && lim
                    .and_then(|l| l.memory.as_ref())
                    .is_some_and(|m| Some(m) != s.mem_limit.as_ref()),
        ),
        (
            "mem_reservation",
            "deploy.resources.reservations.memory",
            s.mem_reservation.as_ref().is_some_and(|m| m.0 != 0)
                && resv
                    .and_then(|r| r.memory.as_ref())
                    .is_some_and(|m| Some(m) != s.mem_reservation.as_ref()),
        ),
        (
            "pids_limit",
            "deploy.resources.limits.pids",
            s.pids_limit.is_some_and(|p| p != 0)
                && lim.and_then(|l| l.pids).is_some_and(|p| Some(p) != s.pids_limit),
        ),
    ];
    for (key, twin, differ) in pairs {
        if differ {
            return Err((
                format!("{sp}.{key}"),
                format!("can't set distinct values on '{key}' and '{twin}'"),
            ));
        }
    }
    Ok(())
}

/// docker's smallest memory limit and reservation (`linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The first resource setting docker's daemon would refuse at create time, as (key path below
/// the service, message); docker's own message where it has one. Settings that depend on the
/// machine (`cpus` above its CPU count) are checked when the container is created.
fn bad_limit(s: &crate::model::Service) -> Option<(String, String)> {
    let limits = s.deploy.as_ref().and_then(|d| d.resources.limits.as_ref());
    let reservations = s.deploy.as_ref().and_then(|d| d.resources.reservations.as_ref());
    let bad = |key: &str, msg: &str| Some((key.to_string(), msg.to_string()));
    // deploy.resources wins over the legacy keys (as the planner applies them).
    let (mem_key, memory) = match limits.and_then(|l| l.memory) {
        Some(m) => ("deploy.resources.limits.memory", m.0),
        None => ("mem_limit", s.mem_limit.map_or(0, |m| m.0)),
    };
    let (res_key, reservation) = match reservations.and_then(|r| r.memory) {
        Some(m) => ("deploy.resources.reservations.memory", m.0),
        None => ("mem_reservation", s.mem_reservation.map_or(0, |m| m.0)),
    };
    let swap = s.memswap_limit.map_or(0, |m| m.0);
    if memory != 0 && memory < MIN_MEMORY {
        return bad(mem_key, "Minimum memory limit allowed is 6MB");
    }
    if reservation != 0 && reservation < MIN_MEMORY {
        return bad(res_key, "Minimum memory reservation allowed is 6MB");
    }
    if memory > 0 && reservation > memory {
        return bad(
            mem_key,
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
    }
    if swap > 0 && memory == 0 {
        return bad(
            "memswap_limit",
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        );
    }
    if swap > 0 && swap < memory {
        return bad(
            "memswap_limit",
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        );
    }
    if swap < -1 {
        return bad("memswap_limit", "must be -1 (unlimited swap) or a size");
    }
    if let Some(v) = s.mem_swappiness.map(|v| v.0)
        && !(0..=100).contains(&v)
    {
        return Some((
            "mem_swappiness".into(),
            format!("Invalid value: {v}, valid memory swappiness range is 0-100"),
        ));
    }
    for (key, cpus) in [
        ("cpus", s.cpus),
        ("deploy.resources.limits.cpus", limits.and_then(|l| l.cpus)),
        ("deploy.resources.reservations.cpus", reservations.and_then(|r| r.cpus)),
    ] {
        if let Some(c) = cpus
            && (c < 0.0 || (c > 0.0 && c < 0.01) || !c.is_finite())
        {
            return Some((
                key.into(),
                format!(
                    "{c} is out of range: CPUs range from 0.01 to the number of CPUs (0: no limit)"
                ),
            ));
        }
    }
    let nano = limits.and_then(|l| l.cpus).or(s.cpus).is_some_and(|c| c > 0.0);
    let period = s.cpu_period.unwrap_or(0);
    let quota = s.cpu_quota.unwrap_or(0);
    if nano && period > 0 {
        return bad(
            "cpu_period",
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        );
    }
    if nano && quota > 0 {
        return bad("cpu_quota", "Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return bad(
            "cpu_period",
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        );
    }
    if quota > 0 && quota < 1000 {
        return bad("cpu_quota", "CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    if let Some(w) = s.blkio_config.as_ref().and_then(|b| b.weight)
        && w != 0
        && !(10..=1000).contains(&w)
    {
        return bad("blkio_config.weight", "Range of blkio weight is from 10 to 1000");
    }
    if let Some(v) = s.oom_score_adj
        && !(-1000..=1000).contains(&v)
    {
        return Some((
            "oom_score_adj".into(),
            format!("Invalid value {v}, range for oom score adj is [-1000, 1000]"),
        ));
    }
    if s.shm_size.is_some_and(|v| v.0 < 0) {
        return bad("shm_size", "SHM size can not be less than 0");
    }
    None
}

/// A dependency cycle as `[a, b, a]`, if any (depends_on, which includes implicit links).
fn find_cycle(p: &Project) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        New,
        Active,
        Done,
    }
    let names: Vec<&String> = p.services.keys().collect();
    let mut state = vec![St::New; names.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        p: &Project,
        names: &[&String],
        i: usize,
        state: &mut Vec<St>,
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        state[i] = St::Active;
        stack.push(i);
        for dep in p.services[names[i].as_str()].depends_on.keys() {
            let Some(j) = p.services.get_index_of(dep) else { continue };
            match state[j] {
                St::Active => {
                    let from = stack.iter().position(|x| *x == j).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|x| names[*x].clone()).collect();
                    cycle.push(names[j].clone());
                    return Some(cycle);
                }
                St::New => {
                    if let Some(c) = visit(p, names, j, state, stack) {
                        return Some(c);
                    }
                }
                St::Done => {}
            }
        }
        stack.pop();
        state[i] = St::Done;
        None
    }
    for i in 0..names.len() {
        if state[i] == St::New
            && let Some(c) = visit(p, &names, i, &mut state, &mut stack)
        {
            return Some(c);
        }
    }
    None
}
