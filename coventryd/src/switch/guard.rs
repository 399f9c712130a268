//! The auth guard: slows password guessing down (pure state; the time is passed in).
//!
//! Failed authentications are counted per source address (an IPv4 address, or an
//! IPv6 /64) and per claimed user name. Once a count reaches its threshold
//! (`[security] source_failures`, `extension_failures`), that source, or that
//! user name from addresses it is not known at, has to wait: `backoff` seconds,
//! doubling with every further failure up to `max_backoff`. While it waits, its
//! requests get a cheap refusal and no digest is checked. Counts are forgotten
//! `forget_after` seconds after their last failure.
//!
//! A phone is never locked out by failures elsewhere: a user name is *known* at
//! the exact address:port that holds one of its bindings or authenticated for it
//! within `forget_after`, and such a pair passes while it has itself failed fewer
//! than `source_failures` times in a row.
//!
//! Every table has a fixed capacity (least useful entries evicted first), so an
//! attacker cycling addresses or names cannot grow memory.

use super::bounded::{BoundedMap, Worth};
use crate::config::SecurityConfig;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Most source addresses tracked.
pub const MAX_SOURCES: usize = 4096;
/// Most claimed user names tracked.
pub const MAX_USERS: usize = 4096;
/// Most known (address:port, user) pairs tracked.
pub const MAX_KNOWN: usize = 4096;
/// Most known address:ports listed for one held source (a NAT's phones).
pub const MAX_KNOWN_PER_HELD: usize = 64;
/// Longest user name kept as a key; longer claims are cut (they match nothing).
pub const MAX_USER_CHARS: usize = 32;

/// The guard's rules, from `[security]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Failures from one source before it waits.
    pub source_failures: u32,
    /// Failures for one user name (from addresses it is not known at) before those wait.
    pub user_failures: u32,
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
            user_failures: s.extension_failures.max(1),
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

/// Failures of one source or one user name.
#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    last_ms: u64,
    until_ms: u64,
}

impl Failures {
    fn record(&mut self, now_ms: u64, threshold: u32, rules: &Rules) {
        if now_ms.saturating_sub(self.last_ms) >= rules.forget_ms {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last_ms = now_ms;
        let wait = rules.wait_ms(self.count, threshold);
        if wait > 0 {
            self.until_ms = now_ms.saturating_add(wait);
        }
    }

    fn wait_left(&self, now_ms: u64) -> u64 {
        self.until_ms.saturating_sub(now_ms)
    }
}

/// Worth of failure records: those still waiting most (the later they end, the
/// more), then by their last failure; none once forgotten.
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

/// What the guard knows about one (address:port, user name) pair.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    last_success_ms: Option<u64>,
    /// Failures since the last success.
    failures: u32,
    last_ms: u64,
    forget_ms: u64,
}

impl Worth for Pair {
    fn worth(&self, now_ms: u64) -> u64 {
        if now_ms.saturating_sub(self.last_ms) >= self.forget_ms {
            0
        } else {
            self.last_success_ms.unwrap_or(self.last_ms / 2).max(1)
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
    users: BoundedMap<String, Tracked>,
    known: BoundedMap<(SocketAddr, String), Pair>,
}

impl std::fmt::Debug for AuthGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGuard")
            .field("rules", &self.rules)
            .field("sources", &self.sources.len())
            .field("users", &self.users.len())
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
            users: BoundedMap::new(MAX_USERS),
            known: BoundedMap::new(MAX_KNOWN),
        }
    }

    /// Change the rules (reload); what has been recorded stays.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Whether `user` is known at `src`: `bound` (it has a binding from exactly
    /// that address:port) or authenticated from there lately, and the pair has not
    /// failed too often since.
    fn is_known(&self, now_ms: u64, src: SocketAddr, user: &str, bound: bool) -> bool {
        let pair = self.known.get(&(src, user_key(user)));
        let failures = pair.map_or(0, |p| p.failures);
        let recent = pair
            .and_then(|p| p.last_success_ms)
            .is_some_and(|t| now_ms.saturating_sub(t) < self.rules.forget_ms);
        (bound || recent) && failures < self.rules.source_failures
    }

    /// May a request from `src` claiming `user` be checked? `bound`: `user` has a
    /// binding whose source is exactly `src`.
    pub fn admit(&self, now_ms: u64, src: SocketAddr, user: &str, bound: bool) -> Admission {
        if self.is_known(now_ms, src, user, bound) {
            return Admission::Check;
        }
        let source = self
            .sources
            .get(&SourceKey::of(src.ip()))
            .map_or(0, |t| t.f.wait_left(now_ms));
        let claimed = self
            .users
            .get(&user_key(user))
            .map_or(0, |t| t.f.wait_left(now_ms));
        match source.max(claimed) {
            0 => Admission::Check,
            ms => Admission::Wait {
                retry_after_s: ms.div_ceil(1000).max(1),
            },
        }
    }

    /// Record a failed authentication from `src` for `user`.
    pub fn failed(&mut self, now_ms: u64, src: SocketAddr, user: &str, bound: bool) {
        let rules = self.rules;
        let forget_ms = rules.forget_ms;
        let make = || Tracked {
            f: Failures::default(),
            forget_ms,
        };
        let (t, _) = self.sources.entry(now_ms, SourceKey::of(src.ip()), make);
        t.forget_ms = forget_ms;
        t.f.record(now_ms, rules.source_failures, &rules);
        let (t, _) = self.users.entry(now_ms, user_key(user), make);
        t.forget_ms = forget_ms;
        t.f.record(now_ms, rules.user_failures, &rules);
        let key = (src, user_key(user));
        if bound || self.known.get(&key).is_some() {
            let (p, _) = self.known.entry(now_ms, key, Pair::default);
            p.failures = p.failures.saturating_add(1);
            p.last_ms = now_ms;
            p.forget_ms = forget_ms;
        }
    }

    /// Record a successful authentication from `src` as `user`: the pair is known.
    pub fn succeeded(&mut self, now_ms: u64, src: SocketAddr, user: &str) {
        let (p, _) = self
            .known
            .entry(now_ms, (src, user_key(user)), Pair::default);
        p.last_success_ms = Some(now_ms);
        p.failures = 0;
        p.last_ms = now_ms;
        p.forget_ms = self.rules.forget_ms;
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
        self.users.retain(|_, t| t.worth(now_ms) > 0);
        self.known.retain(|_, p| p.worth(now_ms) > 0);
    }

    /// Entries in the tables (sources, user names, known pairs).
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.sources.len(), self.users.len(), self.known.len())
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
            g.failed(now, guesser, "21", false);
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
            g.failed(now, s, "21", false);
            assert_eq!(g.admit(now, s, "21", false), Admission::Check);
            now += 100;
        }
        g.failed(now, s, "21", false);
        assert_eq!(
            g.admit(now, s, "21", false),
            Admission::Wait { retry_after_s: 10 }
        );
        // Any port, any user name from that address waits too.
        assert!(matches!(
            g.admit(now, a("127.0.0.2:7000"), "22", false),
            Admission::Wait { .. }
        ));
        // Another address does not.
        assert_eq!(
            g.admit(now, a("127.0.0.3:5060"), "22", false),
            Admission::Check
        );
        now += 10_000;
        assert_eq!(g.admit(now, s, "21", false), Admission::Check);
        g.failed(now, s, "21", false);
        assert_eq!(
            g.admit(now, s, "21", false),
            Admission::Wait { retry_after_s: 20 }
        );
        // An hour without failures: a fresh start.
        now += 3_600_000;
        g.failed(now, s, "21", false);
        assert_eq!(g.admit(now, s, "21", false), Admission::Check);
        g.expire(now + 3_600_000);
        assert_eq!(g.sizes(), (0, 0, 0));
    }

    #[test]
    fn the_phone_of_an_extension_under_attack_is_never_locked_out() {
        let mut g = AuthGuard::new(rules());
        let phone = a("127.0.0.1:5060");
        let mut now = 1_000_000;
        g.succeeded(now, phone, "21");
        // Attackers from many addresses, five failures each: 21 is slowed down...
        for i in 0..40u8 {
            let s = SocketAddr::from(([10, 0, 0, i], 5060));
            for _ in 0..5 {
                if g.admit(now, s, "21", false) == Admission::Check {
                    g.failed(now, s, "21", false);
                }
                now += 10;
            }
        }
        let fresh = a("10.9.9.9:5060");
        assert!(matches!(
            g.admit(now, fresh, "21", false),
            Admission::Wait { .. }
        ));
        assert_eq!(g.admit(now, fresh, "22", false), Admission::Check);
        // ...but not from where its phone registered or authenticated.
        assert_eq!(g.admit(now, phone, "21", false), Admission::Check);
        assert_eq!(
            g.admit(now, a("127.0.0.1:6000"), "21", true),
            Admission::Check
        );
        // A stranger on the phone's address but another port is not the phone.
        assert!(matches!(
            g.admit(now, a("127.0.0.1:6001"), "21", false),
            Admission::Wait { .. }
        ));
    }

    #[test]
    fn a_known_pair_that_keeps_failing_is_known_no_more() {
        let mut g = AuthGuard::new(rules());
        let phone = a("127.0.0.1:5060");
        let now = 1_000_000;
        for _ in 0..5 {
            assert_eq!(g.admit(now, phone, "21", true), Admission::Check);
            g.failed(now, phone, "21", true);
        }
        assert!(matches!(
            g.admit(now, phone, "21", true),
            Admission::Wait { .. }
        ));
        // Once the wait is over and it gets it right, it is known again.
        g.succeeded(now + 10_000, phone, "21");
        assert_eq!(g.admit(now + 10_000, phone, "21", true), Admission::Check);
    }

    #[test]
    fn tables_stay_bounded_under_cycling_sources_and_names() {
        let mut g = AuthGuard::new(rules());
        for i in 0..20_000u32 {
            let now = 1_000_000 + u64::from(i);
            let s = SocketAddr::from((i.to_be_bytes(), 5060));
            g.failed(now, s, &format!("user{i}"), true);
            g.succeeded(now, s, &format!("x{i}"));
        }
        let (s, u, k) = g.sizes();
        assert!(
            s <= MAX_SOURCES && u <= MAX_USERS && k <= MAX_KNOWN,
            "{:?}",
            g.sizes()
        );
    }
}
