//! Time to connect one endpoint (veth pair into the namespace, address, lo up, default route,
//! DNS record, state write): median of 50, plus the disconnect median, and a breakdown: the
//! fixed cost of one netlink worker (thread + runtime + socket + one round trip), the kernel
//! data path alone (`plug_veth` / `delete_link` on unrecorded veths), the rest being the lock
//! and the state files. Run as root: `cargo run --release -p berth-bench --bin net_connect`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use berth_bench::median;
use berth_network::{EndpointConfig, IpamRequest, NetworkCreate, Networks, netlink};

const N: usize = 50;

/// One measured step: what, and its samples in ms.
type Figure = (&'static str, Vec<f64>);

fn main() {
    if let Err(e) = run() {
        eprintln!("net_connect: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::Builder::new().prefix("berth-bench-").tempdir()?;
    let nets = Networks::open(root.path())?;
    let net = nets.create(NetworkCreate {
        name: "benchnet".into(),
        ipam: vec![IpamRequest { subnet: Some("172.30.50.0/24".into()), ..Default::default() }],
        ..Default::default()
    })?;
    let st = nets.state(&net.id)?;
    let names: Vec<String> = (0..2 * N).map(|i| format!("bnb{}x{i}", std::process::id())).collect();
    let result = (|| -> Result<Vec<Figure>, Box<dyn std::error::Error>> {
        for n in &names {
            let ok = Command::new("ip").args(["netns", "add", n]).status()?.success();
            if !ok {
                return Err(format!("ip netns add {n} failed").into());
            }
        }
        let ns = |i: usize| PathBuf::from(format!("/run/netns/{}", names[i]));
        let mut worker = Vec::new();
        for _ in 0..N {
            let t = Instant::now();
            netlink::link_exists("lo")?;
            worker.push(ms(t));
        }
        // The kernel data path alone, on veths berth does not record.
        let mut plug = Vec::new();
        for i in 0..N {
            let ip = std::net::Ipv4Addr::new(172, 30, 50, 100 + i as u8);
            let plan = netlink::VethPlan {
                bridge: st.bridge.clone(),
                host_ifname: format!("vbench{i}"),
                netns: ns(N + i),
                ifname: "eth0".into(),
                mac: netlink::mac_for(ip),
                mtu: st.mtu,
                ip,
                prefix: 24,
                default_via: Some(st.gateway),
                ip6: None,
                default_via6: None,
                replace_default: false,
                group: 0,
                stale: Vec::new(),
            };
            let t = Instant::now();
            netlink::plug_veth(plan).map_err(berth_network::NetworkError::from)?;
            plug.push(ms(t));
        }
        let mut unplug = Vec::new();
        for i in 0..N {
            let t = Instant::now();
            netlink::delete_link(&format!("vbench{i}"))?;
            unplug.push(ms(t));
        }
        let mut conn = Vec::new();
        for i in 0..N {
            let cfg = EndpointConfig {
                container_id: format!("bench{i}"),
                name: format!("bench-web-{i}"),
                aliases: vec!["web".into(), format!("web-{i}")],
                interface_name: "eth0".into(),
                ..Default::default()
            };
            let t = Instant::now();
            nets.connect(&net.id, &ns(i), cfg)?;
            conn.push(ms(t));
        }
        let mut disc = Vec::new();
        for i in 0..N {
            let t = Instant::now();
            nets.disconnect(&net.id, &format!("bench{i}"))?;
            disc.push(ms(t));
        }
        Ok(vec![
            ("connect (target <= 5 ms)", conn),
            ("  netlink worker alone (thread, runtime, socket, 1 round trip)", worker),
            ("  kernel data path alone (plug_veth)", plug),
            ("disconnect (returns once the veth is unlisted)", disc),
            ("  kernel veth deletion alone, waiting for its RCU barrier (delete_link)", unplug),
        ])
    })();
    for st in nets.states().unwrap_or_default() {
        for c in st.endpoints.keys() {
            let _ = nets.disconnect(&st.network.id, c);
        }
    }
    for i in 0..N {
        let _ = netlink::delete_link(&format!("vbench{i}"));
    }
    let _ = nets.remove(&net.id);
    for n in &names {
        let _ = Command::new("ip").args(["netns", "del", n]).status();
    }
    for (what, mut samples) in result? {
        let m = median(&mut samples);
        let p90 = samples[samples.len() * 9 / 10];
        println!("{what}: median of {N} {m:.2} ms, p90 {p90:.2} ms");
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
