//! berth's equivalent of docker's default seccomp profile, compiled with `seccompiler`.
//!
//! Shape (as docker's): default action ERRNO(EPERM); an allow list of ordinary syscalls;
//! capability-dependent allowances (e.g. `mount`/`unshare`/`setns` only with CAP_SYS_ADMIN);
//! `personality` only with the personas docker allows; `clone` only without namespace flags
//! unless CAP_SYS_ADMIN; `socket` for every family except AF_VSOCK; `clone3` returns ENOSYS
//! (so libcs fall back to `clone`, whose flags *can* be checked) unless CAP_SYS_ADMIN.
//!
//! Differences from docker: seccompiler filters one architecture, so the 32-bit x86 and x32
//! ABIs are killed instead of filtered like the native one (docker lets them through with the
//! same allow list); and the ENOSYS for clone3 comes from a second, tiny filter, since a
//! seccompiler filter has one match action.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::LaunchError;

/// Syscalls allowed unconditionally, present on every architecture berth builds for.
const ALLOW_COMMON: &[libc::c_long] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_adjtimex,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_madvise,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_name_to_handle_at,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_pselect6,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
    // docker allows these on kernels >= 4.8, where ptrace can no longer bypass seccomp.
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_process_madvise,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_ptrace,
    // Newer syscalls libc does not name yet (same numbers on x86_64 and the generic table).
    451, // cachestat
    453, // map_shadow_stack
    454, // futex_wake
    455, // futex_wait
    456, // futex_requeue
];

/// Legacy syscalls only the x86_64 table has.
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH: &[libc::c_long] = &[
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_creat,
    libc::SYS_dup2,
    libc::SYS_epoll_create,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_fork,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_get_thread_area,
    libc::SYS_inotify_init,
    libc::SYS_lchown,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_open,
    libc::SYS_pause,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_rmdir,
    libc::SYS_select,
    libc::SYS_set_thread_area,
    libc::SYS_signalfd,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_time,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_vfork,
    libc::SYS_arch_prctl,
    libc::SYS_modify_ldt,
    333, // io_pgetevents
];

/// Generic-table architectures: nothing extra besides io_pgetevents.
#[cfg(not(target_arch = "x86_64"))]
const ALLOW_ARCH: &[libc::c_long] = &[292];

/// Syscalls docker allows only when the container has the given capability.
fn cap_syscalls(cap: u32) -> &'static [libc::c_long] {
    match cap {
        2 => &[libc::SYS_open_by_handle_at], // CAP_DAC_READ_SEARCH
        21 => &[
            // CAP_SYS_ADMIN
            libc::SYS_bpf,
            libc::SYS_clone3,
            libc::SYS_fanotify_init,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fsopen,
            libc::SYS_fspick,
            libc::SYS_lookup_dcookie,
            libc::SYS_mount,
            libc::SYS_mount_setattr,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_perf_event_open,
            libc::SYS_quotactl,
            libc::SYS_quotactl_fd,
            libc::SYS_setdomainname,
            libc::SYS_sethostname,
            libc::SYS_setns,
            libc::SYS_syslog,
            libc::SYS_umount2,
            libc::SYS_unshare,
        ],
        22 => &[libc::SYS_reboot], // CAP_SYS_BOOT
        18 => &[libc::SYS_chroot], // CAP_SYS_CHROOT
        16 => &[libc::SYS_delete_module, libc::SYS_init_module, libc::SYS_finit_module], // MODULE
        20 => &[libc::SYS_acct],   // CAP_SYS_PACCT
        #[cfg(target_arch = "x86_64")]
        17 => &[libc::SYS_iopl, libc::SYS_ioperm], // CAP_SYS_RAWIO
        25 => &[libc::SYS_settimeofday, libc::SYS_clock_settime], // CAP_SYS_TIME
        26 => &[libc::SYS_vhangup], // CAP_SYS_TTY_CONFIG
        23 => &[
            // CAP_SYS_NICE
            libc::SYS_get_mempolicy,
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
            libc::SYS_set_mempolicy_home_node,
        ],
        34 => &[libc::SYS_syslog],          // CAP_SYSLOG
        39 => &[libc::SYS_bpf],             // CAP_BPF
        38 => &[libc::SYS_perf_event_open], // CAP_PERFMON
        _ => &[],
    }
}

const CAP_SYS_ADMIN: u32 = 21;
/// CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP: what `clone` may not ask for.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;
const AF_VSOCK: u64 = 40;

fn arch() -> Result<TargetArch, LaunchError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| LaunchError::Unsupported(format!("seccomp on {}", std::env::consts::ARCH)))
}

fn cond(arg: u8, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, LaunchError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, v).map_err(seccomp_err)
}

fn dword(arg: u8, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, LaunchError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v).map_err(seccomp_err)
}

fn seccomp_err(e: impl std::fmt::Display) -> LaunchError {
    LaunchError::Seccomp(e.to_string())
}

/// Builds the filters (in installation order) for a process whose effective capabilities are
/// `effective_caps` (bit i = capability i).
pub fn default_profile(effective_caps: u64) -> Result<Vec<BpfProgram>, LaunchError> {
    let has = |c: u32| effective_caps & (1u64 << c) != 0;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALLOW_COMMON.iter().chain(ALLOW_ARCH) {
        rules.insert(nr, vec![]);
    }
    for cap in 0..64 {
        if has(cap) {
            for &nr in cap_syscalls(cap) {
                rules.insert(nr, vec![]);
            }
        }
    }
    // personality: only the personas docker allows.
    let mut pers = Vec::new();
    for v in [0u64, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        pers.push(SeccompRule::new(vec![dword(0, SeccompCmpOp::Eq, v)?]).map_err(seccomp_err)?);
    }
    rules.insert(libc::SYS_personality, pers);
    // socket: anything but AF_VSOCK.
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![dword(0, SeccompCmpOp::Ne, AF_VSOCK)?]).map_err(seccomp_err)?],
    );
    if has(CAP_SYS_ADMIN) {
        rules.insert(libc::SYS_clone, vec![]);
    } else {
        // clone without namespace flags (flags is argument 0 on x86_64 and arm64).
        let r = SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(CLONE_NS_FLAGS), 0)?])
            .map_err(seccomp_err)?;
        rules.insert(libc::SYS_clone, vec![r]);
        // clone3 passes flags in memory, which BPF can't read: allow it in the main filter and
        // let the second filter answer ENOSYS, as docker does.
        rules.insert(libc::SYS_clone3, vec![]);
    }
    let main = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(seccomp_err)?;
    let mut out: Vec<BpfProgram> = vec![main.try_into().map_err(seccomp_err)?];
    if !has(CAP_SYS_ADMIN) {
        let mut r = BTreeMap::new();
        r.insert(libc::SYS_clone3, vec![]);
        let f = SeccompFilter::new(
            r,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch()?,
        )
        .map_err(seccomp_err)?;
        out.push(f.try_into().map_err(seccomp_err)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_default_and_admin() {
        let def = default_profile(0xa80425fb).unwrap_or_default();
        assert_eq!(def.len(), 2);
        assert!(def[0].len() < 4096, "BPF program too long: {}", def[0].len());
        let admin = default_profile(u64::MAX >> 23).unwrap_or_default();
        assert_eq!(admin.len(), 1);
    }
}
