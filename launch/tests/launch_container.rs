//! The launcher end to end: real containers from a busybox overlay rootfs (needs root).

mod launch_common;

use std::time::{Duration, Instant};

use berth_launch::{LaunchError, SeccompMode};
use launch_common::*;
use nix::sys::signal::{Signal, kill};
use oci_spec::runtime::{MountBuilder, PosixRlimitBuilder, PosixRlimitType};

#[test]
fn runs_command_with_exit_code_and_stdout() {
    if !berth_testsupport::require_root() {
        return;
    }
    let (code, out, _) = run(spec(&["sh", "-c", "echo hello; exit 3"]));
    assert_eq!(code, 3);
    assert_eq!(out, "hello\n");
}

#[test]
fn pid1_and_hostname() {
    if !berth_testsupport::require_root() {
        return;
    }
    let (code, out, err) = run(spec(&["sh", "-c", "echo $$; hostname"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\nberthtest\n");
}

/// A new network namespace gets `lo` up (as docker's `none` network), so 127.0.0.1 works.
#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    if !berth_testsupport::require_root() {
        return;
    }
    let script = "ip -o link show lo; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok";
    let (code, out, err) = run(spec(&["sh", "-c", script]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<LOOPBACK,UP,LOWER_UP>"), "{out}");
    assert!(out.contains("ping-ok"), "{out}");
}

#[test]
fn env_user_groups_and_workdir() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&[
        "sh",
        "-c",
        "echo $FOO; id; pwd; touch ./f 2>/dev/null && echo writable; umask; cat /proc/self/oom_score_adj",
    ]);
    with_process(&mut s, |p| {
        let mut env = p.env().clone().unwrap_or_default();
        env.push("FOO=bar baz".into());
        p.set_env(Some(env)).set_cwd("/home/app/new/dir".into()).set_oom_score_adj(Some(500));
        let mut u = p.user().clone();
        u.set_uid(1000).set_gid(1000).set_additional_gids(Some(vec![50])).set_umask(Some(0o077));
        p.set_user(u);
    });
    let (code, out, err) = run(s);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "bar baz");
    assert_eq!(lines[1], "uid=1000(app) gid=1000(app) groups=50(staff)");
    assert_eq!(lines[2], "/home/app/new/dir");
    // The directory is created as root (like docker), so the user can't write to it.
    assert_eq!(lines[3..], ["0077", "500"], "{out} {err}");
}

#[test]
fn bind_mounts_ro_and_rw_and_tmpfs_size() {
    if !berth_testsupport::require_root() {
        return;
    }
    let host = tempfile::tempdir().expect("tmp");
    std::fs::write(host.path().join("hello"), "from host\n").expect("write");
    let rw = tempfile::tempdir().expect("tmp");
    let mut s = spec(&[
        "sh",
        "-c",
        "cat /ro/hello; touch /ro/x 2>/dev/null && echo ro-writable; echo data > /deep/rw/out; \
         df -k /scratch | tail -1; dd if=/dev/zero of=/scratch/f bs=1k count=2048 2>/dev/null || echo tmpfs-full",
    ]);
    let mounts = vec![
        MountBuilder::default()
            .destination("/ro")
            .typ("bind")
            .source(host.path())
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .expect("mount"),
        MountBuilder::default()
            .destination("/deep/rw")
            .typ("bind")
            .source(rw.path())
            .options(vec!["rbind".to_string(), "rw".to_string()])
            .build()
            .expect("mount"),
        MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["size=1m".to_string(), "mode=1777".to_string()])
            .build()
            .expect("mount"),
    ];
    s.set_mounts(Some(mounts));
    let (code, out, err) = run(s);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("from host\n"), "{out}");
    assert!(!out.contains("ro-writable"), "{out}");
    assert!(!host.path().join("x").exists());
    assert_eq!(std::fs::read_to_string(rw.path().join("out")).ok().as_deref(), Some("data\n"));
    assert!(out.contains(" 1024 "), "tmpfs size: {out}");
    assert!(out.contains("tmpfs-full"), "{out}");
}

#[test]
fn default_security_matches_docker() {
    if !berth_testsupport::require_root() {
        return;
    }
    let (code, out, err) = run(spec(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; \
         ip link add d0 type dummy 2>/dev/null && echo ip-ok; \
         mkdir -p /tmp/m && mount -t tmpfs t /tmp/m 2>/dev/null && echo mount-ok; \
         unshare -U true 2>/dev/null && echo unshare-ok; \
         echo kcore=$(cat /proc/kcore | wc -c); \
         echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null && echo procsys-writable; \
         touch /sys/x 2>/dev/null && echo sys-writable; \
         mknod /tmp/sda b 8 0 && echo mknod-ok; head -c1 /tmp/sda >/dev/null 2>&1 || echo open-refused; \
         echo cgroups=$(grep -vc ':/$' /proc/self/cgroup); \
         cat /proc/keys 2>/dev/null | wc -c; ls /dev | tr '\\n' ' '",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
    for bad in ["ip-ok", "mount-ok", "unshare-ok", "procsys-writable", "sys-writable"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert!(out.contains("kcore=0"), "{out}");
    // Like docker: mknod is allowed, the device cgroup refuses opening the node.
    assert!(out.contains("mknod-ok") && out.contains("open-refused"), "{out}");
    // The cgroup namespace is rooted at the container's cgroup.
    assert!(out.contains("cgroups=0"), "{out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdout",
    ] {
        assert!(out.split_whitespace().any(|w| w == dev), "/dev/{dev} missing: {out}");
    }
}

#[test]
fn unconfined_and_no_new_privs() {
    if !berth_testsupport::require_root() {
        return;
    }
    let s = spec(&["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"]);
    let mut r = match start_with(s, Fs::new(), SeccompMode::Unconfined, false) {
        Ok(r) => r,
        Err((e, _)) => panic!("{e}"),
    };
    let (_, out, _) = r.finish();
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let mut s = spec(&["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"]);
    with_process(&mut s, |p| {
        p.set_no_new_privileges(Some(true));
    });
    let (_, out, _) = run(s);
    assert!(out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn rlimits_applied_and_above_hard_refused() {
    if !berth_testsupport::require_root() {
        return;
    }
    let lim = |soft, hard| {
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(soft)
            .hard(hard)
            .build()
            .expect("rlimit")
    };
    let mut s = spec(&["sh", "-c", "ulimit -n; ulimit -Hn"]);
    with_process(&mut s, |p| {
        p.set_rlimits(Some(vec![lim(512u64, 1024u64)]));
    });
    let (code, out, err) = run(s);
    assert_eq!((code, out.as_str()), (0, "512\n1024\n"), "{err}");

    let mut s = spec(&["true"]);
    with_process(&mut s, |p| {
        p.set_rlimits(Some(vec![lim(1 << 20, 1 << 20)]));
    });
    match start_with(s, Fs::new(), SeccompMode::Default, false) {
        Err((LaunchError::Rlimit { name, .. }, _)) => assert_eq!(name, "RLIMIT_NOFILE"),
        Err((e, _)) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an rlimit above the hard limit was accepted"),
    }
}

#[test]
fn exec_errors_are_typed_like_docker() {
    if !berth_testsupport::require_root() {
        return;
    }
    match start_with(spec(&["no-such-command"]), Fs::new(), SeccompMode::Default, false) {
        Err((e, _)) => {
            assert_eq!(
                e.to_string(),
                "exec: \"no-such-command\": executable file not found in $PATH"
            );
            assert_eq!(e.exit_code(), Some(127));
        }
        Ok(_) => panic!("started a missing command"),
    }
    match start_with(spec(&["/etc/passwd"]), Fs::new(), SeccompMode::Default, false) {
        Err((e, _)) => assert_eq!(e.exit_code(), Some(126), "{e}"),
        Ok(_) => panic!("executed a non-executable file"),
    }
    match start_with(spec(&["/nope"]), Fs::new(), SeccompMode::Default, false) {
        Err((e, _)) => assert_eq!(e.exit_code(), Some(127), "{e}"),
        Ok(_) => panic!("executed a missing path"),
    }
    // Under init the error comes from the forked process, the same way.
    match start_with(spec(&["no-such-command"]), Fs::new(), SeccompMode::Default, true) {
        Err((e, _)) => assert_eq!(e.exit_code(), Some(127), "{e}"),
        Ok(_) => panic!("started a missing command under init"),
    }
}

#[test]
fn sysctls_namespaced_only() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni"]);
    with_linux(&mut s, |l| {
        l.set_sysctl(Some(
            [
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                ("kernel.shmmni".into(), "1000".into()),
            ]
            .into_iter()
            .collect(),
        ));
    });
    let (code, out, err) = run(s);
    assert_eq!((code, out.as_str()), (0, "1\n1000\n"), "{err}");
    let mut s = spec(&["true"]);
    with_linux(&mut s, |l| {
        l.set_sysctl(Some([("vm.swappiness".to_string(), "1".to_string())].into_iter().collect()));
    });
    match start_with(s, Fs::new(), SeccompMode::Default, false) {
        Err((LaunchError::Sysctl { key, .. }, _)) => assert_eq!(key, "vm.swappiness"),
        Err((e, _)) => panic!("unexpected {e}"),
        Ok(_) => panic!("host sysctl accepted"),
    }
}

#[test]
fn exec_in_joins_namespaces() {
    if !berth_testsupport::require_root() {
        return;
    }
    let r = start(spec(&["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 3600 & wait"]));
    assert_eq!(r.line(), "ready\n");
    let mut p =
        r.spawned.as_ref().and_then(|s| s.pid.as_raw().checked_add(0)).map(|_| ()).map(|_| {
            spec(&["sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; id -u"])
        });
    let proc_ = p.take().and_then(|s| s.process().clone()).expect("process");
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let (_err_r, err_w) = nix::unistd::pipe().expect("pipe");
    let child = berth_launch::exec_in(
        r.pid(),
        &proc_,
        r.cgroup(),
        SeccompMode::Default,
        berth_launch::Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w },
    )
    .expect("exec_in");
    let code = child.wait().expect("wait");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut out).expect("read");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "berthtest");
    let pid: i32 = lines[1].parse().expect("pid");
    assert!(pid > 1 && pid < 100, "pid in the container's namespace: {pid}");
    assert!(lines[2].starts_with("sh -c trap"), "{out}");
    assert!(r.cgroup().pids().expect("pids").len() >= 2);
    kill(r.pid(), Signal::SIGTERM).expect("kill");
}

#[test]
fn init_reaps_zombies_and_forwards_sigterm() {
    if !berth_testsupport::require_root() {
        return;
    }
    let s = spec(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; sh -c 'sleep 0.1 & exit 0'; sleep 0.5; \
         for i in $(seq 50); do z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); \
         [ $z = 0 ] && break; sleep 0.1; done; echo zombies=$z; \
         echo me=$$; echo ready; sleep 3600 & wait",
    ]);
    let mut r = match start_with(s, Fs::new(), SeccompMode::Default, true) {
        Ok(r) => r,
        Err((e, _)) => panic!("{e}"),
    };
    assert_eq!(r.line(), "zombies=0\n");
    assert_eq!(r.line(), "me=2\n");
    assert_eq!(r.line(), "ready\n");
    kill(r.pid(), Signal::SIGTERM).expect("kill");
    let (code, _, _) = r.finish();
    assert_eq!(code, 7);
}

#[test]
fn cleanup_leaves_no_mounts_or_cgroups() {
    if !berth_testsupport::require_root() {
        return;
    }
    let fs = Fs::new();
    let base = fs.dir.path().to_path_buf();
    let mut r =
        match start_with(spec(&["sh", "-c", "mount | wc -l"]), fs, SeccompMode::Default, false) {
            Ok(r) => r,
            Err((e, _)) => panic!("{e}"),
        };
    let (code, _, _) = r.finish();
    assert_eq!(code, 0);
    let s = r.spawned.take().expect("spawned");
    let dirs = s.cgroup.dirs();
    assert!(dirs.iter().all(|d| d.exists()));
    s.cgroup.destroy().expect("destroy");
    s.cgroup.destroy().expect("destroy is idempotent");
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    assert!(
        berth_testsupport::mounts_under(&base).is_empty(),
        "{:?}",
        berth_testsupport::mounts_under(&base)
    );
    // Nothing was mounted on the host's copy of the target either.
    assert_eq!(std::fs::read_dir(base.join("target")).map(|d| d.count()).unwrap_or(1), 0);
    let _ = Instant::now() + Duration::from_secs(0);
}

#[test]
fn pre_start_runs_before_exec_and_its_error_aborts() {
    if !berth_testsupport::require_root() {
        return;
    }
    let shared = tempfile::tempdir().expect("tmp");
    let mut s = spec(&["cat", "/shared/from-pre-start"]);
    s.set_mounts(Some(vec![
        MountBuilder::default()
            .destination("/shared")
            .typ("bind")
            .source(shared.path())
            .options(vec!["rbind".to_string()])
            .build()
            .expect("mount"),
    ]));
    let fs = Fs::new();
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let (_err_r, err_w) = nix::unistd::pipe().expect("pipe");
    let spec_ = berth_launch::LaunchSpec {
        oci: s.clone(),
        rootfs: fs.rootfs(),
        seccomp: SeccompMode::Default,
        init: false,
    };
    let dir = shared.path().to_path_buf();
    let spawned = berth_launch::spawn(
        &spec_,
        berth_launch::Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w },
        |pid| {
            // The container's namespaces exist already: its net namespace differs from ours.
            let theirs =
                std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
            let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
            if theirs == ours {
                return Err("same net namespace".into());
            }
            std::fs::write(dir.join("from-pre-start"), "hooked\n").map_err(|e| e.to_string())
        },
    )
    .expect("spawn");
    let guard = Running { spawned: Some(spawned), stdout: None, stderr: None, fs };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut out).expect("read");
    assert_eq!(out, "hooked\n");
    drop(guard);

    let fs = Fs::new();
    let (_o, out_w) = nix::unistd::pipe().expect("pipe");
    let (_e, err_w) = nix::unistd::pipe().expect("pipe");
    let spec_ = berth_launch::LaunchSpec {
        oci: s,
        rootfs: fs.rootfs(),
        seccomp: SeccompMode::Default,
        init: false,
    };
    let cg_path = spec_.oci.linux().as_ref().and_then(|l| l.cgroups_path().clone()).expect("path");
    let r = berth_launch::spawn(
        &spec_,
        berth_launch::Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w },
        |_| Err("network attach failed".to_string()),
    );
    match r {
        Err(LaunchError::PreStart(m)) => assert_eq!(m, "network attach failed"),
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("spawn ignored the pre_start error"),
    }
    assert!(berth_cgroups::Cgroup::open(&cg_path.to_string_lossy()).is_err());
}

#[test]
fn pty_is_the_controlling_terminal() {
    if !berth_testsupport::require_root() {
        return;
    }
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let s = spec(&[
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo isatty; awk '{print \"tty_nr=\" ($7 != 0)}' /proc/self/stat",
    ]);
    let fs = Fs::new();
    let spec_ = berth_launch::LaunchSpec {
        oci: s,
        rootfs: fs.rootfs(),
        seccomp: SeccompMode::Default,
        init: false,
    };
    let spawned =
        berth_launch::spawn(&spec_, berth_launch::Stdio::Pty { slave: pty.slave }, |_| Ok(()))
            .expect("spawn");
    let guard = Running { spawned: Some(spawned), stdout: None, stderr: None, fs };
    let code = guard.spawned.as_ref().expect("spawned").wait().expect("wait");
    let mut out = vec![0u8; 4096];
    let n = nix::unistd::read(&pty.master, &mut out).unwrap_or(0);
    let out = String::from_utf8_lossy(&out[..n]).replace('\r', "");
    assert_eq!(code, 0);
    assert!(out.contains("isatty\n") && out.contains("tty_nr=1"), "{out:?}");
}

#[test]
fn image_symlinks_cannot_redirect_mounts_to_the_host() {
    if !berth_testsupport::require_root() {
        return;
    }
    let host = tempfile::tempdir().expect("tmp");
    let fs = Fs::new();
    // An image whose /escape points at a host path, absolute.
    std::os::unix::fs::symlink(host.path(), fs.path("lower/escape")).expect("symlink");
    // The same path exists inside the image: the mount must land there, not on the host.
    let inside = fs.path("lower").join(host.path().strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(&inside).expect("mkdir");
    let mut s = spec(&[
        "sh",
        "-c",
        "grep -c ' /escape/inner\\| '$(readlink /escape)'/inner ' /proc/mounts",
    ]);
    s.set_mounts(Some(vec![
        MountBuilder::default()
            .destination("/escape/inner")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["size=1m".to_string()])
            .build()
            .expect("mount"),
    ]));
    let mut r = match start_with(s, fs, SeccompMode::Default, false) {
        Ok(r) => r,
        Err((e, _)) => panic!("{e}"),
    };
    let (code, out, err) = r.finish();
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");
    assert_eq!(
        std::fs::read_dir(host.path()).map(|d| d.count()).unwrap_or(1),
        0,
        "created on the host"
    );
    assert!(berth_testsupport::mounts_under(host.path()).is_empty());
}

#[test]
fn dir_rootfs_with_readonly_root() {
    if !berth_testsupport::require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    berth_testsupport::busybox_rootfs(dir.path()).expect("rootfs");
    let mut s = spec(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-writable; echo ok > /dev/shm/y && cat /dev/shm/y",
    ]);
    let mut root = s.root().clone().unwrap_or_default();
    root.set_readonly(Some(true));
    s.set_root(Some(root));
    let ls = berth_launch::LaunchSpec {
        oci: s,
        rootfs: berth_launch::Rootfs::Dir(dir.path().to_path_buf()),
        seccomp: SeccompMode::Default,
        init: false,
    };
    let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
    let (_e, err_w) = nix::unistd::pipe().expect("pipe");
    let sp = berth_launch::spawn(
        &ls,
        berth_launch::Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w },
        |_| Ok(()),
    )
    .expect("spawn");
    let guard = Running { spawned: Some(sp), stdout: None, stderr: None, fs: Fs::new() };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut out).expect("read");
    assert_eq!(out, "ok\n");
    drop(guard);
    assert!(!dir.path().join("x").exists());
    assert!(berth_testsupport::mounts_under(dir.path()).is_empty());
}

#[test]
fn joins_namespaces_given_by_path() {
    if !berth_testsupport::require_root() {
        return;
    }
    let a = start(spec(&["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 3600 & wait"]));
    assert_eq!(a.line(), "ready\n");
    let mut s = spec(&[
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/net",
    ]);
    with_linux(&mut s, |l| {
        let mut nss = l.namespaces().clone().unwrap_or_default();
        for ns in nss.iter_mut() {
            use oci_spec::runtime::LinuxNamespaceType as T;
            let name = match ns.typ() {
                T::Pid => "pid",
                T::Network => "net",
                _ => continue,
            };
            ns.set_path(Some(format!("/proc/{}/ns/{name}", a.pid()).into()));
        }
        l.set_namespaces(Some(nss));
    });
    let (code, out, err) = run(s);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].parse::<i32>().expect("pid") > 1, "{out}");
    assert!(lines[1].starts_with("sh -c trap"), "{out}");
    let a_net = std::fs::read_link(format!("/proc/{}/ns/net", a.pid())).expect("ns");
    assert_eq!(lines[2], a_net.to_string_lossy());
    // Our own thread is back in our pid namespace: a plain child is not in the container.
    let own = std::process::Command::new("/bin/busybox")
        .args(["sh", "-c", "readlink /proc/self/ns/pid"])
        .output()
        .expect("run");
    let ours = std::fs::read_link("/proc/self/ns/pid").expect("ns");
    assert_eq!(String::from_utf8_lossy(&own.stdout).trim(), ours.to_string_lossy());
    kill(a.pid(), Signal::SIGTERM).expect("kill");
}

#[test]
fn oci_default_mounts_with_and_without_network_namespace() {
    if !berth_testsupport::require_root() {
        return;
    }
    for own_net in [true, false] {
        let mut s = spec(&[
            "sh",
            "-c",
            "grep -E ' /(sys|sys/fs/cgroup|dev/shm) ' /proc/mounts | cut -d' ' -f2,3,4 | cut -d, -f1",
        ]);
        s.set_mounts(oci_spec::runtime::Spec::default().mounts().clone());
        if !own_net {
            with_linux(&mut s, |l| {
                let nss = l.namespaces().clone().unwrap_or_default();
                l.set_namespaces(Some(
                    nss.into_iter()
                        .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
                        .collect(),
                ));
            });
        }
        let (code, out, err) = run(s);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("/dev/shm tmpfs rw"), "{out}");
        assert!(out.contains("/sys/fs/cgroup") && out.contains(" ro\n"), "{out}");
        let sys = out.lines().find(|l| l.starts_with("/sys ")).unwrap_or_default();
        assert!(sys.starts_with("/sys sysfs ro"), "own_net={own_net}: {out}");
    }
}

#[test]
fn concurrent_spawns_from_many_threads() {
    if !berth_testsupport::require_root() {
        return;
    }
    // Regression: the child must not touch locks other threads of the parent may hold (glibc's
    // set*id broadcast did), so spawning from several threads at once must never hang.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..3 {
                    let mut s = spec(&["id", "-u"]);
                    with_process(&mut s, |p| {
                        let mut u = p.user().clone();
                        u.set_uid(1000).set_gid(1000).set_additional_gids(Some(vec![50]));
                        p.set_user(u);
                    });
                    let (code, out, err) = run(s);
                    assert_eq!((code, out.as_str()), (0, "1000\n"), "{err}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}

#[test]
fn container_sees_its_own_cgroup_limits() {
    if !berth_testsupport::require_root() {
        return;
    }
    let layout = berth_cgroups::Layout::detect().expect("layout");
    let cmd = match layout {
        berth_cgroups::Layout::V2(_) => {
            "cat /sys/fs/cgroup/memory.max; touch /sys/fs/cgroup/x 2>/dev/null && echo writable; true"
        }
        _ => {
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /sys/fs/cgroup/memory/x 2>/dev/null && echo writable; true"
        }
    };
    let mut s = spec(&["sh", "-c", cmd]);
    s.set_mounts(oci_spec::runtime::Spec::default().mounts().clone());
    with_resources(&mut s, |r| {
        let mut m = oci_spec::runtime::LinuxMemory::default();
        m.set_limit(Some(64 << 20));
        r.set_memory(Some(m));
    });
    let (code, out, err) = run(s);
    assert_eq!((code, out.as_str()), (0, "67108864\n"), "{err}");
}

#[test]
fn new_pty_is_allocated_inside_the_container() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&["sh", "-c", "tty; stty size; trap 'exit 0' TERM; sleep 3600 & wait"]);
    with_process(&mut s, |p| {
        let b = oci_spec::runtime::BoxBuilder::default()
            .height(33u64)
            .width(101u64)
            .build()
            .expect("box");
        p.set_console_size(Some(b));
    });
    let fs = Fs::new();
    let ls = berth_launch::LaunchSpec {
        oci: s.clone(),
        rootfs: fs.rootfs(),
        seccomp: SeccompMode::Default,
        init: false,
    };
    let mut sp = berth_launch::spawn(&ls, berth_launch::Stdio::NewPty, |_| Ok(())).expect("spawn");
    let master = sp.pty_master.take().expect("pty master");
    let guard = Running { spawned: Some(sp), stdout: None, stderr: None, fs };
    let read_lines = |fd: &std::os::fd::OwnedFd, n: usize| {
        let mut out = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while out.matches('\n').count() < n && Instant::now() < deadline {
            let mut buf = [0u8; 256];
            match nix::unistd::read(fd, &mut buf) {
                Ok(n) if n > 0 => out.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
        out.replace('\r', "")
    };
    assert_eq!(read_lines(&master, 2), "/dev/pts/0\n33 101\n");

    // exec -t: a second pty from the same container's devpts.
    let proc_ = spec(&["tty"]).process().clone().expect("process");
    let mut child = berth_launch::exec_in(
        guard.pid(),
        &proc_,
        guard.cgroup(),
        SeccompMode::Default,
        berth_launch::Stdio::NewPty,
    )
    .expect("exec_in");
    let m2 = child.pty_master.take().expect("exec pty master");
    assert_eq!(read_lines(&m2, 1), "/dev/pts/1\n");
    assert_eq!(child.wait().expect("wait"), 0);
    kill(guard.pid(), Signal::SIGTERM).expect("kill");
}

#[test]
fn privileged_style_all_caps_unconfined() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|CapBnd):' /proc/self/status; mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && echo mount-ok",
    ]);
    with_process(&mut s, |p| {
        p.set_capabilities(Some(berth_launch::all_capabilities()));
    });
    with_linux(&mut s, |l| {
        l.set_masked_paths(Some(vec![])).set_readonly_paths(Some(vec![]));
    });
    let mut r = match start_with(s, Fs::new(), SeccompMode::Unconfined, false) {
        Ok(r) => r,
        Err((e, _)) => panic!("{e}"),
    };
    let (code, out, err) = r.finish();
    assert_eq!(code, 0, "{err}");
    let host = std::fs::read_to_string("/proc/self/status").expect("status");
    let host_bnd = host.lines().find(|l| l.starts_with("CapBnd:")).expect("CapBnd");
    let eff = host_bnd.replace("CapBnd", "CapEff");
    assert!(out.contains(&eff), "{out} vs {host_bnd}");
    assert!(out.contains("mount-ok"), "{out}");
}

#[test]
fn unavailable_capability_is_named() {
    if !berth_testsupport::require_root() {
        return;
    }
    let own = caps::read(None, caps::CapSet::Bounding).expect("caps");
    let Some(absent) = caps::all().into_iter().find(|c| !own.contains(c)) else {
        return; // berth holds every capability here: nothing to test
    };
    let mut s = spec(&["true"]);
    let name = absent.to_string();
    with_process(&mut s, |p| {
        let mut c = berth_launch::docker_default_capabilities();
        let cap: oci_spec::runtime::Capability =
            name.trim_start_matches("CAP_").parse().expect("cap");
        let mut set = c.permitted().clone().unwrap_or_default();
        set.insert(cap);
        c.set_permitted(Some(set.clone())).set_effective(Some(set));
        p.set_capabilities(Some(c));
    });
    match start_with(s, Fs::new(), SeccompMode::Default, false) {
        Err((e, _)) => assert!(e.to_string().contains(&name), "{e}"),
        Ok(_) => panic!("granted {name}"),
    }
}
