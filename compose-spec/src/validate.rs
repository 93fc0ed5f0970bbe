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
        if s.network_mode.is_some()
            && !s.networks.is_empty()
            && !(s.networks.len() == 1
                && s.networks.contains_key("default")
                && s.networks["default"].is_none())
        {
            let nm = s.network_mode.as_deref().unwrap_or_default();
            if nm != "bridge" && !nm.is_empty() {
                return Err(fail(
                    format!("{sp}.network_mode"),
                    "cannot be used together with \"networks\"".into(),
                ));
            }
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
