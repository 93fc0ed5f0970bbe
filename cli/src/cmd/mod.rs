//! Top-level argument parsing and dispatch. Each command group lives in its own module with an
//! `Args` type (clap) and a `run` function (the compose commands one per file under `compose/`);
//! errors become one clear sentence and an exit code.

mod attach;
mod build;
mod compose;
mod container;
mod container_run;
mod dns;
mod engine_access;
mod human;
mod image;
mod image_history;
mod image_pull;
mod login;
mod netflags;
mod network;
mod stats;
mod system;
mod template;
mod time_args;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit code for bad command-line syntax (as compose).
pub const EXIT_USAGE: u8 = 16;

/// An error that carries the process exit code to use; any other error exits 1.
#[derive(Debug)]
pub struct ExitWith {
    /// The exit code.
    pub code: u8,
    /// The sentence shown to the user (empty: print nothing, e.g. the command already reported).
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// Options shared by every compose-level command (docker compose v2's global flags). They go
/// before the subcommand, as in `docker compose [OPTIONS] COMMAND`, which leaves `-f`/`-p` free
/// for subcommands' own short flags (`logs -f`, `rm -f`, `run -p`).
#[derive(Debug, Clone, Args, Default)]
pub struct ProjectOpts {
    /// Compose configuration files (repeatable; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the directory of the first compose file).
    #[arg(long)]
    pub project_directory: Option<PathBuf>,
    /// Alternate environment files (repeatable).
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (repeatable).
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Control when to print ANSI control characters ("never"|"always"|"auto").
    #[arg(long, default_value = "auto")]
    pub ansi: String,
    /// Progress output type (auto, tty, plain, json, quiet).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Execute command in dry run mode.
    #[arg(long)]
    pub dry_run: bool,
    /// Control max parallelism, -1 for unlimited.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub parallel: i64,
}

/// Options for the runtime's state.
#[derive(Debug, Clone, Args)]
pub struct EngineOpts {
    /// State root for images, containers, volumes and networks.
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = berth_store::DEFAULT_ROOT)]
    pub root: PathBuf,
}

/// berth: Docker-Compose-compatible orchestration on its own container runtime.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    project: ProjectOpts,
    #[command(flatten)]
    engine: EngineOpts,
    /// Show debug output (same as RUST_LOG=debug).
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse, resolve and render compose file in canonical format.
    Config(compose::config::Args),
    #[command(flatten)]
    Compose(compose::Command),
    /// Build an image from a Dockerfile (`build PATH`, docker's), or compose services' images
    /// (`build [SERVICE...]`).
    Build(build::BuildArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(container::Command),
    /// Manage images.
    #[command(subcommand)]
    Image(image::Command),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::Command),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::Command),
    /// Log in to a registry.
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(login::LogoutArgs),
    /// Manage berth: prune, disk usage, information.
    #[command(subcommand)]
    System(system::Command),
    /// Internal: the per-root DNS server for bridge networks.
    #[command(name = "__dns", hide = true)]
    Dns,
}

impl Command {
    /// Whether this command starts processes inside a container from the CLI itself (`exec`, and
    /// the API service's exec).
    fn joins_containers(&self) -> bool {
        matches!(
            self,
            Command::Compose(compose::Command::Exec(_))
                | Command::Container(container::Command::Exec(_))
                | Command::System(system::Command::Service { .. })
        )
    }
}

/// Parses arguments, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose);
    // A command that starts a process in a container from this process first re-executes
    // berth from a read-only copy of itself, so the container cannot reopen that process's
    // /proc/PID/exe for writing (docs/launch.md "Sealed executables"). Still one thread here.
    if cli.command.joins_containers()
        && let Err(e) = berth_runtime::sealed_exe::reexec()
    {
        return report(e.into());
    }
    let result = match cli.command {
        Command::Config(args) => compose::config::run(&cli.project, args),
        Command::Compose(c) => compose::run(&cli.project, &cli.engine, c),
        Command::Build(args) => build::build(&cli.project, &cli.engine, args),
        Command::Builder(cmd) => build::builder(&cli.engine, cmd),
        Command::Container(cmd) => container::run(&cli.engine, cmd),
        Command::Image(cmd) => image::run(&cli.engine, cmd),
        Command::Volume(cmd) => volume::run(&cli.engine, cmd),
        Command::Network(cmd) => network::run(&cli.engine, cmd),
        Command::System(cmd) => system::run(&cli.engine, cmd),
        Command::Login(args) => login::run_login(args),
        Command::Logout(args) => login::run_logout(args),
        Command::Dns => dns::run(&cli.engine),
    };
    match result {
        Ok(code) => code,
        Err(err) => report(err),
    }
}

/// `inspect` as docker does it: what was found as a JSON array (or one `--format` template line
/// each), each miss as a line on stderr, exit 1 when anything was missing.
pub fn inspect_each<T: serde::Serialize, E: std::fmt::Display>(
    keys: &[String],
    format: Option<&str>,
    out: &mut impl std::io::Write,
    mut lookup: impl FnMut(&str) -> Result<T, E>,
) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    let mut failed = false;
    for k in keys {
        match lookup(k) {
            Ok(v) => found.push(serde_json::to_value(v)?),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    template::print_inspected(&found, format, out)?;
    Ok(ExitCode::from(u8::from(failed)))
}

/// Prints an error as one sentence on stderr and returns its exit code.
fn report(err: anyhow::Error) -> ExitCode {
    if let Some(exit) = err.downcast_ref::<ExitWith>() {
        if !exit.message.is_empty() {
            eprintln!("{}", exit.message);
        }
        return ExitCode::from(exit.code);
    }
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
    }
    eprintln!("{msg}");
    ExitCode::from(1)
}

fn init_tracing(verbose: bool) {
    let filter = if verbose {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand (duplicate short flags, ...).
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
