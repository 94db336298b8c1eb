//! Reading a band's pixels: tiled DEFLATE GeoTIFFs (what Landsat Collection 2
//! and most archives are) are decoded here, everything else by GDAL.
//!
//! GDAL still opens every file and gives each tile's place in it (the
//! `BLOCK_OFFSET_x_y` / `BLOCK_SIZE_x_y` items of its `TIFF` metadata
//! domain), and the bytes are read through GDAL's virtual file layer, so
//! `/vsis3/`, `/vsicurl/` and the rest work as for any read. The tile is then
//! inflated with libdeflate and the horizontal predictor undone here. Why:
//! GDAL 3.6 asks libtiff for only the rows inside the file of a bottom tile,
//! and libtiff then decodes with zlib instead of libdeflate (about 2x the
//! CPU for the same bytes); and each tile passes through GDAL's block cache,
//! one more copy. On the benchmark's files (1020 rows of 512-row tiles) that
//! is every second tile row.
//!
//! Anything this does not handle exactly as libtiff would (strips, other
//! codecs, the floating-point predictor, bit-packed or pixel-interleaved
//! samples, big-endian files, sparse or unreadable tiles) goes through
//! GDAL's `RasterIO`, window by window.

use std::cell::RefCell;
use std::sync::Arc;

use gdal::{Dataset, Metadata};
use libdeflater::Decompressor;

use crate::cog::TiffHeader;
use crate::raster::{self, GdalSample, SampleType};
use crate::remote::TileBytes;
use crate::vsi::VsiFile;

/// Reads windows of one band of one file, in the file's pixels, as
/// `sample` values: the scan's reader, with one implementation per place
/// the bytes come from ([`GdalBand`]: a file GDAL opened, local or through
/// its network file systems; [`FetchedBand`]: an object-store COG whose
/// tiles were fetched beforehand). The tile carry wraps a reader
/// ([`crate::scan`]'s block reads).
pub trait BandRead {
    /// Read the window `(x, y, cols, rows)` in file pixels into `dst`, rows
    /// `dst_stride` samples apart, as [`raster::read_window`] does.
    fn read_window(
        &mut self,
        window: (usize, usize, usize, usize),
        sample: SampleType,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<(), String>;

    /// Keep the last `tiles` decoded tiles at hand (by default one), for a
    /// caller that reads parts of the same tiles one after the other.
    fn keep_decoded(&mut self, tiles: usize);
}

/// A band of a file GDAL opened: its tiles decoded here when the file is a
/// tiled DEFLATE GeoTIFF (GDAL gives each tile's place, the bytes come
/// through its virtual file layer), else read by GDAL's `RasterIO`.
pub struct GdalBand<'a> {
    ds: &'a Dataset,
    band: usize,
    tiles: Option<Tiles<'a>>,
}

impl<'a> GdalBand<'a> {
    /// A reader of band `band` (1-based) of `ds` (opened from `path`) as
    /// `sample.read_as()` values.
    pub fn new(ds: &'a Dataset, band: usize, path: &str, sample: SampleType) -> Self {
        GdalBand {
            ds,
            band,
            tiles: Tiles::new(ds, band, path, sample),
        }
    }

    /// True while the band's tiles are decoded here rather than by GDAL.
    pub fn is_direct(&self) -> bool {
        self.tiles.is_some()
    }
}

impl BandRead for GdalBand<'_> {
    fn read_window(
        &mut self,
        window: (usize, usize, usize, usize),
        sample: SampleType,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<(), String> {
        let band = match self.tiles {
            Some(_) => Some(self.ds.rasterband(self.band).map_err(|e| e.to_string())?),
            None => None,
        };
        if read_direct(
            &mut self.tiles,
            band.as_ref(),
            window,
            sample,
            dst,
            dst_stride,
        )? {
            return Ok(());
        }
        raster::read_window(self.ds, self.band, window, sample, dst, dst_stride)
    }

    fn keep_decoded(&mut self, tiles: usize) {
        if let Some(t) = &mut self.tiles {
            t.keep = tiles;
        }
    }
}

/// A band of an object-store COG, decoded here from its parsed header and
/// the compressed tiles fetched for the read; a tile that cannot be
/// decoded sends this and the band's later reads to GDAL (which opens the
/// object through its network file systems).
pub struct FetchedBand<'a> {
    path: String,
    band: usize,
    tiles: Option<Tiles<'a>>,
    /// The dataset GDAL opened once reads went to it.
    gdal: Option<Dataset>,
}

impl<'a> FetchedBand<'a> {
    /// A reader of band `band` (1-based) of the object at `path` (a URL)
    /// as `sample` values, from its parsed `header` and the tiles in
    /// `fetched`; None when [`decodes`] says it cannot be decoded here.
    pub fn new(
        header: Arc<TiffHeader>,
        fetched: &'a TileBytes,
        band: usize,
        path: &str,
        sample: SampleType,
    ) -> Option<Self> {
        if !decodes(&header, sample) {
            return None;
        }
        let plane = if header.planes() > 1 { band - 1 } else { 0 };
        let (tw, th) = header.tile?;
        let tiles = Tiles::with_source(
            path,
            (tw, th),
            (header.width, header.height),
            sample,
            header.predictor == 2,
            Source::Fetched {
                header,
                plane,
                fetched,
            },
        );
        Some(FetchedBand {
            path: path.to_string(),
            band,
            tiles: Some(tiles),
            gdal: None,
        })
    }
}

impl BandRead for FetchedBand<'_> {
    fn read_window(
        &mut self,
        window: (usize, usize, usize, usize),
        sample: SampleType,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<(), String> {
        if read_direct(&mut self.tiles, None, window, sample, dst, dst_stride)? {
            return Ok(());
        }
        if self.gdal.is_none() {
            self.gdal = Some(raster::open_for_read(&self.path).map_err(|e| e.to_string())?);
        }
        let ds = self.gdal.as_ref().ok_or("internal: no dataset")?;
        raster::read_window(ds, self.band, window, sample, dst, dst_stride)
    }

    fn keep_decoded(&mut self, tiles: usize) {
        if let Some(t) = &mut self.tiles {
            t.keep = tiles;
        }
    }
}

/// Read a window with `tiles` (decoded here) if the band has them: true
/// when done (an empty window too). A tile they cannot decode ends their
/// use: this read and the band's later ones go to GDAL (which reads or
/// reports it).
fn read_direct(
    tiles: &mut Option<Tiles>,
    band: Option<&gdal::raster::RasterBand>,
    window: (usize, usize, usize, usize),
    sample: SampleType,
    dst: &mut [u8],
    dst_stride: usize,
) -> Result<bool, String> {
    let (_, _, cols, rows) = window;
    if cols == 0 || rows == 0 {
        return Ok(true);
    }
    let Some(t) = tiles else {
        return Ok(false);
    };
    raster::check_destination(window, sample.bytes(), dst.len(), dst_stride)?;
    if t.read_window(band, window, dst, dst_stride) {
        return Ok(true);
    }
    *tiles = None;
    Ok(false)
}

/// True when the tiles of a file with this header are decoded here as
/// `sample` values: tiled, DEFLATE, little-endian, one sample per pixel or
/// band-interleaved, no predictor or the horizontal one on integers, whole
/// bytes per sample.
pub fn decodes(h: &TiffHeader, sample: SampleType) -> bool {
    let (bits, format) = match sample {
        SampleType::U8 => (8, 1),
        SampleType::U16 => (16, 1),
        SampleType::I16 => (16, 2),
        SampleType::U32 => (32, 1),
        SampleType::I32 => (32, 2),
        SampleType::U64 => (64, 1),
        SampleType::I64 => (64, 2),
        SampleType::F32 => (32, 3),
        SampleType::F64 => (64, 3),
        SampleType::I8 => return false,
    };
    !h.big_endian
        && h.tile.is_some()
        && matches!(h.compression, 8 | 32946)
        && (h.predictor == 1 || (h.predictor == 2 && format != 3))
        && (h.samples_per_pixel == 1 || h.planar_config == 2)
        && h.bits_per_sample == bits
        && h.sample_format == format
}

/// Where a band's tiles come from.
enum Source<'a> {
    /// GDAL gives each tile's place; the bytes are read through its virtual
    /// file layer (the file opened at the first tile decoded, so a read
    /// whose tiles all come from elsewhere opens nothing).
    Gdal { file: Option<VsiFile> },
    /// The parsed header gives each tile's place; the bytes were fetched.
    Fetched {
        header: Arc<TiffHeader>,
        plane: usize,
        fetched: &'a TileBytes,
    },
}

/// The tiles of one band of a tiled DEFLATE GeoTIFF.
struct Tiles<'a> {
    path: String,
    source: Source<'a>,
    /// Tile width and height, in pixels.
    tile: (usize, usize),
    /// Raster width and height.
    size: (usize, usize),
    /// Bytes per sample.
    bytes: usize,
    /// Horizontal differencing (TIFF predictor 2) to undo.
    predictor: bool,
    inflater: Decompressor,
    compressed: Vec<u8>,
    /// Decoded tiles (index, samples), most recent last, at most `keep`.
    decoded: Vec<(usize, Vec<u8>)>,
    keep: usize,
}

impl<'a> Tiles<'a> {
    fn new(ds: &Dataset, band: usize, path: &str, sample: SampleType) -> Option<Self> {
        if ds.driver().short_name() != "GTiff" || sample.read_as() != sample {
            return None;
        }
        let structure = |key: &str| ds.metadata_item(key, "IMAGE_STRUCTURE");
        if structure("COMPRESSION").as_deref() != Some("DEFLATE") {
            return None;
        }
        let predictor = match structure("PREDICTOR").as_deref() {
            None | Some("1") => false,
            Some("2") if !sample.is_float() => true,
            _ => return None,
        };
        let one_sample_per_pixel =
            ds.raster_count() == 1 || structure("INTERLEAVE").as_deref() == Some("BAND");
        let rb = ds.rasterband(band).ok()?;
        let (bw, bh) = rb.block_size();
        let size = ds.raster_size();
        // Strips (blocks as wide as the file) store a short last strip; only
        // tiles, all of full size, are decoded here.
        if !one_sample_per_pixel
            || bw == 0
            || bh == 0
            || bw >= size.0
            || rb.metadata_item("NBITS", "IMAGE_STRUCTURE").is_some()
            || SampleType::from_gdal(rb.band_type()) != Some(sample)
        {
            return None;
        }
        Some(Self::with_source(
            path,
            (bw, bh),
            size,
            sample,
            predictor,
            Source::Gdal { file: None },
        ))
    }

    fn with_source(
        path: &str,
        tile: (usize, usize),
        size: (usize, usize),
        sample: SampleType,
        predictor: bool,
        source: Source<'a>,
    ) -> Self {
        Tiles {
            path: path.to_string(),
            source,
            tile,
            size,
            bytes: sample.bytes(),
            predictor,
            inflater: Decompressor::new(),
            compressed: SPARE.with_borrow_mut(Vec::pop).unwrap_or_default(),
            decoded: Vec::new(),
            keep: 1,
        }
    }

    /// Read a non-empty window whose destination holds it (see
    /// [`BandRead::read_window`]); false when one of its tiles cannot be
    /// decoded here (nothing is promised about `dst`). `band` is GDAL's
    /// band for a [`Source::Gdal`].
    fn read_window(
        &mut self,
        band: Option<&gdal::raster::RasterBand>,
        (x, y, cols, rows): (usize, usize, usize, usize),
        dst: &mut [u8],
        dst_stride: usize,
    ) -> bool {
        let (tw, th) = self.tile;
        if x + cols > self.size.0 || y + rows > self.size.1 {
            return false;
        }
        let across = self.size.0.div_ceil(tw);
        for ty in y / th..(y + rows).div_ceil(th) {
            for tx in x / tw..(x + cols).div_ceil(tw) {
                let Some(slot) = self.tile_slot(band, ty * across + tx, tx, ty) else {
                    return false;
                };
                let tile = &self.decoded[slot].1;
                // The window's part of the tile, in file pixels.
                let (c0, c1) = (x.max(tx * tw), (x + cols).min((tx + 1) * tw));
                let (r0, r1) = (y.max(ty * th), (y + rows).min((ty + 1) * th));
                let n = (c1 - c0) * self.bytes;
                for r in r0..r1 {
                    let s = ((r - ty * th) * tw + (c0 - tx * tw)) * self.bytes;
                    let d = ((r - y) * dst_stride + (c0 - x)) * self.bytes;
                    dst[d..d + n].copy_from_slice(&tile[s..s + n]);
                }
            }
        }
        true
    }

    /// The slot in `decoded` of tile `(tx, ty)` (index `index`), decoding it
    /// if it is not there; None when it cannot be decoded here.
    fn tile_slot(
        &mut self,
        band: Option<&gdal::raster::RasterBand>,
        index: usize,
        tx: usize,
        ty: usize,
    ) -> Option<usize> {
        if let Some(slot) = self.decoded.iter().position(|(i, _)| *i == index) {
            return Some(slot);
        }
        let compressed: &[u8] = match &mut self.source {
            Source::Gdal { file } => {
                let band = band?;
                let item = |what: &str| -> Option<u64> {
                    band.metadata_item(&format!("BLOCK_{what}_{tx}_{ty}"), "TIFF")?
                        .parse()
                        .ok()
                };
                let (offset, len) = (item("OFFSET")?, item("SIZE")?);
                // Sparse tiles (offset 0) are GDAL's to fill with nodata.
                if offset == 0 || len == 0 {
                    return None;
                }
                self.compressed.resize(usize::try_from(len).ok()?, 0);
                if !opened(file, &self.path)?.read_at(offset, &mut self.compressed) {
                    return None;
                }
                &self.compressed
            }
            Source::Fetched {
                header,
                plane,
                fetched,
            } => {
                let i = header.tile_index(*plane, tx, ty)?;
                match fetched.get(&self.path, i) {
                    Some(b) => b,
                    // A tile the read expected another block to decode.
                    None => {
                        let bytes = fetched.fetch_now(&self.path, i, header.tile_range(i)?)?;
                        self.compressed.clear();
                        self.compressed.extend_from_slice(&bytes);
                        &self.compressed
                    }
                }
            }
        };
        let (tw, th) = self.tile;
        let want = tw * th * self.bytes;
        // Reuse the oldest buffer once `keep` tiles (at least one) are held.
        let mut buf = if self.decoded.len() >= self.keep.max(1) {
            self.decoded.remove(0).1
        } else {
            SPARE.with_borrow_mut(Vec::pop).unwrap_or_default()
        };
        buf.resize(want, 0);
        match self.inflater.zlib_decompress(compressed, &mut buf) {
            Ok(n) if n == want => {}
            _ => return None,
        }
        if self.predictor {
            undo_horizontal_predictor(&mut buf, tw, self.bytes);
        }
        self.decoded.push((index, buf));
        Some(self.decoded.len() - 1)
    }
}

impl Drop for Tiles<'_> {
    fn drop(&mut self) {
        let compressed = std::mem::take(&mut self.compressed);
        let decoded = std::mem::take(&mut self.decoded);
        SPARE.with_borrow_mut(|spare| {
            for buf in std::iter::once(compressed).chain(decoded.into_iter().map(|(_, b)| b)) {
                if spare.len() < SPARE_BUFFERS {
                    spare.push(buf);
                }
            }
        });
    }
}

/// Buffers a thread's reads pass on to its next read: a scan thread reads
/// one file band after another, and fresh tile-sized buffers each time
/// cost page faults and stay with the allocator.
const SPARE_BUFFERS: usize = 8;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Undo TIFF predictor 2 (each sample stored as the difference to the one
/// before it in its row, wrapping) on little-endian samples of `bytes`
/// bytes, rows of `width` samples.
fn undo_horizontal_predictor(buf: &mut [u8], width: usize, bytes: usize) {
    macro_rules! accumulate {
        ($t:ty) => {{
            for row in buf.chunks_exact_mut(width * bytes) {
                let mut acc: $t = 0;
                for s in row.chunks_exact_mut(bytes) {
                    let v = <$t>::from_le_bytes(s.try_into().expect("sample width"));
                    acc = acc.wrapping_add(v);
                    s.copy_from_slice(&acc.to_le_bytes());
                }
            }
        }};
    }
    match bytes {
        1 => accumulate!(u8),
        2 => buf.chunks_exact_mut(width * bytes).for_each(prefix_sum_u16),
        4 => accumulate!(u32),
        8 => accumulate!(u64),
        _ => unreachable!("integer samples are 1, 2, 4 or 8 bytes"),
    }
}

/// The file of `slot`, opened from `path` if it is not yet; None if it
/// cannot be opened or is not a little-endian TIFF.
fn opened<'f>(slot: &'f mut Option<VsiFile>, path: &str) -> Option<&'f mut VsiFile> {
    if slot.is_none() {
        let mut file = VsiFile::open(path)?;
        let mut magic = [0u8; 2];
        if !file.read_at(0, &mut magic) || &magic != b"II" {
            return None;
        }
        *slot = Some(file);
    }
    slot.as_mut()
}

/// Wrapping running sum, in place, of one row of little-endian u16
/// samples: predictor 2's inverse for the most common sample type (Landsat
/// and Sentinel-2 bands), 8 samples at a time on x86-64 (a log-step sum
/// within each 16 bytes plus the carry from the ones before), where the
/// one-at-a-time loop is bound by its chain of additions.
fn prefix_sum_u16(row: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is in every x86-64 CPU.
    let (mut acc, done) = unsafe { prefix_sum_u16_sse2(row) };
    #[cfg(not(target_arch = "x86_64"))]
    let (mut acc, done) = (0u16, 0);
    for s in row[done..].chunks_exact_mut(2) {
        acc = acc.wrapping_add(u16::from_le_bytes([s[0], s[1]]));
        s.copy_from_slice(&acc.to_le_bytes());
    }
}

/// [`prefix_sum_u16`] over the whole 16-byte chunks of `row`: the running
/// sum so far and the bytes done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn prefix_sum_u16_sse2(row: &mut [u8]) -> (u16, usize) {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi16, _mm_extract_epi16, _mm_loadu_si128, _mm_setzero_si128,
        _mm_shufflehi_epi16, _mm_slli_si128, _mm_storeu_si128, _mm_unpackhi_epi64,
    };
    let mut carry = _mm_setzero_si128();
    let mut chunks = row.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `chunk` is 16 bytes; unaligned loads and stores are allowed.
        let mut v = unsafe { _mm_loadu_si128(p) };
        v = _mm_add_epi16(v, _mm_slli_si128::<2>(v));
        v = _mm_add_epi16(v, _mm_slli_si128::<4>(v));
        v = _mm_add_epi16(v, _mm_slli_si128::<8>(v));
        v = _mm_add_epi16(v, carry);
        // SAFETY: as above.
        unsafe { _mm_storeu_si128(p, v) };
        // The last sum, in every lane.
        let high = _mm_shufflehi_epi16::<0xFF>(v);
        carry = _mm_unpackhi_epi64(high, high);
    }
    let rest = chunks.into_remainder().len();
    (_mm_extract_epi16::<7>(carry) as u16, row.len() - rest)
}

#[cfg(test)]
mod tests {
    use gdal::DriverManager;
    use gdal::raster::{Buffer, GdalType, RasterCreationOptions};

    use super::*;

    const W: usize = 150;
    const H: usize = 100;

    /// Samples that jump around (so predictor differences wrap).
    fn values<T: TryFrom<u64>>(band: u64, modulo: u64) -> Vec<T> {
        (0..(W * H) as u64)
            .map(|i| {
                let v = (i + 1 + band * 7919).wrapping_mul(2_654_435_761) >> 7;
                T::try_from(v % modulo).ok().expect("value in range")
            })
            .collect()
    }

    /// Write a `W x H` GeoTIFF of `bands` bands with creation `options`.
    fn write<T: GdalType + Copy + TryFrom<u64>>(
        path: &std::path::Path,
        bands: usize,
        modulo: u64,
        options: &[(&str, &str)],
    ) -> Vec<Vec<T>> {
        let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
        let mut opts = RasterCreationOptions::new();
        for (k, v) in options {
            opts.add_name_value(k, v).expect("creation option");
        }
        let ds = driver
            .create_with_band_type_with_options::<T, _>(path, W, H, bands, &opts)
            .expect("create");
        let mut all = Vec::new();
        for b in 1..=bands {
            let data: Vec<T> = values(b as u64, modulo);
            let mut buf = Buffer::new((W, H), data.clone());
            ds.rasterband(b)
                .expect("band")
                .write((0, 0), (W, H), &mut buf)
                .expect("write");
            all.push(data);
        }
        all
    }

    /// Windows inside one tile, across tiles, at the right and bottom
    /// edges (partial tiles) and the whole raster.
    const WINDOWS: [(usize, usize, usize, usize); 5] = [
        (3, 2, 10, 5),
        (20, 10, 100, 60),
        (130, 70, 20, 30),
        (0, 95, 150, 5),
        (0, 0, W, H),
    ];

    /// Read `WINDOWS` of every band of `path` through a [`GdalBand`]
    /// (rows 7 samples wider than the window) and compare with `expected`.
    fn check<T: GdalType + Copy + PartialEq + std::fmt::Debug>(
        path: &std::path::Path,
        sample: SampleType,
        expected: &[Vec<T>],
        direct: bool,
    ) {
        let ds = Dataset::open(path).expect("open");
        let size = std::mem::size_of::<T>();
        for (b, want) in expected.iter().enumerate() {
            let mut reader = GdalBand::new(&ds, b + 1, path.to_str().unwrap(), sample);
            reader.keep_decoded(2);
            assert_eq!(reader.is_direct(), direct, "{path:?} band {}", b + 1);
            for &(x, y, cols, rows) in &WINDOWS {
                let stride = cols + 7;
                let mut dst = vec![0u8; stride * rows * size];
                reader
                    .read_window((x, y, cols, rows), sample, &mut dst, stride)
                    .expect("read");
                for r in 0..rows {
                    for c in 0..cols {
                        let o = (r * stride + c) * size;
                        // SAFETY: `o + size <= dst.len()`; unaligned read of a `T`.
                        let got = unsafe { dst.as_ptr().add(o).cast::<T>().read_unaligned() };
                        let w = want[(y + r) * W + x + c];
                        assert_eq!(
                            got,
                            w,
                            "{path:?} band {} pixel ({}, {})",
                            b + 1,
                            x + c,
                            y + r
                        );
                    }
                }
            }
        }
    }

    const TILED: [(&str, &str); 4] = [
        ("TILED", "YES"),
        ("BLOCKXSIZE", "64"),
        ("BLOCKYSIZE", "32"),
        ("COMPRESS", "DEFLATE"),
    ];

    #[test]
    fn deflate_tiles_are_decoded_here_as_the_file_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            TILED.iter().copied().chain(extra.iter().copied()).collect()
        };
        let p = dir.path().join("u16_p2.tif");
        let e = write::<u16>(&p, 1, 65536, &with(&[("PREDICTOR", "2")]));
        check(&p, SampleType::U16, &e, true);
        let p = dir.path().join("u16_p1.tif");
        let e = write::<u16>(&p, 1, 65536, &with(&[]));
        check(&p, SampleType::U16, &e, true);
        let p = dir.path().join("u8_p2.tif");
        let e = write::<u8>(&p, 1, 256, &with(&[("PREDICTOR", "2")]));
        check(&p, SampleType::U8, &e, true);
        let p = dir.path().join("i32_p2.tif");
        let e = write::<u32>(&p, 1, u32::MAX as u64, &with(&[("PREDICTOR", "2")]));
        check(&p, SampleType::U32, &e, true);
        // Bands in separate planes: each band's own tiles.
        let p = dir.path().join("u16_bands.tif");
        let e = write::<u16>(
            &p,
            3,
            65536,
            &with(&[("PREDICTOR", "2"), ("INTERLEAVE", "BAND")]),
        );
        check(&p, SampleType::U16, &e, true);
        // Floats without predictor.
        let p = dir.path().join("f32_p1.tif");
        let e: Vec<Vec<f32>> = vec![
            values::<u32>(1, 1 << 24)
                .into_iter()
                .map(|x| x as f32 / 7.0)
                .collect(),
        ];
        write_f32(&p, &e[0], &with(&[]));
        check(&p, SampleType::F32, &e, true);
    }

    fn write_f32(path: &std::path::Path, data: &[f32], options: &[(&str, &str)]) {
        let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
        let mut opts = RasterCreationOptions::new();
        for (k, v) in options {
            opts.add_name_value(k, v).expect("creation option");
        }
        let ds = driver
            .create_with_band_type_with_options::<f32, _>(path, W, H, 1, &opts)
            .expect("create");
        let mut buf = Buffer::new((W, H), data.to_vec());
        ds.rasterband(1)
            .expect("band")
            .write((0, 0), (W, H), &mut buf)
            .expect("write");
    }

    #[test]
    fn other_layouts_and_codecs_are_read_by_gdal() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<(&str, &str)>); 4] = [
            (
                "strips.tif",
                vec![("COMPRESS", "DEFLATE"), ("PREDICTOR", "2")],
            ),
            (
                "lzw.tif",
                vec![
                    ("TILED", "YES"),
                    ("BLOCKXSIZE", "64"),
                    ("BLOCKYSIZE", "32"),
                    ("COMPRESS", "LZW"),
                ],
            ),
            ("pixel.tif", {
                let mut o = TILED.to_vec();
                o.push(("INTERLEAVE", "PIXEL"));
                o
            }),
            ("nbits.tif", {
                let mut o = TILED.to_vec();
                o.push(("NBITS", "12"));
                o
            }),
        ];
        for (name, options) in cases {
            let p = dir.path().join(name);
            let (bands, modulo) = if name == "pixel.tif" {
                (2, 65536)
            } else {
                (1, 4096)
            };
            let e = write::<u16>(&p, bands, modulo, &options);
            check(&p, SampleType::U16, &e, false);
        }
    }

    #[test]
    fn a_corrupt_tile_is_left_to_gdal_which_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.tif");
        write::<u16>(&p, 1, 65536, &TILED);
        let offset: usize = Dataset::open(&p)
            .expect("open")
            .rasterband(1)
            .unwrap()
            .metadata_item("BLOCK_OFFSET_1_1", "TIFF")
            .expect("tile offset")
            .parse()
            .unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[offset + 2..offset + 40].fill(0xff);
        std::fs::write(&p, &bytes).unwrap();
        let ds = Dataset::open(&p).expect("open");
        let mut reader = GdalBand::new(&ds, 1, p.to_str().unwrap(), SampleType::U16);
        assert!(reader.is_direct());
        let mut dst = vec![0u8; W * H * 2];
        let err = reader
            .read_window((0, 0, W, H), SampleType::U16, &mut dst, W)
            .expect_err("a corrupt tile is an error");
        assert!(!reader.is_direct(), "GDAL reads the band from then on");
        assert!(!err.is_empty());
        // Tiles before the corrupt one still read.
        let mut dst = vec![0u8; 64 * 32 * 2];
        reader
            .read_window((0, 0, 64, 32), SampleType::U16, &mut dst, 64)
            .expect("an intact tile");
    }

    #[test]
    fn the_predictor_is_undone_per_row_with_wrapping() {
        // Two rows of three u16 differences, little-endian.
        let diffs: [u16; 6] = [10, 5, 65535, 7, 1, 2];
        let mut buf: Vec<u8> = diffs.iter().flat_map(|v| v.to_le_bytes()).collect();
        undo_horizontal_predictor(&mut buf, 3, 2);
        let values: Vec<u16> = buf
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, vec![10, 15, 14, 7, 8, 10]);
    }

    /// The 8-at-a-time u16 sum gives the plain running sum (wrapping) for
    /// rows of every length around its 8-sample steps.
    #[test]
    fn the_u16_predictor_matches_a_plain_running_sum() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for width in (0..40).chain([255, 256, 257, 512]) {
            let diffs: Vec<u16> = (0..width * 3)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u16
                })
                .collect();
            let mut buf: Vec<u8> = diffs.iter().flat_map(|v| v.to_le_bytes()).collect();
            if width > 0 {
                undo_horizontal_predictor(&mut buf, width, 2);
            }
            let got: Vec<u16> = buf
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let want: Vec<u16> = diffs
                .chunks(width.max(1))
                .flat_map(|row| {
                    row.iter().scan(0u16, |acc, &d| {
                        *acc = acc.wrapping_add(d);
                        Some(*acc)
                    })
                })
                .collect();
            assert_eq!(got, want, "width {width}");
        }
    }
}
