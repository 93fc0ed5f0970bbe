//! Answers per second from the embedded resolver over UDP on loopback (records for 50
//! containers, queries for a service name with 3 replicas), 1 and 4 concurrent clients.
//! Run as root (creating the network makes a bridge):
//! `cargo run --release -p berth-bench --bin net_dns`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_network::dns::{Resolver, serve_socket};
use berth_network::{IpamRequest, NetworkCreate, Networks};
use hickory_proto::op::Message;
use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RecordType};

const PER_CLIENT: usize = 20_000;

fn main() {
    if let Err(e) = run() {
        eprintln!("net_dns: {e}");
        std::process::exit(1);
    }
}

fn client(server: SocketAddr, n: usize) -> Result<usize, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii("api").map_err(|e| e.to_string())?, RecordType::A));
    q.metadata.recursion_desired = true;
    let bytes = q.to_vec().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let mut ok = 0;
    for _ in 0..n {
        s.send_to(&bytes, server).map_err(|e| e.to_string())?;
        if let Ok((len, _)) = s.recv_from(&mut buf)
            && Message::from_vec(&buf[..len]).is_ok_and(|m| m.answers.len() == 3)
        {
            ok += 1;
        }
    }
    Ok(ok)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::Builder::new().prefix("berth-bench-").tempdir()?;
    let nets = Networks::open(root.path())?;
    let net = nets.create(NetworkCreate {
        name: "benchdns".into(),
        ipam: vec![IpamRequest { subnet: Some("172.30.52.0/24".into()), ..Default::default() }],
        ..Default::default()
    })?;
    let result = (|| -> Result<Vec<(usize, f64)>, Box<dyn std::error::Error>> {
        for i in 0..50u8 {
            let mut names = vec![format!("c{i}")];
            if i < 3 {
                names.push("api".into());
            }
            nets.add_records(
                &net.id,
                &format!("c{i}"),
                &names,
                Ipv4Addr::new(172, 30, 52, 10 + i),
            )?;
        }
        let resolver = Arc::new(Resolver::new(root.path(), vec![]));
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let gw = nets.state(&net.id)?.gateway;
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let srv = rt.spawn(async move {
            match tokio::net::UdpSocket::from_std(sock) {
                Ok(s) => {
                    let _ = serve_socket(s, gw, resolver).await;
                }
                Err(e) => eprintln!("net_dns: {e}"),
            }
        });
        let mut out = Vec::new();
        for clients in [1usize, 4] {
            let t = Instant::now();
            let hs: Vec<_> = (0..clients)
                .map(|_| std::thread::spawn(move || client(addr, PER_CLIENT)))
                .collect();
            let mut ok = 0;
            for h in hs {
                ok += h.join().map_err(|_| "client panicked")??;
            }
            out.push((clients, ok as f64 / t.elapsed().as_secs_f64()));
        }
        srv.abort();
        Ok(out)
    })();
    let _ = nets.remove(&net.id);
    for (c, qps) in result? {
        println!("{c} client(s): {qps:.0} answers/s (A query, 3 replicas, 50 containers)");
    }
    Ok(())
}
