//! Reads taken over at the end of a scan, so that the partitions of a
//! scene-major scan end together.
//!
//! Each partition reads a fixed run of blocks, a few scenes at a time (a
//! [`Unit`]), and aggregates the units in that order. Its work is fixed
//! when the scan is planned (whole strips of blocks), but partitions'
//! work and speed differ: three strips on two cores give one partition
//! twice the work of the other, blocks differ in the scenes over them, and
//! a core may be slowed by other threads; meanwhile the core that finished
//! first has nothing to do. So a partition that has read
//! all its own units reads units of the others, just ahead of them, and
//! hands each result over; the partition takes it when it comes to that
//! unit, and its rows reach the aggregation in the same order as if it had
//! read the unit itself. The partition then only aggregates the units a
//! helper reads, and both cores work on its rest.
//!
//! A partition claims its units as it comes to them. A helper takes, of
//! the partition with the most units unclaimed, the second unclaimed one
//! (the first is the one the partition is about to read), or the only one;
//! and the helpers hold at most [`HELD`] results each not yet taken, so
//! they stay just ahead of the partition, holding about what a partition
//! reads ahead anyway. Helpers take units only of partitions still running: a
//! partition's stream that ends early (a `LIMIT` above) drops the results
//! read for it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::error::{DataFusionError, Result};
use tokio::sync::oneshot;

use super::read::{BlockData, ReadStats};
use crate::grid::Window;

/// Results read and not yet taken, per helper running, at most.
pub const HELD: usize = 2;

/// One read of a partition: some scenes (in time order) of one block.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The block's index among the scan's blocks, and its window.
    pub block: usize,
    pub window: Window,
    pub scenes: Arc<Vec<usize>>,
    /// This is the block's last unit.
    pub block_done: bool,
}

/// What a read gives: the block's data, its counters, and (with a scan
/// filter) which pixels of each scene passed it.
pub type ReadOutput = (BlockData, ReadStats, Option<Vec<BooleanBuffer>>);

/// A helper's read, on its way to the unit's partition.
pub type Delivery = oneshot::Receiver<Result<ReadOutput>>;

/// Who reads a partition's unit.
enum Claim {
    Open,
    Owner,
    /// A helper; the delivery until the partition takes it.
    Helper(Option<Delivery>),
}

struct Queue {
    units: Vec<Unit>,
    claims: Vec<Claim>,
    /// Units not yet claimed.
    open: usize,
    ended: bool,
}

/// The units of a scan execution's partitions in a process, and who reads
/// each.
#[derive(Default)]
pub struct ReadBoard {
    state: Mutex<Board>,
    /// Signalled when a partition takes a helper's result, or ends.
    taken: Condvar,
}

#[derive(Default)]
struct Board {
    queues: HashMap<usize, Queue>,
    /// Helpers' results not yet taken (read or being read).
    held: usize,
    /// Helpers running.
    helpers: usize,
    /// Per block, its units not yet read.
    unread: HashMap<usize, usize>,
}

impl Board {
    /// See [`ReadBoard::steal`].
    fn next_for(&mut self, helper: usize) -> Steal {
        let held = self.held;
        let Some(q) = self
            .queues
            .iter_mut()
            .filter(|(p, q)| **p != helper && !q.ended && q.open > 0)
            .max_by_key(|(p, q)| (q.open, std::cmp::Reverse(**p)))
            .map(|(_, q)| q)
        else {
            return Steal::Done;
        };
        // The open unit after the partition's next (which it is about to
        // read itself), or its last.
        let open: Vec<usize> = (q.claims.iter().enumerate())
            .filter(|(_, c)| matches!(c, Claim::Open))
            .map(|(i, _)| i)
            .take(2)
            .collect();
        let Some(&index) = open.last() else {
            return Steal::Done;
        };
        if held >= HELD * self.helpers.max(1) {
            return Steal::Wait;
        }
        let (tx, rx) = oneshot::channel();
        q.claims[index] = Claim::Helper(Some(rx));
        q.open -= 1;
        let unit = q.units[index].clone();
        self.held += 1;
        Steal::Unit(unit, tx)
    }
}

/// A partition's turn at one of its units.
pub enum Turn {
    /// Read it.
    Read,
    /// A helper read it (or is reading it): take the result.
    Take(Delivery),
}

/// A helper's next step.
enum Steal {
    Unit(Unit, oneshot::Sender<Result<ReadOutput>>),
    /// Wait until a partition takes a result: [`HELD`] are waiting.
    Wait,
    Done,
}

impl ReadBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        // Every change is made under one lock: a poisoned board is whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `partition` runs and will read `units`, in order; until the guard
    /// is dropped (its stream ends), helpers may read some for it.
    pub fn join(self: &Arc<Self>, partition: usize, units: Vec<Unit>) -> Joined {
        let mut b = self.lock();
        for u in &units {
            *b.unread.entry(u.block).or_default() += 1;
        }
        let claims = units.iter().map(|_| Claim::Open).collect();
        let open = units.len();
        b.queues.insert(
            partition,
            Queue {
                units,
                claims,
                open,
                ended: false,
            },
        );
        Joined {
            board: self.clone(),
            partition,
        }
    }

    /// `partition` comes to its unit `index`.
    pub fn claim(&self, partition: usize, index: usize) -> Turn {
        let mut b = self.lock();
        let Some(q) = b.queues.get_mut(&partition) else {
            return Turn::Read;
        };
        match q.claims.get_mut(index) {
            Some(c @ Claim::Open) => {
                *c = Claim::Owner;
                q.open -= 1;
                Turn::Read
            }
            Some(Claim::Helper(delivery)) => match delivery.take() {
                Some(d) => {
                    b.held -= 1;
                    drop(b);
                    self.taken.notify_all();
                    Turn::Take(d)
                }
                // Taken before: not reached, a partition comes to each of
                // its units once.
                None => Turn::Read,
            },
            // Claimed before (not reached, as above), or no such unit.
            _ => Turn::Read,
        }
    }

    /// A unit of `block` has been read: true when it was the block's last.
    pub fn read_done(&self, block: usize) -> bool {
        let mut b = self.lock();
        match b.unread.get_mut(&block) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                b.unread.remove(&block);
                true
            }
        }
    }

    /// The next unit for a helper (`helper`, a partition that has claimed
    /// all of its own): of the running partition with the most units open,
    /// the second open one (the first is the partition's next), or the
    /// only one. While [`HELD`] results wait to be taken, it waits.
    fn steal(&self, helper: usize) -> Option<(Unit, oneshot::Sender<Result<ReadOutput>>)> {
        let mut b = self.lock();
        loop {
            match b.next_for(helper) {
                Steal::Unit(unit, to) => return Some((unit, to)),
                Steal::Done => return None,
                Steal::Wait => {
                    b = match self.taken.wait(b) {
                        Ok(b) => b,
                        Err(e) => e.into_inner(),
                    }
                }
            }
        }
    }

    fn end(&self, partition: usize) {
        let mut b = self.lock();
        let Some(q) = b.queues.get_mut(&partition) else {
            return;
        };
        q.ended = true;
        let dropped = q
            .claims
            .iter_mut()
            .filter_map(|c| match c {
                Claim::Helper(d) => d.take(),
                _ => None,
            })
            .count();
        b.held -= dropped;
        drop(b);
        self.taken.notify_all();
    }
}

/// A partition's place on a [`ReadBoard`]; dropped when its stream ends.
pub struct Joined {
    board: Arc<ReadBoard>,
    partition: usize,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.board.end(self.partition);
    }
}

/// Read, as `helper`, units of the partitions still reading, until none
/// is left; each result goes to its partition. Blocks: runs on a thread of
/// its own, so that it starts at once and is not queued behind a runtime
/// worker's task that reads and aggregates without yielding.
pub fn help(board: &ReadBoard, helper: usize, read: impl Fn(Unit) -> Result<ReadOutput>) {
    board.lock().helpers += 1;
    while let Some((unit, to)) = board.steal(helper) {
        let _ = to.send(read(unit));
    }
    board.lock().helpers -= 1;
}

/// The result a helper read for a partition.
pub async fn take(delivery: Delivery, unit: &Unit) -> Result<ReadOutput> {
    delivery.await.map_err(|_| {
        DataFusionError::Execution(format!(
            "the read of block {} (scenes {:?}) taken over from its partition ended without a \
             result",
            unit.block, unit.scenes
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(block: usize, n: usize) -> Vec<Unit> {
        (0..n)
            .map(|i| Unit {
                block,
                window: Window {
                    row: 0,
                    col: 0,
                    rows: 1,
                    cols: 1,
                },
                scenes: Arc::new(vec![i]),
                block_done: i + 1 == n,
            })
            .collect()
    }

    fn output(scene: usize) -> Result<ReadOutput> {
        let stats = ReadStats {
            scenes_read: scene,
            ..ReadStats::default()
        };
        let data = BlockData {
            window: Window {
                row: 0,
                col: 0,
                rows: 1,
                cols: 1,
            },
            scenes: Vec::new(),
        };
        Ok((data, stats, None))
    }

    fn next(board: &ReadBoard, helper: usize) -> Steal {
        board.lock().next_for(helper)
    }

    fn stolen(s: Steal) -> usize {
        match s {
            Steal::Unit(u, _) => u.scenes[0],
            Steal::Wait => panic!("a helper waits"),
            Steal::Done => panic!("nothing to take"),
        }
    }

    /// A helper takes, of the partition with the most units open, the one
    /// after its next, at most `HELD` at once; the partition takes their
    /// results in its turn and reads the rest itself.
    #[test]
    fn helpers_read_just_ahead_of_the_partition_with_most_left() {
        let board = Arc::new(ReadBoard::default());
        let _done = board.join(0, units(0, 1));
        let _short = board.join(1, units(1, 2));
        let _long = board.join(2, units(2, 5));
        assert!(matches!(board.claim(0, 0), Turn::Read));
        assert!(matches!(board.claim(2, 0), Turn::Read));
        // Units 1 to 4 of partition 2 are open: 1 is its next.
        assert_eq!(stolen(next(&board, 0)), 2);
        assert_eq!(stolen(next(&board, 0)), 3);
        assert!(matches!(next(&board, 0), Steal::Wait));
        // Taking a result frees a place; partition 1, with two units open
        // against one, is helped next.
        assert!(matches!(board.claim(2, 1), Turn::Read));
        assert!(matches!(board.claim(2, 2), Turn::Take(_)));
        assert_eq!(stolen(next(&board, 0)), 1);
        assert!(matches!(board.claim(1, 0), Turn::Read));
        assert!(matches!(board.claim(1, 1), Turn::Take(_)));
        // A partition's only open unit is taken too.
        assert_eq!(stolen(next(&board, 0)), 4);
        assert!(matches!(next(&board, 0), Steal::Done));
        assert!(matches!(board.claim(2, 3), Turn::Take(_)));
        assert!(matches!(board.claim(2, 4), Turn::Take(_)));
        assert_eq!(board.lock().held, 0);
        // Partition 2 helps nobody: all units are claimed.
        assert!(matches!(next(&board, 2), Steal::Done));
    }

    /// Each helper running may hold `HELD` results.
    #[test]
    fn the_limit_grows_with_the_helpers() {
        let board = Arc::new(ReadBoard::default());
        let _joined = board.join(1, units(1, 9));
        board.lock().helpers = 2;
        for _ in 0..2 * HELD {
            assert!(matches!(next(&board, 0), Steal::Unit(..)));
        }
        assert!(matches!(next(&board, 0), Steal::Wait));
    }

    /// A partition that ends drops what was read for it, and is not
    /// helped any more.
    #[test]
    fn ended_partitions_are_not_helped() {
        let board = Arc::new(ReadBoard::default());
        let joined = board.join(1, units(1, 4));
        assert_eq!(stolen(next(&board, 0)), 1);
        assert_eq!(stolen(next(&board, 0)), 2);
        drop(joined);
        assert_eq!(board.lock().held, 0);
        assert!(matches!(next(&board, 0), Steal::Done));
    }

    #[test]
    fn a_block_is_read_when_all_its_units_are() {
        let board = Arc::new(ReadBoard::default());
        let mut two = units(3, 2);
        two.extend(units(4, 1));
        let _joined = board.join(0, two);
        assert!(!board.read_done(3));
        assert!(board.read_done(4));
        assert!(board.read_done(3));
    }

    /// `help` reads units just ahead of the partition, waiting while
    /// `HELD` results are not taken, and sends each to the partition, which
    /// gets every result in its own order.
    #[test]
    fn help_hands_results_over_in_the_partitions_order() {
        let board = Arc::new(ReadBoard::default());
        let _joined = board.join(1, units(1, 8));
        let helper = {
            let board = board.clone();
            std::thread::spawn(move || help(&board, 0, |u: Unit| output(u.scenes[0])))
        };
        let (mut got, mut taken) = (Vec::new(), 0);
        for (i, unit) in units(1, 8).iter().enumerate() {
            // Time for the helper to take units, were it not waiting.
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(board.lock().held <= HELD);
            let scene = match board.claim(1, i) {
                Turn::Read => unit.scenes[0],
                Turn::Take(d) => {
                    taken += 1;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(take(d, unit)).unwrap().1.scenes_read
                }
            };
            got.push(scene);
        }
        helper.join().unwrap();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        assert!(taken >= HELD, "{taken} results taken");
        assert_eq!(board.lock().held, 0);
    }
}
