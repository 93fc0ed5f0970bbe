//! TCP throughput host -> container, straight to the container address vs through a published
//! port on 127.0.0.1 (DNAT). Bounded: 1 GiB per run, 3 runs each, own namespace only.
//! Run as root: `cargo run --release -p berth-bench --bin net_throughput`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_bench::median;
use berth_network::{EndpointConfig, IpamRequest, NetworkCreate, Networks, PortMapping, Protocol};

const BYTES: usize = 1 << 30;
const RUNS: usize = 3;
const PORT: u16 = 5001;

fn main() {
    if let Err(e) = run() {
        eprintln!("net_throughput: {e}");
        std::process::exit(1);
    }
}

/// A sink inside the namespace: per connection, reads to EOF and answers one byte.
fn sink(netns: PathBuf) -> Result<(), String> {
    let f = std::fs::File::open(&netns).map_err(|e| e.to_string())?;
    // Only this thread moves; it serves inside the namespace until the process exits.
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
    let l = TcpListener::bind(("0.0.0.0", PORT)).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = s.write_all(b"k");
        }
    });
    Ok(())
}

fn transfer(to: SocketAddr) -> Result<f64, Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
    let chunk = vec![0x5au8; 1 << 16];
    let t = Instant::now();
    let mut sent = 0;
    while sent < BYTES {
        s.write_all(&chunk)?;
        sent += chunk.len();
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack)?;
    Ok(sent as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::Builder::new().prefix("berth-bench-").tempdir()?;
    let nets = Networks::open(root.path())?;
    let net = nets.create(NetworkCreate {
        name: "benchtp".into(),
        ipam: vec![IpamRequest { subnet: Some("172.30.51.0/24".into()), ..Default::default() }],
        ..Default::default()
    })?;
    let ns = format!("bnt{}", std::process::id());
    let result = (|| -> Result<(f64, f64), Box<dyn std::error::Error>> {
        if !Command::new("ip").args(["netns", "add", &ns]).status()?.success() {
            return Err("ip netns add failed".into());
        }
        let path = PathBuf::from(format!("/run/netns/{ns}"));
        let ep = nets.connect(
            &net.id,
            &path,
            EndpointConfig {
                container_id: "tp".into(),
                name: "tp".into(),
                interface_name: "eth0".into(),
                ..Default::default()
            },
        )?;
        let p = nets.publish(
            &net.id,
            "tp",
            ep.ip,
            PortMapping {
                host_ip: None,
                host_port: 0,
                container_port: PORT,
                protocol: Protocol::Tcp,
            },
        )?;
        let th = std::thread::spawn(move || sink(path));
        th.join().map_err(|_| "sink thread panicked")??;
        let direct_addr = SocketAddr::from((ep.ip, PORT));
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, p.host_port));
        let mut d = Vec::new();
        let mut pp = Vec::new();
        for _ in 0..RUNS {
            d.push(transfer(direct_addr)?);
            pp.push(transfer(published)?);
        }
        Ok((median(&mut d), median(&mut pp)))
    })();
    let _ = nets.disconnect(&net.id, "tp");
    let _ = nets.remove(&net.id);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let (d, p) = result?;
    println!("TCP host -> container, 1 GiB, median of {RUNS}:");
    println!("  straight to the container address: {d:.2} Gbit/s");
    println!("  through the published port on 127.0.0.1 (DNAT): {p:.2} Gbit/s");
    Ok(())
}
