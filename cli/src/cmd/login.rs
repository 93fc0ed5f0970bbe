//! `berth login` / `berth logout`: docker's credentials in `$DOCKER_CONFIG/config.json` (or its
//! credential helpers), checked against the registry before they are stored.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use berth_image::registry::{self, Credentials};

/// `berth login` flags.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Registry (default: Docker Hub).
    pub server: Option<String>,
    /// Username.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth logout` flags.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Registry (default: Docker Hub).
    pub server: Option<String>,
}

/// How docker names a registry in login messages.
fn shown(domain: &str) -> String {
    if domain == berth_image::DEFAULT_DOMAIN {
        "https://index.docker.io/v1/".to_string()
    } else {
        domain.to_string()
    }
}

fn prompt(what: &str) -> anyhow::Result<String> {
    eprint!("{what}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a password from the terminal without echoing it.
fn prompt_hidden(what: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let old = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn off echo")?;
    let r = prompt(what);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &old);
    eprintln!();
    r
}

/// Runs `berth login`.
pub fn run_login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.unwrap_or_default();
    let tty = std::io::stdin().is_terminal();
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => {
            anyhow::bail!("must provide --username with --password-stdin")
        }
        None if tty => prompt("Username")?,
        None => anyhow::bail!("cannot perform an interactive login from a non TTY device"),
    };
    if username.is_empty() {
        anyhow::bail!("a username is required");
    }
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_to_string_lossy(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if tty {
        prompt_hidden("Password")?
    } else {
        anyhow::bail!("cannot perform an interactive login from a non TTY device")
    };
    if password.is_empty() {
        anyhow::bail!("a password is required");
    }
    let rt = super::image_pull::runtime()?;
    rt.block_on(registry::login(&server, Credentials { username, password }))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Runs `berth logout`.
pub fn run_logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let (domain, removed) = registry::logout(args.server.as_deref().unwrap_or_default())?;
    if removed {
        println!("Removing login credentials for {}", shown(&domain));
    } else {
        println!("Not logged in to {}", shown(&domain));
    }
    Ok(ExitCode::SUCCESS)
}

/// `read_to_string` that keeps going over invalid UTF-8 (a password is what the user typed).
trait ReadLossy {
    fn read_to_string_lossy(&mut self, s: &mut String) -> std::io::Result<()>;
}

impl<R: std::io::Read> ReadLossy for R {
    fn read_to_string_lossy(&mut self, s: &mut String) -> std::io::Result<()> {
        let mut b = Vec::new();
        self.read_to_end(&mut b)?;
        s.push_str(&String::from_utf8_lossy(&b));
        Ok(())
    }
}
