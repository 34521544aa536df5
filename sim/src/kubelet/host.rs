//! What the machine lends the pods the kubelet runs as local processes: a loopback address
//! each (their pod IP) and room under a cap of running JVMs per node. A plain struct: the
//! process runtime asks it, and it is tested without processes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The first pod address; `127.0.0.1` stays the servers'.
const FIRST: u32 = u32::from_be_bytes([127, 0, 0, 2]);
/// The last: 127.0.0.0/8 is all local on Linux, 127.0.x.y is enough.
const LAST: u32 = u32::from_be_bytes([127, 0, 255, 254]);

/// Why a pod cannot start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error(
        "node {node} already runs {running} JVMs, the cap per node ({cap}); the container \
         starts when one of them ends"
    )]
    Node {
        node: String,
        running: usize,
        cap: usize,
    },
    #[error("every loopback address 127.0.0.2-127.0.255.254 is taken by a running pod")]
    Addresses,
}

/// Loopback addresses and running JVMs per node.
#[derive(Debug, Clone)]
pub struct Host {
    cap: usize,
    next: u32,
    taken: BTreeSet<u32>,
    running: BTreeMap<String, usize>,
}

impl Host {
    /// At most `cap_per_node` processes at once on each node (at least one).
    pub fn new(cap_per_node: usize) -> Host {
        Host {
            cap: cap_per_node.max(1),
            next: FIRST,
            taken: BTreeSet::new(),
            running: BTreeMap::new(),
        }
    }

    /// Room for one more process on `node`, and its address. Addresses go round: one freed is
    /// given again only after all the others, so a new process never meets the sockets of an
    /// old one on its address.
    pub fn admit(&mut self, node: &str) -> Result<Ipv4Addr, Full> {
        let running = self.running.get(node).copied().unwrap_or(0);
        if running >= self.cap {
            return Err(Full::Node {
                node: node.to_owned(),
                running,
                cap: self.cap,
            });
        }
        let span = LAST - FIRST + 1;
        let ip = (0..span)
            .map(|i| FIRST + (self.next - FIRST + i) % span)
            .find(|ip| {
                let last = ip & 0xff;
                last != 0 && last != 255 && !self.taken.contains(ip)
            })
            .ok_or(Full::Addresses)?;
        self.next = if ip == LAST { FIRST } else { ip + 1 };
        self.taken.insert(ip);
        *self.running.entry(node.to_owned()).or_default() += 1;
        Ok(Ipv4Addr::from(ip))
    }

    /// The process of `node` at `ip` has ended.
    pub fn release(&mut self, node: &str, ip: Ipv4Addr) {
        if self.taken.remove(&u32::from(ip))
            && let Some(n) = self.running.get_mut(node)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// How many processes run on `node`.
    pub fn running(&self, node: &str) -> usize {
        self.running.get(node).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_runs_at_most_its_cap_and_a_freed_place_is_taken_again() {
        let mut host = Host::new(2);
        let a = host.admit("n1").unwrap();
        let b = host.admit("n1").unwrap();
        assert_eq!(
            host.admit("n1"),
            Err(Full::Node {
                node: "n1".into(),
                running: 2,
                cap: 2
            })
        );
        assert!(host.admit("n2").is_ok(), "the cap is per node");
        host.release("n1", a);
        assert_eq!(host.running("n1"), 1);
        let c = host.admit("n1").unwrap();
        assert_ne!(c, a, "a freed address is not given again at once");
        assert_ne!(c, b);
    }

    #[test]
    fn addresses_are_loopback_unique_and_skip_the_servers_and_broadcast_like_ones() {
        let mut host = Host::new(usize::MAX);
        let mut seen = BTreeSet::new();
        for _ in 0..600 {
            let ip = host.admit("n").unwrap();
            assert!(ip.is_loopback());
            assert_ne!(ip, Ipv4Addr::new(127, 0, 0, 1));
            assert!(!matches!(ip.octets()[3], 0 | 255), "{ip}");
            assert!(seen.insert(ip), "{ip} given twice");
        }
        assert_eq!(seen.first(), Some(&Ipv4Addr::new(127, 0, 0, 2)));
        assert!(seen.contains(&Ipv4Addr::new(127, 0, 1, 1)));
    }

    #[test]
    fn when_every_address_is_taken_admission_says_so_and_a_release_makes_room() {
        let mut host = Host::new(usize::MAX);
        let mut last = None;
        loop {
            match host.admit("n") {
                Ok(ip) => last = Some(ip),
                Err(e) => {
                    assert_eq!(e, Full::Addresses);
                    break;
                }
            }
        }
        let last = last.unwrap();
        assert_eq!(last, Ipv4Addr::new(127, 0, 255, 254));
        host.release("n", Ipv4Addr::new(127, 0, 7, 7));
        assert_eq!(host.admit("n"), Ok(Ipv4Addr::new(127, 0, 7, 7)));
    }

    #[test]
    fn releasing_an_address_not_taken_changes_nothing() {
        let mut host = Host::new(1);
        let a = host.admit("n").unwrap();
        host.release("n", Ipv4Addr::new(127, 0, 9, 9));
        assert_eq!(host.running("n"), 1);
        host.release("n", a);
        host.release("n", a);
        assert_eq!(host.running("n"), 0);
    }
}
