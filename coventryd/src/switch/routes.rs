//! Which local address the switch names in what it sends to a destination when
//! it listens on every address (`0.0.0.0`): asked of the shell's lookup (the
//! kernel's routing table) once per destination and kept [`ROUTE_TTL_MS`], so
//! that forwarding a request costs a hash look-up, not a system call.
//!
//! Pure state: the lookup is given by the shell; the time is the core's.

use std::collections::HashMap;
use std::net::IpAddr;

/// How long a destination's local address is kept before it is asked again
/// (an interface that came or went is noticed within this).
pub const ROUTE_TTL_MS: u64 = 30_000;
/// Most destinations kept; past it the oldest half is forgotten.
pub const MAX_ROUTES: usize = 1024;

/// The shell's answer to "which local address reaches this one?" (`None`: no
/// route known; the switch then names its listening address).
pub type RouteLookup = Box<dyn Fn(IpAddr) -> Option<IpAddr> + Send>;

/// Local addresses by destination, with when each was asked.
pub struct RouteCache {
    lookup: RouteLookup,
    entries: HashMap<IpAddr, (Option<IpAddr>, u64)>,
    now_ms: u64,
    lookups: u64,
}

impl std::fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCache")
            .field("entries", &self.entries.len())
            .field("lookups", &self.lookups)
            .finish()
    }
}

impl Default for RouteCache {
    /// A cache whose lookup knows no route (the core's tests; the shell gives
    /// the kernel's).
    fn default() -> Self {
        RouteCache::new(Box::new(|_| None))
    }
}

impl RouteCache {
    /// A cache asking `lookup`.
    pub fn new(lookup: RouteLookup) -> RouteCache {
        RouteCache {
            lookup,
            entries: HashMap::new(),
            now_ms: 0,
            lookups: 0,
        }
    }

    /// The local address that reaches `dest`, from the cache or the lookup.
    pub fn local_for(&mut self, dest: IpAddr) -> Option<IpAddr> {
        if let Some((ip, _)) = self.entries.get(&dest) {
            return *ip;
        }
        if self.entries.len() >= MAX_ROUTES {
            let mut ages: Vec<u64> = self.entries.values().map(|(_, t)| *t).collect();
            let (_, median, _) = ages.select_nth_unstable(MAX_ROUTES / 2);
            let cut = *median;
            self.entries.retain(|_, (_, t)| *t > cut);
        }
        self.lookups += 1;
        let ip = (self.lookup)(dest);
        self.entries.insert(dest, (ip, self.now_ms));
        ip
    }

    /// The clock moved: forget what was asked [`ROUTE_TTL_MS`] ago.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.entries
            .retain(|_, (_, t)| now_ms.saturating_sub(*t) < ROUTE_TTL_MS);
    }

    /// Lookups made so far (each a system call in the shell's lookup).
    pub fn lookups(&self) -> u64 {
        self.lookups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn counting() -> (RouteCache, Arc<AtomicU64>) {
        let asked = Arc::new(AtomicU64::new(0));
        let a = asked.clone();
        let cache = RouteCache::new(Box::new(move |d| {
            a.fetch_add(1, Ordering::Relaxed);
            Some(match d {
                IpAddr::V4(v) => IpAddr::from([v.octets()[0], 0, 0, 1]),
                v6 => v6,
            })
        }));
        (cache, asked)
    }

    #[test]
    fn asks_once_per_destination_until_it_is_stale() {
        let (mut c, asked) = counting();
        let d: IpAddr = "10.1.2.3".parse().expect("ip");
        c.tick(1_000);
        for _ in 0..100 {
            assert_eq!(c.local_for(d), Some("10.0.0.1".parse().expect("ip")));
        }
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        c.tick(1_000 + ROUTE_TTL_MS - 1);
        c.local_for(d);
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        c.tick(1_000 + ROUTE_TTL_MS);
        c.local_for(d);
        assert_eq!(asked.load(Ordering::Relaxed), 2, "asked again once stale");
    }

    #[test]
    fn stays_bounded() {
        let (mut c, _) = counting();
        for n in 0..(3 * MAX_ROUTES as u32) {
            c.tick(u64::from(n));
            c.local_for(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)));
            assert!(c.entries.len() <= MAX_ROUTES);
        }
    }
}
