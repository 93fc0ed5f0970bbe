//! `berth image`: ls, inspect, import, load, save, tag, rm, prune (docker's output shapes).

use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_image::{ImageStore, ListFilters, RemoveItem, short_id};
use berth_store::StateRoot;

use super::EngineOpts;
use super::human::{human_since, human_size};

/// `berth image` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Download an image from a registry.
    Pull(super::image_pull::PullArgs),
    /// Upload an image to a registry.
    Push(super::image_pull::PushArgs),
    /// Show the history of an image.
    History(super::image_history::HistoryArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images.
    Inspect {
        /// Images (references or ids).
        #[arg(required = true)]
        images: Vec<String>,
        /// Format output: `json` (default) or a Go template (`{{.Id}}`, `{{json .Config}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Import the contents from a tarball to create a filesystem image.
    Import {
        /// A root file system tar (plain or gzip), or `-` for standard input.
        file: String,
        /// `REPOSITORY[:TAG]` to tag the image with.
        reference: Option<String>,
        /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
        /// VOLUME, WORKDIR, STOPSIGNAL).
        #[arg(short, long = "change")]
        change: Vec<String>,
        /// Ignored: import has no message in berth.
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Load an image from a tar archive (docker save or OCI layout) or standard input.
    Load {
        /// Read from this file instead of standard input.
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress the load output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Build an image from a Dockerfile.
    Build(Box<super::build::BuildArgs>),
    /// Save one or more images to a tar archive (standard output by default).
    Save {
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Images to save.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag {
        /// Existing image.
        source: String,
        /// New reference.
        target: String,
    },
    /// Remove one or more images.
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// Force removal of the image.
        #[arg(short = 'f', long)]
        force: bool,
        /// Images to remove.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unused images.
    Prune {
        /// Remove all unused images, not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// `berth image ls` flags.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show all images (also the builder's untagged intermediate images).
    #[arg(short, long)]
    all: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Filter output (`reference=`, `label=`, `dangling=`).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Output format: `table` (default) or `json`.
    #[arg(long)]
    format: Option<String>,
    /// Repository (`name` or `name:tag`) to show.
    repository: Option<String>,
}

fn open(engine: &EngineOpts) -> anyhow::Result<ImageStore> {
    let root = StateRoot::open(&engine.root)?;
    Ok(ImageStore::open(&root)?)
}

/// What the containers of this state root use (so `rm`/`prune` refuse to delete it).
fn images_in_use(engine: &EngineOpts) -> anyhow::Result<Vec<String>> {
    let engine = berth_runtime::Engine::open(berth_runtime::EngineOptions::new(&engine.root))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(engine.container_images_in_use()))
}

/// `2024-01-02 03:04:05 +0000 UTC` for seconds since the epoch (docker's CreatedAt).
fn utc_datetime(ts: i64) -> String {
    let (days, rem) = (ts.div_euclid(86400), ts.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn parse_filters(raw: &[String]) -> anyhow::Result<ListFilters> {
    let mut f = ListFilters::default();
    for r in raw {
        let (k, v) =
            r.split_once('=').with_context(|| format!("bad filter \"{r}\": use KEY=VALUE"))?;
        match k {
            "reference" => f.reference.push(v.to_string()),
            "label" => f.label.push(v.to_string()),
            "dangling" => {
                f.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => anyhow::bail!("invalid filter 'dangling={v}': use true or false"),
                })
            }
            _ => anyhow::bail!("invalid filter '{k}' (supported: reference, label, dangling)"),
        }
    }
    Ok(f)
}

pub fn confirm(prompt: &str) -> bool {
    eprint!("{prompt} [y/N] ");
    let _ = io::stderr().flush();
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// Runs a `berth image` subcommand.
pub fn run(engine: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    let cmd = match cmd {
        Command::Build(args) => return super::build::image_build(engine, *args),
        Command::Pull(a) => return super::image_pull::run_pull(engine, a),
        Command::Push(a) => return super::image_pull::run_push(engine, a),
        Command::History(a) => return super::image_history::run(engine, a),
        other => other,
    };
    let store = open(engine)?;
    let mut out = io::stdout().lock();
    match cmd {
        Command::Ls(args) => {
            let mut filters = parse_filters(&args.filter)?;
            if let Some(repo) = &args.repository {
                filters.reference.push(repo.clone());
            }
            let images = store.list_with_cache(&filters, args.all)?;
            let json = match args.format.as_deref() {
                None | Some("table") => false,
                Some("json") => true,
                Some(other) => anyhow::bail!("unsupported format \"{other}\": use table or json"),
            };
            if args.quiet {
                let mut seen = std::collections::HashSet::new();
                for i in &images {
                    let id = if args.no_trunc { i.id.clone() } else { short_id(&i.id) };
                    if seen.insert(id.clone()) {
                        writeln!(out, "{id}")?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for i in &images {
                let id = if args.no_trunc { i.id.clone() } else { short_id(&i.id) };
                // `repo@sha256:…` of this image, by familiar repository name.
                let digests: Vec<(String, String)> = store
                    .inspect(&i.id)
                    .map(|ins| ins.repo_digests)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|d| d.split_once('@').map(|(r, d)| (r.to_string(), d.to_string())))
                    .collect();
                let digest_of = |repo: &str| {
                    digests
                        .iter()
                        .find(|(r, _)| r == repo)
                        .map(|(_, d)| d.clone())
                        .unwrap_or_else(|| "<none>".to_string())
                };
                let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.repo_tags
                        .iter()
                        .map(|t| match t.rsplit_once(':') {
                            Some((r, tag)) => (r.to_string(), tag.to_string()),
                            None => (t.clone(), "<none>".into()),
                        })
                        .collect()
                };
                for (repo, tag) in tags {
                    let digest = digest_of(&repo);
                    rows.push((repo, tag, id.clone(), i, digest));
                }
            }
            if json {
                for (repo, tag, id, i, digest) in rows {
                    let created = utc_datetime(i.created);
                    let v = serde_json::json!({
                        "Containers": "N/A",
                        "CreatedAt": created,
                        "CreatedSince": human_since(i.created),
                        "Digest": digest,
                        "ID": id,
                        "Repository": repo,
                        "SharedSize": "N/A",
                        "Size": human_size(i.size),
                        "Tag": tag,
                        "UniqueSize": "N/A",
                        "VirtualSize": human_size(i.size),
                    });
                    writeln!(out, "{v}")?;
                }
            } else {
                let w_repo =
                    rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max("REPOSITORY".len());
                let w_tag = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("TAG".len());
                let w_id = if args.no_trunc { 71 } else { 12 };
                let w_created =
                    rows.iter().map(|r| human_since(r.3.created).len()).max().unwrap_or(0).max(7);
                let w_digest = if args.digests {
                    rows.iter().map(|r| r.4.len()).max().unwrap_or(0).max("DIGEST".len())
                } else {
                    0
                };
                let digest_cell = |d: &str| {
                    if args.digests { format!("{d:w_digest$}   ") } else { String::new() }
                };
                writeln!(
                    out,
                    "{:w_repo$}   {:w_tag$}   {}{:w_id$}   {:w_created$}   SIZE",
                    "REPOSITORY",
                    "TAG",
                    digest_cell("DIGEST"),
                    "IMAGE ID",
                    "CREATED"
                )?;
                for (repo, tag, id, i, digest) in rows {
                    writeln!(
                        out,
                        "{repo:w_repo$}   {tag:w_tag$}   {}{id:w_id$}   {:w_created$}   {}",
                        digest_cell(&digest),
                        human_since(i.created),
                        human_size(i.size)
                    )?;
                }
            }
        }
        Command::Pull(_) | Command::Push(_) | Command::History(_) | Command::Build(_) => {}
        Command::Inspect { images, format } => {
            let code =
                super::inspect_each(&images, format.as_deref(), &mut out, |k| store.inspect(k))?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
        }
        Command::Import { file, reference, change, message: _ } => {
            let reader: Box<dyn Read> = if file == "-" {
                Box::new(io::stdin().lock())
            } else {
                Box::new(fs::File::open(&file).with_context(|| format!("cannot open {file}"))?)
            };
            let id = store
                .import(reader, reference.as_deref(), &change)
                .with_context(|| format!("cannot import {file}"))?;
            writeln!(out, "{id}")?;
        }
        Command::Load { input, quiet } => {
            let reader: Box<dyn Read> = match &input {
                Some(p) => Box::new(
                    fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
                ),
                None => {
                    if io::stdin().is_terminal() {
                        anyhow::bail!(
                            "requested load from stdin, but stdin is empty: use -i FILE or redirect"
                        );
                    }
                    Box::new(io::stdin().lock())
                }
            };
            let from = input.as_ref().map_or("stdin".into(), |p| p.display().to_string());
            let loaded = store.load(reader).with_context(|| format!("cannot load {from}"))?;
            if !quiet {
                for l in loaded {
                    if l.refs.is_empty() {
                        writeln!(out, "Loaded image ID: {}", l.id)?;
                    }
                    for r in l.refs {
                        writeln!(out, "Loaded image: {r}")?;
                    }
                }
            }
        }
        Command::Save { output, images } => match output {
            Some(path) => {
                // Write beside the target and rename: a failed save leaves no partial file.
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let tmp = dir.join(format!(
                    ".{}.berth-save-{}",
                    path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
                    std::process::id()
                ));
                let f = fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let mut w = io::BufWriter::new(f);
                let res = store.save(&images, &mut w).map_err(anyhow::Error::from).and_then(|()| {
                    w.flush()?;
                    fs::rename(&tmp, &path)
                        .with_context(|| format!("cannot write {}", path.display()))
                });
                if let Err(e) = res {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
            None => {
                if io::stdout().is_terminal() {
                    anyhow::bail!(
                        "cowardly refusing to save to a terminal: use the -o flag or redirect"
                    );
                }
                let mut w = io::BufWriter::new(out);
                store.save(&images, &mut w)?;
                w.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
        },
        Command::Tag { source, target } => store.tag(&source, &target)?,
        Command::Rm { force, images } => {
            let used = images_in_use(engine)?;
            let mut failed = false;
            for i in &images {
                match store.remove(i, force, &|id| used.iter().any(|u| u == id)) {
                    Ok(items) => {
                        for it in items {
                            match it {
                                RemoveItem::Untagged(r) => writeln!(out, "Untagged: {r}")?,
                                RemoveItem::Deleted(id) => writeln!(out, "Deleted: {id}")?,
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Prune { all, force } => {
            let what = if all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            if !force && !confirm(&format!("{what}\nAre you sure you want to continue?")) {
                return Ok(ExitCode::SUCCESS);
            }
            let used = images_in_use(engine)?;
            let report = store.prune(all, &|id| used.iter().any(|u| u == id))?;
            if !report.images_deleted.is_empty() {
                writeln!(out, "Deleted Images:")?;
                for it in &report.images_deleted {
                    match it {
                        RemoveItem::Untagged(r) => writeln!(out, "untagged: {r}")?,
                        RemoveItem::Deleted(id) => writeln!(out, "deleted: {id}")?,
                    }
                }
                writeln!(out)?;
            }
            writeln!(out, "Total reclaimed space: {}", human_size(report.space_reclaimed))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_like_docker() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(utc_datetime(1_704_164_645), "2024-01-02 03:04:05 +0000 UTC");
    }
}
