//! State that the partitions of one execution of a scan share in a process:
//! the tile carry ([`super::carry`]) and the board of reads
//! ([`super::steal`]). It is made when the first partition is executed
//! and dropped when every partition's stream has ended, so the next
//! execution of the plan starts afresh. It is not dropped before: with
//! more partitions than threads, a partition may start only after others
//! have finished, and must still find what they left for it (a carry
//! dropped early made it decode its cut tiles again). A partition never
//! executed keeps it until the plan is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The shared state of a scan's current execution, if one is running.
pub struct PerExecution<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Default for PerExecution<T> {
    fn default() -> Self {
        PerExecution {
            slot: Arc::new(Mutex::new(Slot {
                value: None,
                ended: HashSet::new(),
            })),
        }
    }
}

struct Slot<T> {
    value: Option<Arc<T>>,
    /// Partitions whose streams have ended since the value was made.
    ended: HashSet<usize>,
}

impl<T> PerExecution<T> {
    /// The state for `partition` of `partitions` (made by `make` if no
    /// execution is running), and a guard to hold until that partition's
    /// stream ends.
    pub fn take(
        &self,
        partition: usize,
        partitions: usize,
        make: impl FnOnce() -> T,
    ) -> (Arc<T>, ExecutionUse<T>) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let value = slot.value.get_or_insert_with(|| Arc::new(make())).clone();
        let guard = ExecutionUse {
            slot: self.slot.clone(),
            partition,
            partitions,
        };
        (value, guard)
    }
}

impl<T> std::fmt::Debug for PerExecution<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerExecution").finish_non_exhaustive()
    }
}

/// A partition's use of a [`PerExecution`]: the state is dropped when
/// every partition's guard has been.
pub struct ExecutionUse<T> {
    slot: Arc<Mutex<Slot<T>>>,
    partition: usize,
    partitions: usize,
}

impl<T> Drop for ExecutionUse<T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.ended.insert(self.partition);
        if slot.ended.len() >= self.partitions {
            slot.value = None;
            slot.ended.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition executed after the others have ended (more partitions
    /// than threads) gets the state they left; once every partition has
    /// ended, the next execution gets a new one.
    #[test]
    fn the_state_outlives_partitions_until_all_have_ended() {
        let shared = PerExecution::<Mutex<Vec<u8>>>::default();
        let (first, used) = shared.take(0, 2, Mutex::default);
        first.lock().unwrap().push(7);
        let kept = Arc::downgrade(&first);
        drop((first, used));
        let (later, used) = shared.take(1, 2, || panic!("made again"));
        assert!(kept.upgrade().is_some_and(|c| Arc::ptr_eq(&c, &later)));
        assert_eq!(*later.lock().unwrap(), vec![7]);
        drop((later, used));
        assert!(kept.upgrade().is_none());
        let (next, _used) = shared.take(0, 2, Mutex::default);
        assert!(next.lock().unwrap().is_empty());
    }
}
