//! `berth run SERVICE`: compose's one-off containers (names, labels, flags, dependencies,
//! exit codes, `down`).

use crate::compose_support::{LONG, Project};

fn compose() -> String {
    format!(
        r#"
services:
  db:
    image: bb
    network_mode: none
    command: {LONG}
  app:
    image: bb
    network_mode: none
    depends_on: [db]
    environment:
      FROM_FILE: "yes"
      OVERRIDDEN: file
    labels:
      from.file: "1"
    command: ["sh", "-c", "echo default command"]
"#
    )
}

/// The one-off containers of the project (all states): (name, labels as JSON).
fn oneoffs(p: &Project) -> Vec<(String, serde_json::Value)> {
    let so = p.env.ok(&[
        "container",
        "ls",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={}", p.name),
        "--filter",
        "label=com.docker.compose.oneoff=True",
        "--format",
        "json",
    ]);
    so.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).expect("ls json line");
            let n = row["Names"].as_str().unwrap_or_default().to_string();
            (n.clone(), labels(p, &n))
        })
        .collect()
}

/// A container's labels as a JSON object.
fn labels(p: &Project, name: &str) -> serde_json::Value {
    serde_json::from_str(&p.inspect(name, "{{json .Config.Labels}}")).expect("labels json")
}

#[test]
fn compose_run_oneoff_attached_deps_labels_and_exit_code() {
    let Some(p) = Project::new("crun", &compose()) else { return };
    // Attached: output streamed, exit code is the container's, the dependency came up first.
    let out = p.run(&["run", "app", "sh", "-c", "echo out-line; echo err-line >&2; exit 3"]);
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{so}\n{se}");
    assert_eq!(so, "out-line\n");
    assert!(se.contains("err-line"), "{se}");
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.Status}}"), "running");

    // The container stays (no --rm), named and labelled as compose's one-offs.
    let found = oneoffs(&p);
    assert_eq!(found.len(), 1, "{found:?}");
    let (name, lbl) = &found[0];
    let prefix = format!("{}-app-run-", p.name);
    let slug = name.strip_prefix(&prefix).unwrap_or_else(|| panic!("name {name}"));
    assert!(slug.len() == 12 && slug.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert_eq!(lbl["com.docker.compose.oneoff"], "True");
    assert_eq!(lbl["com.docker.compose.service"], "app");
    assert_eq!(lbl["com.docker.compose.project"], p.name.as_str());
    assert_eq!(lbl["from.file"], "1");
    assert!(lbl["com.docker.compose.slug"].as_str().is_some_and(|s| s.starts_with(slug)));
    assert_eq!(p.inspect(name, "{{.State.ExitCode}}"), "3");

    // Listed by ps (as compose does), not an orphan (up says nothing about it), and not a
    // replica (up leaves it alone).
    let mut expected = vec![p.cname("db", 1), name.clone()];
    expected.sort();
    assert_eq!(p.containers(), expected);
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(!se.contains("orphan"), "{se}");
    assert!(!se.contains(name.as_str()), "{se}");
    assert_eq!(p.inspect(name, "{{.State.Status}}"), "exited");

    // The service's default command runs when none is given; --rm leaves nothing behind.
    let (so, _) = p.ok(&["run", "--rm", "app"]);
    assert_eq!(so, "default command\n");
    assert_eq!(oneoffs(&p).len(), 1);

    // Flags: -e (wins over the file), -u, -w, --entrypoint, --label, -v.
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("in.txt"), "from host\n").expect("write");
    let bind = format!("{}:/data", host.path().display());
    let (so, _) = p.ok(&[
        "run",
        "--rm",
        "--no-deps",
        "-e",
        "OVERRIDDEN=flag",
        "-e",
        "EXTRA=1",
        "-u",
        "1234:5678",
        "-w",
        "/tmp",
        "-v",
        &bind,
        "--label",
        "run.label=x",
        "--entrypoint",
        "sh -c",
        "app",
        "echo $FROM_FILE $OVERRIDDEN $EXTRA; id -u; id -g; pwd; cat /data/in.txt",
    ]);
    assert_eq!(so, "yes flag 1\n1234\n5678\n/tmp\nfrom host\n");

    // -d prints the name; the container runs until stopped; down removes it (compose needs
    // --remove-orphans for this).
    let (so, _) = p.ok(&[
        "run",
        "-d",
        "--label",
        "extra=1",
        "app",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let dname = so.trim().to_string();
    assert!(dname.starts_with(&prefix), "{so}");
    assert_eq!(p.inspect(&dname, "{{.State.Status}}"), "running");
    assert_eq!(labels(&p, &dname)["extra"], "1");
    assert_eq!(oneoffs(&p).len(), 2);
    let ids: Vec<String> = oneoffs(&p).iter().map(|(n, _)| p.id(n)).collect();
    p.ok(&["down", "-t", "2"]);
    assert!(oneoffs(&p).is_empty());
    for id in ids {
        p.env.assert_no_leftovers(&id);
    }
}

#[test]
fn compose_run_no_deps_name_conflict_and_unknown_service() {
    let Some(p) = Project::new("crun2", &compose()) else { return };
    // --no-deps: the dependency is not created.
    let name = format!("{}-custom", p.name);
    let (so, _) = p.ok(&["run", "--no-deps", "--name", &name, "app", "echo", "alone"]);
    assert_eq!(so, "alone\n");
    assert_eq!(p.containers(), vec![name.clone()]);
    assert_eq!(labels(&p, &name)["com.docker.compose.oneoff"], "True");

    // The same --name again: one sentence naming it, nothing created.
    let out = p.run(&["run", "--no-deps", "--name", &name, "app", "true"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains(&format!("container name \"{name}\" is already in use")), "{se}");
    assert!(se.contains("--name"), "{se}");
    assert_eq!(se.trim().lines().count(), 1, "{se}");
    assert_eq!(oneoffs(&p).len(), 1);

    // Unknown service: usage error.
    let out = p.run(&["run", "nosuch"]);
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service: nosuch"));

    // A command that does not exist: docker's 127, and --rm still cleans up.
    let out = p.run(&["run", "--rm", "--no-deps", "app", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(oneoffs(&p).len(), 1);

    // stdin reaches an attached run.
    let mut child = std::process::Command::new(crate::support::berth_bin())
        .current_dir(p.path())
        .args(["--root", p.env.path().to_str().unwrap(), "-p", &p.name])
        .args(["run", "--rm", "--no-deps", "-T", "app", "sh", "-c", "tr a-z A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
}

#[test]
fn compose_run_waits_for_healthy_dependency_and_dry_run() {
    // db's healthcheck leaves a marker in a shared volume: the one-off only sees it if it
    // started after db became healthy.
    let compose = format!(
        r#"
services:
  db:
    image: bb
    network_mode: none
    command: {LONG}
    volumes: ["v:/v"]
    healthcheck:
      test: ["CMD", "touch", "/v/healthy"]
      interval: 500ms
      start_interval: 300ms
  app:
    image: bb
    network_mode: none
    volumes: ["v:/v"]
    depends_on:
      db: {{condition: service_healthy}}
volumes:
  v: {{}}
"#
    );
    let Some(p) = Project::new("crun3", &compose) else { return };
    // --dry-run: the plan is shown, nothing is created.
    let (_, se) = p.ok(&["--dry-run", "run", "app", "true"]);
    assert!(se.contains("DRY-RUN MODE"), "{se}");
    assert!(p.containers().is_empty());
    let (so, se) = p.ok(&["run", "--rm", "app", "cat", "/v/healthy"]);
    assert_eq!(so, "", "{se}");
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.Health.Status}}"), "healthy");
}

#[test]
fn compose_run_ports_only_when_asked_and_aliases_only_with_use_aliases() {
    let compose = r#"
services:
  web:
    image: bb
    init: true
    command: ["sh", "-c", "echo run-page > /tmp/index.html; httpd -f -p 80 -h /tmp"]
    ports: ["127.0.0.1::80"]
    networks:
      default:
        aliases: [www]
  client:
    image: bb
    command: ["true"]
"#;
    let Some(p) = Project::new("crunnet", compose) else { return };
    let host_port = |name: &str| {
        p.inspect(name, r#"{{range (index .NetworkSettings.Ports "80/tcp")}}{{.HostPort}}{{end}}"#)
    };
    // compose's run publishes nothing unless asked ...
    p.ok(&["run", "-d", "--name", "plain", "web"]);
    assert_eq!(host_port("plain"), "");
    // ... -P publishes the service's ports, -p the given ones.
    p.ok(&["run", "-d", "--name", "svcports", "-P", "web"]);
    let port: u16 = host_port("svcports").parse().expect("a published host port");
    assert!(crate::support::http_body(port, "/index.html").contains("run-page"));
    let fixed = crate::support::free_port();
    p.ok(&["run", "-d", "--name", "fixed", "-p", &format!("127.0.0.1:{fixed}:80"), "web"]);
    assert!(crate::support::http_body(fixed, "/index.html").contains("run-page"));
    // The service's alias answers only for a one-off started with --use-aliases.
    let lookup = |p: &Project| p.run(&["run", "--rm", "--no-deps", "client", "nslookup", "www"]);
    assert!(!lookup(&p).status.success(), "no one-off uses the alias yet");
    p.ok(&["run", "-d", "--name", "aliased", "--use-aliases", "web"]);
    let ip = p.inspect(
        "aliased",
        &format!(r#"{{{{(index .NetworkSettings.Networks "{}_default").IPAddress}}}}"#, p.name),
    );
    let out = lookup(&p);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && so.contains(&ip), "www -> {ip}: {so}");
}
