//! Networking of running containers: `network connect`/`disconnect` rewrite hosts and
//! resolv.conf and move published ports live; `--link` aliases; `inspect` of `host`/`none`
//! containers; IPv6 between containers. Traffic only goes to loopback and to the containers
//! these tests create; every test tears down and checks that nothing of it is left.

use super::net::{NetEnv, http_get, retry, run_cmd};

/// `berth run ARGS...` (kept in one place: the run command may move under `container`).
fn run<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["container", "run"];
    v.extend_from_slice(args);
    v
}

/// A long-running busybox httpd on port 80 that stops on SIGTERM.
const HTTPD: &str = "trap 'exit 0' TERM; httpd -f -p 80 -h /etc & wait";

/// The `dport` rules of network `net` (by its id tag) in berth's nft table.
fn port_rules(n: &NetEnv, net: &str) -> Vec<String> {
    let id = n.net_inspect(net)["Id"].as_str().unwrap_or("-").to_string();
    let tag = format!("net:{}", &id[..12.min(id.len())]);
    run_cmd("nft", &["list", "table", "ip", "berth"])
        .lines()
        .filter(|l| l.contains("dport") && l.contains(&tag))
        .map(str::to_string)
        .collect()
}

fn file_of(n: &NetEnv, container: &str, which: &str) -> String {
    let path = n.env.inspect(container, &format!("{{{{.{which}}}}}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The published host port of `container`'s port 80/tcp, if any.
fn host_port(n: &NetEnv, container: &str) -> Option<u16> {
    let j = n.env.inspect(container, "{{json .NetworkSettings.Ports}}");
    let v: serde_json::Value = serde_json::from_str(&j).ok()?;
    v["80/tcp"][0]["HostPort"].as_str()?.parse().ok()
}

#[test]
fn net_live_connect_and_disconnect_update_files_and_ports() {
    let Some(n) = NetEnv::new() else { return };
    let a = n.network("nla", &[]);
    let b = n.network("nlb", &[]);
    let web = berth_testsupport::unique_name("lweb");
    n.env.ok(&run(&["-d", "--name", &web, "--network", &a, "bb", "sh", "-c", HTTPD]));
    let c = berth_testsupport::unique_name("lc");
    n.env.ok(&run(&[
        "-d",
        "--name",
        &c,
        "--network",
        "none",
        "--hostname",
        "livehost",
        "-p",
        "127.0.0.1:0:80",
        "--stop-timeout",
        "1",
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    // A `none` container: docker's `none` entry, no port published yet.
    let nets = n.env.inspect(&c, "{{json .NetworkSettings.Networks}}");
    let v: serde_json::Value = serde_json::from_str(&nets).expect("networks json");
    assert!(v["none"]["NetworkID"].as_str().is_some_and(|s| s.len() == 64), "{nets}");
    assert_eq!(v["none"]["IPAddress"], "", "{nets}");
    assert_eq!(host_port(&n, &c), None);
    // Connect it live: resolv.conf names A's gateway, hosts has its address, the port answers.
    n.env.ok(&["network", "connect", &a, &c]);
    n.note_veths();
    assert_eq!(n.env.inspect(&c, "{{.HostConfig.NetworkMode}}"), a);
    let gw_a = n.net_inspect(&a)["IPAM"]["Config"][0]["Gateway"].as_str().unwrap().to_string();
    let ip_a = n.ip_of(&c, &a);
    assert!(!ip_a.is_empty(), "no address on {a}");
    let resolv = file_of(&n, &c, "ResolvConfPath");
    assert!(resolv.contains(&format!("nameserver {gw_a}")), "{resolv}");
    let hosts = file_of(&n, &c, "HostsPath");
    assert!(hosts.contains(&format!("{ip_a}\tlivehost")), "{hosts}");
    let script = retry(&format!("wget -q -O - http://{web}/passwd | grep -q root:"));
    n.env.ok(&["container", "exec", &c, "sh", "-c", &script]);
    let port = host_port(&n, &c).expect("port published on connect");
    assert!(http_get(port, "/group", 10).contains("root:"));
    assert_eq!(port_rules(&n, &a).len(), 1, "{:?}", port_rules(&n, &a));
    // A second network adds its address to hosts; the ports stay on A.
    n.env.ok(&["network", "connect", &b, &c]);
    n.note_veths();
    let ip_b = n.ip_of(&c, &b);
    let hosts = file_of(&n, &c, "HostsPath");
    assert!(hosts.contains(&format!("{ip_b}\tlivehost")), "{hosts}");
    assert!(port_rules(&n, &b).is_empty());
    // Leaving A: its address leaves hosts, resolv.conf and the ports move to B, and B's gateway
    // takes the default route.
    n.env.ok(&["network", "disconnect", &a, &c]);
    assert!(port_rules(&n, &a).is_empty(), "{:?}", port_rules(&n, &a));
    let hosts = file_of(&n, &c, "HostsPath");
    assert!(!hosts.contains(&format!("{ip_a}\t")), "{hosts}");
    let gw_b = n.net_inspect(&b)["IPAM"]["Config"][0]["Gateway"].as_str().unwrap().to_string();
    let resolv = file_of(&n, &c, "ResolvConfPath");
    assert!(resolv.contains(&format!("nameserver {gw_b}")), "{resolv}");
    let route = n.env.ok(&["container", "exec", &c, "ip", "route"]);
    assert!(route.contains(&format!("default via {gw_b}")), "{route}");
    let port = host_port(&n, &c).expect("port moved to B");
    assert!(http_get(port, "/group", 10).contains("root:"));
    assert!(!port_rules(&n, &b).is_empty());
    // Leaving the last network removes the rules; the container keeps running.
    n.env.ok(&["network", "disconnect", &b, &c]);
    assert!(port_rules(&n, &b).is_empty(), "{:?}", port_rules(&n, &b));
    assert_eq!(host_port(&n, &c), None);
    assert_eq!(n.env.inspect(&c, "{{.State.Status}}"), "running");
    assert_eq!(n.env.inspect(&c, "{{.HostConfig.NetworkMode}}"), "none");
    n.teardown_and_check();
}

#[test]
fn net_live_links_host_mode_inspect_and_ipv6() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nll", &["--ipv6"]);
    let web = berth_testsupport::unique_name("kweb");
    n.env.ok(&run(&["-d", "--name", &web, "--network", &net, "bb", "sh", "-c", HTTPD]));
    n.note_veths();
    // `--link web:db`: `db` answers for the linking container only.
    let script = retry("wget -q -O - http://db/passwd | grep -q root:");
    n.env.ok(&run(&[
        "--rm",
        "--network",
        &net,
        "--link",
        &format!("{web}:db"),
        "bb",
        "sh",
        "-c",
        &script,
    ]));
    n.env.ok(&run(&["--rm", "--network", &net, "bb", "sh", "-c", "! nslookup db"]));
    // IPv6 inside the network: AAAA by name, then ping over v6.
    let ip6 = n.endpoint(&web, &net)["GlobalIPv6Address"].as_str().unwrap_or_default().to_string();
    assert!(ip6.starts_with("fd"), "no ULA address: {ip6:?}");
    let script = format!(
        "{} && ping -6 -c 1 -W 3 {web}",
        retry(&format!("nslookup -type=aaaa {web} | grep -q {ip6}"))
    );
    n.env.ok(&run(&["--rm", "--network", &net, "bb", "sh", "-c", &script]));
    // `host`: docker's `host` entry and mode; links are refused there.
    let h = berth_testsupport::unique_name("khost");
    n.env.ok(&["container", "create", "--name", &h, "--network", "host", "bb", "true"]);
    assert_eq!(n.env.inspect(&h, "{{.HostConfig.NetworkMode}}"), "host");
    let nets = n.env.inspect(&h, "{{json .NetworkSettings.Networks}}");
    let v: serde_json::Value = serde_json::from_str(&nets).expect("networks json");
    assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{nets}");
    assert!(v["host"]["EndpointID"].as_str().is_some_and(|s| !s.is_empty()), "{nets}");
    let out = n.env.run(&run(&["--network", "host", "--link", &web, "bb", "true"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("links"), "{err}");
    // `network connect bridge` makes the default network on first use, as docker always has it.
    let lone = berth_testsupport::unique_name("klone");
    n.env.ok(&run(&["-d", "--name", &lone, "--stop-timeout", "1", "bb", "sh", "-c", HTTPD]));
    n.env.ok(&["network", "connect", "bridge", &lone]);
    n.note_veths();
    assert!(!n.ip_of(&lone, "bridge").is_empty(), "no address on bridge");
    n.teardown_and_check();
}

#[test]
fn net_live_connect_reserves_published_ports_at_once() {
    let Some(n) = NetEnv::new() else { return };
    let a = n.network("nlr", &[]);
    let c = berth_testsupport::unique_name("lres");
    let args =
        ["-d", "--name", &c, "--network", "none", "-p", "127.0.0.1:0:80", "bb", "sh", "-c", HTTPD];
    n.env.ok(&run(&args));
    n.env.ok(&["network", "connect", &a, &c]);
    n.note_veths();
    let port = host_port(&n, &c).expect("port published on connect");
    // The monitor holds the port (a host process can't take it) without a restart.
    let free = || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    n.env.wait_for("the monitor to reserve the port", 5, || !free());
    assert!(http_get(port, "/group", 10).contains("root:"));
    // Leaving the last network unpublishes it, and the reservation goes too.
    n.env.ok(&["network", "disconnect", &a, &c]);
    n.env.wait_for("the monitor to release the port", 5, free);
    assert_eq!(n.env.inspect(&c, "{{.State.Status}}"), "running");
    n.teardown_and_check();
}
