//! The hooks' waiting room, pure: a bounded queue in front of a bounded number of
//! running hooks, fair between the parties that cause them. Each party (an
//! extension running chat services, or the switch itself for `register`,
//! `release` and `call` hooks) waits behind its own jobs only: jobs start one
//! per waiting party in turn, and no party may hold more than a quarter of the
//! room, so one phone sending a burst of `/msg` texts cannot push out the others'
//! hooks. Nothing here waits or spawns; the runner asks what to start.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Jobs waiting for a free slot, by party, and how many run.
#[derive(Debug)]
pub struct Queue<K, T> {
    waiting: HashMap<K, VecDeque<T>>,
    /// Parties with jobs waiting, in serving order (each once).
    turn: VecDeque<K>,
    queued: usize,
    capacity: usize,
    max_running: usize,
    running: usize,
    /// Jobs refused because the queue (or their party's share of it) was full,
    /// since start.
    pub overflowed: u64,
}

impl<K: Eq + Hash + Clone, T> Queue<K, T> {
    /// At most `max_running` at once (at least 1), `capacity` waiting.
    pub fn new(max_running: usize, capacity: usize) -> Queue<K, T> {
        Queue {
            waiting: HashMap::new(),
            turn: VecDeque::new(),
            queued: 0,
            capacity,
            max_running: max_running.max(1),
            running: 0,
            overflowed: 0,
        }
    }

    /// Most jobs one party may have waiting: a quarter of the room, at least one.
    pub fn share(&self) -> usize {
        (self.capacity / 4).max(1).min(self.capacity)
    }

    /// Queue `job` for `party`; false (and counted) when the queue or the party's
    /// share of it is full: the job is dropped, memory does not grow.
    pub fn push(&mut self, party: K, job: T) -> bool {
        let share = self.share();
        let held = self.waiting.get(&party).map_or(0, VecDeque::len);
        if self.queued >= self.capacity || held >= share {
            self.overflowed += 1;
            return false;
        }
        let q = self.waiting.entry(party.clone()).or_default();
        if q.is_empty() {
            self.turn.push_back(party);
        }
        q.push_back(job);
        self.queued += 1;
        true
    }

    /// The next job to start now, if a slot is free (it counts as running): the
    /// oldest of the party whose turn it is.
    pub fn start_next(&mut self) -> Option<T> {
        if self.running >= self.max_running {
            return None;
        }
        let party = self.turn.pop_front()?;
        let q = self.waiting.get_mut(&party)?;
        let job = q.pop_front()?;
        if q.is_empty() {
            self.waiting.remove(&party);
        } else {
            self.turn.push_back(party);
        }
        self.queued -= 1;
        self.running += 1;
        Some(job)
    }

    /// A running job ended.
    pub fn done(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Jobs waiting now.
    pub fn waiting(&self) -> usize {
        self.queued
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn bounded_both_ways() {
        let mut q: Queue<u8, i32> = Queue::new(2, 12);
        for i in 0..5 {
            q.push(1, i);
        }
        assert_eq!((q.waiting(), q.overflowed), (3, 2), "a party's share is 3");
        assert_eq!(q.start_next(), Some(0));
        assert_eq!(q.start_next(), Some(1));
        assert_eq!(q.start_next(), None, "two at most");
        q.done();
        assert_eq!(q.start_next(), Some(2));
        q.done();
        q.done();
        assert_eq!(q.running(), 0);
        assert!(q.push(1, 9));
        assert_eq!(q.start_next(), Some(9));
    }

    #[test]
    fn one_party_waits_behind_its_own_jobs_only() {
        let mut q: Queue<Option<u16>, &str> = Queue::new(1, 256);
        // 21 sends a burst of /msg texts: it fills its own share, no more.
        let queued = (0..300).filter(|_| q.push(Some(21), "21's chat")).count();
        assert_eq!(queued, 64);
        // The switch's own hooks and another phone's chat still get in, and
        // run next, not after 21's burst.
        assert!(q.push(None, "register"));
        assert!(q.push(Some(22), "22's chat"));
        let order: Vec<&str> = (0..3)
            .filter_map(|_| {
                let j = q.start_next();
                q.done();
                j
            })
            .collect();
        assert_eq!(order, vec!["21's chat", "register", "22's chat"]);
    }

    #[test]
    fn the_whole_room_stays_bounded() {
        let mut q: Queue<u16, u16> = Queue::new(1, 8);
        let queued = (0..100u16).filter(|n| q.push(*n, *n)).count();
        assert_eq!(queued, 8);
        assert_eq!(q.waiting(), 8);
        assert_eq!(q.overflowed, 92);
    }
}
