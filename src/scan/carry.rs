//! Decoded tile edges carried from one block's read to later blocks' reads
//! of the same partition, so that no file tile is decoded twice.
//!
//! Scenes of an archive rarely share a tile grid: footprints shift by a few
//! pixels from date to date, so block edges (one grid for all scenes) cut
//! through most files' tiles, and each block touching a tile would decode
//! all of it again (GDAL decodes whole tiles, and a file is closed after
//! each read). On a 4096 x 4096 archive shifted by up to 4 pixels, that is
//! two to three decodes per tile. Instead, a read decodes each cut tile
//! once and keeps, for every later block of the partition that the tile
//! reaches into, that block's part of it (usually a strip a few pixels
//! wide); the later block's read copies its parts in and decodes only the
//! tiles it has no part of. Parts are dropped when used, when their block
//! has passed, and never held beyond [`CARRY_BYTES`] (past that, tiles are
//! decoded again, as without a carry).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use gdal::Dataset;

use super::read::read_rect;
use crate::archive::Band;
use crate::error::Result;
use crate::grid::Window;
use crate::raster::SampleType;

/// The most a partition's carry holds.
pub const CARRY_BYTES: usize = 64 << 20;

/// The carried tile parts of one partition's reads.
pub struct TileCarry {
    /// The partition's blocks, in the order they are read.
    blocks: Vec<Window>,
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    /// (file path, band index, block index) -> parts for that block.
    parts: HashMap<(String, usize, usize), Vec<Part>>,
    bytes: usize,
    /// Parts for blocks before this index have been dropped.
    passed: usize,
}

/// One tile's pixels inside one block, decoded (row-major samples).
struct Part {
    /// The tile's index in its file (tile column, tile row).
    tile: (usize, usize),
    /// Grid pixels held.
    rect: Window,
    data: Vec<u8>,
}

impl TileCarry {
    pub fn new(blocks: Vec<Window>) -> Self {
        TileCarry {
            blocks,
            store: Mutex::new(Store::default()),
        }
    }

    /// The parts kept for `block` of a file band (removing them), after
    /// dropping those of blocks before it.
    fn take(&self, path: &str, band: usize, block: usize) -> Vec<Part> {
        let Ok(mut s) = self.store.lock() else {
            return Vec::new();
        };
        if block > s.passed {
            let mut freed = 0;
            s.parts.retain(|k, v| {
                let keep = k.2 >= block;
                if !keep {
                    freed += v.iter().map(|p| p.data.len()).sum::<usize>();
                }
                keep
            });
            s.bytes -= freed;
            s.passed = block;
        }
        let parts = s
            .parts
            .remove(&(path.to_string(), band, block))
            .unwrap_or_default();
        s.bytes -= parts.iter().map(|p| p.data.len()).sum::<usize>();
        parts
    }

    /// Keep `part` for `block`, if it fits.
    fn put(&self, path: &str, band: usize, block: usize, part: Part) {
        let Ok(mut s) = self.store.lock() else {
            return;
        };
        if block < s.passed || s.bytes + part.data.len() > CARRY_BYTES {
            return;
        }
        s.bytes += part.data.len();
        s.parts
            .entry((path.to_string(), band, block))
            .or_default()
            .push(part);
    }
}

/// Bytes of samples a read decoded and copied from the carry.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bytes {
    pub decoded: usize,
    pub carried: usize,
}

/// Read `cover` (grid pixels of `file`, the dataset placed on the grid,
/// inside block `block` of `carry`, whose window is `window`) into `buf`
/// (samples of `window`, row-major): parts carried from earlier blocks are
/// copied in, the other tiles decoded once each, and the parts of those
/// tiles that later blocks of the partition cover are kept for them.
/// Returns the bytes decoded and carried.
#[allow(clippy::too_many_arguments)]
pub fn read_cover(
    ds: &Dataset,
    band: &Band,
    sample: SampleType,
    file: Window,
    cover: Window,
    window: Window,
    buf: &mut [u8],
    carry: &TileCarry,
    block: usize,
) -> Result<Bytes> {
    let size = sample.bytes();
    let (tw, th) = tile_size(band, file);
    // The tiles cover touches, in file tile coordinates.
    let (fc0, fr0) = (
        (cover.col - file.col) as usize,
        (cover.row - file.row) as usize,
    );
    let (fc1, fr1) = (fc0 + cover.cols, fr0 + cover.rows);
    let tiles_x = fc0 / tw..fc1.div_ceil(tw);
    let tiles_y = fr0 / th..fr1.div_ceil(th);
    let parts = carry.take(&band.path, band.index, block);
    let mut carried = HashSet::with_capacity(parts.len());
    let mut bytes = Bytes::default();
    for p in &parts {
        copy_rect(&p.data, p.rect, p.rect, buf, window, size);
        carried.insert(p.tile);
        bytes.carried += p.data.len();
    }
    let later = carry.blocks.get(block + 1..).unwrap_or(&[]);
    for ty in tiles_y {
        // Runs of tiles of this tile row without a carried part.
        let mut tx = tiles_x.start;
        while tx < tiles_x.end {
            if carried.contains(&(tx, ty)) {
                tx += 1;
                continue;
            }
            let start = tx;
            while tx < tiles_x.end && !carried.contains(&(tx, ty)) {
                tx += 1;
            }
            // The run's whole tiles (clipped to the file), on the grid.
            let run = Window {
                row: file.row + (ty * th) as i64,
                col: file.col + (start * tw) as i64,
                rows: th.min(file.rows - ty * th),
                cols: (tx * tw).min(file.cols) - start * tw,
            };
            let mut data = vec![0u8; run.rows * run.cols * size];
            read_rect(ds, band, sample, file, run, &mut data, run.cols)?;
            bytes.decoded += data.len();
            copy_rect(&data, run, run.intersect(&cover), buf, window, size);
            // What later blocks of the partition need of each tile.
            for t in start..tx {
                let tile = run.intersect(&Window {
                    row: run.row,
                    col: file.col + (t * tw) as i64,
                    rows: run.rows,
                    cols: tw,
                });
                for (k, b) in later.iter().enumerate() {
                    let rect = tile.intersect(b);
                    if rect.is_empty() {
                        continue;
                    }
                    let mut part = vec![0u8; rect.rows * rect.cols * size];
                    copy_rect(&data, run, rect, &mut part, rect, size);
                    carry.put(
                        &band.path,
                        band.index,
                        block + 1 + k,
                        Part {
                            tile: (t, ty),
                            rect,
                            data: part,
                        },
                    );
                }
            }
        }
    }
    Ok(bytes)
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

    #[test]
    fn parts_are_taken_once_and_dropped_when_their_block_passes() {
        let carry = TileCarry::new(vec![w(0, 0, 2, 2), w(0, 2, 2, 2), w(0, 4, 2, 2)]);
        let part = |b: u8| Part {
            tile: (0, 0),
            rect: w(0, 2, 1, 1),
            data: vec![b; 2],
        };
        carry.put("f", 1, 1, part(1));
        carry.put("f", 1, 2, part(2));
        carry.put("g", 1, 1, part(3));
        assert_eq!(carry.take("f", 1, 1).len(), 1);
        assert!(carry.take("f", 1, 1).is_empty());
        // Reading block 2 drops what block 1 left untaken ("g").
        assert_eq!(carry.take("f", 1, 2)[0].data, vec![2, 2]);
        assert!(carry.store.lock().unwrap().parts.is_empty());
        assert_eq!(carry.store.lock().unwrap().bytes, 0);
        // Parts for passed blocks are not kept.
        carry.put("g", 1, 1, part(4));
        assert_eq!(carry.store.lock().unwrap().bytes, 0);
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
