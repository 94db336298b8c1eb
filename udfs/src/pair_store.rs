//! Per-group lists of `(time, value)` pairs for the pair aggregates
//! ([`crate::pairs`]: `theil_sen`, `mann_kendall`), kept in fixed-size
//! chunks drawn from one pool rather than in a `Vec` per group.
//!
//! Why: a block of a scene scan is a quarter of a million pixels with tens
//! of pairs each. A `Vec` per pixel grew by doubling (five reallocations and
//! copies to reach 46 pairs, and a capacity of 64 for them), and the
//! allocator's churn of a million small buffers per block showed in
//! profiles as page faults, page zeroing and memmove. Here a group's pairs
//! are a linked run of chunks of [`CHUNK_PAIRS`]; chunks come from segments
//! that never move, and the chunks of emitted groups are reused.

use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::EmitTo;

/// Pairs per chunk: with its length and link a chunk is 264 bytes; 46
/// pairs (a year of two Landsat satellites) take three.
const CHUNK_PAIRS: usize = 16;

/// Chunks per segment (a power of two: 1 MB segments).
const SEGMENT: usize = 4096;

/// No chunk.
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Chunk {
    pairs: [(f64, f64); CHUNK_PAIRS],
    len: u32,
    next: u32,
}

const EMPTY: Chunk = Chunk {
    pairs: [(0.0, 0.0); CHUNK_PAIRS],
    len: 0,
    next: NONE,
};

/// The pairs of groups `0..groups()`, each in arrival order.
#[derive(Debug, Default)]
pub(crate) struct PairStore {
    segments: Vec<Box<[Chunk]>>,
    /// Chunks handed out of `segments` so far (freed ones are in `free`).
    used: usize,
    free: Vec<u32>,
    /// Per group, its first and last chunk (`NONE` when it has no pair).
    heads: Vec<u32>,
    tails: Vec<u32>,
    /// Pairs held over all groups.
    held: usize,
}

impl PairStore {
    /// Make room for groups `0..groups` (never shrinks).
    pub(crate) fn resize(&mut self, groups: usize) {
        if groups > self.heads.len() {
            self.heads.resize(groups, NONE);
            self.tails.resize(groups, NONE);
        }
    }

    /// An error unless `more` pairs can be added: chunk numbers are 32-bit,
    /// and every chunk in use holds at least one pair.
    pub(crate) fn check_room(&self, more: usize, signature: &str) -> Result<()> {
        match self.held.checked_add(more) {
            Some(n) if n < NONE as usize => Ok(()),
            _ => Err(DataFusionError::Execution(format!(
                "{signature}: more than {} (time, value) pairs in one partition's groups; \
                 use more partitions (SET datafusion.execution.target_partitions) or smaller blocks",
                NONE - 1
            ))),
        }
    }

    /// Pairs held over all groups.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Append a pair to group `g` (below the last `resize`; the caller has
    /// checked the room with [`Self::check_room`]).
    #[inline(always)]
    pub(crate) fn push(&mut self, g: usize, pair: (f64, f64)) {
        let tail = self.tails[g];
        if tail != NONE {
            let c = self.chunk_mut(tail);
            let len = c.len as usize;
            if len < CHUNK_PAIRS {
                c.pairs[len] = pair;
                c.len += 1;
                self.held += 1;
                return;
            }
        }
        let new = self.alloc();
        let c = self.chunk_mut(new);
        c.pairs[0] = pair;
        c.len = 1;
        c.next = NONE;
        match tail {
            NONE => self.heads[g] = new,
            _ => self.chunk_mut(tail).next = new,
        }
        self.tails[g] = new;
        self.held += 1;
    }

    /// Remove the groups `emit_to` names (the first ones), calling `f` with
    /// each one's pairs in order (in a scratch buffer `f` may reorder).
    /// The remaining groups are renumbered from 0.
    pub(crate) fn drain(&mut self, emit_to: EmitTo, mut f: impl FnMut(&mut [(f64, f64)])) {
        let all = self.heads.len();
        let n = match emit_to {
            EmitTo::All => all,
            EmitTo::First(n) => n.min(all),
        };
        let mut scratch = Vec::new();
        for g in 0..n {
            scratch.clear();
            let mut c = self.heads[g];
            while c != NONE {
                let chunk = self.chunk(c);
                scratch.extend_from_slice(&chunk.pairs[..chunk.len as usize]);
                let next = chunk.next;
                if n < all {
                    self.free.push(c);
                }
                c = next;
            }
            self.held -= scratch.len();
            f(&mut scratch);
        }
        if n == all {
            *self = PairStore::default();
        } else {
            self.heads.drain(..n);
            self.tails.drain(..n);
        }
    }

    /// Bytes held (for `GroupsAccumulator::size`).
    pub(crate) fn size(&self) -> usize {
        self.segments.len() * SEGMENT * size_of::<Chunk>()
            + (self.heads.capacity() + self.tails.capacity() + self.free.capacity())
                * size_of::<u32>()
            + self.segments.capacity() * size_of::<Box<[Chunk]>>()
    }

    fn alloc(&mut self) -> u32 {
        if let Some(c) = self.free.pop() {
            return c;
        }
        if self.used == self.segments.len() * SEGMENT {
            self.segments.push(vec![EMPTY; SEGMENT].into_boxed_slice());
        }
        self.used += 1;
        // Below NONE: `check_room` keeps the pairs, and so the chunks, fewer.
        (self.used - 1) as u32
    }

    #[inline]
    fn chunk(&self, c: u32) -> &Chunk {
        let c = c as usize;
        &self.segments[c / SEGMENT][c % SEGMENT]
    }

    #[inline]
    fn chunk_mut(&mut self, c: u32) -> &mut Chunk {
        let c = c as usize;
        &mut self.segments[c / SEGMENT][c % SEGMENT]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group's pairs as the store gives them back.
    fn drained(store: &mut PairStore, emit_to: EmitTo) -> Vec<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        store.drain(emit_to, |p| out.push(p.to_vec()));
        out
    }

    #[test]
    fn groups_keep_their_pairs_in_order_across_chunks_and_reuse() {
        // Interleaved pushes (as scene after scene of a block), groups of
        // 0, 1, CHUNK_PAIRS, CHUNK_PAIRS + 1 and 46 pairs, against plain
        // vectors; then the first groups emitted and their chunks reused.
        let sizes = [0, 1, CHUNK_PAIRS, CHUNK_PAIRS + 1, 46, 3];
        let mut store = PairStore::default();
        let mut want: Vec<Vec<(f64, f64)>> = vec![Vec::new(); sizes.len()];
        store.resize(sizes.len());
        for k in 0..46 {
            for (g, &n) in sizes.iter().enumerate() {
                if k < n {
                    let p = (k as f64, (g * 100 + k) as f64);
                    store.push(g, p);
                    want[g].push(p);
                }
            }
        }
        assert_eq!(store.held(), sizes.iter().sum::<usize>());
        assert_eq!(drained(&mut store, EmitTo::First(2)), want[..2].to_vec());
        let used = store.used;
        // Groups renumbered: the old group 2 is now 0. Adding to it and to
        // a new group reuses freed chunks before taking new ones.
        store.resize(5);
        store.push(0, (-1.0, -1.0));
        want[2].push((-1.0, -1.0));
        store.push(4, (7.0, 7.0));
        assert_eq!(store.used, used + 1, "one chunk freed by group 1 reused");
        let mut rest = want[2..].to_vec();
        rest.push(vec![(7.0, 7.0)]);
        assert_eq!(drained(&mut store, EmitTo::All), rest);
        assert_eq!(store.held(), 0);
        assert_eq!(store.size(), 0);
    }

    #[test]
    fn too_many_pairs_is_an_error_naming_a_way_out() {
        let store = PairStore::default();
        assert!(store.check_room(1000, "f(value, time)").is_ok());
        let e = store
            .check_room(u32::MAX as usize, "f(value, time)")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f(value, time)") && e.contains("target_partitions"),
            "{e}"
        );
    }
}
