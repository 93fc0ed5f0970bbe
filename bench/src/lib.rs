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

/// Images written as an OCI image layout on disk, for `skopeo copy oci:DIR:TAG docker://…` to
/// push into a loopback registry (the registry benches).
pub mod layout {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// Semi-compressible bytes: runs of pseudo-random words and zeros (gzip to about half).
    pub fn content(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(2) {
                out.extend_from_slice(&x.to_le_bytes());
            } else {
                out.extend_from_slice(&[0u8; 8]);
            }
        }
        out.truncate(len);
        out
    }

    /// `sha256:<hex>` of `b`.
    pub fn sha256(b: &[u8]) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    }

    /// A gzip layer: its descriptor (JSON) and diff id.
    pub struct Layer {
        /// The manifest's descriptor of the compressed blob.
        pub desc: serde_json::Value,
        /// sha256 of the uncompressed tar.
        pub diff_id: String,
        /// Compressed size.
        pub size: usize,
    }

    /// An OCI image layout directory being filled.
    pub struct Layout {
        /// The layout's directory.
        pub dir: PathBuf,
        manifests: Vec<serde_json::Value>,
    }

    impl Layout {
        /// An empty layout at `dir`.
        pub fn create(dir: &Path) -> std::io::Result<Layout> {
            std::fs::create_dir_all(dir.join("blobs/sha256"))?;
            std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            Ok(Layout { dir: dir.to_path_buf(), manifests: Vec::new() })
        }

        /// Stores `b` as a blob; its digest.
        pub fn blob(&self, b: &[u8]) -> std::io::Result<String> {
            let d = sha256(b);
            std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), b)?;
            Ok(d)
        }

        /// A gzip layer of `files` (path, bytes).
        pub fn layer(&self, files: &[(String, Vec<u8>)]) -> std::io::Result<Layer> {
            let mut t = tar::Builder::new(Vec::new());
            for (path, data) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                t.append_data(&mut h, path, &data[..])?;
            }
            let tar = t.into_inner()?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar)?;
            let gz = gz.finish()?;
            let desc = serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": self.blob(&gz)?, "size": gz.len()});
            Ok(Layer { desc, diff_id: sha256(&tar), size: gz.len() })
        }

        /// An amd64 image of `layers` tagged `tag` in the layout; the size of its config blob.
        pub fn image(&mut self, layers: &[&Layer], tag: &str) -> std::io::Result<usize> {
            let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
            let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64",
                "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}))?;
            let cd = self.blob(&config)?;
            let descs: Vec<&serde_json::Value> = layers.iter().map(|l| &l.desc).collect();
            let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": cd, "size": config.len()},
                "layers": descs}))?;
            let md = self.blob(&manifest)?;
            self.manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}}));
            std::fs::write(
                self.dir.join("index.json"),
                serde_json::to_vec(
                    &serde_json::json!({"schemaVersion": 2, "manifests": self.manifests}),
                )?,
            )?;
            Ok(config.len())
        }

        /// Pushes the layout's image `tag` to `dest` (`host:port/repo:tag`, plain HTTP).
        pub fn push(&self, tag: &str, dest: &str) -> Result<(), String> {
            let st = std::process::Command::new("skopeo")
                .args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"])
                .arg("--dest-tls-verify=false")
                .arg(format!("oci:{}:{tag}", self.dir.display()))
                .arg(format!("docker://{dest}"))
                .status()
                .map_err(|e| format!("skopeo: {e}"))?;
            if !st.success() {
                return Err(format!("skopeo copy to {dest}: {st}"));
            }
            Ok(())
        }
    }
}
