//! compose's `build [SERVICE...]`, and the builds `up` and `run` make first.

use std::process::ExitCode;
use std::sync::Arc;

use berth_builder::{BuildOptions, Event, Progress};

use super::super::engine_access::engine;
use super::super::{EngineOpts, ExitWith, ProjectOpts};
use super::{BuildArgs, interruptible, key_value, printer, runtime, session};

/// Runs compose's `build [SERVICE...]`.
pub(super) fn compose_build_cmd(
    po: &ProjectOpts,
    opts: &EngineOpts,
    a: BuildArgs,
) -> anyhow::Result<ExitCode> {
    let p = crate::cmd::compose::load(po, false, &a.args)?;
    let services = if a.args.is_empty() {
        p.services.keys().cloned().collect()
    } else {
        berth_planner::ops::selected_services(&p, &a.args, a.with_dependencies)
            .map_err(crate::cmd::compose::plan_err)?
    };
    let mut build_args = Vec::new();
    for b in &a.build_arg {
        build_args.push(key_value(b, "--build-arg")?);
    }
    let o = ComposeBuild {
        no_cache: a.no_cache,
        build_args,
        quiet: a.quiet || po.progress == "quiet",
        session: session(),
        progress: po.progress.clone(),
        ansi: po.ansi.clone(),
        pull: a.pull,
    };
    let engine = engine(opts)?;
    let rt = runtime()?;
    let built =
        rt.block_on(interruptible(&engine, &o.session, compose_build(&engine, &p, &services, &o)));
    crate::progress::finish();
    let built = built?;
    if a.quiet {
        for (_, id) in built {
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How compose's `build` / `up --build` build the services' images.
#[derive(Debug, Clone, Default)]
pub struct ComposeBuild {
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--build-arg` (over the file's `args`).
    pub build_args: Vec<(String, Option<String>)>,
    /// `-q`: no progress.
    pub quiet: bool,
    /// Labels the RUN containers (see [`berth_builder::SESSION_LABEL`]).
    pub session: String,
    /// `--progress` (auto, tty, plain, json, quiet).
    pub progress: String,
    /// `--ansi`.
    pub ansi: String,
    /// `--pull`.
    pub pull: bool,
}

/// Prefixes each step's stage with the service (`[web base 1/3]`), as compose's plain output.
struct ServiceProgress {
    service: String,
    inner: Arc<dyn Progress>,
}

impl Progress for ServiceProgress {
    fn event(&self, e: Event) {
        let e = match e {
            Event::Step { n, stage, text } => Event::Step {
                n,
                stage: format!("[{} {}", self.service, stage.trim_start_matches('[')),
                text,
            },
            e => e,
        };
        self.inner.event(e);
    }
}

/// The builder's options for a compose service's `build:` section.
fn service_options(
    p: &compose_spec::model::Project,
    svc: &str,
    b: &compose_spec::model::Build,
    o: &ComposeBuild,
) -> anyhow::Result<BuildOptions> {
    let bad = |m: String| -> anyhow::Error {
        ExitWith { code: 1, message: format!("berth: service {svc:?}: build: {m}") }.into()
    };
    let context = match &b.context {
        None => p.working_dir.clone(),
        Some(c) if c.contains("://") || c.starts_with("git@") => {
            return Err(bad(format!("context {c:?}: remote build contexts are not supported yet")));
        }
        Some(c) => p.working_dir.join(c),
    };
    let mut named_contexts = Vec::new();
    for (name, value) in &b.additional_contexts {
        let c = berth_builder::NamedContext::parse(value, &context)
            .map_err(|m| bad(format!("additional_contexts.{name}: {m}")))?;
        named_contexts.push((name.clone(), c));
    }
    // Build secrets are the project's file secrets.
    let mut secrets = Vec::new();
    for r in &b.secrets {
        let def = p
            .secrets
            .get(&r.source)
            .ok_or_else(|| bad(format!("secret {:?} is not defined", r.source)))?;
        let Some(file) = &def.file else {
            return Err(bad(format!(
                "secret {:?}: only file secrets can be used in a build",
                r.source
            )));
        };
        // The id is the secret's name; a `target` (other than the service-style default the
        // loader fills in) names it too.
        let path = p.working_dir.join(file);
        secrets.push((r.source.clone(), path.clone()));
        if let Some(t) = &r.target
            && *t != format!("/run/secrets/{}", r.source)
        {
            secrets.push((t.clone(), path));
        }
    }
    let extra_hosts = b
        .extra_hosts
        .iter()
        .flat_map(|(host, addrs)| addrs.iter().map(move |a| format!("{host}:{a}")))
        .collect();
    let dockerfile = b.dockerfile.as_ref().map(|d| context.join(d));
    let mut tags = vec![p.image_name(svc)];
    tags.extend(b.tags.iter().cloned());
    let mut build_args: Vec<(String, Option<String>)> =
        b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in &o.build_args {
        build_args.retain(|(bk, _)| bk != k);
        build_args.push((k.clone(), v.clone()));
    }
    Ok(BuildOptions {
        context,
        dockerfile,
        dockerfile_inline: b.dockerfile_inline.clone(),
        tags,
        target: b.target.clone(),
        build_args,
        labels: b.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        no_cache: b.no_cache || o.no_cache,
        secrets,
        session: Some(o.session.clone()),
        network: b.network.clone(),
        extra_hosts,
        shm_size: b.shm_size.as_ref().map(|s| s.0).unwrap_or(0),
        named_contexts,
        pull: b.pull || o.pull,
        ssh: super::parse_ssh(&b.ssh).map_err(bad)?,
    })
}

/// Builds the images of `services` (those with a `build:` section; an image named by several
/// services is built once). Returns (service, image id) in build order.
pub async fn compose_build(
    engine: &berth_runtime::Engine,
    p: &compose_spec::model::Project,
    services: &[String],
    o: &ComposeBuild,
) -> anyhow::Result<Vec<(String, String)>> {
    let progress = printer(&o.progress, &o.ansi, o.quiet);
    let mut done: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for svc in services {
        let Some(s) = p.services.get(svc) else { continue };
        let Some(b) = &s.build else { continue };
        let image = p.image_name(svc);
        if let Some(id) = done.get(&image) {
            out.push((svc.clone(), id.clone()));
            continue;
        }
        let bo = service_options(p, svc, b, o)?;
        let sp = Arc::new(ServiceProgress { service: svc.clone(), inner: progress.clone() });
        let r = berth_builder::build(
            engine,
            bo,
            sp,
            Arc::new(berth_builder::RegistrySource::default()),
        )
        .await
        .map_err(|e| {
            anyhow::Error::from(ExitWith {
                code: 1,
                message: format!("berth: service {svc:?} failed to build: {e}"),
            })
        })?;
        if !o.quiet {
            // A terminal block ends first, so the line lands below it.
            crate::progress::finish();
            eprintln!("Service {svc}  Built ({image}, {})", berth_image::short_id(&r.id));
        }
        done.insert(image, r.id.clone());
        out.push((svc.clone(), r.id));
    }
    Ok(out)
}

/// Before `up`: builds the images of `services` that have a `build:` section and need it:
/// all of them with `--build`, those with `pull_policy: build`, and those whose image is
/// missing unless `--no-build` (then the planner reports the missing image).
pub async fn build_for_up(
    engine: &berth_runtime::Engine,
    p: &compose_spec::model::Project,
    services: &[String],
    build: bool,
    no_build: bool,
    progress: &str,
    ansi: &str,
) -> anyhow::Result<()> {
    let mut todo = Vec::new();
    for svc in services {
        let Some(s) = p.services.get(svc) else { continue };
        if s.build.is_none() {
            continue;
        }
        let policy_build = s.pull_policy.as_deref() == Some("build");
        let needed = build
            || policy_build
            || (!no_build
                && matches!(
                    engine.image_inspect(p.image_name(svc)).await,
                    Err(berth_image::ImageError::NoSuchImage(_))
                ));
        if needed {
            todo.push(svc.clone());
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let o = ComposeBuild {
        quiet: progress == "quiet",
        progress: progress.to_string(),
        ansi: ansi.to_string(),
        session: session(),
        ..Default::default()
    };
    let r = interruptible(engine, &o.session, compose_build(engine, p, &todo, &o)).await;
    crate::progress::finish();
    r?;
    Ok(())
}
