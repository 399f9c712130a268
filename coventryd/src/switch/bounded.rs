//! A map of fixed capacity for state keyed by network input (source addresses,
//! claimed user names): when it is full, the least useful entries make room, so
//! an attacker cycling keys can never grow it.

use std::collections::HashMap;
use std::hash::Hash;

/// How useful an entry still is at a given time; the lowest go first.
pub trait Worth {
    /// Higher is more worth keeping; 0 means the entry carries no information any
    /// more and may go at any time.
    fn worth(&self, now_ms: u64) -> u64;
}

/// A `HashMap` that never holds more than `capacity` entries.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Worth> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The entry for `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry for `key`, made with `make` if absent; when the map is full, the
    /// least useful eighth of it goes first, and is returned (so that a caller
    /// can still report what it held).
    pub fn entry(
        &mut self,
        now_ms: u64,
        key: K,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Vec<(K, V)>) {
        let mut evicted = Vec::new();
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            evicted = self.evict(now_ms);
        }
        (self.map.entry(key).or_insert_with(make), evicted)
    }

    /// Remove the worthless entries, and if that frees nothing, the least useful
    /// eighth (at least one), in one pass: amortised constant work per insert.
    fn evict(&mut self, now_ms: u64) -> Vec<(K, V)> {
        let mut scored: Vec<(u64, K)> = self
            .map
            .iter()
            .map(|(k, v)| (v.worth(now_ms), k.clone()))
            .collect();
        let worthless = scored.iter().filter(|(w, _)| *w == 0).count();
        let n = worthless
            .max(self.capacity.div_ceil(8))
            .clamp(1, scored.len().max(1));
        if n < scored.len() {
            scored.select_nth_unstable_by_key(n - 1, |(w, _)| *w);
        }
        scored
            .into_iter()
            .take(n)
            .filter_map(|(_, k)| self.map.remove_entry(&k))
            .collect()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Keep only the entries for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(keep);
        if self.map.capacity() > 4 * self.map.len().max(16) {
            self.map.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BoundedMap, Worth};

    struct W(u64);
    impl Worth for W {
        fn worth(&self, _now: u64) -> u64 {
            self.0
        }
    }

    #[test]
    fn never_grows_past_its_capacity_and_keeps_the_worthy() {
        let mut m = BoundedMap::new(16);
        m.entry(0, 1_000_000u64, || W(1_000_000));
        for k in 0..10_000u64 {
            m.entry(0, k, || W(k % 100 + 1));
            assert!(m.len() <= 16);
        }
        assert!(
            m.get(&1_000_000).is_some(),
            "the most useful entry was evicted"
        );
    }

    #[test]
    fn worthless_entries_go_first_and_are_returned() {
        let mut m = BoundedMap::new(4);
        for k in 0..4u64 {
            m.entry(0, k, || W(if k == 2 { 0 } else { 5 }));
        }
        let (_, evicted) = m.entry(0, 9, || W(5));
        assert_eq!(evicted.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.len(), 4);
        let (_, evicted) = m.entry(0, 3, || W(5));
        assert!(evicted.is_empty(), "an existing key evicts nothing");
    }
}
