//! Service keys translated into the container: environment, user, working_dir, hostname,
//! read_only, tmpfs, limits, restart policy, init, labels, stop signal, capabilities.

use crate::compose_support::Project;

#[test]
fn compose_service_keys_reach_the_container() {
    let compose = r#"
services:
  s:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' USR1; sleep 3600 & wait"]
    environment:
      GREETING: hello
    user: "1000:1000"
    working_dir: /tmp
    hostname: boxy
    read_only: true
    tmpfs: ["/scratch:size=1m"]
    mem_limit: 64m
    pids_limit: 50
    restart: on-failure:2
    labels:
      team: core
    stop_signal: SIGUSR1
    stop_grace_period: 5s
    cap_drop: [ALL]
    ulimits:
      nofile: {soft: 1000, hard: 1000}
  i:
    image: bb
    network_mode: none
    command: ["true"]
    init: true
"#;
    let Some(p) = Project::new("keys", compose) else { return };
    p.ok(&["up", "-d", "s"]);
    // `init: true` reaches the container: it runs (under init) and completes with exit 0.
    p.ok(&["up", "-d", "i"]);
    let i = p.cname("i", 1);
    assert_eq!(p.inspect(&i, "{{.HostConfig.Init}}"), "true");
    p.env.wait_for("i exited", 10, || p.inspect(&i, "{{.State.Status}}") == "exited");
    assert_eq!(p.inspect(&i, "{{.State.ExitCode}}"), "0");
    assert_eq!(p.inspect(&i, "{{.State.Error}}"), "");
    let c = p.cname("s", 1);
    assert_eq!(p.inspect(&c, "{{.Config.Hostname}}"), "boxy");
    assert_eq!(p.inspect(&c, "{{.Config.Labels.team}}"), "core");
    assert_eq!(p.inspect(&c, "{{.Config.StopSignal}}"), "SIGUSR1");
    assert_eq!(p.inspect(&c, "{{.Config.StopTimeout}}"), "5");
    assert_eq!(p.inspect(&c, "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(p.inspect(&c, "{{.HostConfig.PidsLimit}}"), "50");
    assert_eq!(p.inspect(&c, "{{.HostConfig.RestartPolicy.Name}}"), "on-failure");
    assert_eq!(p.inspect(&c, "{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "2");
    let (so, _) = p.ok(&[
        "exec",
        "-T",
        "s",
        "sh",
        "-c",
        "echo $GREETING $(id -u):$(id -g) $PWD $(hostname) $(ulimit -n); touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs-ok",
    ]);
    assert_eq!(so, "hello 1000:1000 /tmp boxy 1000\nro\ntmpfs-ok\n");
    // The configured stop signal stops it at once (the trap is on USR1).
    let t = std::time::Instant::now();
    p.ok(&["stop"]);
    assert!(t.elapsed() < std::time::Duration::from_secs(4), "stopped by SIGUSR1");
}

#[test]
fn compose_file_secrets_and_configs_are_read_only_files() {
    let compose = r#"
services:
  s:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    secrets: [token]
    configs:
      - source: app
        target: /etc/app.conf
      - inline
secrets:
  token:
    file: ./token.txt
configs:
  app:
    file: ./app.conf
  inline:
    content: "inline text"
"#;
    let Some(p) = Project::new("secrets", compose) else { return };
    std::fs::write(p.path().join("token.txt"), "s3cret\n").expect("write secret");
    std::fs::write(p.path().join("app.conf"), "key=value\n").expect("write config");
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&[
        "exec",
        "-T",
        "s",
        "sh",
        "-c",
        "cat /run/secrets/token /etc/app.conf; echo x >> /run/secrets/token 2>/dev/null || echo ro; cat /inline",
    ]);
    assert_eq!(so, "s3cret\nkey=value\nro\ninline text");
}

#[test]
fn compose_devices_and_ignored_keys_warn() {
    let compose = r#"
services:
  s:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    devices: ["/dev/null:/dev/mynull"]
    extra_hosts: ["a.example:10.0.0.1"]
    mem_swappiness: 10
"#;
    let Some(p) = Project::new("devices", compose) else { return };
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(
        se.contains("service \"s\": mem_swappiness not supported by berth yet, ignored"),
        "{se}"
    );
    let (so, _) = p.ok(&["exec", "-T", "s", "sh", "-c", "test -c /dev/mynull && echo dev-ok"]);
    assert_eq!(so, "dev-ok\n");
    // extra_hosts is honoured even without a network.
    let (so, _) = p.ok(&["exec", "-T", "s", "grep", "a.example", "/etc/hosts"]);
    assert!(so.contains("10.0.0.1"), "{so}");
}

#[test]
fn compose_volumes_from_shares_mounts() {
    let compose = r#"
services:
  reader:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    volumes_from: ["store:ro"]
  store:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; echo shared > /data/f; sleep 3600 & wait"]
    volumes: [data:/data]
volumes:
  data: {}
"#;
    let Some(p) = Project::new("volfrom", compose) else { return };
    // Naming only the reader brings up the store it takes volumes from.
    p.ok(&["up", "-d", "reader"]);
    p.wait_for("store to write", 10, || {
        p.run(&["exec", "-T", "reader", "cat", "/data/f"]).stdout == b"shared\n"
    });
    let out = p.run(&["exec", "-T", "reader", "sh", "-c", "echo x > /data/g"]);
    assert_ne!(out.status.code(), Some(0), "read-only through volumes_from");
}
