//! `berth watch [SERVICE...]` and `berth up --watch`: act on `develop.watch` rules when files
//! change (sync, restart, rebuild, exec, as compose), and, beyond compose, reload the compose
//! files and env files when they change and apply only the difference.
//!
//! File events are collected on plain threads (`berth_watch::events` blocks) and handed to the
//! async side over a channel; each batch is planned (`berth_watch::plan`) and carried out here
//! on the runtime. Messages go to stdout as compose prints them (` ⦿ Syncing service "web"
//! after 3 changes were detected`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_planner::Progress;
use berth_planner::observe;
use berth_planner::ops::{self, Lifecycle, RunOptions, UpOptions};
use berth_runtime::Engine;
use berth_runtime::container::{ExecConfig, SyncChange};
use std::time::Duration;

use berth_watch::events::{Batch, FileEvents, LONGEST, QUIET};
use berth_watch::plan::ServicePlan;
use berth_watch::rules::{Mapping, Rule, project_rules};
use compose_spec::model::{Hook, Project};
use tokio::sync::mpsc;

use super::project::{load, plan_err, use_color, warn_one};
use crate::cmd::{ExitWith, ProjectOpts};

/// `berth watch`.
#[derive(Debug, Default, clap::Args)]
pub struct WatchArgs {
    /// Do not build and start services before watching.
    #[arg(long)]
    pub(super) no_up: bool,
    /// Prune dangling images on rebuild.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub(super) prune: bool,
    /// Hide build output.
    #[arg(long)]
    pub(super) quiet: bool,
    /// Services to watch (all with `develop.watch` when none).
    pub(super) services: Vec<String>,
}

/// Runs `berth watch`: `up -d` the services (unless `--no-up`), then watch until Ctrl-C.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: WatchArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, false, &a.services)?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGINT: {e}"))?;
    if !a.no_up {
        let mode = if a.quiet { "quiet" } else { po.progress.as_str() };
        images_for_up(po, engine, &p, &a.services, mode, progress).await?;
        let opts = UpOptions { services: a.services.clone(), ..Default::default() };
        let up = ops::up(engine, &p, &opts, run, progress, &warn_one).await;
        crate::progress::finish();
        up.map_err(plan_err)?;
    }
    let w = Watch {
        po,
        engine,
        services: a.services.clone(),
        run,
        progress,
        reload: true,
        quiet: a.quiet,
        prune: a.prune,
    };
    tokio::select! {
        r = w.run(p) => r.map(|()| ExitCode::SUCCESS),
        _ = sigint.recv() => {
            say("Watch disabled");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One watch session over a project.
pub(super) struct Watch<'a> {
    /// Where the project comes from (for reloads).
    pub(super) po: &'a ProjectOpts,
    /// The engine.
    pub(super) engine: &'a Engine,
    /// The services named on the command line (all when empty).
    pub(super) services: Vec<String>,
    /// How plans run.
    pub(super) run: &'a RunOptions,
    /// Progress output of the operations a change starts.
    pub(super) progress: &'a Progress,
    /// Reload the compose files and env files when they change.
    pub(super) reload: bool,
    /// Hide build output.
    pub(super) quiet: bool,
    /// Remove the image a rebuild replaced when nothing uses it any more.
    pub(super) prune: bool,
}

/// How long the compose files must stay unchanged before a reload reads them.
const CONFIG_QUIET: Duration = Duration::from_millis(250);

/// What woke the loop.
enum Wake {
    /// Files under `develop.watch` paths changed.
    Files(Batch),
    /// A compose file or env file changed.
    Config,
    /// A watcher thread failed.
    Failed(berth_watch::WatchError),
}

/// Stops the watcher threads of one round when dropped.
struct Threads(Arc<AtomicBool>);

impl Drop for Threads {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Watch<'_> {
    /// Watches until an error; `p` is the project as loaded (and already up).
    pub(super) async fn run(&self, mut p: Project) -> anyhow::Result<()> {
        let mut rules = self.rules(&p)?;
        self.initial_sync(&p, &rules).await;
        say("Watch enabled");
        loop {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let stop = Threads(Arc::new(AtomicBool::new(false)));
            let paths: Vec<PathBuf> = unique(rules.iter().map(|r| r.path.clone()));
            spawn_watcher(paths, QUIET, tx.clone(), stop.0.clone(), Wake::Files)?;
            if self.reload {
                // A longer quiet period: a compose file written in place (truncated, then
                // written) must not be read half-written.
                let quiet = CONFIG_QUIET;
                spawn_watcher(config_paths(&p), quiet, tx, stop.0.clone(), |_| Wake::Config)?;
            }
            loop {
                match rx.recv().await {
                    Some(Wake::Files(batch)) => self.handle(&p, &rules, &batch).await,
                    Some(Wake::Config) => match self.reload(&p).await {
                        Some((np, nr)) => {
                            (p, rules) = (np, nr);
                            // New paths to watch: start the watchers again.
                            break;
                        }
                        None => continue,
                    },
                    Some(Wake::Failed(e)) => {
                        return Err(ExitWith { code: 1, message: format!("watch: {e}") }.into());
                    }
                    None => {
                        return Err(ExitWith {
                            code: 1,
                            message: "the file watcher stopped".into(),
                        }
                        .into());
                    }
                }
            }
        }
    }

    /// The compiled rules of the selected services; none is an error, as in compose.
    fn rules(&self, p: &Project) -> anyhow::Result<Vec<Rule>> {
        let rules = project_rules(p, &self.services)
            .map_err(|e| ExitWith { code: 15, message: e.to_string() })?;
        if rules.is_empty() {
            return Err(ExitWith {
                code: 1,
                message: "none of the selected services is configured for watch, consider setting a 'develop' section".into(),
            }
            .into());
        }
        for r in &rules {
            if !r.path.exists() {
                return Err(ExitWith {
                    code: 1,
                    message: berth_watch::WatchError::MissingPath {
                        service: r.service.clone(),
                        path: r.path.clone(),
                    }
                    .to_string(),
                }
                .into());
            }
        }
        Ok(rules)
    }

    /// `initial_sync`: everything the sync rules that ask for it cover, into their containers.
    async fn initial_sync(&self, p: &Project, rules: &[Rule]) {
        for r in rules.iter().filter(|r| r.initial_sync && r.action.syncs()) {
            let all = r.walk();
            self.sync(p, &r.service, &all).await;
        }
    }

    /// Carries out what `batch` asks: rebuild, sync, restart, exec, per service.
    async fn handle(&self, p: &Project, rules: &[Rule], batch: &Batch) {
        let plans = berth_watch::plan::plan(rules, batch);
        for (svc, sp) in &plans {
            self.apply(p, svc, sp).await;
        }
    }

    async fn apply(&self, p: &Project, svc: &str, sp: &ServicePlan) {
        if sp.rebuild {
            say(&format!("Rebuilding service(s) [{svc:?}] after changes were detected..."));
            if let Err(e) = self.rebuild(p, svc).await {
                say(&format!("Build failed. Error: {e}"));
                return;
            }
        }
        if !sp.sync.is_empty() {
            say(&format!("Syncing service {svc:?} after {} changes were detected", sp.changes));
            self.sync(p, svc, &sp.sync).await;
        }
        if sp.restart {
            let svcs = [svc.to_string()];
            let r = ops::lifecycle(
                self.engine,
                p,
                &svcs,
                Lifecycle::Restart(None),
                self.run,
                self.progress,
            )
            .await;
            crate::progress::finish();
            match r {
                Ok(()) => say(&format!("service(s) [{svc:?}] restarted")),
                Err(e) => say(&format!("restart of service {svc:?} failed: {e}")),
            }
        }
        for hook in &sp.exec {
            self.exec(p, svc, hook).await;
        }
    }

    /// The running containers of service `svc` (ids).
    async fn running(&self, p: &Project, svc: &str) -> Vec<String> {
        match observe::containers_of(self.engine, p).await {
            Ok(cs) => cs
                .into_iter()
                .filter(|c| c.service == svc && c.state == "running")
                .map(|c| c.id)
                .collect(),
            Err(e) => {
                say(&format!("cannot list the containers of service {svc:?}: {e}"));
                Vec::new()
            }
        }
    }

    /// Mirrors `mappings` into every running container of `svc`.
    async fn sync(&self, p: &Project, svc: &str, mappings: &[Mapping]) {
        let changes: Vec<SyncChange> = mappings
            .iter()
            .filter_map(|m| {
                m.target.as_ref().map(|t| SyncChange { host: m.host.clone(), target: t.clone() })
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        for id in self.running(p, svc).await {
            if let Err(e) = self.engine.container_sync(&id, changes.clone()).await {
                say(&format!("sync of service {svc:?} failed: {e}"));
            }
        }
    }

    /// Runs a `sync+exec` hook in every running container of `svc`, printing its output.
    async fn exec(&self, p: &Project, svc: &str, hook: &Hook) {
        let env: Vec<String> = hook
            .environment
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        for id in self.running(p, svc).await {
            let cfg = ExecConfig {
                cmd: hook.command.clone(),
                env: env.clone(),
                user: hook.user.clone(),
                working_dir: hook.working_dir.clone(),
                privileged: hook.privileged,
                ..Default::default()
            };
            match self.engine.container_exec_output(&id, cfg).await {
                Ok(out) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&out.stdout);
                    let _ = std::io::stderr().write_all(&out.stderr);
                    if out.exit_code != 0 {
                        say(&format!(
                            "exec in service {svc:?} failed: exit code {}",
                            out.exit_code
                        ));
                    }
                }
                Err(e) => say(&format!("exec in service {svc:?} failed: {e}")),
            }
        }
    }

    /// Builds service `svc`'s image again and recreates its containers; on a failed build the
    /// old containers keep running.
    async fn rebuild(&self, p: &Project, svc: &str) -> anyhow::Result<()> {
        if p.services.get(svc).and_then(|s| s.build.as_ref()).is_none() {
            return Err(anyhow::anyhow!(
                "service {svc:?} has a rebuild rule but no `build` section"
            ));
        }
        let svcs = [svc.to_string()];
        let image = p.image_name(svc);
        let old = self.engine.image_inspect(image.clone()).await.ok().map(|i| i.id);
        let progress = if self.quiet { "quiet" } else { "plain" };
        crate::cmd::build::build_for_up(
            self.engine,
            p,
            &svcs,
            true,
            false,
            progress,
            &self.po.ansi,
        )
        .await?;
        say(&format!("service(s) [{svc:?}] successfully built"));
        // Only this service is recreated (not what depends on it or what it depends on).
        let opts = UpOptions {
            services: svcs.to_vec(),
            force_recreate: true,
            no_deps: true,
            ..Default::default()
        };
        let r = ops::up(self.engine, p, &opts, self.run, self.progress, &warn_one).await;
        crate::progress::finish();
        r.map_err(|e| anyhow::anyhow!("Failed to recreate services after update. Error: {e}"))?;
        if self.prune
            && let Some(old) = old
        {
            self.prune_replaced(&old).await;
        }
        Ok(())
    }

    /// `--prune`: removes image `old` when a rebuild left it without a tag and no container
    /// uses it (compose's dangling-image prune on rebuild).
    async fn prune_replaced(&self, old: &str) {
        let Ok(img) = self.engine.image_inspect(old.to_string()).await else { return };
        if !img.repo_tags.is_empty() {
            return;
        }
        let in_use = self.engine.container_images_in_use().await;
        if let Err(e) = self.engine.image_remove(old.to_string(), false, in_use).await {
            tracing::debug!("prune of the replaced image {old}: {e}");
        }
    }

    /// Loads the compose files again; on success applies the difference and returns the new
    /// project and rules, on an invalid edit prints why and changes nothing.
    async fn reload(&self, old: &Project) -> Option<(Project, Vec<Rule>)> {
        let np = match load(self.po, false, &self.services) {
            Ok(p) => p,
            Err(e) => {
                say(&format!("compose file not applied: {e}"));
                return None;
            }
        };
        if &np == old {
            return None;
        }
        // compose refuses a project without services; applying one would remove everything.
        if np.services.is_empty() {
            say("compose file not applied: it defines no services");
            return None;
        }
        let rules = match project_rules(&np, &self.services) {
            Ok(r) => r,
            Err(e) => {
                say(&format!("compose file not applied: {e}"));
                return None;
            }
        };
        say("Compose file changed: applying the difference");
        // As `up`: what a new service needs is built or pulled first.
        let mode = if self.quiet { "quiet" } else { "plain" };
        let prepared =
            images_for_up(self.po, self.engine, &np, &self.services, mode, self.progress);
        if let Err(e) = prepared.await {
            crate::progress::finish();
            say(&format!("compose file change failed to apply: {e}"));
            return None;
        }
        let opts = UpOptions {
            services: self.services.clone(),
            remove_orphans: true,
            ..Default::default()
        };
        let r = ops::up(self.engine, &np, &opts, self.run, self.progress, &warn_one).await;
        crate::progress::finish();
        if let Err(e) = r {
            say(&format!("compose file change failed to apply: {}", plan_err(e)));
            return None;
        }
        Some((np, rules))
    }
}

/// What `up` does before it plans (see up.rs): missing images of built services are built, the
/// others pulled under their pull policy; `mode` is the build progress mode.
async fn images_for_up(
    po: &ProjectOpts,
    engine: &Engine,
    p: &Project,
    services: &[String],
    mode: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let selected = ops::selected_services(p, services, true).map_err(plan_err)?;
    crate::cmd::build::build_for_up(engine, p, &selected, false, false, mode, &po.ansi).await?;
    super::pull::pull_for_up(engine, p, services, true, None, progress).await
}

/// The compose files and the env files the project reads (`.env`, services' `env_file`).
fn config_paths(p: &Project) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = p.config_files.clone();
    out.push(p.working_dir.join(".env"));
    for s in p.services.values() {
        out.extend(s.env_file.iter().map(|e| p.working_dir.join(&e.path)));
    }
    unique(out.into_iter())
}

fn unique(it: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = it.collect();
    v.sort();
    v.dedup();
    v
}

/// Watches `paths` on a thread (batches closed after `quiet` without events), sending each
/// batch as `wake(batch)` until `stop` is set or the receiver is gone.
fn spawn_watcher(
    paths: Vec<PathBuf>,
    quiet: Duration,
    tx: mpsc::UnboundedSender<Wake>,
    stop: Arc<AtomicBool>,
    wake: fn(Batch) -> Wake,
) -> anyhow::Result<()> {
    // Made here, so a watch the kernel refuses is an error of the command itself.
    let events = FileEvents::watch(&paths)
        .map_err(|e| ExitWith { code: 1, message: format!("watch: {e}") })?;
    std::thread::Builder::new()
        .name("berth-watch".into())
        .spawn(move || {
            let stopped = || stop.load(Ordering::Relaxed) || tx.is_closed();
            loop {
                match events.next_batch(quiet, LONGEST, &stopped) {
                    Ok(Some(b)) => {
                        if tx.send(wake(b)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Wake::Failed(e));
                        return;
                    }
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the file watcher: {e}"))?;
    Ok(())
}

/// Prints one watch message as compose does (its green `⦿` marker on a terminal).
pub(super) fn say(msg: &str) {
    if use_color("auto") {
        println!("\x1b[92m ⦿ {msg}\x1b[0m");
    } else {
        println!(" ⦿ {msg}");
    }
}
