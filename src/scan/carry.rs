//! Decoded tile parts passed between the block reads of a scan, so that no
//! file tile is decoded twice.
//!
//! Scenes of an archive rarely share a tile grid: footprints shift by a few
//! pixels from date to date, so block edges (one grid for all scenes) cut
//! through most files' tiles, and each block touching a tile would decode
//! all of it again (GDAL decodes whole tiles, and a file is closed after
//! each read). On a 4096 x 4096 archive shifted by up to 4 pixels, that is
//! two to three decodes per tile. Instead, the read that decodes a cut tile
//! keeps, for every other block the tile reaches into (usually a strip a
//! few pixels wide), that block's part of it; the other block's read
//! copies its parts in and decodes only the tiles it has no part of.
//!
//! One carry serves all partitions of a scan's execution in a process
//! ([`super::shared`]), so the blocks on either side of a partition
//! boundary, read at the same time by two threads, also share their cut
//! tiles.
//! Each cut tile has an owner, the
//! block holding most of it: a read first decodes the tiles it owns (and
//! those no other block covers), then, for each tile it does not own whose
//! part it has not been given, waits while the owner is decoding the tiles
//! it owns in the same file band (which it does first, without waiting),
//! and decodes the tile itself if no part came. A tile a read decodes
//! that way is claimed while it does: another read needing it (its owner
//! too, when it comes later) waits for that decode's parts instead of
//! decoding it again. So each block decodes about its share, and a wait
//! never waits on another wait (a read holds claims only while decoding).
//!
//! Parts are dropped when used, or when their block has read the file band
//! or has finished; they are kept for a block of another partition only if
//! it is the block that partition reads now or next (else they would be
//! held for most of the scan), and never beyond [`CARRY_BYTES`] (past
//! that, tiles are decoded again, as without a carry). Which read decodes
//! a tile depends on timing; the pixels each block gets do not.
//!
//! A carry [`TileCarry::without_waits`] never waits: a read takes the parts
//! already kept for it and decodes the rest itself. Scans of object stores
//! use it: their reads decode on the runtime's workers once their tiles
//! have arrived, and a worker blocked waiting for a read whose tiles are
//! still on their way would stall.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::archive::Band;
use crate::error::{Result, SceneError};
use crate::grid::Window;
use crate::raster::SampleType;
use crate::tiff::BandRead;

/// The most a scan's carry holds.
pub const CARRY_BYTES: usize = 64 << 20;

/// The longest a read waits for another read's parts (a safety bound: the
/// read waited for decodes the tiles it owns without waiting).
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// A file band (path, band index) read by one block (its index).
type Key = (String, usize, usize);

/// A file tile (tile column, tile row) and the block that owns it, if any
/// block of the scan covers it.
type Owned = ((usize, usize), Option<usize>);

/// A tile of a file band (path, band index, tile).
type TileKey = (String, usize, (usize, usize));

/// The carried tile parts of a scan's reads.
pub struct TileCarry {
    /// The scan's blocks, by index.
    blocks: Vec<Window>,
    /// The partition (of those this process runs) reading each block.
    partition_of: Vec<Option<usize>>,
    store: Mutex<Store>,
    /// Signalled when parts are kept or a read ends.
    changed: Condvar,
    /// Reads wait for other reads' decodes (else they decode themselves).
    waits: bool,
}

#[derive(Default)]
struct Store {
    /// Parts kept for a block's read of a file band.
    parts: HashMap<Key, Vec<Part>>,
    bytes: usize,
    /// File bands being read, and read, by block.
    reading: HashSet<Key>,
    read: HashSet<Key>,
    /// Reads (of `reading`) that have decoded the tiles they own: every
    /// part they will give is kept by now.
    owned_done: HashSet<Key>,
    /// Tiles a read is decoding for want of its owner's part (claimed in
    /// [`TileCarry::wait`]): other reads wait for their parts, not decode
    /// them too.
    decoding: HashSet<TileKey>,
    /// Blocks whose reads are all done.
    finished: HashSet<usize>,
    /// Per partition, the last block a read has begun in (its first before).
    frontier: Vec<usize>,
}

impl Store {
    fn remove_parts(&mut self, key: &Key) -> Vec<Part> {
        let parts = self.parts.remove(key).unwrap_or_default();
        self.bytes -= parts.iter().map(|p| p.data.len()).sum::<usize>();
        parts
    }
}

/// One tile's pixels inside one block, decoded (row-major samples).
struct Part {
    /// The tile's index in its file (tile column, tile row).
    tile: (usize, usize),
    /// Grid pixels held.
    rect: Window,
    data: Vec<u8>,
}

/// A block's read of a file band, from [`TileCarry::begin`]; ends when dropped.
struct Reading<'a> {
    carry: &'a TileCarry,
    key: Key,
    /// Parts kept for this read before it began.
    parts: Vec<Part>,
    /// Tiles of other owners this read has claimed to decode.
    claims: Vec<(usize, usize)>,
}

impl Reading<'_> {
    fn tile_key(&self, tile: (usize, usize)) -> TileKey {
        (self.key.0.clone(), self.key.1, tile)
    }

    /// Give up the read's claims.
    fn unclaim(&mut self, s: &mut Store) {
        for t in std::mem::take(&mut self.claims) {
            s.decoding.remove(&self.tile_key(t));
        }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut s = self.carry.lock();
        s.reading.remove(&self.key);
        s.owned_done.remove(&self.key);
        s.remove_parts(&self.key);
        self.unclaim(&mut s);
        s.read.insert(self.key.clone());
        drop(s);
        self.carry.changed.notify_all();
    }
}

impl TileCarry {
    /// A carry for `blocks`, read by `partitions` (ranges of block indices;
    /// blocks in none are read elsewhere, and nothing is kept for them).
    pub fn new(blocks: Vec<Window>, partitions: &[std::ops::Range<usize>]) -> Self {
        let mut partition_of = vec![None; blocks.len()];
        for (p, range) in partitions.iter().enumerate() {
            for b in range.clone() {
                if let Some(slot) = partition_of.get_mut(b) {
                    *slot = Some(p);
                }
            }
        }
        let store = Store {
            frontier: partitions.iter().map(|r| r.start).collect(),
            ..Store::default()
        };
        TileCarry {
            blocks,
            partition_of,
            store: Mutex::new(store),
            changed: Condvar::new(),
            waits: true,
        }
    }

    /// This carry, with reads that never wait for another read's parts.
    pub fn without_waits(mut self) -> Self {
        self.waits = false;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A read that panicked leaves a consistent store (every change is
        // made under one lock), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begin `block`'s read of a file band, taking the parts kept for it.
    fn begin(&self, path: &str, band: usize, block: usize) -> Reading<'_> {
        let key = (path.to_string(), band, block);
        let mut s = self.lock();
        let parts = s.remove_parts(&key);
        s.reading.insert(key.clone());
        if let Some(p) = self.partition_of.get(block).copied().flatten() {
            s.frontier[p] = s.frontier[p].max(block);
        }
        Reading {
            carry: self,
            key,
            parts,
            claims: Vec::new(),
        }
    }

    /// The tiles (column, row) of a file band whose part for `block` is
    /// kept now: that block's read takes them from here, not decoding them.
    pub fn kept_tiles(&self, path: &str, band: usize, block: usize) -> Vec<(usize, usize)> {
        let s = self.lock();
        s.parts
            .get(&(path.to_string(), band, block))
            .map(|parts| parts.iter().map(|p| p.tile).collect())
            .unwrap_or_default()
    }

    /// The block holding most of `rect` (the first of equals).
    fn owner(&self, rect: Window) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (b, w) in self.blocks.iter().enumerate() {
            let area = {
                let i = w.intersect(&rect);
                i.rows * i.cols
            };
            if area > 0 && best.is_none_or(|(_, a)| area > a) {
                best = Some((b, area));
            }
        }
        best.map(|(b, _)| b)
    }

    /// Whether a part for `block`'s read of a file band, decoded by a read
    /// for block `from`, is kept: not once that block has read it or
    /// finished, nor for a block read elsewhere; and a part that is most of
    /// its tile (`for_owner`: `block` owns the tile) for a block of another
    /// partition only if it is the block that partition reads now or next
    /// (else it would be held for most of the scan).
    fn wanted(&self, s: &Store, key: &Key, from: usize, for_owner: bool) -> bool {
        let block = key.2;
        let Some(p) = self.partition_of.get(block).copied().flatten() else {
            return false;
        };
        let soon = !for_owner
            || self.partition_of.get(from).copied().flatten() == Some(p)
            || block <= s.frontier[p] + 1;
        soon && !s.finished.contains(&block) && !s.read.contains(key)
    }

    fn wants(
        &self,
        path: &str,
        band: usize,
        (block, from, for_owner): (usize, usize, bool),
    ) -> bool {
        let s = self.lock();
        self.wanted(&s, &(path.to_string(), band, block), from, for_owner)
    }

    /// Keep `part` for `block`'s read of a file band (decoded by a read for
    /// block `from`; `for_owner`: `block` owns its tile), if it is wanted
    /// and fits.
    fn put(
        &self,
        path: &str,
        band: usize,
        (block, from, for_owner): (usize, usize, bool),
        part: Part,
    ) {
        let key = (path.to_string(), band, block);
        let mut s = self.lock();
        if !self.wanted(&s, &key, from, for_owner) || s.bytes + part.data.len() > CARRY_BYTES {
            return;
        }
        s.bytes += part.data.len();
        s.parts.entry(key).or_default().push(part);
        drop(s);
        self.changed.notify_all();
    }

    /// `reading` has decoded the tiles it owns (and kept their parts).
    fn owned_done(&self, reading: &Reading) {
        self.lock().owned_done.insert(reading.key.clone());
        self.changed.notify_all();
    }

    /// Wait until no other read is decoding any of `tiles` (tiles
    /// `reading`'s block owns, which another read decodes when it came
    /// first); the parts kept for `reading` meanwhile.
    fn await_decodes(&self, reading: &Reading, tiles: &[Owned]) -> Vec<Part> {
        self.wait_while(reading, |s, got| {
            tiles.iter().any(|&(t, _)| {
                !got.iter().any(|p| p.tile == t) && s.decoding.contains(&reading.tile_key(t))
            })
        })
        .0
    }

    /// Wait until parts of all of `tiles` (each with its owner) are kept
    /// for `reading`, or no owner of a missing one is still decoding the
    /// tiles it owns and no other read is decoding it (the parts not kept
    /// then will not come: the carry was full); the parts kept meanwhile.
    /// The missing tiles are then claimed for `reading` to decode, until
    /// [`TileCarry::release`].
    fn wait(&self, reading: &mut Reading, tiles: &[Owned]) -> Vec<Part> {
        let (path, band, _) = &reading.key;
        let (got, mut s) = self.wait_while(reading, |s, got| {
            tiles.iter().any(|&(t, owner)| {
                let owner_busy = owner.is_some_and(|owner| {
                    let key = (path.clone(), *band, owner);
                    s.reading.contains(&key) && !s.owned_done.contains(&key)
                });
                let claimed =
                    !reading.claims.contains(&t) && s.decoding.contains(&reading.tile_key(t));
                !got.iter().any(|p| p.tile == t) && (owner_busy || claimed)
            })
        });
        let claims: Vec<(usize, usize)> = tiles
            .iter()
            .map(|&(t, _)| t)
            .filter(|&t| !got.iter().any(|p| p.tile == t))
            .filter(|&t| s.decoding.insert(reading.tile_key(t)))
            .collect();
        drop(s);
        reading.claims.extend(claims);
        got
    }

    /// `reading` has decoded the tiles it claimed (and kept their parts).
    fn release(&self, reading: &mut Reading) {
        reading.unclaim(&mut self.lock());
        self.changed.notify_all();
    }

    /// Wait while `busy` (given the store and the parts taken so far) holds,
    /// at most [`WAIT_LIMIT`]; the parts kept for `reading` meanwhile, and
    /// the store, still locked.
    fn wait_while(
        &self,
        reading: &Reading,
        busy: impl Fn(&Store, &[Part]) -> bool,
    ) -> (Vec<Part>, MutexGuard<'_, Store>) {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut got = Vec::new();
        let mut s = self.lock();
        loop {
            got.extend(s.remove_parts(&reading.key));
            let now = Instant::now();
            if !self.waits || !busy(&s, &got) || now >= deadline {
                return (got, s);
            }
            s = match self.changed.wait_timeout(s, deadline - now) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// `block` reads nothing more: drop what is kept for it.
    pub fn finish(&self, block: usize) {
        let mut s = self.lock();
        s.finished.insert(block);
        let kept: Vec<Key> = s.parts.keys().filter(|k| k.2 == block).cloned().collect();
        for key in &kept {
            s.remove_parts(key);
        }
        s.read.retain(|k| k.2 != block);
    }
}

/// Bytes of samples a read decoded and copied from the carry.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bytes {
    pub decoded: usize,
    pub carried: usize,
}

/// One file band's read into a block through the carry.
struct CoverRead<'a> {
    reader: &'a mut dyn BandRead,
    band: &'a Band,
    sample: SampleType,
    /// The file on the grid, and its tile size.
    file: Window,
    tile: (usize, usize),
    /// What the block needs of the file, and the block.
    cover: Window,
    window: Window,
    block: usize,
    carry: &'a TileCarry,
    /// Tiles whose pixels are in the buffer.
    filled: HashSet<(usize, usize)>,
    bytes: Bytes,
}

impl CoverRead<'_> {
    /// The grid pixels of tile `t` (clipped to the file).
    fn tile_rect(&self, t: (usize, usize)) -> Window {
        let (tw, th) = self.tile;
        self.file.intersect(&Window {
            row: self.file.row + (t.1 * th) as i64,
            col: self.file.col + (t.0 * tw) as i64,
            rows: th,
            cols: tw,
        })
    }

    /// Copy in the parts of tiles not yet filled.
    fn use_parts(&mut self, parts: Vec<Part>, buf: &mut [u8]) {
        for p in parts {
            if self.filled.insert(p.tile) {
                copy_rect(
                    &p.data,
                    p.rect,
                    p.rect,
                    buf,
                    self.window,
                    self.sample.bytes(),
                );
                self.bytes.carried += p.data.len();
            }
        }
    }

    /// Decode the tiles of `tiles` (each with its owner, if any) not yet
    /// filled, by runs along tile rows, and keep for every other block the
    /// part of each tile it covers. A run is read twice through the band
    /// reader: the block's part straight into `buf` (its tiles decoded
    /// once, and kept by the reader, or by GDAL's block cache), then the
    /// other blocks' parts, from those.
    fn decode(&mut self, tiles: &[Owned], buf: &mut [u8]) -> Result<()> {
        let size = self.sample.bytes();
        let todo: Vec<Owned> = tiles
            .iter()
            .copied()
            .filter(|(t, _)| !self.filled.contains(t))
            .collect();
        let mut i = 0;
        while i < todo.len() {
            // A run: consecutive tiles of one tile row.
            let mut j = i + 1;
            while j < todo.len() && todo[j].0 == (todo[j - 1].0.0 + 1, todo[i].0.1) {
                j += 1;
            }
            let (first, last) = (self.tile_rect(todo[i].0), self.tile_rect(todo[j - 1].0));
            let run = Window {
                cols: (last.col_end() - first.col) as usize,
                ..first
            };
            read_rect(
                self.reader,
                self.band,
                self.sample,
                self.file,
                run.intersect(&self.cover),
                buf,
                self.window,
            )?;
            self.bytes.decoded += run.rows * run.cols * size;
            for &(t, owner) in &todo[i..j] {
                self.filled.insert(t);
                let tile = self.tile_rect(t);
                for (b, w) in self.carry.blocks.iter().enumerate() {
                    let rect = tile.intersect(w);
                    let to = (b, self.block, owner == Some(b));
                    if b == self.block
                        || rect.is_empty()
                        || !self.carry.wants(&self.band.path, self.band.index, to)
                    {
                        continue;
                    }
                    let mut data = vec![0u8; rect.rows * rect.cols * size];
                    read_rect(
                        self.reader,
                        self.band,
                        self.sample,
                        self.file,
                        rect,
                        &mut data,
                        rect,
                    )?;
                    let part = Part {
                        tile: t,
                        rect,
                        data,
                    };
                    self.carry.put(&self.band.path, self.band.index, to, part);
                }
            }
            i = j;
        }
        Ok(())
    }
}

/// Reads one file band's part of a block: `cover` (grid pixels of `file`,
/// the band's pixels placed on the grid) into `buf` (samples of the
/// block's grid `window`, row-major); returns the bytes decoded and copied.
/// A band reader ([`BandRead`]) does it straight ([`Direct`]), or wrapped
/// in the scan's tile carry ([`Carried`]).
pub trait BlockRead {
    fn read_cover(
        &mut self,
        band: &Band,
        sample: SampleType,
        file: Window,
        cover: Window,
        window: Window,
        buf: &mut [u8],
    ) -> Result<Bytes>;
}

/// A band reader reading a block's part straight, decoding every tile the
/// part touches.
pub struct Direct<'r>(pub &'r mut dyn BandRead);

impl BlockRead for Direct<'_> {
    fn read_cover(
        &mut self,
        band: &Band,
        sample: SampleType,
        file: Window,
        cover: Window,
        window: Window,
        buf: &mut [u8],
    ) -> Result<Bytes> {
        read_rect(self.0, band, sample, file, cover, buf, window)?;
        Ok(Bytes {
            decoded: cover.rows * cover.cols * sample.bytes(),
            carried: 0,
        })
    }
}

/// A band reader wrapped in the carry, reading for block `block`: parts
/// kept for the block are copied in, the tiles it owns decoded, the others
/// awaited from their owners while these decode their own tiles of the
/// file band (unless the carry never waits), and decoded if no part came;
/// of every tile decoded, the parts other blocks cover are kept for them.
pub struct Carried<'r> {
    pub reader: &'r mut dyn BandRead,
    pub carry: &'r TileCarry,
    pub block: usize,
}

impl BlockRead for Carried<'_> {
    fn read_cover(
        &mut self,
        band: &Band,
        sample: SampleType,
        file: Window,
        cover: Window,
        window: Window,
        buf: &mut [u8],
    ) -> Result<Bytes> {
        let (reader, carry, block) = (&mut *self.reader, self.carry, self.block);
        let tile = tile_size(band, file);
        let (tw, th) = tile;
        // The tiles cover touches, in file tile coordinates, row by row.
        let (fc0, fr0) = (
            (cover.col - file.col) as usize,
            (cover.row - file.row) as usize,
        );
        let (fc1, fr1) = (fc0 + cover.cols, fr0 + cover.rows);
        let across = fc0 / tw..fc1.div_ceil(tw);
        let tiles: Vec<(usize, usize)> = (fr0 / th..fr1.div_ceil(th))
            .flat_map(|ty| across.clone().map(move |tx| (tx, ty)))
            .collect();
        // A run of tiles along a tile row is read again for the other blocks'
        // parts: keep its tiles decoded.
        reader.keep_decoded(across.len());
        let mut reading = carry.begin(&band.path, band.index, block);
        let mut read = CoverRead {
            reader,
            band,
            sample,
            file,
            tile,
            cover,
            window,
            block,
            carry,
            filled: HashSet::with_capacity(tiles.len()),
            bytes: Bytes::default(),
        };
        read.use_parts(std::mem::take(&mut reading.parts), buf);
        // The tiles this block owns first, then those of other owners.
        let (own, others): (Vec<Owned>, Vec<Owned>) = tiles
            .iter()
            .filter(|t| !read.filled.contains(t))
            .map(|&t| (t, carry.owner(read.tile_rect(t))))
            .partition(|&(_, owner)| owner.is_none_or(|o| o == block));
        let parts = carry.await_decodes(&reading, &own);
        read.use_parts(parts, buf);
        read.decode(&own, buf)?;
        carry.owned_done(&reading);
        if !others.is_empty() {
            let parts = carry.wait(&mut reading, &others);
            read.use_parts(parts, buf);
            read.decode(&others, buf)?;
            carry.release(&mut reading);
        }
        Ok(read.bytes)
    }
}

/// True when reading `cover` of `file` decodes no tile that reaches outside
/// `cover`: every edge of it is a tile edge or the file's edge.
pub fn tile_aligned(band: &Band, file: Window, cover: Window) -> bool {
    let (tw, th) = tile_size(band, file);
    let (c0, r0) = (
        (cover.col - file.col) as usize,
        (cover.row - file.row) as usize,
    );
    let (c1, r1) = (c0 + cover.cols, r0 + cover.rows);
    c0 % tw == 0
        && r0 % th == 0
        && (c1 % tw == 0 || c1 == file.cols)
        && (r1 % th == 0 || r1 == file.rows)
}

/// The file's block (tile or strip) size, at least one pixel.
fn tile_size(band: &Band, file: Window) -> (usize, usize) {
    let (bw, bh) = band.meta.block;
    (bw.clamp(1, file.cols.max(1)), bh.clamp(1, file.rows.max(1)))
}

/// Copy grid pixels `rect` from `src` (samples of grid window `from`) into
/// `dst` (samples of grid window `to`); `rect` lies in both.
fn copy_rect(src: &[u8], from: Window, rect: Window, dst: &mut [u8], to: Window, size: usize) {
    let row_bytes = rect.cols * size;
    for r in 0..rect.rows {
        let gr = rect.row + r as i64;
        let s = (((gr - from.row) as usize) * from.cols + (rect.col - from.col) as usize) * size;
        let d = (((gr - to.row) as usize) * to.cols + (rect.col - to.col) as usize) * size;
        dst[d..d + row_bytes].copy_from_slice(&src[s..s + row_bytes]);
    }
}

/// Read grid pixels `rect` of `file` (the dataset placed on the grid) into
/// `dst`, the samples (row-major) of grid window `to`, which holds `rect`.
pub(super) fn read_rect(
    reader: &mut dyn BandRead,
    band: &Band,
    sample: SampleType,
    file: Window,
    rect: Window,
    dst: &mut [u8],
    to: Window,
) -> Result<()> {
    let src = (
        (rect.col - file.col) as usize,
        (rect.row - file.row) as usize,
        rect.cols,
        rect.rows,
    );
    let offset =
        ((rect.row - to.row) as usize * to.cols + (rect.col - to.col) as usize) * sample.bytes();
    let dst = dst.get_mut(offset..).unwrap_or_default();
    reader
        .read_window(src, sample, dst, to.cols)
        .map_err(|message| match crate::store::is_remote(&band.path) {
            // Over the network, a failed read is rarely a corrupt file.
            true => SceneError::Object {
                object: band.path.clone(),
                problem: format!("could not be read (band {} window {:?})", band.index, src),
                hint: "check the store and the network, and retry".into(),
                detail: message,
            },
            false => SceneError::Read {
                path: band.path.clone(),
                what: format!("band {} window {:?}", band.index, src),
                message,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(row: i64, col: i64, rows: usize, cols: usize) -> Window {
        Window {
            row,
            col,
            rows,
            cols,
        }
    }

    /// A part of tile `(0, 0)` of 2-byte samples over `rect`, all `fill`.
    fn part_of_tile_0(rect: Window, fill: u8) -> Part {
        Part {
            tile: (0, 0),
            rect,
            data: vec![fill; rect.rows * rect.cols * 2],
        }
    }

    #[test]
    fn parts_are_taken_once_and_not_kept_for_reads_done() {
        let one_partition = std::iter::once(0..3).collect::<Vec<_>>();
        let carry = TileCarry::new(
            vec![w(0, 0, 2, 2), w(0, 2, 2, 2), w(0, 4, 2, 2)],
            &one_partition,
        );
        let part = |b: u8| part_of_tile_0(w(0, 2, 1, 1), b);
        carry.put("f", 1, (1, 0, true), part(1));
        carry.put("f", 1, (2, 0, true), part(2));
        carry.put("g", 1, (1, 0, true), part(3));
        let r = carry.begin("f", 1, 1);
        assert_eq!(r.parts.len(), 1);
        drop(r);
        // Block 1 has read "f": parts for it are no longer kept.
        carry.put("f", 1, (1, 0, true), part(4));
        assert!(carry.begin("f", 1, 1).parts.is_empty());
        assert_eq!(carry.begin("f", 1, 2).parts[0].data, vec![2, 2]);
        // A finished block's parts are dropped, and no more are kept.
        carry.finish(1);
        carry.put("h", 1, (1, 0, true), part(5));
        assert!(carry.lock().parts.is_empty());
        assert_eq!(carry.lock().bytes, 0);
    }

    #[test]
    fn parts_for_other_partitions_are_kept_when_small_or_read_soon() {
        let blocks = (0..5).map(|r| w(r, 0, 1, 2)).collect();
        // Blocks 0..3 in one partition, 3 in another, 4 read elsewhere.
        let carry = TileCarry::new(blocks, &[0..3, 3..4]);
        let key = |b: usize| ("f".to_string(), 1, b);
        let s = carry.lock();
        // Most of a tile, from block 3: for the other partition's current
        // (first) and next blocks only.
        assert!(carry.wanted(&s, &key(0), 3, true));
        assert!(carry.wanted(&s, &key(1), 3, true));
        assert!(!carry.wanted(&s, &key(2), 3, true));
        // The smaller part of a tile: for any block.
        assert!(carry.wanted(&s, &key(2), 3, false));
        // From block 0: for every block of its own partition.
        assert!(carry.wanted(&s, &key(2), 0, true));
        // Never for a block no partition here reads.
        assert!(!carry.wanted(&s, &key(4), 3, false));
        drop(s);
        // Once block 1 is being read, block 2 is next.
        let _reading = carry.begin("g", 1, 1);
        assert!(carry.wanted(&carry.lock(), &key(2), 3, true));
    }

    #[test]
    fn a_read_waits_for_the_owner_of_a_tile_while_it_reads() {
        let carry = TileCarry::new(vec![w(0, 0, 3, 2), w(3, 0, 1, 2)], &[0..1, 1..2]);
        // A tile of rows 0..4 belongs to block 0 (3 of its 4 rows).
        assert_eq!(carry.owner(w(0, 0, 4, 2)), Some(0));
        assert_eq!(carry.owner(w(3, 0, 4, 2)), Some(1));
        assert_eq!(carry.owner(w(9, 0, 4, 2)), None);
        let owner = carry.begin("f", 1, 0);
        let mut reader = carry.begin("f", 1, 1);
        let tiles = [((0, 0), Some(0)), ((1, 0), Some(0))];
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| carry.wait(&mut reader, &tiles));
            // The owner keeps one of the two tiles, then ends its read: the
            // wait returns that part without the other.
            std::thread::sleep(Duration::from_millis(20));
            carry.put("f", 1, (1, 0, false), part_of_tile_0(w(3, 0, 1, 1), 7));
            drop(owner);
            let got = waiter.join().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].tile, (0, 0));
        });
        // The tile that did not come is now the reader's to decode.
        assert_eq!(reader.claims, vec![(1, 0)]);
        carry.release(&mut reader);
        // With the owner not reading, nothing is awaited; nor once it has
        // decoded the tiles it owns.
        assert!(carry.wait(&mut reader, &tiles).is_empty());
        carry.release(&mut reader);
        let owner = carry.begin("f", 1, 0);
        carry.owned_done(&owner);
        assert!(carry.wait(&mut reader, &tiles).is_empty());
    }

    #[test]
    fn a_tile_claimed_by_another_read_is_awaited_not_decoded_again() {
        let carry = TileCarry::new(vec![w(0, 0, 3, 2), w(3, 0, 1, 2)], &[0..1, 1..2]);
        let tiles = [((0, 0), Some(0))];
        // Block 1 reads first and, the owner not reading, claims the tile.
        let mut reader = carry.begin("f", 1, 1);
        assert!(carry.wait(&mut reader, &tiles).is_empty());
        assert_eq!(reader.claims, vec![(0, 0)]);
        // The owner begins meanwhile: it waits for that decode and takes
        // the part kept for it.
        let owner = carry.begin("f", 1, 0);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| carry.await_decodes(&owner, &tiles));
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !waiter.is_finished(),
                "the owner waits for the claimed tile"
            );
            carry.put("f", 1, (0, 1, true), part_of_tile_0(w(0, 0, 3, 2), 1));
            carry.release(&mut reader);
            let got = waiter.join().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].tile, (0, 0));
        });
        // A tile nobody decodes is not awaited.
        assert!(carry.await_decodes(&owner, &[((1, 0), Some(0))]).is_empty());
    }

    #[test]
    fn a_carry_without_waits_gives_what_it_holds_and_never_waits() {
        let carry =
            TileCarry::new(vec![w(0, 0, 3, 2), w(3, 0, 1, 2)], &[0..1, 1..2]).without_waits();
        let tiles = [((0, 0), Some(0)), ((1, 0), Some(0))];
        // The owner is reading and has kept one part so far.
        let owner = carry.begin("f", 1, 0);
        carry.put("f", 1, (1, 0, false), part_of_tile_0(w(3, 0, 1, 1), 7));
        assert_eq!(carry.kept_tiles("f", 1, 1), vec![(0, 0)]);
        let mut reader = carry.begin("f", 1, 1);
        let start = Instant::now();
        // The part kept before the read began came with `begin`; the
        // other tile's owner is still reading, and is not waited for: the
        // tile is the reader's to decode.
        assert_eq!(reader.parts.len(), 1);
        let got = carry.wait(&mut reader, &tiles[1..]);
        assert!(start.elapsed() < Duration::from_secs(1), "no wait");
        assert!(got.is_empty());
        assert_eq!(reader.claims, vec![(1, 0)]);
        carry.release(&mut reader);
        // A tile another read claimed is not awaited either.
        let mut other = carry.begin("f", 1, 1);
        assert!(carry.wait(&mut other, &tiles[..1]).is_empty());
        assert!(carry.await_decodes(&owner, &tiles[..1]).is_empty());
        assert!(start.elapsed() < Duration::from_secs(1), "no wait");
    }

    #[test]
    fn copy_rect_moves_a_rectangle_between_windows() {
        // A 3 x 4 source at grid (10, 20), values = offset; copy its 2 x 2
        // rectangle at grid (11, 21) into a 2 x 3 window at grid (11, 20).
        let from = w(10, 20, 3, 4);
        let src: Vec<u8> = (0..12).collect();
        let to = w(11, 20, 2, 3);
        let mut dst = vec![0u8; 6];
        copy_rect(&src, from, w(11, 21, 2, 2), &mut dst, to, 1);
        assert_eq!(dst, vec![0, 5, 6, 0, 9, 10]);
    }
}
