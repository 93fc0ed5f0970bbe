//! Turns a container record into a [`LaunchSpec`]: docker's defaults (capabilities, mounts,
//! masked and read-only paths, device rules) plus the container's own settings.

use berth_launch::{LaunchSpec, Rootfs, SeccompMode};
use serde_json::{Value, json};

use super::api::HostConfig;
use super::record::{ContainerPaths, ContainerRecord};

/// The pids limit of a container that sets none (as podman; docker has none): one runaway fork
/// bomb must not take every pid of the host. `pids_limit` / `--pids-limit` override it, and 0
/// or -1 there means unlimited.
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// Every capability in kernel order (index = capability number).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's default capability set (CapEff 00000000a80425fb), as names (the launcher's
/// `DOCKER_DEFAULT_CAPS` holds the same set as oci-spec values).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capabilities this process can hand out: known to the kernel (up to cap_last_cap) and in our
/// own bounding set (a sandboxed berth may lack some, and asking for them fails capset).
fn kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS[..(last + 1).min(ALL_CAPS.len())]
        .iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Why a container's configuration can't become a launch spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A capability name the kernel doesn't have.
    #[error("invalid capability: {0}")]
    Capability(String),
    /// A security option berth doesn't know (docker refuses them too).
    #[error("invalid --security-opt: {0:?}")]
    SecurityOpt(String),
    /// The runtime spec made from the records doesn't parse.
    #[error("building the runtime spec: {0}")]
    RuntimeSpec(serde_json::Error),
    /// The process of an exec doesn't parse.
    #[error("building the exec process: {0}")]
    ExecProcess(serde_json::Error),
}

/// Normalises `net_admin` / `CAP_NET_ADMIN` / `ALL`; errors on unknown names like docker.
fn normalize_cap(c: &str) -> Result<String, SpecError> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::Capability(c.to_string()))
    }
}

/// The capability set for `hc` (docker's rules: drop ALL first, then add; ALL in add = every cap).
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>, SpecError> {
    let known = kernel_caps();
    if hc.privileged {
        return Ok(known.iter().map(|s| s.to_string()).collect());
    }
    let adds: Vec<String> =
        hc.cap_add.iter().map(|c| normalize_cap(c)).collect::<Result<_, _>>()?;
    let drops: Vec<String> =
        hc.cap_drop.iter().map(|c| normalize_cap(c)).collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if drops.iter().any(|d| d == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if adds.iter().any(|a| a == "ALL") {
        caps = known.iter().map(|s| s.to_string()).collect();
    }
    for a in adds.iter().filter(|a| *a != "ALL") {
        if !caps.contains(a) {
            caps.push(a.clone());
        }
    }
    caps.retain(|c| !drops.contains(c) && known.contains(&c.as_str()));
    Ok(caps)
}

/// Whether `seccomp=unconfined` (or privileged) turns the filter off.
pub fn seccomp_mode(hc: &HostConfig) -> SeccompMode {
    let unconfined = hc.security_opt.iter().any(|o| {
        let o = o.replace(':', "=");
        o == "seccomp=unconfined"
    });
    if hc.privileged || unconfined { SeccompMode::Unconfined } else { SeccompMode::Default }
}

/// Whether `no-new-privileges` (or `no-new-privileges:true` / `=true`) is asked for.
pub fn no_new_privileges(hc: &HostConfig) -> bool {
    hc.security_opt.iter().any(|o| {
        let o = o.replace(':', "=");
        o == "no-new-privileges" || o == "no-new-privileges=true"
    })
}

/// Validates the security options (unknown ones are an error as in docker).
pub fn check_security_opts(hc: &HostConfig) -> Result<(), SpecError> {
    for o in &hc.security_opt {
        let norm = o.replace(':', "=");
        let ok = norm == "seccomp=unconfined"
            || norm == "no-new-privileges"
            || norm.starts_with("no-new-privileges=")
            || norm.starts_with("apparmor=")
            || norm.starts_with("label=");
        if !ok {
            return Err(SpecError::SecurityOpt(o.clone()));
        }
    }
    Ok(())
}

fn rlimit_name(n: &str) -> String {
    format!("RLIMIT_{}", n.to_ascii_uppercase())
}

/// The process environment: the config's env plus HOSTNAME and HOME as docker adds them.
pub fn runtime_env(rec: &ContainerRecord) -> Vec<String> {
    let mut env = rec.config.env.clone();
    let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "HOSTNAME") {
        env.insert(1.min(env.len()), format!("HOSTNAME={}", rec.config.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", rec.home.as_deref().unwrap_or("/")));
    }
    env
}

/// The process part of the spec (shared by the container's first process and execs).
#[allow(clippy::too_many_arguments)]
pub fn process_json(
    rec: &ContainerRecord,
    args: &[String],
    env: &[String],
    cwd: &str,
    tty: bool,
    caps: &[String],
    uid: u32,
    gid: u32,
    additional_gids: &[u32],
) -> Value {
    let hc = &rec.host_config;
    let rlimits: Vec<Value> = hc
        .ulimits
        .iter()
        .map(|u| json!({"type": rlimit_name(&u.name), "soft": u.soft, "hard": u.hard}))
        .collect();
    let mut p = json!({
        "terminal": tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": additional_gids},
        "args": args,
        "env": env,
        "cwd": if cwd.is_empty() { "/" } else { cwd },
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "noNewPrivileges": no_new_privileges(hc),
    });
    if !rlimits.is_empty() {
        p["rlimits"] = Value::Array(rlimits);
    }
    if hc.oom_score_adj != 0 {
        p["oomScoreAdj"] = json!(hc.oom_score_adj);
    }
    p
}

/// docker's smallest memory limit and reservation (`linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Refuses resource settings docker's daemon refuses, with its messages: a limit the kernel
/// would take but that cannot work (1 byte of memory) or means something else (a negative
/// CPU count stored and never applied).
pub fn check_resources(hc: &HostConfig) -> Result<(), String> {
    let fail = |m: &str| Err(m.to_string());
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return fail("Minimum memory limit allowed is 6MB");
    }
    if hc.memory_reservation != 0 && hc.memory_reservation < MIN_MEMORY {
        return fail("Minimum memory reservation allowed is 6MB");
    }
    if hc.memory > 0 && hc.memory_reservation > hc.memory {
        return fail(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
    }
    if hc.memory_swap > 0 && hc.memory == 0 {
        return fail(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        );
    }
    if hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return fail("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if hc.memory_swap < -1 {
        return Err(format!(
            "invalid memory swap limit {}: -1 (unlimited swap) or at least the memory limit",
            hc.memory_swap
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return fail("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return fail("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    // Below 0.01 the quota would be under the kernel's 1 ms minimum.
    if hc.nano_cpus != 0 && (hc.nano_cpus < 10_000_000 || hc.nano_cpus > ncpu * 1_000_000_000) {
        return Err(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        ));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return fail(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        );
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return fail("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    if hc.blkio_weight > 0 && !(10..=1000).contains(&hc.blkio_weight) {
        return fail("Range of blkio weight is from 10 to 1000");
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        ));
    }
    if hc.shm_size < 0 {
        return fail("SHM size can not be less than 0");
    }
    Ok(())
}

fn resources_json(hc: &HostConfig) -> Value {
    let mut r = json!({});
    let mut mem = serde_json::Map::new();
    if hc.memory > 0 {
        mem.insert("limit".into(), json!(hc.memory));
        // docker: swap defaults to twice the memory limit; -1 is unlimited.
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if hc.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if hc.cpu_shares != 0 {
        // As docker: out-of-range shares (negative too) are clamped, not refused.
        cpu.insert("shares".into(), json!(hc.cpu_shares.clamp(2, 262_144)));
    }
    if hc.nano_cpus > 0 {
        let period = 100_000i64;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(hc.nano_cpus * period / 1_000_000_000));
    } else {
        if hc.cpu_quota > 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
        if hc.cpu_period > 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    match hc.pids_limit {
        None => r["pids"] = json!({"limit": DEFAULT_PIDS_LIMIT}),
        Some(p) if p > 0 => r["pids"] = json!({"limit": p}),
        // Unlimited: no pids entry leaves the new cgroup's pids.max at "max".
        Some(_) => {}
    }
    if hc.blkio_weight > 0 {
        r["blockIO"] = json!({"weight": hc.blkio_weight});
    }
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    if hc.privileged {
        devices = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for (t, maj, min) in [("c", None, None), ("b", None, None)] {
            devices.push(json!({"allow": true, "type": t, "major": maj as Option<i64>, "minor": min as Option<i64>, "access": "m"}));
        }
        for (maj, min) in
            [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200)]
        {
            devices.push(
                json!({"allow": true, "type": "c", "major": maj, "minor": min, "access": "rwm"}),
            );
        }
        devices.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
        for d in &hc.devices {
            if let Some((typ, maj, min)) = device_numbers(&d.path_on_host) {
                let access =
                    if d.cgroup_permissions.is_empty() { "rwm" } else { &d.cgroup_permissions };
                devices.push(json!({"allow": true, "type": typ, "major": maj, "minor": min, "access": access}));
            }
        }
    }
    r["devices"] = Value::Array(devices);
    r
}

/// (type, major, minor) of a device node on the host.
pub fn device_numbers(path: &str) -> Option<(&'static str, u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    let ft = m.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = m.rdev();
    Some((typ, libc::major(rdev) as u64, libc::minor(rdev) as u64))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// Builds the launch spec of the container's first process.
pub fn build(rec: &ContainerRecord, paths: &ContainerPaths) -> Result<LaunchSpec, SpecError> {
    let hc = &rec.host_config;
    let caps = capabilities(hc)?;
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let env = runtime_env(rec);
    let process = process_json(
        rec,
        &args,
        &env,
        &rec.config.working_dir,
        rec.config.tty,
        &caps,
        rec.uid,
        rec.gid,
        &rec.additional_gids,
    );
    let shm = if hc.shm_size > 0 { hc.shm_size } else { 64 << 20 };
    let shm_opt = format!("size={}k", shm / 1024);
    let sys_ro = if hc.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", sys_ro]),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", sys_ro]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &shm_opt]),
    ];
    // User mounts, shallowest destination first so nested ones land on top.
    let mut user: Vec<Value> = Vec::new();
    let mut dests: Vec<String> = Vec::new();
    for m in &rec.mounts {
        dests.push(m.destination.clone());
        let rw = if m.rw { "rw" } else { "ro" };
        match m.typ.as_str() {
            "tmpfs" => {
                let extra = rec
                    .tmpfs_options
                    .iter()
                    .find(|(d, _)| *d == m.destination)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_default();
                let mut opts: Vec<&str> = vec!["nosuid", "nodev", "noexec", rw];
                opts.extend(extra.split(',').filter(|o| !o.is_empty()));
                user.push(mount(&m.destination, "tmpfs", "tmpfs", &opts));
            }
            _ => {
                user.push(mount(&m.destination, "bind", &m.source, &["rbind", rw]));
            }
        }
    }
    user.sort_by_key(|m| m["destination"].as_str().map(|d| d.matches('/').count()).unwrap_or(0));
    for (dest, src) in [
        ("/etc/resolv.conf", paths.resolv_conf()),
        ("/etc/hostname", paths.hostname()),
        ("/etc/hosts", paths.hosts()),
    ] {
        if !dests.iter().any(|d| d == dest) {
            mounts.push(mount(dest, "bind", &src.to_string_lossy(), &["rbind", "rprivate", "rw"]));
        }
    }
    mounts.extend(user);
    for d in &hc.devices {
        // Devices are bind-mounted from the host (allowed by the device cgroup rules above).
        let inside =
            if d.path_in_container.is_empty() { &d.path_on_host } else { &d.path_in_container };
        mounts.push(mount(inside, "bind", &d.path_on_host, &["bind"]));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if hc.network_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    let (masked, readonly): (Vec<&str>, Vec<&str>) = if hc.privileged {
        (vec![], vec![])
    } else {
        (berth_launch::DOCKER_MASKED_PATHS.to_vec(), berth_launch::DOCKER_READONLY_PATHS.to_vec())
    };
    let root_path = match &rec.rootfs_dir {
        Some(d) => d.clone(),
        None => paths.merged(),
    };
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": root_path, "readonly": hc.readonly_rootfs},
        "hostname": rec.config.hostname,
        "domainname": rec.config.domainname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources_json(hc),
            "cgroupsPath": super::record::cgroup_path(&rec.id),
            "maskedPaths": masked,
            "readonlyPaths": readonly,
            "sysctl": hc.sysctls,
        },
    });
    let oci: oci_spec::runtime::Spec =
        serde_json::from_value(spec).map_err(SpecError::RuntimeSpec)?;
    let rootfs = match &rec.rootfs_dir {
        Some(d) => Rootfs::Dir(d.clone()),
        None => Rootfs::Overlay {
            lower: rec.layers.clone(),
            upper: paths.upper(),
            work: paths.work(),
            target: paths.merged(),
            // A container removed when it stops (`--rm`) throws its writable layer away, so
            // the sync its end would wait for (of the whole host filesystem holding the upper
            // directory, when the overlay goes with the container's last process) protects
            // nothing; as podman does for `--rm`.
            volatile: volatile_rootfs(rec),
        },
    };
    Ok(LaunchSpec { oci, rootfs, seccomp: seccomp_mode(hc), init: hc.init.unwrap_or(false) })
}

/// Whether the container's overlay is mounted `volatile` (see `build`): it is removed when it
/// stops. The kernel then leaves `work/work/incompat/volatile` behind, which the monitor
/// clears once the overlay is gone ([`clear_volatile_marker`]).
pub(crate) fn volatile_rootfs(rec: &ContainerRecord) -> bool {
    rec.rootfs_dir.is_none() && rec.host_config.auto_remove && volatile_overlay_supported()
}

/// Removes the mark a volatile overlay leaves in its work directory (`work/incompat`), once
/// that overlay is gone: while it is there the kernel refuses every later overlay of that
/// work directory (a restart, `cp`, the removal's liveness probe), logging an error each
/// time. It only says "this layer was never synced", which matters after a crash of a
/// layer one keeps, not for one about to be thrown away.
pub(crate) fn clear_volatile_marker(work: &std::path::Path) {
    let marker = work.join("work").join("incompat");
    if let Err(e) = std::fs::remove_dir_all(&marker)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %marker.display(), "cannot clear the volatile overlay's mark: {e}");
    }
}

/// Whether overlayfs takes the `volatile` option: Linux 5.10 and later.
fn volatile_overlay_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
            return false;
        };
        let mut nums = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok());
        let (major, minor): (u32, u32) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        (major, minor) >= (5, 10)
    })
}

/// The OCI process of an `exec` (or healthcheck) in the container.
pub fn exec_process(
    rec: &ContainerRecord,
    cmd: &[String],
    extra_env: &[String],
    user: Option<(u32, u32, Vec<u32>)>,
    cwd: Option<&str>,
    tty: bool,
    privileged: bool,
) -> Result<oci_spec::runtime::Process, SpecError> {
    let mut hc = rec.host_config.clone();
    hc.privileged |= privileged;
    let caps = capabilities(&hc)?;
    let mut env = runtime_env(rec);
    for e in extra_env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    // docker exec -t sets TERM when neither the container nor the exec gives one.
    if tty && !env.iter().any(|e| e.split('=').next() == Some("TERM")) {
        env.push("TERM=xterm".into());
    }
    let (uid, gid, groups) = user.unwrap_or((rec.uid, rec.gid, rec.additional_gids.clone()));
    let p = process_json(
        rec,
        cmd,
        &env,
        cwd.unwrap_or(&rec.config.working_dir),
        tty,
        &caps,
        uid,
        gid,
        &groups,
    );
    serde_json::from_value(p).map_err(SpecError::ExecProcess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_docker_rules() {
        let mut hc = HostConfig::default();
        assert_eq!(capabilities(&hc).unwrap().len(), DEFAULT_CAPS.len());
        hc.cap_drop = vec!["ALL".into()];
        hc.cap_add = vec!["net_admin".into()];
        assert_eq!(capabilities(&hc).unwrap(), vec!["CAP_NET_ADMIN".to_string()]);
        hc.cap_drop = vec!["CHOWN".into()];
        hc.cap_add = vec!["ALL".into()];
        let all = capabilities(&hc).unwrap();
        assert!(all.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!all.contains(&"CAP_CHOWN".to_string()));
        hc.cap_add = vec!["BOGUS".into()];
        assert!(capabilities(&hc).is_err());
    }

    #[test]
    fn resources_docker_refuses_are_refused() {
        let ok = HostConfig { memory: MIN_MEMORY, memory_swap: -1, ..Default::default() };
        assert_eq!(check_resources(&ok), Ok(()));
        let cases: Vec<(HostConfig, &str)> = vec![
            (HostConfig { memory: 1, ..Default::default() }, "Minimum memory limit allowed is 6MB"),
            (
                HostConfig { memory: -5, ..Default::default() },
                "Minimum memory limit allowed is 6MB",
            ),
            (
                HostConfig { memory_reservation: 1, ..Default::default() },
                "Minimum memory reservation allowed is 6MB",
            ),
            (
                HostConfig { memory_swap: 1 << 30, ..Default::default() },
                "You should always set the Memory limit when using Memoryswap limit, see usage",
            ),
            (
                HostConfig { memory: 64 << 20, memory_swap: 32 << 20, ..Default::default() },
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ),
            (
                HostConfig { nano_cpus: 1_000_000_000, cpu_quota: 5000, ..Default::default() },
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ),
            (
                HostConfig { cpu_quota: 10, ..Default::default() },
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ),
            (
                HostConfig { blkio_weight: 5, ..Default::default() },
                "Range of blkio weight is from 10 to 1000",
            ),
            (
                HostConfig { oom_score_adj: 1001, ..Default::default() },
                "Invalid value 1001, range for oom score adj is [-1000, 1000]",
            ),
            (HostConfig { shm_size: -1, ..Default::default() }, "SHM size can not be less than 0"),
        ];
        for (hc, want) in cases {
            assert_eq!(check_resources(&hc), Err(want.to_string()), "{hc:?}");
        }
        let neg = HostConfig { nano_cpus: -1_000_000_000, ..Default::default() };
        assert!(
            check_resources(&neg).is_err_and(|e| e.starts_with("Range of CPUs is from 0.01 to "))
        );
        let mut hc = HostConfig { cpu_shares: -5, ..Default::default() };
        assert_eq!(resources_json(&hc)["cpu"]["shares"], 2);
        hc.cpu_shares = 1 << 20;
        assert_eq!(resources_json(&hc)["cpu"]["shares"], 262_144);
    }

    #[test]
    fn pids_limit_defaults_and_overrides() {
        let mut hc = HostConfig::default();
        assert_eq!(resources_json(&hc)["pids"]["limit"], DEFAULT_PIDS_LIMIT);
        hc.pids_limit = Some(100_000);
        assert_eq!(resources_json(&hc)["pids"]["limit"], 100_000);
        for unlimited in [0, -1] {
            hc.pids_limit = Some(unlimited);
            assert!(resources_json(&hc).get("pids").is_none(), "{unlimited}");
        }
    }

    #[test]
    fn spec_builds_and_parses() {
        let rec = ContainerRecord {
            id: "a".repeat(64),
            path: "/bin/sh".into(),
            args: vec!["-c".into(), "true".into()],
            rootfs_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let root =
            berth_store::StateRoot::open(tempfile::tempdir().unwrap().path().join("r")).unwrap();
        let paths = ContainerPaths::new(&root, &rec.id);
        let spec = build(&rec, &paths).unwrap();
        let args = spec.oci.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args, vec!["/bin/sh", "-c", "true"]);
        assert_eq!(spec.seccomp, SeccompMode::Default);
    }
}
