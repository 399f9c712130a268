//! The hooks' waiting room, pure: a bounded queue in front of a bounded number of
//! running hooks. Nothing here waits or spawns; the runner asks what to start.

use std::collections::VecDeque;

/// Jobs waiting for a free slot, and how many run.
#[derive(Debug)]
pub struct Queue<T> {
    waiting: VecDeque<T>,
    capacity: usize,
    max_running: usize,
    running: usize,
    /// Jobs refused because the queue was full, since start.
    pub overflowed: u64,
}

impl<T> Queue<T> {
    /// At most `max_running` at once (at least 1), `capacity` waiting.
    pub fn new(max_running: usize, capacity: usize) -> Queue<T> {
        Queue {
            waiting: VecDeque::new(),
            capacity,
            max_running: max_running.max(1),
            running: 0,
            overflowed: 0,
        }
    }

    /// Queue `job`; false (and counted) when the queue is full: the job is dropped,
    /// memory does not grow.
    pub fn push(&mut self, job: T) -> bool {
        if self.waiting.len() >= self.capacity {
            self.overflowed += 1;
            return false;
        }
        self.waiting.push_back(job);
        true
    }

    /// The next job to start now, if a slot is free (it counts as running).
    pub fn start_next(&mut self) -> Option<T> {
        if self.running >= self.max_running {
            return None;
        }
        let job = self.waiting.pop_front()?;
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
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn bounded_both_ways() {
        let mut q = Queue::new(2, 3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!((q.waiting(), q.overflowed), (3, 2));
        assert_eq!(q.start_next(), Some(0));
        assert_eq!(q.start_next(), Some(1));
        assert_eq!(q.start_next(), None, "two at most");
        q.done();
        assert_eq!(q.start_next(), Some(2));
        q.done();
        q.done();
        assert_eq!(q.running(), 0);
        assert!(q.push(9));
        assert_eq!(q.start_next(), Some(9));
    }
}
