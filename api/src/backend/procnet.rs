//! Listening TCP sockets from a `/proc/net/tcp{,6}` table: what `4kr port list` shows, read
//! without anything installed in the box.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::error::{ApiError, ApiResult};
use crate::wire::PortView;

/// `st` of a listening socket in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

fn parse_v4(hex: &str) -> Option<String> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(u32::from_be(n)).to_string())
}

fn parse_v6(hex: &str) -> Option<String> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(Ipv6Addr::from(bytes).to_string())
}

/// Listening sockets in one /proc/net/tcp-format table.
fn listening(table: &str, v6: bool) -> Vec<PortView> {
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
            continue;
        };
        if *state != TCP_LISTEN {
            continue;
        }
        let Some((addr, port)) = local.split_once(':') else {
            continue;
        };
        let (Ok(port), Some(address)) = (
            u16::from_str_radix(port, 16),
            if v6 { parse_v6(addr) } else { parse_v4(addr) },
        ) else {
            continue;
        };
        out.push(PortView { port, address });
    }
    out
}

/// The listening sockets of a box's two tables (tcp and tcp6), sorted by port, without repeats.
pub(crate) fn listening_both(v4: &str, v6: &str) -> Vec<PortView> {
    let mut ports = listening(v4, false);
    ports.extend(listening(v6, true));
    ports.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    ports.dedup();
    ports
}

/// Polls `list` until something listens on `port`, or 408 `port_timeout` after `timeout`.
pub(crate) async fn wait_for_port<F, Fut>(
    name: &str,
    port: u16,
    timeout: Duration,
    list: F,
) -> ApiResult<PortView>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ApiResult<Vec<PortView>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = list().await?.into_iter().find(|p| p.port == port) {
            return Ok(p);
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "port_timeout",
                format!(
                    "nothing listens on port {port} in box {name:?} after {} s",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_net_tcp() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n   2: 0100007F:8B2E 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        assert_eq!(
            listening(v4, false),
            vec![
                PortView {
                    port: 8080,
                    address: "0.0.0.0".into()
                },
                PortView {
                    port: 80,
                    address: "127.0.0.1".into()
                }
            ]
        );
        let v6 = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0\n   1: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(
            listening(v6, true),
            vec![
                PortView {
                    port: 22,
                    address: "::".into()
                },
                PortView {
                    port: 25,
                    address: "::1".into()
                }
            ]
        );
        assert!(listening("header only\n", false).is_empty());
        assert!(listening("h\n garbage line\n", false).is_empty());
    }
}
