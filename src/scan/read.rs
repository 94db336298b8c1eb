//! Reading one block (a strip of grid rows) from every scene that covers it:
//! each needed band of each scene is read with one offset window read (or
//! through a warped VRT) straight into an Arrow buffer covering the block,
//! and nodata becomes NULL. Synchronous: runs on the partition's runtime
//! worker, or on a blocking thread (`sceneql.read_on_workers`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, ArrowPrimitiveType, BooleanBufferBuilder, PrimitiveArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, MutableBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::*;
use futures::{StreamExt, TryStreamExt};
use gdal::Dataset;
use object_store::ObjectStore;
use sceneql_udfs::bits::collect_bits;

use super::carry::{self, BlockRead, Carried, Direct, TileCarry};
use crate::archive::Band;
use crate::error::{Result, SceneError};
use crate::grid::{Placement, Window};
use crate::model::{Column, SceneArchive};
use crate::raster::{self, SampleType, WarpSpec};
use crate::remote::TileBytes;
use crate::tiff::{BandRead, FetchedBand, GdalBand};
use crate::{remote, store};

/// One scene's data within a block.
pub struct BlockScene {
    /// Index into the archive's scenes.
    pub scene: usize,
    /// Columns `[c0, c1)` inside the footprint, relative to the block, per block row.
    pub spans: Vec<Option<(u32, u32)>>,
    /// Band name -> values over the whole block (row-major), NULL where
    /// nodata or not covered by the file.
    pub bands: BTreeMap<String, ArrayRef>,
}

/// All scenes of one block.
pub struct BlockData {
    pub window: Window,
    pub scenes: Vec<BlockScene>,
}

/// Counters of one block read.
#[derive(Default, Debug, Clone, Copy)]
pub struct ReadStats {
    pub files_opened: usize,
    /// Object-store requests (headers and tiles), bytes they fetched,
    /// their retries, and headers found already read.
    pub requests: usize,
    pub bytes_fetched: usize,
    pub retries: usize,
    pub header_hits: usize,
    pub scenes_read: usize,
    /// Bytes of samples read from files (with a carry: of whole tiles).
    pub bytes_decoded: usize,
    /// Bytes of samples copied from a carry instead of decoded again.
    pub bytes_carried: usize,
    pub nanos: u64,
}

impl ReadStats {
    /// Add another read's counters.
    pub fn add(&mut self, o: &ReadStats) {
        self.files_opened += o.files_opened;
        self.scenes_read += o.scenes_read;
        self.bytes_decoded += o.bytes_decoded;
        self.bytes_carried += o.bytes_carried;
        self.requests += o.requests;
        self.bytes_fetched += o.bytes_fetched;
        self.retries += o.retries;
        self.header_hits += o.header_hits;
        self.nanos += o.nanos;
    }
}

/// One band of one scene in an object store whose tiles a read needs: the
/// object, the band's plane and the file pixels `(x0, y0, x1, y1)` read,
/// and the tiles (column, row) whose part the carry already holds.
struct RemoteNeed {
    store: Arc<dyn ObjectStore>,
    object: remote::ObjectVersion,
    band: usize,
    sample: SampleType,
    cover: (usize, usize, usize, usize),
    carried: Vec<(usize, usize)>,
}

/// Fetch the compressed tiles that a read of `bands` of `scenes` over
/// `window` decodes itself (bands in object stores, placed without
/// warping, whose files [`crate::tiff::decodes`]): headers from the
/// process's cache or fetched first, then every object's tiles with
/// merged, concurrent range requests. Tiles in `recent` (fetched by the
/// scan for another block) are not fetched again, nor tiles whose part
/// for this block is in the `carry` (decoded by another block). The
/// returned future runs on the object-store runtime ([`remote::on_io`],
/// [`remote::block_on_io`]).
pub fn fetch_remote(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    window: Window,
    recent: Arc<remote::RecentTiles>,
    carry: Option<(&TileCarry, usize)>,
) -> Result<impl std::future::Future<Output = Result<(TileBytes, ReadStats)>> + Send + 'static> {
    let mut needs = Vec::new();
    for &si in scenes {
        let placement = &archive.placements[si];
        let scene = &archive.scenes[si];
        for name in bands {
            let Some(band) = scene.bands.get(name) else {
                continue;
            };
            let Some(Placement::Aligned { row_off, col_off }) = placement.bands.get(name) else {
                continue;
            };
            if !store::is_remote(&band.path) {
                continue;
            }
            let file = Window {
                row: *row_off,
                col: *col_off,
                rows: band.geom.height,
                cols: band.geom.width,
            };
            let cover = file
                .intersect(&window)
                .intersect(&placement.footprint.window);
            if cover.is_empty() {
                continue;
            }
            let (x0, y0) = (
                (cover.col - file.col) as usize,
                (cover.row - file.row) as usize,
            );
            let (x1, y1) = (x0 + cover.cols, y0 + cover.rows);
            let url = store::ObjectUrl::parse(&band.path)?;
            needs.push(RemoteNeed {
                store: store::store_for(&url, &archive.options.store)?,
                object: remote::ObjectVersion {
                    url: band.path.clone(),
                    size: band.size,
                    etag: band.etag.clone(),
                },
                band: band.index,
                sample: band.meta.sample.read_as(),
                cover: (x0, y0, x1, y1),
                carried: carry
                    .map(|(c, block)| c.kept_tiles(&band.path, band.index, block))
                    .unwrap_or_default(),
            });
        }
    }
    Ok(async move {
        let start = Instant::now();
        let counts = Arc::new(remote::FetchStats::default());
        // Each object's tile ranges (several bands may share a file).
        let mut by_object: Vec<(Arc<dyn ObjectStore>, remote::ObjectVersion, Vec<usize>)> =
            Vec::new();
        for need in needs {
            let Some(h) = remote::header(need.store.as_ref(), &need.object, &counts).await? else {
                continue;
            };
            if !crate::tiff::decodes(&h, need.sample) {
                continue;
            }
            let Some((tw, th)) = h.tile else { continue };
            let plane = if h.planes() > 1 { need.band - 1 } else { 0 };
            let (x0, y0, x1, y1) = need.cover;
            let mut tiles = Vec::new();
            for ty in y0 / th..y1.div_ceil(th) {
                for tx in x0 / tw..x1.div_ceil(tw) {
                    if need.carried.contains(&(tx, ty)) {
                        continue;
                    }
                    if let Some(i) = h.tile_index(plane, tx, ty)
                        && h.tile_range(i).is_some()
                    {
                        tiles.push(i);
                    }
                }
            }
            match by_object.iter_mut().find(|(_, o, _)| *o == need.object) {
                Some((_, _, t)) => t.extend(tiles),
                None => by_object.push((need.store, need.object, tiles)),
            }
        }
        // Tiles this scan fetched already (for another block) are not
        // fetched again.
        let mut out = TileBytes::default();
        out.with_recent(Some(recent.clone()));
        // Tiles another read is fetching: waited for below.
        let mut awaited: Vec<(Arc<dyn ObjectStore>, remote::ObjectVersion, usize)> = Vec::new();
        let by_object: Vec<_> = by_object
            .into_iter()
            .map(|(store, object, mut tiles)| {
                tiles.sort_unstable();
                tiles.dedup();
                tiles.retain(|&i| match recent.claim(&object.url, i) {
                    remote::Claim::Have(b) => {
                        out.insert(&object.url, i, b);
                        false
                    }
                    remote::Claim::Fetch => true,
                    remote::Claim::Wait => {
                        awaited.push((store.clone(), object.clone(), i));
                        false
                    }
                });
                (store, object, tiles)
            })
            .collect();
        // Claims this read gives up if its fetch fails or is dropped (the
        // tiles it did fetch are no longer claimed by then).
        let _claims = ClaimGuard {
            recent: recent.clone(),
            claimed: by_object
                .iter()
                .map(|(_, o, t)| (o.url.clone(), t.clone()))
                .collect(),
        };
        let jobs: Vec<_> = by_object
            .into_iter()
            .map(|(store, object, tiles)| fetch_object(store, object, tiles, counts.clone()))
            .collect();
        let fetched: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for (store, object, tiles, got) in fetched {
            for (i, bytes) in tiles.iter().zip(&got.parts) {
                out.insert(&object.url, *i, bytes.clone());
                recent.put(&object.url, *i, bytes.clone());
            }
            out.hold(got);
            out.add_object(store, object);
        }
        // The tiles other reads were fetching (or, if they gave up, fetched
        // here).
        for (store, object, i) in awaited {
            let bytes = match recent.wait(&object.url, i).await {
                Some(b) => b,
                None => {
                    let header = remote::cached_header(&object);
                    let Some(range) = header.as_ref().and_then(|h| h.tile_range(i)) else {
                        continue;
                    };
                    let got =
                        remote::fetch_tiles(store.as_ref(), &object, &[range], &counts).await?;
                    let Some(b) = got.parts.into_iter().next() else {
                        continue;
                    };
                    b
                }
            };
            out.insert(&object.url, i, bytes);
            out.add_object(store, object);
        }
        let n = |c: &std::sync::atomic::AtomicU64| {
            c.load(std::sync::atomic::Ordering::Relaxed) as usize
        };
        let stats = ReadStats {
            requests: n(&counts.requests),
            bytes_fetched: n(&counts.bytes),
            retries: n(&counts.retries),
            header_hits: n(&counts.header_hits),
            nanos: start.elapsed().as_nanos() as u64,
            ..ReadStats::default()
        };
        Ok((out, stats))
    })
}

/// Releases a read's claims on tiles ([`remote::RecentTiles::claim`]) when
/// the read ends, however it ends.
struct ClaimGuard {
    recent: Arc<remote::RecentTiles>,
    claimed: Vec<(String, Vec<usize>)>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        for (url, tiles) in &self.claimed {
            self.recent.release(url, tiles);
        }
    }
}

/// Fetch `tiles` (indexes into its header's tiles) of `object`.
async fn fetch_object(
    store: Arc<dyn ObjectStore>,
    object: remote::ObjectVersion,
    mut tiles: Vec<usize>,
    counts: Arc<remote::FetchStats>,
) -> Result<(
    Arc<dyn ObjectStore>,
    remote::ObjectVersion,
    Vec<usize>,
    remote::Fetched,
)> {
    tiles.sort_unstable();
    tiles.dedup();
    let header = remote::cached_header(&object);
    let ranges: Vec<_> = tiles
        .iter()
        .filter_map(|&i| header.as_ref()?.tile_range(i))
        .collect();
    let got = remote::fetch_tiles(store.as_ref(), &object, &ranges, &counts).await?;
    Ok((store, object, tiles, got))
}

/// True when some band of the archive is in an object store.
pub fn has_remote_bands(archive: &SceneArchive) -> bool {
    archive
        .scenes
        .iter()
        .any(|s| s.bands.values().any(|b| store::is_remote(&b.path)))
}

/// Read `bands` of `scenes` over `window`; with `carry`, `window` is the
/// scan's block `.1`, and the tiles its edges cut are decoded once for it
/// and the other blocks they reach into ([`super::carry`]). Bands in
/// object stores are decoded from the tiles in `fetched` (a scan fetches
/// them first, [`fetch_remote`]); without them GDAL reads those bands.
pub fn read_block(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    window: Window,
    carry: Option<(&TileCarry, usize)>,
    fetched: Option<&TileBytes>,
) -> Result<(BlockData, ReadStats)> {
    let start = Instant::now();
    let mut stats = ReadStats::default();
    let mut out = Vec::new();
    for &si in scenes {
        let placement = &archive.placements[si];
        let fp = &placement.footprint;
        if fp.window.intersect(&window).is_empty() {
            continue;
        }
        let spans: Vec<Option<(u32, u32)>> = (window.row..window.row_end())
            .map(|r| {
                fp.row_span(r).and_then(|(a, b)| {
                    let (a, b) = (a.max(window.col), b.min(window.col_end()));
                    (a < b).then(|| ((a - window.col) as u32, (b - window.col) as u32))
                })
            })
            .collect();
        if spans.iter().all(Option::is_none) {
            continue;
        }
        let scene = &archive.scenes[si];
        stats.scenes_read += 1;
        let mut arrays = BTreeMap::new();
        let mut opened: BTreeMap<&str, Dataset> = BTreeMap::new();
        for name in bands {
            let Some(band) = scene.bands.get(name) else {
                continue;
            };
            let _decode = tracing::info_span!("decode", scene = %scene.id, band = %name).entered();
            // GDAL reads of the band (it may fall back to GDAL) use the
            // table's settings (on a cluster's executors: the settings it
            // was sent, over the executor's environment).
            store::use_for_gdal(&band.path, &archive.options.store);
            // Tiles fetched from an object store: decoded here, no GDAL.
            if let (Some(tiles), Placement::Aligned { row_off, col_off }) =
                (fetched, &placement.bands[name])
                && let Some(header) = remote::cached_header(&remote::ObjectVersion {
                    url: band.path.clone(),
                    size: band.size,
                    etag: band.etag.clone(),
                })
                && crate::tiff::decodes(&header, band.meta.sample.read_as())
            {
                let file = Window {
                    row: *row_off,
                    col: *col_off,
                    rows: band.geom.height,
                    cols: band.geom.width,
                };
                let (array, bytes) =
                    read_band(Source::Fetched(header, tiles), band, file, window, carry)?;
                stats.bytes_decoded += bytes.decoded;
                stats.bytes_carried += bytes.carried;
                arrays.insert(name.clone(), array);
                continue;
            }
            let ds = match opened.remove(band.path.as_str()) {
                Some(ds) => ds,
                None => {
                    stats.files_opened += 1;
                    band.check_unchanged()?;
                    raster::open_for_read(&band.path)?
                }
            };
            let (array, bytes) = match &placement.bands[name] {
                Placement::Aligned { row_off, col_off } => {
                    let file = Window {
                        row: *row_off,
                        col: *col_off,
                        rows: band.geom.height,
                        cols: band.geom.width,
                    };
                    read_band(Source::Gdal(&ds), band, file, window, carry)?
                }
                Placement::Warped => {
                    let fw = fp.window;
                    let g = &archive.grid;
                    let spec = WarpSpec {
                        dst_wkt: &g.crs_wkt,
                        x0: g.gt[0] + fw.col as f64 * g.gt[1],
                        y0: g.gt[3] + fw.row as f64 * g.gt[5],
                        dx: g.gt[1],
                        dy: g.gt[5],
                        cols: fw.cols,
                        rows: fw.rows,
                        resampling: archive.options.resampling.as_deref().unwrap_or("near"),
                        src_nodata: archive.options.nodata.for_band(name),
                    };
                    let vrt = raster::warped_vrt(&ds, &band.path, &spec)?;
                    read_band(Source::Gdal(&vrt), band, fw, window, None)?
                }
            };
            stats.bytes_decoded += bytes.decoded;
            stats.bytes_carried += bytes.carried;
            arrays.insert(name.clone(), array);
            opened.insert(band.path.as_str(), ds);
        }
        out.push(BlockScene {
            scene: si,
            spans,
            bands: arrays,
        });
    }
    stats.nanos = start.elapsed().as_nanos() as u64;
    Ok((
        BlockData {
            window,
            scenes: out,
        },
        stats,
    ))
}

/// Where a band's pixels come from: an open dataset, or an object's
/// parsed header and fetched tiles.
enum Source<'a> {
    Gdal(&'a Dataset),
    Fetched(Arc<crate::cog::TiffHeader>, &'a TileBytes),
}

/// Read the part of `window` covered by `file` (the band's pixels placed
/// on the grid) into an array over the whole window (through `carry` when
/// the window's edges cut the file's tiles).
fn read_band(
    source: Source<'_>,
    band: &Band,
    file: Window,
    window: Window,
    carry: Option<(&TileCarry, usize)>,
) -> Result<(ArrayRef, carry::Bytes)> {
    let sample = band.meta.sample.read_as();
    let len = window.rows * window.cols;
    let mut buf = MutableBuffer::from_len_zeroed(len * sample.bytes());
    let cover = file.intersect(&window);
    let carry = carry.filter(|_| !cover.is_empty() && !carry::tile_aligned(band, file, cover));
    let bytes = if cover.is_empty() {
        carry::Bytes::default()
    } else {
        let mut gdal;
        let mut fetched;
        let reader: &mut dyn BandRead = match source {
            Source::Gdal(ds) => {
                gdal = GdalBand::new(ds, band.index, &band.path, sample);
                &mut gdal
            }
            Source::Fetched(header, tiles) => {
                fetched = FetchedBand::new(header, tiles, band.index, &band.path, sample)
                    .ok_or_else(|| SceneError::Read {
                        path: band.path.clone(),
                        what: format!("band {}", band.index),
                        message: "internal: the file's tiles cannot be decoded here".into(),
                    })?;
                &mut fetched
            }
        };
        let mut direct;
        let mut carried;
        let block_read: &mut dyn BlockRead = match carry {
            Some((carry, block)) => {
                carried = Carried {
                    reader,
                    carry,
                    block,
                };
                &mut carried
            }
            None => {
                direct = Direct(reader);
                &mut direct
            }
        };
        block_read.read_cover(band, sample, file, cover, window, buf.as_slice_mut())?
    };
    let rel = Window {
        row: cover.row - window.row,
        col: cover.col - window.col,
        rows: cover.rows,
        cols: cover.cols,
    };
    let array = to_array(buf, sample, len, rel, window.cols, band.meta.nodata);
    let array = match band.meta.physical {
        Some((scale, offset)) => physical(&array, scale, offset)?,
        None => array,
    };
    Ok((array, bytes))
}

/// Stored values as physical ones: `value * scale + offset`, as Float32
/// (computed in f64), NULLs kept.
fn physical(array: &ArrayRef, scale: f64, offset: f64) -> Result<ArrayRef> {
    let values = datafusion::arrow::compute::cast(array, &DataType::Float64).map_err(|e| {
        SceneError::Io(
            "scaling a band".into(),
            std::io::Error::other(e.to_string()),
        )
    })?;
    let values = values
        .as_any()
        .downcast_ref::<PrimitiveArray<Float64Type>>();
    let Some(values) = values else {
        return Ok(array.clone());
    };
    let scaled: PrimitiveArray<Float32Type> = values.unary(|v| (v * scale + offset) as f32);
    Ok(Arc::new(scaled))
}

/// The values of `column` for each scene of `data`, over the whole block
/// (cast to the column's type `t`; all NULL for a scene without the band).
/// `None` for columns that are not bands.
pub fn band_sources(
    archive: &SceneArchive,
    data: &BlockData,
    column: &Column,
    t: &DataType,
) -> datafusion::error::Result<Option<Vec<ArrayRef>>> {
    use datafusion::arrow::array::new_null_array;
    use datafusion::arrow::compute::cast;
    if !matches!(column, Column::Band(_) | Column::Common(_)) {
        return Ok(None);
    }
    let len = data.window.rows * data.window.cols;
    let mut arrays = Vec::with_capacity(data.scenes.len());
    let mut nulls: Option<ArrayRef> = None;
    for bs in &data.scenes {
        match column
            .band_in(&archive.scenes[bs.scene])
            .and_then(|b| bs.bands.get(&b))
        {
            Some(a) if a.data_type() == t => arrays.push(a.clone()),
            Some(a) => arrays.push(cast(a, t)?),
            None => arrays.push(nulls.get_or_insert_with(|| new_null_array(t, len)).clone()),
        }
    }
    Ok(Some(arrays))
}

fn to_array(
    buf: MutableBuffer,
    sample: SampleType,
    len: usize,
    cover: Window,
    stride: usize,
    nodata: Option<f64>,
) -> ArrayRef {
    macro_rules! typed {
        ($t:ty) => {
            typed_array::<$t>(buf, len, cover, stride, nodata)
        };
    }
    match sample {
        SampleType::U8 => typed!(UInt8Type),
        SampleType::I8 | SampleType::I16 => typed!(Int16Type),
        SampleType::U16 => typed!(UInt16Type),
        SampleType::U32 => typed!(UInt32Type),
        SampleType::I32 => typed!(Int32Type),
        SampleType::U64 => typed!(UInt64Type),
        SampleType::I64 => typed!(Int64Type),
        SampleType::F32 => typed!(Float32Type),
        SampleType::F64 => typed!(Float64Type),
    }
}

/// Sample values: the nodata test, typed (no conversion per value).
trait Sample: Copy + PartialEq {
    /// The nodata value as this type, if it is one (a nodata value the type
    /// cannot hold matches nothing).
    fn nodata(n: f64) -> Option<Self>;
    fn is_nan(self) -> bool;
}
macro_rules! int_sample {
    ($($t:ty),*) => { $(impl Sample for $t {
        fn nodata(n: f64) -> Option<Self> {
            let v = n as $t;
            (v as f64 == n).then_some(v)
        }
        fn is_nan(self) -> bool { false }
    })* };
}
int_sample!(u8, i8, u16, i16, u32, i32, u64, i64);
macro_rules! float_sample {
    ($($t:ty),*) => { $(impl Sample for $t {
        fn nodata(n: f64) -> Option<Self> { (!n.is_nan()).then_some(n as $t) }
        fn is_nan(self) -> bool { <$t>::is_nan(self) }
    })* };
}
float_sample!(f32, f64);

fn typed_array<T>(
    buf: MutableBuffer,
    len: usize,
    cover: Window,
    stride: usize,
    nodata: Option<f64>,
) -> ArrayRef
where
    T: ArrowPrimitiveType,
    T::Native: Sample,
{
    let values = ScalarBuffer::<T::Native>::new(buf.into(), 0, len);
    let v: &[T::Native] = &values;
    let nodata = nodata.and_then(T::Native::nodata);
    // Valid: not nodata, not NaN (64 values at a time, vectorised) and
    // inside the covered window (runs of rows, ANDed in only when the file
    // does not cover the whole block).
    let values_ok = match nodata {
        Some(n) => collect_bits(v, |x| x != n && !x.is_nan()),
        None => collect_bits(v, |x| !x.is_nan()),
    };
    let full = cover.row == 0 && cover.col == 0 && cover.rows * cover.cols == len;
    let valid = if full {
        values_ok
    } else {
        &values_ok & &window_mask(len, stride, cover)
    };
    Arc::new(PrimitiveArray::<T>::new(
        values,
        Some(NullBuffer::new(valid)),
    ))
}

/// The pixels of `window` (relative to a block `stride` pixels wide), as
/// bits over the block's `len` pixels.
pub fn window_mask(len: usize, stride: usize, window: Window) -> BooleanBuffer {
    spans_mask(len, stride, |r| {
        (r as i64 >= window.row && (r as i64) < window.row_end())
            .then_some((window.col as usize, window.col_end() as usize))
    })
}

/// Bits over a block's `len` pixels (rows of `stride`), set in columns
/// `[a, b)` of each row `r` that `span(r)` gives; built by runs, not per pixel.
pub fn spans_mask(
    len: usize,
    stride: usize,
    span: impl Fn(usize) -> Option<(usize, usize)>,
) -> BooleanBuffer {
    let mut bits = BooleanBufferBuilder::new(len);
    for r in 0..len / stride.max(1) {
        match span(r) {
            Some((a, b)) if a < b && b <= stride => {
                bits.append_n(a, false);
                bits.append_n(b - a, true);
                bits.append_n(stride - b, false);
            }
            _ => bits.append_n(stride, false),
        }
    }
    bits.finish()
}
