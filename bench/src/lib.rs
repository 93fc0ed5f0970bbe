//! Shared helpers for the benchmark binaries in `src/bin/`.

/// The median of `samples` (sorted in place); 0 for an empty slice.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 }
}

/// The docker side of a comparison: a docker client pointed at one daemon (benchmarks only;
/// berth itself never uses docker).
pub struct Docker {
    /// The daemon address, as `DOCKER_HOST` takes it (`unix:///var/tmp/bench-docker/docker.sock`).
    pub host: String,
    /// The docker client: `$DOCKER_BIN`, else Debian's `/usr/bin/docker`, else `docker`.
    pub bin: std::path::PathBuf,
}

impl Docker {
    /// The daemon named by `--docker-host URL` in `args` (removed from it), else by
    /// `$BENCH_DOCKER_HOST`; `None` runs the bench for berth alone.
    pub fn from_args(args: &mut Vec<String>) -> Result<Option<Docker>, String> {
        let mut host = std::env::var("BENCH_DOCKER_HOST").ok().filter(|h| !h.is_empty());
        if let Some(i) = args.iter().position(|a| a == "--docker-host") {
            if i + 1 >= args.len() {
                return Err(
                    "--docker-host needs an address, e.g. unix:///var/run/docker.sock".into()
                );
            }
            host = Some(args.remove(i + 1));
            args.remove(i);
        }
        let Some(host) = host else { return Ok(None) };
        let bin = match std::env::var_os("DOCKER_BIN") {
            Some(b) => b.into(),
            None if std::path::Path::new("/usr/bin/docker").exists() => "/usr/bin/docker".into(),
            None => "docker".into(),
        };
        Ok(Some(Docker { host, bin }))
    }

    /// A command for `program` (docker or docker-compose) talking to this daemon.
    pub fn command(&self, program: &std::path::Path) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.env("DOCKER_HOST", &self.host);
        c
    }

    /// Runs the docker client with `args`; its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        output(self.command(&self.bin).args(args), &format!("docker {}", args.join(" ")))
    }

    /// Imports the root filesystem tar at `tar` as `tag` (`docker import`), replacing an
    /// image of that tag.
    pub fn import(&self, tar: &std::path::Path, tag: &str) -> Result<(), String> {
        let tar = tar.to_str().ok_or("the tar path is not UTF-8")?;
        self.run(&["import", tar, tag]).map(drop)
    }

    /// The daemon's version, e.g. `20.10.24+dfsg1`.
    pub fn server_version(&self) -> Result<String, String> {
        Ok(self.run(&["version", "-f", "{{.Server.Version}}"])?.trim().to_string())
    }
}

/// Runs `cmd` to completion: its stdout, or an error naming `what` with its stderr.
pub fn output(cmd: &mut std::process::Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        // Progress output can be long: the end holds the error.
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        let tail = err.char_indices().rev().nth(600).map_or(err, |(i, _)| &err[i..]);
        return Err(format!("{what}: {}: {tail}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
