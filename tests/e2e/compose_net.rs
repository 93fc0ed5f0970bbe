//! Compose networks end to end: the default network, service DNS with replicas and scale,
//! several networks with aliases, internal networks and static addresses, published ports
//! (`berth port`, `ps`), `network_mode: service:x`, external networks, and that `down` removes
//! the project's networks. Traffic only goes to loopback and to the test's own containers;
//! each Project tears down on drop and asserts no container, network, bridge or DNS server left.

use crate::compose_support::{LONG, Project};

/// A service command: busybox httpd serving `body` on port 80, stopping at once on SIGTERM.
fn httpd(body: &str) -> String {
    format!(
        r#"["sh", "-c", "echo {body} > /tmp/index.html; trap 'exit 0' TERM; httpd -p 80 -h /tmp; sleep 3600 & wait"]"#
    )
}

/// Shell statement that retries `cmd` every 100 ms and fails after ~10 s (servers starting).
fn retry(cmd: &str) -> String {
    format!(
        "i=0; until {cmd}; do i=$((i+1)); if [ $i -ge 100 ]; then echo 'gave up: {cmd}'; exit 1; fi; sleep 0.1; done"
    )
}

/// `exec -T SVC sh -c SCRIPT`: (success, stdout + stderr).
fn sh(p: &Project, svc: &str, script: &str) -> (bool, String) {
    let out = p.run(&["exec", "-T", svc, "sh", "-c", script]);
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Like `sh`, asserting success; returns stdout + stderr.
fn sh_ok(p: &Project, svc: &str, script: &str) -> String {
    let (ok, text) = sh(p, svc, script);
    assert!(ok, "exec {svc} {script:?} failed: {text}");
    text
}

/// Answer addresses of a busybox `nslookup` (the server line has a tab and `:53`).
fn answers(nslookup: &str) -> Vec<String> {
    nslookup
        .lines()
        .filter_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .collect()
}

/// Container ids of the project (all states), sorted.
fn ids(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = p.containers().iter().map(|c| p.id(c)).collect();
    v.sort();
    v
}

/// The container's address on engine network `net`.
fn ip_on(p: &Project, container: &str, net: &str) -> String {
    let j = p.inspect(container, "{{json .NetworkSettings.Networks}}");
    let v: serde_json::Value = serde_json::from_str(&j).expect("networks json");
    v[net]["IPAddress"].as_str().unwrap_or_default().to_string()
}

/// A /24 in 10.200-249.x.0 that no host route or address mentions.
fn free_subnet(skip: &str) -> String {
    let routes = std::process::Command::new("ip")
        .args(["-o", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let seed = std::process::id() as usize;
    for i in 0..2000 {
        let n = seed.wrapping_add(i * 7919);
        let prefix = format!("10.{}.{}.", 200 + n % 50, (n / 50) % 256);
        if !routes.contains(&prefix) && prefix != skip {
            return prefix;
        }
    }
    panic!("no free 10.x subnet found");
}

#[test]
fn compose_net_default_network_dns_scale_and_ids() {
    let compose = format!(
        "services:\n  web:\n    image: bb\n    command: {}\n  pool:\n    image: bb\n    command: {}\n    scale: 3\n  client:\n    image: bb\n    command: {LONG}\n",
        httpd("web-page"),
        httpd("pool-$(hostname)"),
    );
    let Some(p) = Project::new("cnet", &compose) else { return };
    let default = format!("{}_default", p.name);

    // --dry-run shows the network action and creates nothing.
    let (_, se) = p.ok(&["--dry-run", "up", "-d"]);
    assert!(se.contains(&format!("Network {default}  Created")), "{se}");
    assert!(p.networks().is_empty(), "dry run created a network");

    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains(&format!(" Network {default}  Creating")), "{se}");
    assert!(!se.contains("not wired"), "{se}");
    let nets = p.networks();
    assert_eq!(nets.len(), 1, "{nets:?}");
    assert_eq!(nets[0]["Name"], default.as_str());
    let labels = nets[0]["Labels"].as_str().unwrap_or_default();
    assert!(labels.contains(&format!("com.docker.compose.project={}", p.name)), "{labels}");
    assert!(labels.contains("com.docker.compose.network=default"), "{labels}");

    // Two services talk over TCP by service name.
    let body = sh_ok(&p, "client", &retry("wget -qO- http://web/"));
    assert!(body.contains("web-page"), "{body}");

    // Three replicas: all in DNS, each answers as pool-N.
    let all = sh_ok(&p, "client", "nslookup pool");
    assert_eq!(answers(&all).len(), 3, "{all}");
    let mut bodies = Vec::new();
    for n in 1..=3 {
        let b = sh_ok(&p, "client", &retry(&format!("wget -qO- http://pool-{n}/")));
        assert!(b.starts_with("pool-"), "{b}");
        bodies.push(b);
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 3, "replicas answered alike: {bodies:?}");

    // A second up with no change keeps the containers and the network.
    let (cids, nids) = (ids(&p), p.network_ids());
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(!se.contains("Network"), "{se}");
    assert_eq!(ids(&p), cids);
    assert_eq!(p.network_ids(), nids);

    // Scale down: the removed replicas leave DNS at once.
    p.ok(&["up", "-d", "--scale", "pool=1"]);
    let one = sh_ok(&p, "client", "nslookup pool");
    assert_eq!(answers(&one).len(), 1, "{one}");
    let (_, gone) = sh(&p, "client", "nslookup pool-2");
    assert!(answers(&gone).is_empty(), "pool-2 still resolves: {gone}");

    // down removes the network (and its bridge); the DNS server goes with the last network.
    let (_, se) = p.ok(&["down", "-t", "2"]);
    assert!(se.contains(&format!(" Network {default}  Removed")), "{se}");
    p.assert_no_network_leftovers(&nids);
}

#[test]
fn compose_net_front_back_aliases_internal_static_ip() {
    let prefix = free_subnet("");
    let compose = |prefix: &str| {
        format!(
            r#"services:
  fe:
    image: bb
    command: {LONG}
    networks: [front]
    mac_address: "02:42:ac:11:00:99"
    dns_search: [example.internal]
    extra_hosts: ["gw.test:host-gateway"]
  be:
    image: bb
    command: {be}
    networks:
      back:
        aliases: [database]
        ipv4_address: {prefix}50
  both:
    image: bb
    command: {both}
    networks: [front, back]
networks:
  front:
    driver_opts:
      com.docker.network.driver.mtu: "1400"
  back:
    internal: true
    ipam:
      config:
        - subnet: {prefix}0/24
"#,
            be = httpd("be-page"),
            both = httpd("both-page"),
        )
    };
    let Some(p) = Project::new("cnet2", &compose(&prefix)) else { return };
    p.ok(&["up", "-d"]);
    let back = format!("{}_back", p.name);
    let be_ip = ip_on(&p, &p.cname("be", 1), &back);
    assert_eq!(be_ip, format!("{prefix}50"), "static ipv4_address");

    // A service on both networks reaches both, by name and by alias.
    let b = sh_ok(&p, "both", &retry("wget -qO- http://be/"));
    assert!(b.contains("be-page"), "{b}");
    let b = sh_ok(&p, "both", &retry("wget -qO- http://database/"));
    assert!(b.contains("be-page"), "{b}");
    let b = sh_ok(&p, "fe", &retry("wget -qO- http://both/"));
    assert!(b.contains("both-page"), "{b}");

    // front can neither resolve nor reach a service only on back.
    let (_, look) = sh(&p, "fe", "nslookup be");
    assert!(!look.contains(&be_ip), "fe resolved be: {look}");
    let (ok, out) = sh(&p, "fe", &format!("timeout 3 wget -qO- http://{be_ip}/"));
    assert!(!ok && !out.contains("be-page"), "fe reached be: {out}");

    // driver_opts reach the bridge: fe's interface has the network's MTU; mac_address,
    // dns_search and extra_hosts (host-gateway = the network's gateway) reach the container.
    let mtu = sh_ok(&p, "fe", "cat /sys/class/net/eth0/mtu");
    assert_eq!(mtu.trim(), "1400");
    let mac = sh_ok(&p, "fe", "cat /sys/class/net/eth0/address");
    assert_eq!(mac.trim(), "02:42:ac:11:00:99");
    let resolv = sh_ok(&p, "fe", "cat /etc/resolv.conf");
    assert!(resolv.contains("example.internal"), "{resolv}");
    let front = format!("{}_front", p.name);
    let rec: serde_json::Value =
        serde_json::from_str(&p.env.ok(&["network", "inspect", &front])).expect("inspect json");
    let gw = rec[0]["IPAM"]["Config"][0]["Gateway"].as_str().unwrap_or_default().to_string();
    let hosts = sh_ok(&p, "fe", "grep gw.test /etc/hosts");
    assert!(hosts.contains(gw.trim()) && !gw.trim().is_empty(), "{hosts} vs {gw}");

    // The internal network gives no default route.
    let routes = sh_ok(&p, "be", "ip route");
    assert!(!routes.contains("default"), "internal network has a default route: {routes}");

    // A changed network config: with --no-recreate, one sentence asking for down.
    let other = free_subnet(&prefix);
    p.write(&compose(&other));
    let out = p.run(&["up", "-d", "--no-recreate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "changed network config accepted: {err}");
    assert!(err.contains(&back) && err.contains("berth down"), "{err}");
    // Plain up recreates the network (new id, new subnet) and the containers on it, as
    // compose; fe (front only) and the front network are kept.
    let old_ids = p.network_ids();
    let (fe, be) = (p.id(&p.cname("fe", 1)), p.id(&p.cname("be", 1)));
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains(&format!("Network {back}  Removed")), "{se}");
    assert!(se.contains(&format!("Network {back}  Created")), "{se}");
    assert_eq!(ip_on(&p, &p.cname("be", 1), &back), format!("{other}50"));
    assert_eq!(p.id(&p.cname("fe", 1)), fe, "fe was recreated");
    assert_ne!(p.id(&p.cname("be", 1)), be, "be kept the old network");
    let new_ids = p.network_ids();
    assert_eq!(new_ids.len(), 2);
    assert_eq!(new_ids.iter().filter(|i| old_ids.contains(i)).count(), 1, "only back changes");
    let b = sh_ok(&p, "both", &retry("wget -qO- http://database/"));
    assert!(b.contains("be-page"), "{b}");
    // Once no container uses it, the network alone is recreated.
    p.ok(&["rm", "--stop", "--force"]);
    p.write(&compose(&prefix));
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains(&format!("Network {back}  Created")), "{se}");
    assert_eq!(ip_on(&p, &p.cname("be", 1), &back), format!("{prefix}50"));
}

#[test]
fn compose_net_published_ports_and_port_in_use() {
    let compose = format!(
        "services:\n  web:\n    image: bb\n    command: {}\n    ports: [\"127.0.0.1::80\"]\n",
        httpd("port-page")
    );
    let Some(p) = Project::new("cnetport", &compose) else { return };
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["port", "web", "80"]);
    let (ip, port) = so.trim().split_once(':').expect("HOST:PORT");
    assert_eq!(ip, "127.0.0.1");
    let port: u16 = port.parse().expect("port number");
    assert!(port > 0);
    let body = crate::support::http_response(port, "/");
    assert!(body.contains("port-page"), "{body}");
    // ps: the PORTS column and compose's Publishers.
    let (so, _) = p.ok(&["ps", "--format", "json"]);
    let row: serde_json::Value = serde_json::from_str(so.trim()).expect("ps json");
    assert_eq!(row["Ports"], format!("127.0.0.1:{port}->80/tcp").as_str());
    assert_eq!(row["Networks"], format!("{}_default", p.name).as_str());
    let pubs = &row["Publishers"][0];
    assert_eq!(pubs["URL"], "127.0.0.1");
    assert_eq!(pubs["TargetPort"], 80);
    assert_eq!(pubs["PublishedPort"], port);
    assert_eq!(pubs["Protocol"], "tcp");
    let (so, _) = p.ok(&["ps"]);
    assert!(so.contains(&format!("127.0.0.1:{port}->80/tcp")), "{so}");
    // An unpublished port is an error naming it.
    let out = p.run(&["port", "web", "81"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("81/tcp"));

    // Changing the ports recreates the container (the config hash covers them).
    let before = p.id(&p.cname("web", 1));
    p.write(&compose.replace("\"127.0.0.1::80\"", "\"127.0.0.1::80\", \"127.0.0.1::81\""));
    p.ok(&["up", "-d"]);
    assert_ne!(p.id(&p.cname("web", 1)), before, "ports changed but the container was kept");
    let (so, _) = p.ok(&["port", "web", "81"]);
    assert!(so.starts_with("127.0.0.1:"), "{so}");

    // A port already taken: one sentence naming the port; down then leaves nothing.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    p.write(&format!(
        "{compose}  busy:\n    image: bb\n    command: {LONG}\n    ports: [\"127.0.0.1:{taken}:80\"]\n"
    ));
    let out = p.run(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "taken port accepted: {err}");
    let line: Vec<&str> = err.lines().filter(|l| l.contains("already in use")).collect();
    assert_eq!(line.len(), 1, "{err}");
    assert!(line[0].contains(&taken.to_string()) && line[0].contains("service \"busy\""), "{err}");
    let nids = p.network_ids();
    p.ok(&["down", "-t", "2"]);
    assert!(p.containers().is_empty(), "containers left after down");
    p.assert_no_network_leftovers(&nids);
    drop(holder);
}

#[test]
fn compose_net_service_mode_shares_namespace() {
    let compose = format!(
        "services:\n  x:\n    image: bb\n    command: {}\n  y:\n    image: bb\n    command: {LONG}\n    network_mode: \"service:x\"\n",
        httpd("x-page")
    );
    let Some(p) = Project::new("cnetmode", &compose) else { return };
    p.ok(&["up", "-d"]);
    let mode = p.inspect(&p.cname("y", 1), "{{.HostConfig.NetworkMode}}");
    assert_eq!(mode.trim(), format!("container:{}", p.cname("x", 1)));
    let b = sh_ok(&p, "y", &retry("wget -qO- http://127.0.0.1/"));
    assert!(b.contains("x-page"), "{b}");
    // down of a project whose containers are already gone still removes its network.
    p.ok(&["rm", "--stop", "--force"]);
    assert!(p.containers().is_empty());
    let nids = p.network_ids();
    assert_eq!(nids.len(), 1);
    let (_, se) = p.ok(&["down"]);
    assert!(se.contains(&format!("Network {}_default  Removed", p.name)), "{se}");
    p.assert_no_network_leftovers(&nids);
}

#[test]
fn compose_net_external_network_must_exist() {
    let ext = berth_testsupport::unique_name("cnetext").to_lowercase().replace('_', "-");
    let compose = format!(
        "services:\n  z:\n    image: bb\n    command: {}\n    networks: [outside]\n  c:\n    image: bb\n    command: {LONG}\n    networks: [outside]\nnetworks:\n  outside:\n    name: {ext}\n    external: true\n",
        httpd("z-page")
    );
    let Some(p) = Project::new("cnetext", &compose) else { return };
    let out = p.run(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "missing external network accepted");
    assert!(err.contains(&ext) && err.contains("external") && err.contains("service \""), "{err}");
    assert!(p.containers().is_empty(), "containers created without their network");

    // Once it exists the project joins it, and down leaves it alone.
    p.env.ok(&["network", "create", &ext]);
    p.ok(&["up", "-d"]);
    let b = sh_ok(&p, "c", &retry("wget -qO- http://z/"));
    assert!(b.contains("z-page"), "{b}");
    let (_, se) = p.ok(&["down", "-t", "2"]);
    assert!(!se.contains("Network"), "{se}");
    let names: Vec<String> =
        p.networks().iter().map(|n| n["Name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(names, vec![ext.clone()]);
    p.env.ok(&["network", "rm", &ext]);
}

#[test]
fn compose_net_foreign_network_is_refused_and_unlabelled_reused() {
    let fixed = berth_testsupport::unique_name("cnetfix").to_lowercase().replace('_', "-");
    let compose = format!(
        "services:\n  s:\n    image: bb\n    command: {LONG}\n    networks: [x]\nnetworks:\n  x:\n    name: {fixed}\n"
    );
    let Some(p) = Project::new("cnetfix", &compose) else { return };
    p.ok(&["up", "-d"]);
    // Another project asking for the same engine name: one sentence naming network and label.
    let other = std::process::Command::new(crate::support::berth_bin())
        .current_dir(p.path())
        .args(["--root", &p.env.path().to_string_lossy(), "-p", "other", "up", "-d"])
        .output()
        .expect("spawn berth");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "foreign network accepted: {err}");
    assert!(
        err.contains(&fixed)
            && err.contains(&format!("com.docker.compose.project set to \"{}\"", p.name)),
        "{err}"
    );
    assert_eq!(p.containers().len(), 1, "the other project created containers");
    p.ok(&["down", "-t", "2"]);
    // A network of that name made outside compose is reused with compose's warning.
    p.env.ok(&["network", "create", &fixed]);
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("exists but was not created by compose"), "{se}");
    let (_, se) = p.ok(&["down", "-t", "2"]);
    assert!(!se.contains("Network"), "down removed a network it didn't create: {se}");
    p.env.ok(&["network", "rm", &fixed]);
}

#[test]
fn compose_net_links_alias_answers_only_the_linking_service() {
    let compose = format!(
        r#"
services:
  web:
    image: bb
    command: {web}
  client:
    image: bb
    command: {LONG}
    links: ["web:backend"]
  other:
    image: bb
    command: {LONG}
"#,
        web = httpd("linked-page")
    );
    let Some(p) = Project::new("links", &compose) else { return };
    p.ok(&["up", "-d"]);
    let link = p.inspect(&p.cname("client", 1), "{{json .HostConfig.Links}}");
    assert!(link.contains(&format!("{}:backend", p.cname("web", 1))), "{link}");
    let body = sh_ok(&p, "client", &retry("wget -qO- http://backend/ 2>/dev/null"));
    assert!(body.contains("linked-page"), "{body}");
    // The alias is the linking container's alone; the service name answers everyone.
    let (ok, text) = sh(&p, "other", "nslookup backend");
    assert!(!ok, "other must not resolve the link alias: {text}");
    sh_ok(&p, "other", "nslookup web");
}
