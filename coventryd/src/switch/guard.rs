//! The auth guard: slows password guessing down (pure state; the time is passed in).
//!
//! Failed authentications are counted per source (an IPv4 address, or an IPv6
//! /64) and per (source, user name) pair. Once a source reaches
//! `[security] source_failures`, it has to wait for every user name not known
//! there; once a pair reaches `extension_failures`, that source waits for that
//! user name even where it is known. A wait is `backoff` seconds, doubling with
//! every further failure up to `max_backoff`. While it waits, its requests get a
//! cheap refusal and no digest is checked. Counts are forgotten `forget_after`
//! seconds after their last failure.
//!
//! Guessing slows the guesser, not the owner: nothing counts per user name
//! alone, so failures from elsewhere never hold off a line's phones.
//! - A user name is *known at a host* (the source) when it has a binding from
//!   there or authenticated from there within `forget_after`: a phone that
//!   reboots onto a new port, or another line's phones behind the same NAT, pass
//!   while a device there fails for some other line.
//! - It is *known at an address:port* when it has a binding from exactly there or
//!   authenticated from exactly there lately: such a phone passes even when a
//!   stranger behind its NAT guesses its own line, while it has itself failed
//!   fewer than `source_failures` times in a row.
//!
//! An attacker spreading guesses over many addresses gets `source_failures`
//! checked guesses per address, then one per doubling wait.
//!
//! Every table has a fixed capacity (least useful entries evicted first), so an
//! attacker cycling addresses or names cannot grow memory.

use super::bounded::{BoundedMap, Worth};
use crate::config::SecurityConfig;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Most source addresses tracked.
pub const MAX_SOURCES: usize = 4096;
/// Most (source, user name) pairs tracked.
pub const MAX_HOST_PAIRS: usize = 4096;
/// Most known (address:port, user) pairs tracked.
pub const MAX_KNOWN: usize = 4096;
/// Most known address:ports listed for one held source (a NAT's phones).
pub const MAX_KNOWN_PER_HELD: usize = 64;
/// Longest user name kept as a key; longer claims are cut (they match nothing).
pub const MAX_USER_CHARS: usize = 32;

/// The guard's rules, from `[security]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Failures from one source before it waits (for user names not known there).
    pub source_failures: u32,
    /// Failures for one user name from one source before that pair waits.
    pub pair_failures: u32,
    /// First wait, ms.
    pub backoff_ms: u64,
    /// Longest wait, ms.
    pub max_backoff_ms: u64,
    /// Failures (and successes that make an address known) are forgotten this long
    /// after the last one, ms.
    pub forget_ms: u64,
}

impl Rules {
    /// The rules of a `[security]` section.
    pub fn of(s: &SecurityConfig) -> Rules {
        Rules {
            source_failures: s.source_failures.max(1),
            pair_failures: s.extension_failures.max(1),
            backoff_ms: u64::from(s.backoff) * 1000,
            max_backoff_ms: u64::from(s.max_backoff.max(s.backoff)) * 1000,
            forget_ms: u64::from(s.forget_after) * 1000,
        }
    }

    /// The wait after `count` failures against `threshold`: none below it, then
    /// `backoff` doubling per failure, capped.
    fn wait_ms(&self, count: u32, threshold: u32) -> u64 {
        if count < threshold {
            return 0;
        }
        let doublings = (count - threshold).min(40);
        self.backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }
}

/// What to do with a request that needs authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check its credentials (or challenge it).
    Check,
    /// Refuse it without checking anything; it may come back after this many seconds.
    Wait {
        /// Seconds left (at least 1).
        retry_after_s: u64,
    },
}

/// Where the claimed user name has a binding, seen from the request's source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bound {
    /// A binding whose source is exactly the request's address:port.
    pub exact: bool,
    /// A binding whose source is the request's host (its [`SourceKey`]).
    pub host: bool,
}

impl Bound {
    /// Not bound anywhere near the source.
    pub const NOWHERE: Bound = Bound {
        exact: false,
        host: false,
    };
    /// Bound at exactly the source (and so at its host).
    pub const EXACT: Bound = Bound {
        exact: true,
        host: true,
    };
}

/// Failures of one source or one pair.
#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    last_ms: u64,
    until_ms: u64,
}

impl Failures {
    fn record(&mut self, now_ms: u64, threshold: u32, rules: &Rules) {
        self.count = self.current(now_ms, rules.forget_ms);
        self.count = self.count.saturating_add(1);
        self.last_ms = now_ms;
        let wait = rules.wait_ms(self.count, threshold);
        if wait > 0 {
            self.until_ms = now_ms.saturating_add(wait);
        }
    }

    /// The count at `now_ms` (zero once forgotten).
    fn current(&self, now_ms: u64, forget_ms: u64) -> u32 {
        if now_ms.saturating_sub(self.last_ms) >= forget_ms {
            0
        } else {
            self.count
        }
    }

    fn wait_left(&self, now_ms: u64) -> u64 {
        self.until_ms.saturating_sub(now_ms)
    }
}

/// Failure records of a source: those still waiting most (the later they end,
/// the more), then by their last failure; none once forgotten.
struct Tracked {
    f: Failures,
    forget_ms: u64,
}

impl Worth for Tracked {
    fn worth(&self, now_ms: u64) -> u64 {
        if self.f.until_ms > now_ms {
            (1 << 62) + self.f.until_ms
        } else if now_ms.saturating_sub(self.f.last_ms) >= self.forget_ms {
            0
        } else {
            self.f.last_ms.max(1)
        }
    }
}

/// What the guard knows about a user name at one place (an address:port or a
/// host): its last success and its failures.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    last_success_ms: Option<u64>,
    f: Failures,
    forget_ms: u64,
}

impl Pair {
    fn recent_success(&self, now_ms: u64) -> bool {
        self.last_success_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < self.forget_ms)
    }

    fn last_ms(&self) -> u64 {
        self.f.last_ms.max(self.last_success_ms.unwrap_or(0))
    }
}

impl Worth for Pair {
    /// Pairs that made a place known first (a scanner's failures cannot evict a
    /// phone's standing), then those waiting, then the rest by their last use.
    fn worth(&self, now_ms: u64) -> u64 {
        if self.recent_success(now_ms) {
            (1 << 62) + self.last_success_ms.unwrap_or(0)
        } else if self.f.until_ms > now_ms {
            (1 << 61) + self.f.until_ms
        } else if now_ms.saturating_sub(self.last_ms()) >= self.forget_ms {
            0
        } else {
            self.last_ms().max(1)
        }
    }
}

/// The key of a source: its IPv4 address, or the /64 of an IPv6 one (a single
/// host commonly holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(_) => SourceKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    SourceKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// A source the guard holds back (see [`AuthGuard::held`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The source.
    pub source: SourceKey,
    /// When its wait ends, ms since the epoch.
    pub until_ms: u64,
    /// Address:ports there known for a user lately: not held back.
    pub known: Vec<SocketAddr>,
}

/// A claimed user name as a table key (cut to [`MAX_USER_CHARS`]).
fn user_key(user: &str) -> String {
    user.chars().take(MAX_USER_CHARS).collect()
}

/// The guard's state.
pub struct AuthGuard {
    rules: Rules,
    sources: BoundedMap<SourceKey, Tracked>,
    hosts: BoundedMap<(SourceKey, String), Pair>,
    known: BoundedMap<(SocketAddr, String), Pair>,
}

impl std::fmt::Debug for AuthGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGuard")
            .field("rules", &self.rules)
            .field("sources", &self.sources.len())
            .field("hosts", &self.hosts.len())
            .field("known", &self.known.len())
            .finish()
    }
}

impl AuthGuard {
    /// A guard with `rules` and nothing recorded.
    pub fn new(rules: Rules) -> AuthGuard {
        AuthGuard {
            rules,
            sources: BoundedMap::new(MAX_SOURCES),
            hosts: BoundedMap::new(MAX_HOST_PAIRS),
            known: BoundedMap::new(MAX_KNOWN),
        }
    }

    /// Change the rules (reload); what has been recorded stays.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Whether `user` is known at exactly `src`: `bound` there or authenticated
    /// from there lately, and it has not failed too often there since.
    fn is_known(&self, now_ms: u64, src: SocketAddr, user: &str, bound: bool) -> bool {
        let pair = self.known.get(&(src, user_key(user)));
        let failures = pair.map_or(0, |p| p.f.current(now_ms, self.rules.forget_ms));
        let recent = pair.is_some_and(|p| p.recent_success(now_ms));
        (bound || recent) && failures < self.rules.source_failures
    }

    /// May a request from `src` claiming `user` be checked?
    pub fn admit(&self, now_ms: u64, src: SocketAddr, user: &str, bound: Bound) -> Admission {
        if self.is_known(now_ms, src, user, bound.exact) {
            return Admission::Check;
        }
        let key = SourceKey::of(src.ip());
        let pair = self.hosts.get(&(key, user_key(user)));
        let pair_wait = pair.map_or(0, |p| p.f.wait_left(now_ms));
        let known_here = bound.host || pair.is_some_and(|p| p.recent_success(now_ms));
        let source_wait = if known_here {
            0
        } else {
            self.sources.get(&key).map_or(0, |t| t.f.wait_left(now_ms))
        };
        match source_wait.max(pair_wait) {
            0 => Admission::Check,
            ms => Admission::Wait {
                retry_after_s: ms.div_ceil(1000).max(1),
            },
        }
    }

    /// Record a failed authentication from `src` for `user`.
    pub fn failed(&mut self, now_ms: u64, src: SocketAddr, user: &str, bound: Bound) {
        let rules = self.rules;
        let forget_ms = rules.forget_ms;
        let key = SourceKey::of(src.ip());
        let (t, _) = self.sources.entry(now_ms, key, || Tracked {
            f: Failures::default(),
            forget_ms,
        });
        t.forget_ms = forget_ms;
        t.f.record(now_ms, rules.source_failures, &rules);
        let (p, _) = self
            .hosts
            .entry(now_ms, (key, user_key(user)), Pair::default);
        p.forget_ms = forget_ms;
        p.f.record(now_ms, rules.pair_failures, &rules);
        let exact = (src, user_key(user));
        if bound.exact || self.known.get(&exact).is_some() {
            let (p, _) = self.known.entry(now_ms, exact, Pair::default);
            p.forget_ms = forget_ms;
            p.f.record(now_ms, rules.source_failures, &rules);
        }
    }

    /// Record a successful authentication from `src` as `user`: the user name is
    /// known there (at the address:port and at its host). The host's failures for
    /// it stand: a stranger behind the phone's NAT gains nothing each time the
    /// phone itself authenticates.
    pub fn succeeded(&mut self, now_ms: u64, src: SocketAddr, user: &str) {
        let forget_ms = self.rules.forget_ms;
        let (p, _) = self
            .known
            .entry(now_ms, (src, user_key(user)), Pair::default);
        p.last_success_ms = Some(now_ms);
        p.f = Failures::default();
        p.forget_ms = forget_ms;
        let key = SourceKey::of(src.ip());
        let (p, _) = self
            .hosts
            .entry(now_ms, (key, user_key(user)), Pair::default);
        p.last_success_ms = Some(now_ms);
        p.forget_ms = forget_ms;
    }

    /// The sources that have to wait at `now_ms`, each with when its wait ends
    /// and the address:ports there that are known for some user (they still pass):
    /// the intake drops most of what these send before it is parsed.
    pub fn held(&self, now_ms: u64) -> Vec<Held> {
        let mut held: Vec<Held> = self
            .sources
            .iter()
            .filter(|(_, t)| t.f.wait_left(now_ms) > 0)
            .map(|(k, t)| Held {
                source: *k,
                until_ms: t.f.until_ms,
                known: Vec::new(),
            })
            .collect();
        if held.is_empty() {
            return held;
        }
        let at: std::collections::HashMap<SourceKey, usize> = held
            .iter()
            .enumerate()
            .map(|(i, h)| (h.source, i))
            .collect();
        for ((addr, user), _) in self.known.iter() {
            let Some(&i) = at.get(&SourceKey::of(addr.ip())) else {
                continue;
            };
            let h = &mut held[i];
            if h.known.len() < MAX_KNOWN_PER_HELD
                && self.is_known(now_ms, *addr, user, false)
                && !h.known.contains(addr)
            {
                h.known.push(*addr);
            }
        }
        held
    }

    /// Drop what has been forgotten (call now and then: the tables stay bounded
    /// either way, this returns their memory after an attack).
    pub fn expire(&mut self, now_ms: u64) {
        self.sources.retain(|_, t| t.worth(now_ms) > 0);
        self.hosts.retain(|_, p| p.worth(now_ms) > 0);
        self.known.retain(|_, p| p.worth(now_ms) > 0);
    }

    /// Entries in the tables (sources, (source, user) pairs, known address:ports).
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.sources.len(), self.hosts.len(), self.known.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::of(&SecurityConfig::default())
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let r = rules();
        assert_eq!(r.wait_ms(4, 5), 0);
        assert_eq!(r.wait_ms(5, 5), 10_000);
        assert_eq!(r.wait_ms(6, 5), 20_000);
        assert_eq!(r.wait_ms(9, 5), 160_000);
        assert_eq!(r.wait_ms(11, 5), 600_000);
        assert_eq!(r.wait_ms(u32::MAX, 5), 600_000);
    }

    #[test]
    fn held_sources_name_their_known_phones() {
        let mut g = AuthGuard::new(rules());
        let (phone, guesser) = (a("127.0.0.2:5060"), a("127.0.0.2:40000"));
        let now = 1_000_000;
        g.succeeded(now, phone, "21");
        assert!(g.held(now).is_empty());
        for _ in 0..5 {
            g.failed(now, guesser, "21", Bound::NOWHERE);
        }
        let held = g.held(now);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].source, SourceKey::of(guesser.ip()));
        assert_eq!(held[0].until_ms, now + 10_000);
        assert_eq!(held[0].known, vec![phone]);
        assert!(g.held(now + 10_000).is_empty(), "the wait is over");
    }

    #[test]
    fn ipv6_sources_count_by_slash_64() {
        let k = |s: &str| SourceKey::of(s.parse().expect("ip"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:10.0.0.1"), k("10.0.0.1"));
        assert_ne!(k("10.0.0.1"), k("10.0.0.2"));
    }

    #[test]
    fn a_source_waits_after_its_failures_and_is_forgiven_later() {
        let mut g = AuthGuard::new(rules());
        let s = a("127.0.0.2:5060");
        let mut now = 1_000_000;
        for _ in 0..4 {
            g.failed(now, s, "21", Bound::NOWHERE);
            assert_eq!(g.admit(now, s, "21", Bound::NOWHERE), Admission::Check);
            now += 100;
        }
        g.failed(now, s, "21", Bound::NOWHERE);
        assert_eq!(
            g.admit(now, s, "21", Bound::NOWHERE),
            Admission::Wait { retry_after_s: 10 }
        );
        // Any port, any user name from that address waits too.
        assert!(matches!(
            g.admit(now, a("127.0.0.2:7000"), "22", Bound::NOWHERE),
            Admission::Wait { .. }
        ));
        // Another address does not.
        assert_eq!(
            g.admit(now, a("127.0.0.3:5060"), "22", Bound::NOWHERE),
            Admission::Check
        );
        now += 10_000;
        assert_eq!(g.admit(now, s, "21", Bound::NOWHERE), Admission::Check);
        g.failed(now, s, "21", Bound::NOWHERE);
        assert_eq!(
            g.admit(now, s, "21", Bound::NOWHERE),
            Admission::Wait { retry_after_s: 20 }
        );
        // An hour without failures: a fresh start.
        now += 3_600_000;
        g.failed(now, s, "21", Bound::NOWHERE);
        assert_eq!(g.admit(now, s, "21", Bound::NOWHERE), Admission::Check);
        g.expire(now + 3_600_000);
        assert_eq!(g.sizes(), (0, 0, 0));
    }

    #[test]
    fn guesses_from_elsewhere_never_hold_off_the_owner() {
        let mut g = AuthGuard::new(rules());
        let phone = a("127.0.0.1:5060");
        let mut now = 1_000_000;
        g.succeeded(now, phone, "21");
        // Attackers from many addresses, ten failures each (each is slowed)...
        for i in 0..40u8 {
            let s = SocketAddr::from(([10, 0, 0, i], 5060));
            for _ in 0..10 {
                if g.admit(now, s, "21", Bound::NOWHERE) == Admission::Check {
                    g.failed(now, s, "21", Bound::NOWHERE);
                }
                now += 10;
            }
            assert!(matches!(
                g.admit(now, s, "21", Bound::NOWHERE),
                Admission::Wait { .. }
            ));
        }
        // ...but 21 is not locked out: its phone, the phone back on a new port,
        // a second set at a new address all pass.
        assert_eq!(g.admit(now, phone, "21", Bound::NOWHERE), Admission::Check);
        let new_port = a("127.0.0.1:6000");
        assert_eq!(
            g.admit(now, new_port, "21", Bound::NOWHERE),
            Admission::Check
        );
        let second_set = a("10.9.9.9:5060");
        assert_eq!(
            g.admit(now, second_set, "21", Bound::NOWHERE),
            Admission::Check
        );
    }

    #[test]
    fn one_device_behind_a_nat_does_not_stop_the_other_lines_there() {
        let mut g = AuthGuard::new(rules());
        let nat = |port: u16| SocketAddr::from(([192, 0, 2, 1], port));
        let now = 1_000_000;
        g.succeeded(now, nat(5060), "22");
        g.succeeded(now, nat(5062), "21");
        // A device behind the NAT fails for 40 until the address waits.
        for _ in 0..5 {
            g.failed(now, nat(7000), "40", Bound::NOWHERE);
        }
        assert!(matches!(
            g.admit(now, nat(7000), "40", Bound::NOWHERE),
            Admission::Wait { .. }
        ));
        // 22's phone, and 22's phone rebooted onto a new port, pass; so does 21
        // from a port its binding names.
        assert_eq!(
            g.admit(now, nat(5060), "22", Bound::NOWHERE),
            Admission::Check
        );
        assert_eq!(
            g.admit(now, nat(9000), "22", Bound::NOWHERE),
            Admission::Check
        );
        let bound_host = Bound {
            exact: false,
            host: true,
        };
        assert_eq!(g.admit(now, nat(9002), "21", bound_host), Admission::Check);
        // A line never seen behind that address waits with it.
        assert!(matches!(
            g.admit(now, nat(9004), "23", Bound::NOWHERE),
            Admission::Wait { .. }
        ));
    }

    #[test]
    fn a_stranger_behind_the_phones_nat_cannot_burn_the_phone() {
        let mut g = AuthGuard::new(rules());
        let phone = a("192.0.2.1:5060");
        let stranger = a("192.0.2.1:40000");
        let mut now = 1_000_000;
        g.succeeded(now, phone, "21");
        // The host is known for 21, so the stranger gets as far as the pair's
        // threshold (10), then waits for 21 at that host.
        let mut checked = 0;
        for _ in 0..30 {
            if g.admit(now, stranger, "21", Bound::NOWHERE) == Admission::Check {
                g.failed(now, stranger, "21", Bound::NOWHERE);
                checked += 1;
            }
            now += 10;
        }
        assert_eq!(checked, 10);
        // The phone at its own address:port is not held, its refreshes pass...
        assert_eq!(g.admit(now, phone, "21", Bound::EXACT), Admission::Check);
        g.succeeded(now, phone, "21");
        // ...and its successes give the stranger no fresh guesses.
        assert!(matches!(
            g.admit(now, stranger, "21", Bound::NOWHERE),
            Admission::Wait { .. }
        ));
    }

    #[test]
    fn a_known_pair_that_keeps_failing_is_known_no_more() {
        let mut g = AuthGuard::new(rules());
        let phone = a("127.0.0.1:5060");
        let now = 1_000_000;
        // A phone whose password changed: bound there, it is checked until the
        // (source, user) pair reaches its threshold.
        for _ in 0..10 {
            assert_eq!(g.admit(now, phone, "21", Bound::EXACT), Admission::Check);
            g.failed(now, phone, "21", Bound::EXACT);
        }
        assert!(matches!(
            g.admit(now, phone, "21", Bound::EXACT),
            Admission::Wait { .. }
        ));
        // Once the wait is over and it gets it right, it is known again.
        g.succeeded(now + 10_000, phone, "21");
        assert_eq!(
            g.admit(now + 10_000, phone, "21", Bound::EXACT),
            Admission::Check
        );
    }

    #[test]
    fn tables_stay_bounded_under_cycling_sources_and_names() {
        let mut g = AuthGuard::new(rules());
        for i in 0..20_000u32 {
            let now = 1_000_000 + u64::from(i);
            let s = SocketAddr::from((i.to_be_bytes(), 5060));
            g.failed(now, s, &format!("user{i}"), Bound::EXACT);
            g.succeeded(now, s, &format!("x{i}"));
        }
        let (s, u, k) = g.sizes();
        assert!(
            s <= MAX_SOURCES && u <= MAX_HOST_PAIRS && k <= MAX_KNOWN,
            "{:?}",
            g.sizes()
        );
    }
}
