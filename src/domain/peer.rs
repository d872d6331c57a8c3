//! Who is on the other end: the client's address, behind trusted proxies too, and the key
//! its per-address budgets are counted under.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or a CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a prefix length over {max}"))?,
            None => max,
        };
        Ok(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// `ip` with every bit past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - prefix))
            };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - prefix))
            };
            IpAddr::V6(Ipv6Addr::from(kept))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy. The rightmost, because every proxy
/// appends what it saw; entries further left were written by whoever sent the request and
/// prove nothing. An untrusted peer's header is ignored: anyone can send one.
///
/// An entry that is not a bare IP address (it has a port, reads `unknown`, or is garbage)
/// ends the walk: nothing left of it can be trusted, so the address is that of the trusted
/// hop that appended it, never an entry further left.
pub fn client_addr<'a>(
    tcp_peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = canonical(tcp_peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).collect();
    // The trusted hop whose entry is being read: it appended the entry to its left.
    let mut appended_by = peer;
    for entry in entries.into_iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
            return appended_by;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        appended_by = ip;
    }
    // Every hop is a trusted proxy: the peer, as when no header came.
    peer
}

/// Whether `ip` is one of the `trusted` proxies, whose forwarding headers are believed.
pub fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// The key per-address budgets count under: the address for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64, so counting addresses would let it rotate past a limit).
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, 64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_contain_what_they_should() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        for bad in ["10.0.0.0/33", "nope", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy_and_read_from_the_right() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let header = ["203.0.113.9, 198.51.100.7, 10.0.0.5"];
        assert_eq!(
            client_addr(ip("10.0.0.2"), header.iter().copied(), &trusted),
            ip("198.51.100.7"),
            "the rightmost untrusted entry, not the spoofable leftmost"
        );
        assert_eq!(
            client_addr(ip("192.0.2.1"), header.iter().copied(), &trusted),
            ip("192.0.2.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_addr(ip("10.0.0.2"), std::iter::empty(), &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_entry_that_is_not_a_bare_address_ends_the_walk_at_the_hop_that_appended_it() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        for bad in [
            "198.51.100.7:4711",
            "unknown",
            "garbage",
            "[2001:db8::1]:80",
            "",
        ] {
            let header = format!("203.0.113.9, {bad}, 10.0.0.5");
            assert_eq!(
                client_addr(ip("10.0.0.2"), std::iter::once(header.as_str()), &trusted),
                ip("10.0.0.5"),
                "{header}: the trusted hop that appended the bad entry, never 203.0.113.9"
            );
        }
        assert_eq!(
            client_addr(
                ip("10.0.0.2"),
                std::iter::once("203.0.113.9, unknown"),
                &trusted
            ),
            ip("10.0.0.2"),
            "a bad rightmost entry: the peer that appended it"
        );
    }

    #[test]
    fn ipv6_budgets_count_per_64() {
        assert_eq!(
            budget_key(ip("2001:db8:1:2:aaaa::1")),
            budget_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            budget_key(ip("2001:db8:1:2::1")),
            budget_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(budget_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
