//! Time of `berth_launch::spawn` + wait of `/bin/true` in a busybox overlay container (docker-like
//! namespaces, caps, seccomp, masked paths), median of 50 runs; cgroup removal not included
//! (printed separately). Run as root: `cargo run --release -p berth-bench --bin launch_true`.

use std::path::PathBuf;
use std::time::Instant;

use berth_launch::{LaunchSpec, Rootfs, SeccompMode, Stdio};
use oci_spec::runtime::{LinuxResources, Spec};

const RUNS: usize = 50;

fn spec(i: usize) -> Spec {
    let mut s = Spec::default();
    s.set_mounts(Some(vec![])).set_hostname(Some("bench".into()));
    let mut root = s.root().clone().unwrap_or_default();
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    let mut p = s.process().clone().unwrap_or_default();
    p.set_args(Some(vec!["/bin/true".into()]))
        .set_env(Some(vec!["PATH=/bin".into()]))
        .set_capabilities(Some(berth_launch::docker_default_capabilities()))
        .set_no_new_privileges(Some(false))
        .set_rlimits(None);
    s.set_process(Some(p));
    let mut l = s.linux().clone().unwrap_or_default();
    let mut res = LinuxResources::default();
    res.set_devices(Some(berth_launch::docker_default_device_rules()));
    l.set_resources(Some(res))
        .set_cgroups_path(Some(PathBuf::from(format!("berth/bench-{}-{i}", std::process::id()))))
        .set_masked_paths(Some(
            berth_launch::DOCKER_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
        ))
        .set_readonly_paths(Some(
            berth_launch::DOCKER_READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        ));
    s.set_linux(Some(l));
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("berth-bench-").tempdir()?;
    let lower = dir.path().join("lower");
    berth_testsupport::busybox_rootfs(&lower)?;
    let mut times = Vec::new();
    let mut cleanup = Vec::new();
    for i in 0..RUNS {
        let run = dir.path().join(format!("run{i}"));
        for d in ["upper", "work", "target"] {
            std::fs::create_dir_all(run.join(d))?;
        }
        let ls = LaunchSpec {
            oci: spec(i),
            rootfs: Rootfs::Overlay {
                lower: vec![lower.clone()],
                upper: run.join("upper"),
                work: run.join("work"),
                target: run.join("target"),
                volatile: false,
            },
            seccomp: SeccompMode::Default,
            init: false,
        };
        let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        let stdio = Stdio::Pipes {
            stdin: None,
            stdout: devnull.try_clone()?.into(),
            stderr: devnull.into(),
        };
        let t = Instant::now();
        let s = berth_launch::spawn(&ls, stdio, |_| Ok(()))?;
        let code = s.wait()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        s.cgroup.destroy()?;
        cleanup.push(t.elapsed().as_secs_f64() * 1000.0);
        if code != 0 {
            return Err(format!("/bin/true exited {code}").into());
        }
    }
    println!(
        "launch_true: spawn+wait of /bin/true, median of {RUNS}: {:.2} ms (cgroup destroy median {:.2} ms)",
        berth_bench::median(&mut times),
        berth_bench::median(&mut cleanup)
    );
    Ok(())
}
