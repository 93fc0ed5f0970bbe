//! Time to connect one endpoint (veth pair into the namespace, address, lo up, default route,
//! DNS record, state write): median of 50, plus the disconnect median.
//! Run as root: `cargo run --release -p berth-bench --bin net_connect`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use berth_bench::median;
use berth_network::{EndpointConfig, IpamRequest, NetworkCreate, Networks};

const N: usize = 50;

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
    let names: Vec<String> = (0..N).map(|i| format!("bnb{}x{i}", std::process::id())).collect();
    let result = (|| -> Result<(f64, f64), Box<dyn std::error::Error>> {
        for n in &names {
            let ok = Command::new("ip").args(["netns", "add", n]).status()?.success();
            if !ok {
                return Err(format!("ip netns add {n} failed").into());
            }
        }
        let mut conn = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let cfg = EndpointConfig {
                container_id: format!("bench{i}"),
                name: format!("bench-web-{i}"),
                aliases: vec!["web".into(), format!("web-{i}")],
                interface_name: "eth0".into(),
                ..Default::default()
            };
            let t = Instant::now();
            nets.connect(&net.id, &PathBuf::from(format!("/run/netns/{n}")), cfg)?;
            conn.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mut disc = Vec::new();
        for i in 0..N {
            let t = Instant::now();
            nets.disconnect(&net.id, &format!("bench{i}"))?;
            disc.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok((median(&mut conn), median(&mut disc)))
    })();
    for st in nets.states().unwrap_or_default() {
        for c in st.endpoints.keys() {
            let _ = nets.disconnect(&st.network.id, c);
        }
    }
    let _ = nets.remove(&net.id);
    for n in &names {
        let _ = Command::new("ip").args(["netns", "del", n]).status();
    }
    let (c, d) = result?;
    println!("connect median of {N}: {c:.2} ms (target <= 5 ms)");
    println!("disconnect median of {N}: {d:.2} ms");
    Ok(())
}
