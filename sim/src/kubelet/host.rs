//! What the machine lends the pods the kubelet runs as local processes: a loopback address
//! each (their pod IP) and room under a cap of running JVMs per node, of which drivers may take
//! all but one (so that their executors can always start somewhere). A plain struct: the
//! process runtime asks it, and it is tested without processes.

use std::collections::BTreeMap;
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
    #[error(
        "node {node} already runs {drivers} drivers: with a cap of {cap} JVMs per node, the \
         last place is kept for executors; the driver starts when one of them ends"
    )]
    Drivers {
        node: String,
        drivers: usize,
        cap: usize,
    },
    #[error("every loopback address 127.0.0.2-127.0.255.254 is taken by a running pod")]
    Addresses,
}

/// What runs on a node.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    running: usize,
    drivers: usize,
}

/// Loopback addresses and running JVMs per node.
#[derive(Debug, Clone)]
pub struct Host {
    cap: usize,
    next: u32,
    taken: BTreeMap<u32, bool>,
    nodes: BTreeMap<String, Load>,
}

impl Host {
    /// At most `cap_per_node` processes at once on each node (at least one), addresses from
    /// 127.0.0.2.
    pub fn new(cap_per_node: usize) -> Host {
        Host::starting_at(cap_per_node, Ipv4Addr::new(127, 0, 0, 2))
    }

    /// The same, giving addresses from `start` on (two simulators on one machine start at
    /// different places, so that their pods rarely share an address).
    pub fn starting_at(cap_per_node: usize, start: Ipv4Addr) -> Host {
        Host {
            cap: cap_per_node.max(1),
            next: u32::from(start).clamp(FIRST, LAST),
            taken: BTreeMap::new(),
            nodes: BTreeMap::new(),
        }
    }

    /// Whether one more process (a driver or not) may start on `node` now.
    pub fn room(&self, node: &str, driver: bool) -> Result<(), Full> {
        let load = self.nodes.get(node).copied().unwrap_or_default();
        if load.running >= self.cap {
            return Err(Full::Node {
                node: node.to_owned(),
                running: load.running,
                cap: self.cap,
            });
        }
        if driver && self.cap > 1 && load.drivers >= self.cap - 1 {
            return Err(Full::Drivers {
                node: node.to_owned(),
                drivers: load.drivers,
                cap: self.cap,
            });
        }
        Ok(())
    }

    /// Room for one more process on `node`, and its address. Addresses go round: one freed is
    /// given again only after all the others, so a new process never meets the sockets of an
    /// old one on its address.
    pub fn admit(&mut self, node: &str, driver: bool) -> Result<Ipv4Addr, Full> {
        self.room(node, driver)?;
        let span = LAST - FIRST + 1;
        let ip = (0..span)
            .map(|i| FIRST + (self.next - FIRST + i) % span)
            .find(|ip| {
                let last = ip & 0xff;
                last != 0 && last != 255 && !self.taken.contains_key(ip)
            })
            .ok_or(Full::Addresses)?;
        self.next = if ip == LAST { FIRST } else { ip + 1 };
        self.taken.insert(ip, driver);
        let load = self.nodes.entry(node.to_owned()).or_default();
        load.running += 1;
        load.drivers += usize::from(driver);
        Ok(Ipv4Addr::from(ip))
    }

    /// The process of `node` at `ip` has ended.
    pub fn release(&mut self, node: &str, ip: Ipv4Addr) {
        if let Some(driver) = self.taken.remove(&u32::from(ip))
            && let Some(load) = self.nodes.get_mut(node)
        {
            load.running = load.running.saturating_sub(1);
            load.drivers = load.drivers.saturating_sub(usize::from(driver));
        }
    }

    /// How many processes run on `node`.
    pub fn running(&self, node: &str) -> usize {
        self.nodes.get(node).map_or(0, |l| l.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_node_runs_at_most_its_cap_and_a_freed_place_is_taken_again() {
        let mut host = Host::new(2);
        let a = host.admit("n1", false).unwrap();
        let b = host.admit("n1", false).unwrap();
        assert_eq!(
            host.admit("n1", false),
            Err(Full::Node {
                node: "n1".into(),
                running: 2,
                cap: 2
            })
        );
        assert!(host.admit("n2", false).is_ok(), "the cap is per node");
        host.release("n1", a);
        assert_eq!(host.running("n1"), 1);
        let c = host.admit("n1", false).unwrap();
        assert_ne!(c, a, "a freed address is not given again at once");
        assert_ne!(c, b);
    }

    #[test]
    fn addresses_are_loopback_unique_and_skip_the_servers_and_broadcast_like_ones() {
        let mut host = Host::new(usize::MAX);
        let mut seen = BTreeSet::new();
        for _ in 0..600 {
            let ip = host.admit("n", false).unwrap();
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
            match host.admit("n", false) {
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
        assert_eq!(host.admit("n", false), Ok(Ipv4Addr::new(127, 0, 7, 7)));
    }

    #[test]
    fn drivers_leave_the_last_place_of_a_node_to_executors() {
        let mut host = Host::new(3);
        let d1 = host.admit("n", true).unwrap();
        host.admit("n", true).unwrap();
        assert_eq!(
            host.admit("n", true),
            Err(Full::Drivers {
                node: "n".into(),
                drivers: 2,
                cap: 3
            })
        );
        assert!(host.room("n", false).is_ok(), "an executor still fits");
        host.admit("n", false).unwrap();
        assert!(
            matches!(host.room("n", false), Err(Full::Node { running: 3, .. })),
            "the node is full"
        );
        host.release("n", d1);
        assert_eq!(
            host.room("n", true),
            Ok(()),
            "a driver ended: another may start"
        );
        let mut one = Host::new(1);
        assert!(one.admit("n", true).is_ok(), "a cap of one keeps no place");
    }

    #[test]
    fn a_host_may_start_anywhere_in_the_range() {
        let mut host = Host::starting_at(2, Ipv4Addr::new(127, 0, 42, 2));
        assert_eq!(host.admit("n", false), Ok(Ipv4Addr::new(127, 0, 42, 2)));
        let mut wide = Host::starting_at(2, Ipv4Addr::new(127, 9, 9, 9));
        assert_eq!(wide.admit("n", false), Ok(Ipv4Addr::new(127, 0, 255, 254)));
    }

    #[test]
    fn releasing_an_address_not_taken_changes_nothing() {
        let mut host = Host::new(1);
        let a = host.admit("n", false).unwrap();
        host.release("n", Ipv4Addr::new(127, 0, 9, 9));
        assert_eq!(host.running("n"), 1);
        host.release("n", a);
        host.release("n", a);
        assert_eq!(host.running("n"), 0);
    }
}
