//! The lab's service IPs are real sockets: served while a live speaker
//! announces them, dark while the dead announcer's speaker is still a
//! memberlist member, served again from the next node; the lab records the
//! dark window itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use k3s_cockpit::lab::scenario::Scenario;
use k3s_cockpit::lab::{Lab, LabConfig};
use k3s_cockpit::probe::{Check, probe_once};

const IP: &str = "127.77.0.201";

fn scenario(port: u16, victim: &str) -> String {
    format!(
        r#"name = "serve"
[timing]
speaker_failover = "1500ms"
[[nodes]]
name = "node-a"
role = "server"
version = "v1.33.6+k3s1"
[[nodes]]
name = "node-b"
role = "server"
version = "v1.33.6+k3s1"
[[services]]
namespace = "web"
name = "web"
ip = "{IP}"
port = {port}
pod_node = "node-a"
[[faults]]
node = "{victim}"
kind = "speaker-stop"
delay = "1s"
"#
    )
}

async fn get(addr: SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[tokio::test]
async fn service_ip_is_dark_exactly_between_speaker_death_and_takeover() {
    let port = common::free_port();
    let first = ["node-a", "node-b"]
        .into_iter()
        .min_by_key(|n| k3s_cockpit::lab::objects::l2_rank(n, IP))
        .unwrap();
    let other = if first == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let sc = Scenario::parse(&scenario(port, first), "serve.toml").unwrap();
    let lab = Lab::start(LabConfig::new(sc)).await.unwrap();
    let addr: SocketAddr = format!("{IP}:{port}").parse().unwrap();

    let reply = get(addr).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(
        reply.ends_with(&format!("web/web served from {first}\n")),
        "{reply}"
    );

    // The speaker dies at 1 s; memberlist notices 1.5 s later.
    let mut dark_seen = false;
    let mut back_from_other = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline && !back_from_other {
        match probe_once(addr, &Check::http(), Duration::from_millis(300)).await {
            Err(e) => {
                assert_eq!(e, "connection refused");
                dark_seen = true;
            }
            Ok(()) if dark_seen => {
                let reply = get(addr).await.unwrap();
                assert!(
                    reply.ends_with(&format!("served from {other}\n")),
                    "{reply}"
                );
                back_from_other = true;
            }
            Ok(()) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dark_seen && back_from_other);
    assert_eq!(lab.sim.announcer("web", "web").as_deref(), Some(other));

    let outages = lab.sim.outages();
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0].service, "web/web");
    assert_eq!(outages[0].endpoint, format!("{IP}:{port}"));
    let dark = outages[0].duration().unwrap();
    assert!(
        dark >= Duration::from_millis(1400) && dark < Duration::from_millis(2500),
        "dark for {dark:?}, speaker_failover is 1.5 s"
    );
}
