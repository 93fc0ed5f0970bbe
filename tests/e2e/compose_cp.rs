//! `berth cp`: both directions, running and stopped containers, and escape attempts through
//! `..` and symlinks that must stay inside the container.

use crate::compose_support::{LONG, Project};

#[test]
fn compose_cp_in_out_stopped_and_escapes() {
    let compose = format!(
        "services:\n  web:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    volumes: [\"vol:/vol\", \"cfg:/cfg:ro\"]\nvolumes:\n  vol: {{}}\n  cfg: {{}}\n"
    );
    let Some(p) = Project::new("ccp", &compose) else { return };
    p.ok(&["up", "-d"]);
    let host = tempfile::tempdir().expect("tempdir");
    let h = |n: &str| host.path().join(n);
    let hs = |n: &str| h(n).to_string_lossy().into_owned();
    let exec = |script: &str| p.ok(&["exec", "-T", "web", "sh", "-c", script]).0;

    // Host -> container: a file, and a directory (with a symlink) into an existing directory.
    std::fs::write(h("in.txt"), "into the box\n").unwrap();
    std::fs::create_dir_all(h("tree/sub")).unwrap();
    std::fs::write(h("tree/sub/f"), "deep\n").unwrap();
    std::os::unix::fs::symlink("sub/f", h("tree/link")).unwrap();
    exec("mkdir -p /srv");
    p.ok(&["cp", &hs("in.txt"), "web:/tmp/in.txt"]);
    p.ok(&["cp", &hs("tree"), "web:/srv"]);
    assert_eq!(
        exec(
            "cat /tmp/in.txt; cat /srv/tree/sub/f; readlink /srv/tree/link; stat -c %u /tmp/in.txt"
        ),
        "into the box\ndeep\nsub/f\n0\n"
    );

    // Container -> host: a file to a new name, a directory's contents with `/.`.
    exec("mkdir -p /data/d && echo out > /data/d/o && echo x > /data/d/p && chmod 640 /data/d/o");
    p.ok(&["cp", "web:/data/d/o", &hs("o.txt")]);
    assert_eq!(std::fs::read_to_string(h("o.txt")).unwrap(), "out\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(h("o.txt")).unwrap().permissions().mode() & 0o777, 0o640);
    std::fs::create_dir(h("contents")).unwrap();
    p.ok(&["cp", "web:/data/d/.", &hs("contents")]);
    assert!(h("contents/o").is_file() && h("contents/p").is_file());
    p.ok(&["cp", "web:/data/d", &hs("contents")]);
    assert!(h("contents/d/o").is_file());

    // Escapes: `..` and symlinks resolve inside the container, never on the host.
    std::fs::write(h("secret"), "host secret\n").unwrap();
    let up = "../../../../../../../..";
    let out = p.run(&["cp", &format!("web:{up}{}", hs("secret")), &hs("stolen")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not find the file"), "{out:?}");
    assert!(!h("stolen").exists());
    exec(&format!("ln -s {up}{} /esc", host.path().display()));
    let out = p.run(&["cp", "web:/esc/secret", &hs("stolen")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!h("stolen").exists());
    let out = p.run(&["cp", &hs("in.txt"), "web:/esc/planted"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = p.run(&["cp", &hs("in.txt"), &format!("web:{up}{}", hs("planted2"))]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!h("planted").exists() && !h("planted2").exists());
    // A symlink as the target is replaced, not written through.
    exec("cp /etc/passwd /tmp/passwd.orig && ln -s /etc/passwd /tmp/pw");
    p.ok(&["cp", &hs("in.txt"), "web:/tmp/pw"]);
    assert_eq!(
        exec("cmp /etc/passwd /tmp/passwd.orig && cat /tmp/pw && test ! -L /tmp/pw && echo ok"),
        "into the box\nok\n"
    );

    // A stopped container: its filesystem is still reachable, and the copy persists.
    exec("echo in the volume > /vol/early.txt");
    p.ok(&["stop", "-t", "2"]);
    std::fs::write(h("later.txt"), "while stopped\n").unwrap();
    p.ok(&["cp", &hs("later.txt"), "web:/tmp/later.txt"]);
    p.ok(&["cp", "web:/data/d/o", &hs("o2.txt")]);
    assert_eq!(std::fs::read_to_string(h("o2.txt")).unwrap(), "out\n");
    let id = p.id(&p.cname("web", 1));
    let dir = p.env.path().join("containers").join(&id);
    assert!(berth_testsupport::mounts_under(&dir).is_empty(), "copy mount left");
    assert!(!dir.join("cp").exists());
    // ... volumes included: in and out of a named volume, a read-only one refuses.
    p.ok(&["cp", &hs("later.txt"), "web:/vol/later.txt"]);
    p.ok(&["cp", "web:/vol/early.txt", &hs("early.txt")]);
    assert_eq!(std::fs::read_to_string(h("early.txt")).unwrap(), "in the volume\n");
    let out = p.run(&["cp", &hs("later.txt"), "web:/cfg/x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    p.ok(&["start"]);
    assert_eq!(
        exec("cat /tmp/later.txt /vol/later.txt; test -e /cfg/x || echo no-x"),
        "while stopped\nwhile stopped\nno-x\n"
    );

    // -a keeps owners; usage errors.
    std::fs::write(h("owned"), "o\n").unwrap();
    std::os::unix::fs::chown(h("owned"), Some(4321), Some(8765)).unwrap();
    p.ok(&["cp", "-a", &hs("owned"), "web:/tmp/owned"]);
    assert_eq!(exec("stat -c %u:%g /tmp/owned"), "4321:8765\n");
    let out = p.run(&["cp", &hs("in.txt"), &hs("x")]);
    assert_eq!(out.status.code(), Some(16));
    let out = p.run(&["cp", "--index", "2", "web:/tmp/in.txt", &hs("x")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no container with index 2"));
}
