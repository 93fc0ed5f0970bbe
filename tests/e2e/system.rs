//! `berth system prune|df|info` end to end. The prune test makes real leftovers: a state root
//! deleted with `rm -rf` while its container runs, and a damaged one whose records were deleted,
//! then checks that `system prune` from a third, fresh root removes all they left on the host
//! while a fourth, live root's container keeps running and answering. Traffic goes only to
//! loopback and to containers the tests create. Leftovers are removed by a Drop guard (kill,
//! unmount, delete) even when an assertion fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::net::{http_get, retry, run_cmd};
use crate::support::{ContainerEnv, berth};

/// Polls `cond` every 20 ms until it holds; panics with `what` after `secs` seconds.
fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` runs (a zombie counts as gone).
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(pid: i64, sig: &str) {
    let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).output();
}

/// Pids whose command line contains `needle` and `root`.
fn pids_of(needle: &str, root: &Path) -> Vec<i64> {
    let root = root.to_string_lossy().to_string();
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i64>() else { continue };
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && cmd.contains(&root) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Every `/sys/fs/cgroup/<hierarchy>/berth/<id>` directory that exists.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("berth").join(id))
        .filter(|p| p.is_dir())
        .collect()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// (rule comments, `subnets` elements as `addr/len`) of every berth nft table.
fn nft_state() -> (Vec<String>, Vec<String>) {
    let out = run_cmd("nft", &["-j", "list", "ruleset"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let mut comments = Vec::new();
    let mut elems = Vec::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        if o["rule"]["table"] == "berth"
            && let Some(c) = o["rule"]["comment"].as_str()
        {
            comments.push(c.to_string());
        }
        if o["set"]["table"] == "berth" && o["set"]["name"] == "subnets" {
            for e in o["set"]["elem"].as_array().into_iter().flatten() {
                let p = &e["prefix"];
                elems.push(format!("{}/{}", p["addr"].as_str().unwrap_or(""), p["len"]));
            }
        }
    }
    (comments, elems)
}

fn forward_holders() -> String {
    std::fs::read_to_string("/run/berth-network/ip_forward.json").unwrap_or_default()
}

/// One network a root made: id, bridge, subnet.
#[derive(Clone, Debug)]
struct Net {
    id: String,
    bridge: String,
    subnet: String,
}

/// One running container: id, its process, its monitor, its published port.
#[derive(Clone, Debug)]
struct Ctr {
    id: String,
    pid: i64,
    monitor: i64,
    port: u16,
}

/// What the wrecked roots left; removed on drop by hand (not by the code under test), so a
/// failed test leaves nothing either.
struct Wreck {
    roots: Vec<PathBuf>,
    containers: Vec<String>,
    nets: Vec<Net>,
    mounts: Vec<PathBuf>,
}

impl Drop for Wreck {
    fn drop(&mut self) {
        for r in &self.roots {
            for pid in pids_of("__monitor", r).into_iter().chain(pids_of("__dns", r)) {
                signal(pid, "-CONT");
                signal(pid, "-KILL");
            }
        }
        for id in &self.containers {
            for d in cgroup_dirs(id) {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for p in procs.split_whitespace() {
                    let _ = std::process::Command::new("kill").args(["-KILL", p]).output();
                }
            }
            for d in cgroup_dirs(id) {
                let deadline = Instant::now() + Duration::from_secs(5);
                while std::fs::remove_dir(&d).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        for m in &self.mounts {
            let _ = std::process::Command::new("umount").args(["-l"]).arg(m).output();
        }
        for n in &self.nets {
            let _ = std::process::Command::new("ip").args(["link", "del", &n.bridge]).output();
            let tag = format!("net:{}", &n.id[..12]);
            let out = run_cmd("nft", &["-j", "-a", "list", "ruleset"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
            for o in v["nftables"].as_array().into_iter().flatten() {
                let r = &o["rule"];
                if r["table"] == "berth" && r["comment"].as_str().is_some_and(|c| c.contains(&tag))
                {
                    let (fam, chain, h) =
                        (r["family"].as_str(), r["chain"].as_str(), r["handle"].to_string());
                    if let (Some(fam), Some(chain)) = (fam, chain) {
                        run_cmd("nft", &["delete", "rule", fam, "berth", chain, "handle", &h]);
                    }
                }
            }
            let elem = format!("{{ {} }}", n.subnet);
            run_cmd("nft", &["delete", "element", "ip", "berth", "subnets", &elem]);
        }
    }
}

/// Serialises the tests that run `system prune`: each would otherwise remove the other's
/// leftovers before it looks.
static PRUNE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes a network and a running busybox httpd on it with a port published on 127.0.0.1;
/// returns the network, the container, the container's name and the network's name.
fn network_with_server(env: &ContainerEnv, prefix: &str) -> (Net, Ctr, String, String) {
    let net = berth_testsupport::unique_name(prefix);
    env.ok(&["network", "create", &net]);
    let rec: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", &net])).expect("inspect json");
    let id = rec[0]["Id"].as_str().expect("id").to_string();
    let subnet = rec[0]["IPAM"]["Config"][0]["Subnet"].as_str().expect("subnet").to_string();
    let name = berth_testsupport::unique_name(&format!("{prefix}web"));
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &net,
        "-p",
        "127.0.0.1:0:80",
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let port_line = env.ok(&["container", "port", &name, "80"]);
    let port = port_line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let st = env.state_record(&name);
    let ctr = Ctr {
        id: env.id(&name),
        pid: st["State"]["Pid"].as_i64().expect("pid"),
        monitor: st["MonitorPid"].as_i64().expect("monitor pid"),
        port,
    };
    let n = Net { bridge: format!("brt-{}", &id[..10]), id, subnet };
    (n, ctr, name, net)
}

/// The DNS server of `root`, once it runs.
fn dns_server(root: &Path) -> i64 {
    let mut pid = 0;
    wait_for("the DNS server", 10, || {
        pid = pids_of("__dns", root).first().copied().unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn system_prune_removes_what_deleted_and_damaged_roots_left() {
    let Some(live) = ContainerEnv::new() else { return };
    let _serial = PRUNE.lock().unwrap_or_else(|e| e.into_inner());
    let deleted = ContainerEnv::new().expect("root A");
    let damaged = ContainerEnv::new().expect("root D");
    let fresh = berth_testsupport::TempRoot::new().expect("root C");
    let mut wreck = Wreck {
        roots: vec![deleted.path(), damaged.path()],
        containers: Vec::new(),
        nets: Vec::new(),
        mounts: Vec::new(),
    };

    // The live root B: a server on its own network, which must keep working.
    let (b_net, b_ctr, b_name, b_net_name) = network_with_server(&live, "sysb");
    struct NetGuard<'a>(&'a ContainerEnv, String);
    impl Drop for NetGuard<'_> {
        fn drop(&mut self) {
            let out = self.0.run(&["container", "ls", "-aq", "--no-trunc"]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.0.run(&["container", "rm", "--force", id]);
            }
            let _ = self.0.run(&["network", "rm", &self.1]);
        }
    }
    let _b_guard = NetGuard(&live, b_net_name.clone());
    assert!(http_get(b_ctr.port, "/passwd", 10).contains("root:"));

    // Root A: a server, then the whole root deleted with rm -rf while everything runs.
    let (a_net, a_ctr, _, _) = network_with_server(&deleted, "sysa");
    wreck.containers.push(a_ctr.id.clone());
    wreck.nets.push(a_net.clone());
    assert!(http_get(a_ctr.port, "/passwd", 10).contains("root:"));
    let alias = std::fs::read_to_string(format!("/sys/class/net/{}/ifalias", a_net.bridge))
        .expect("bridge alias");
    assert_eq!(alias.trim(), format!("berth {} {}", a_net.id, deleted.path().display()));
    // A DNS server notices a vanished root within 100 ms and exits; a stopped one cannot,
    // which is the stuck server prune must handle.
    let a_dns = dns_server(&deleted.path());
    signal(a_dns, "-STOP");
    std::fs::remove_dir_all(deleted.path()).expect("rm -rf root A");

    // Root D: a server and a stopped container whose `berth cp` was killed with its overlay
    // mounted (the mount a copy out of a stopped container makes), then its records deleted.
    let (d_net, d_ctr, _, _) = network_with_server(&damaged, "sysd");
    wreck.containers.push(d_ctr.id.clone());
    wreck.nets.push(d_net.clone());
    let d2 = berth_testsupport::unique_name("sysdcp");
    damaged.ok(&["container", "create", "--name", &d2, "bb", "true"]);
    let d2_id = damaged.id(&d2);
    let d2_dir = damaged.path().join("containers").join(&d2_id);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d2_dir.join("config.json")).expect("config"))
            .expect("config json");
    let lowers: Vec<&str> =
        cfg["Layers"].as_array().expect("layers").iter().filter_map(|l| l.as_str()).collect();
    let cp = d2_dir.join("cp");
    std::fs::create_dir_all(&cp).expect("mkdir cp");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        d2_dir.join("rootfs/upper").display(),
        d2_dir.join("rootfs/work").display()
    );
    wreck.mounts.push(cp.clone());
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&cp)
        .status()
        .expect("mount");
    assert!(st.success(), "mount the cp overlay");
    assert!(!berth_testsupport::mounts_under(&cp).is_empty());
    let d_dns = dns_server(&damaged.path());
    signal(d_dns, "-STOP");
    std::fs::remove_dir_all(damaged.path().join("networks")).expect("rm networks/");
    std::fs::remove_dir_all(damaged.path().join("containers").join(&d_ctr.id)).expect("rm d1");
    for f in ["config.json", "state.json"] {
        let _ = std::fs::remove_file(d2_dir.join(f));
    }

    // Everything is still there before the prune.
    for c in [&a_ctr, &d_ctr] {
        assert!(alive(c.pid) && alive(c.monitor), "{c:?} runs before the prune");
        assert!(!cgroup_dirs(&c.id).is_empty());
    }
    assert!(link_exists(&a_net.bridge) && link_exists(&d_net.bridge));

    let out = berth(&fresh.path(), &["system", "prune", "-f"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "prune failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Deleted Host Leftovers:"), "{stdout}");
    assert!(stdout.trim_end().ends_with("Total reclaimed space: 0B"), "{stdout}");
    for want in [
        format!("monitor pid {}", a_ctr.monitor),
        format!("monitor pid {}", d_ctr.monitor),
        format!("cgroup berth/{}", a_ctr.id),
        format!("cgroup berth/{}", d_ctr.id),
        format!("dns server pid {a_dns}"),
        format!("dns server pid {d_dns}"),
        format!("mount {}", cp.display()),
        format!("bridge {}", a_net.bridge),
        format!("bridge {}", d_net.bridge),
        format!("nft rules of network {}", &a_net.id[..12]),
        format!("nft rules of network {}", &d_net.id[..12]),
        format!("nft subnet element {}", a_net.subnet),
        format!("nft subnet element {}", d_net.subnet),
    ] {
        assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    assert!(stdout.contains(&format!("state root {} is gone", deleted.path().display())));

    // Nothing of A and D is left.
    for c in [&a_ctr, &d_ctr] {
        wait_for("the orphaned processes to die", 10, || !alive(c.pid) && !alive(c.monitor));
        assert!(cgroup_dirs(&c.id).is_empty(), "cgroups of {} left", c.id);
    }
    assert!(!alive(a_dns) && !alive(d_dns), "DNS servers left");
    assert!(berth_testsupport::mounts_under(&cp).is_empty(), "cp mount left");
    wait_for("the bridges to go", 10, || {
        !link_exists(&a_net.bridge) && !link_exists(&d_net.bridge)
    });
    let (comments, elems) = nft_state();
    for n in [&a_net, &d_net] {
        let tag = format!("net:{}", &n.id[..12]);
        assert!(!comments.iter().any(|c| c.contains(&tag)), "rules of {} left", n.id);
        assert!(!elems.contains(&n.subnet), "element {} left", n.subnet);
    }
    let holders = forward_holders();
    for n in [&a_net, &d_net] {
        assert!(!holders.contains(&n.id), "ip_forward holder {} left", n.id);
    }
    for c in [&a_ctr, &d_ctr] {
        assert!(std::net::TcpListener::bind(("127.0.0.1", c.port)).is_ok(), "port {}", c.port);
    }
    // The damaged root itself is still there (only what it no longer knew went).
    assert!(damaged.path().join("images").is_dir());

    // B is untouched and works: same processes, bridge, rules, element, DNS by name.
    assert!(alive(b_ctr.pid) && alive(b_ctr.monitor), "B's container was touched");
    assert!(!cgroup_dirs(&b_ctr.id).is_empty(), "B's cgroup was touched");
    assert!(link_exists(&b_net.bridge), "B's bridge was touched");
    let (comments, elems) = nft_state();
    assert!(comments.iter().any(|c| c.contains(&format!("net:{}", &b_net.id[..12]))));
    assert!(elems.contains(&b_net.subnet), "B's subnet element was touched: {elems:?}");
    assert!(forward_holders().contains(&b_net.id), "B's ip_forward holder was touched");
    assert!(!pids_of("__dns", &live.path()).is_empty(), "B's DNS server was touched");
    assert!(http_get(b_ctr.port, "/passwd", 10).contains("root:"));
    let script = retry(&format!("wget -q -O - http://{b_name}/group | grep -q root:"));
    live.ok(&["container", "run", "--rm", "--network", &b_net_name, "bb", "sh", "-c", &script]);

    // A second prune finds nothing more.
    let again = berth(&fresh.path(), &["system", "prune", "-f"]);
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    for n in [&a_net, &d_net] {
        assert!(!again.contains(&n.bridge), "{again}");
    }
}

#[test]
fn system_prune_in_one_root_is_docker_shaped() {
    let Some(env) = ContainerEnv::new() else { return };
    let _serial = PRUNE.lock().unwrap_or_else(|e| e.into_inner());
    let used = berth_testsupport::unique_name("sysused");
    let unused = berth_testsupport::unique_name("sysunused");
    env.ok(&["network", "create", &used]);
    env.ok(&["network", "create", &unused]);
    struct Nets<'a>(&'a ContainerEnv, Vec<String>);
    impl Drop for Nets<'_> {
        fn drop(&mut self) {
            let out = self.0.run(&["container", "ls", "-aq", "--no-trunc"]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.0.run(&["container", "rm", "--force", "--volumes", id]);
            }
            for n in &self.1 {
                let _ = self.0.run(&["network", "rm", n]);
            }
        }
    }
    let _nets = Nets(&env, vec![used.clone(), unused.clone()]);
    let runner = berth_testsupport::unique_name("sysrun");
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &runner,
        "--network",
        &used,
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let stopped = berth_testsupport::unique_name("sysstop");
    env.ok(&[
        "container",
        "run",
        "--name",
        &stopped,
        "-v",
        "/data",
        "bb",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big; echo x > /data/f",
    ]);
    let stopped_id = env.id(&stopped);
    let vol = env.inspect(&stopped, "{{range .Mounts}}{{.Name}}{{end}}");
    // A dangling image: the same root file system imported without a name.
    let tar = env.path().join("bb.tar");
    let dangling = env.ok(&["image", "import", tar.to_str().expect("path")]).trim().to_string();

    // Declining the prompt changes nothing.
    let mut child = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["system", "prune", "--volumes"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"n\n").expect("answer");
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARNING! This will remove:"), "{err}");
    assert!(err.contains("all anonymous volumes not used by at least one container"), "{err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.id(&stopped), stopped_id);

    let out = env.ok(&["system", "prune", "-f", "--volumes"]);
    let want = format!(
        "Deleted Containers:\n{stopped_id}\n\nDeleted Networks:\n{unused}\n\nDeleted Volumes:\n{vol}\n\nDeleted Images:\ndeleted: {dangling}"
    );
    assert!(out.starts_with(&want), "got:\n{out}\nwanted it to start with:\n{want}");
    let total = out.lines().last().unwrap_or_default();
    let size = total.strip_prefix("Total reclaimed space: ").expect("total line");
    assert!(size.ends_with("kB") || size.ends_with("MB"), "{total}");
    // The running container, its network and the tagged image stay.
    assert_eq!(env.inspect(&runner, "{{.State.Status}}"), "running");
    assert!(env.ok(&["network", "ls"]).contains(&used));
    assert!(!env.ok(&["network", "ls"]).contains(&unused));
    assert!(env.ok(&["image", "ls"]).contains("bb"));
    assert!(!env.run(&["container", "inspect", &stopped]).status.success());
}

#[test]
fn system_df_and_info_report_the_root() {
    let Some(env) = ContainerEnv::new() else { return };
    let running = berth_testsupport::unique_name("sysdfr");
    let vol = berth_testsupport::unique_name("sysvol");
    env.ok(&["volume", "create", &vol]);
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &running,
        "-v",
        &format!("{vol}:/v"),
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let stopped = berth_testsupport::unique_name("sysdfs");
    env.ok(&[
        "container",
        "run",
        "--name",
        &stopped,
        "bb",
        "sh",
        "-c",
        "head -c 200000 /dev/zero > /big",
    ]);

    let df = env.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert_eq!(lines[0], "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE", "{df}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let images = cols(lines[1]);
    assert_eq!(&images[..3], ["Images", "1", "1"], "{df}");
    assert!(images[3].ends_with("MB"), "busybox weighs megabytes: {df}");
    assert_eq!(images[4..], ["0B", "(0%)"], "{df}");
    let containers = cols(lines[2]);
    assert_eq!(&containers[..3], ["Containers", "2", "1"], "{df}");
    assert!(containers[3].starts_with("200") && containers[3].ends_with("kB"), "{df}");
    assert_eq!(
        lines[3].split_whitespace().take(4).collect::<Vec<_>>(),
        ["Local", "Volumes", "1", "1"]
    );
    assert!(lines[4].starts_with("Build Cache     0         0         0B"), "{df}");

    let json = env.ok(&["system", "df", "--format", "json"]);
    let rows: Vec<serde_json::Value> =
        json.lines().map(|l| serde_json::from_str(l).expect("row json")).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1]["Type"], "Containers");
    assert_eq!(rows[1]["TotalCount"], "2");
    assert_eq!(
        env.ok(&["system", "df", "--format", "{{.Type}}={{.Active}}"]).lines().next(),
        Some("Images=1")
    );

    let v = env.ok(&["system", "df", "-v"]);
    for want in [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ] {
        assert!(v.contains(want), "{v}");
    }
    let row = v.lines().find(|l| l.contains(&stopped)).expect("stopped container row");
    assert!(row.contains("200kB") && row.contains("Exited (0)"), "{row}");
    let vrow = v.lines().find(|l| l.starts_with(&vol)).expect("volume row");
    assert_eq!(vrow.split_whitespace().nth(1), Some("1"), "{vrow}");
    assert!(v.lines().any(|l| l.starts_with("bb ") && l.contains("latest")), "{v}");

    let info = env.ok(&["system", "info"]);
    for want in [
        "Server:",
        " Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 1\n",
        " Storage Driver: overlay2\n",
        " Logging Driver: json-file\n",
        " Cgroup Driver: cgroupfs\n",
        " OSType: linux\n",
        &format!(" Berth Root Dir: {}\n", env.path().display()),
    ] {
        assert!(info.contains(want), "missing {want:?} in:\n{info}");
    }
    // Honest about the layout: v1 limits plus a cgroup2 hierarchy reads as hybrid.
    let hybrid = Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/pids").is_dir();
    if hybrid {
        assert!(info.contains(" Cgroup Version: 1\n  Layout: hybrid"), "{info}");
    }
    let kernel = run_cmd("uname", &["-r"]);
    assert!(info.contains(&format!(" Kernel Version: {}", kernel.trim())), "{info}");
    assert_eq!(
        env.ok(&["system", "info", "--format", "{{.ContainersRunning}}/{{.Images}}"]).trim(),
        "1/1"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.ok(&["system", "info", "--format", "json"])).expect("json");
    assert!(j["NCPU"].as_u64().is_some_and(|n| n >= 1), "{j}");
    assert!(j["MemTotal"].as_u64().is_some_and(|n| n > 0), "{j}");
    assert_eq!(j["Driver"], "overlay2");
}
