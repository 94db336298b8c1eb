//! TIFF, BigTIFF and Cloud-Optimized GeoTIFF headers, parsed in plain Rust
//! from the first bytes of a file.
//!
//! sceneql reads COGs from object stores itself: one ranged GET of the start
//! of a file (64 KiB by default), [`parse`] here, then one range request per
//! tile a query needs (decoded elsewhere). [`parse`] gives what that takes
//! without GDAL: the raster's size, block layout, sample type and codec, its
//! georeferencing (geotransform, EPSG code, nodata, read the way GDAL reads
//! them) and the offset and size of every tile or strip. Only the first image
//! directory (IFD) is read: in a COG it is the full-resolution image, and the
//! overviews and masks in the IFDs after it are not needed. When the bytes
//! given end before the parts of the header the parse needs,
//! [`HeaderError::NeedBytes`] says how long a prefix would do.
//!
//! No input makes this panic, and nothing is allocated from a count read in
//! the file before the bytes that count covers are known to be there.

use std::ops::Range;

/// Why a header could not be parsed from the bytes given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// The header (IFD entries or out-of-line tag values it needs) continues past
    /// the bytes given: call again with at least the first `.0` bytes of the file.
    /// For a corrupt file this can be more than the file's size.
    #[error("the header needs the first {0} bytes of the file")]
    NeedBytes(u64),
    #[error("not a TIFF file")]
    NotTiff,
    #[error("malformed TIFF header: {0}")]
    Malformed(String),
}

/// The first (full-resolution) image of a TIFF file, as sceneql needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TiffHeader {
    pub big_endian: bool,
    pub big_tiff: bool,
    pub width: usize,
    pub height: usize,
    /// Tile width/height when tiled; None for strips.
    pub tile: Option<(usize, usize)>,
    /// Rows per strip when stripped (None when tiled), at most `height`.
    pub rows_per_strip: Option<usize>,
    pub samples_per_pixel: u16,
    /// The first sample's; the parse fails if samples differ.
    pub bits_per_sample: u16,
    /// TIFF SampleFormat: 1 unsigned int, 2 signed int, 3 IEEE float (default 1).
    pub sample_format: u16,
    /// 1 chunky (pixel interleaved), 2 planar (band per plane). Default 1.
    pub planar_config: u16,
    /// TIFF Compression tag (1 none, 5 LZW, 7 JPEG, 8/32946 Deflate, 50000 ZSTD, ...).
    pub compression: u16,
    /// TIFF Predictor (1 none, 2 horizontal, 3 floating point). Default 1.
    pub predictor: u16,
    /// TileOffsets/TileByteCounts (or StripOffsets/StripByteCounts), in file order
    /// (for planar config 2: all tiles of plane 0, then plane 1, ...).
    pub offsets: Vec<u64>,
    pub byte_counts: Vec<u64>,
    /// GDAL-order geotransform (x0, dx, rot, y0, rot, dy) from ModelTransformationTag (34264)
    /// or ModelPixelScaleTag (33550) + ModelTiepointTag (33922); the PixelIsPoint half-pixel
    /// shift applied the way GDAL does by default (GTRasterTypeGeoKey 1025 == 2 => shift
    /// x0 by -dx/2 and y0 by -dy/2, i.e. GDAL reports pixel-corner coordinates).
    pub geotransform: Option<[f64; 6]>,
    /// ProjectedCSTypeGeoKey (3072) if set and not 32767 (user-defined), else
    /// GeographicTypeGeoKey (2048) likewise; from GeoKeyDirectoryTag (34735).
    pub epsg: Option<u32>,
    /// GDAL_NODATA tag (42113), an ASCII number ("nan", "-inf" too).
    pub nodata: Option<f64>,
    /// Byte offset one past the last header byte this parse used (IFD and the
    /// out-of-line values it read): the size of the prefix that suffices.
    pub header_end: u64,
}

impl TiffHeader {
    /// Width and height of one block: the tile, or the full width by the rows
    /// of a strip.
    pub fn block_size(&self) -> (usize, usize) {
        match self.tile {
            Some(tile) => tile,
            None => (self.width, self.rows_per_strip.unwrap_or(self.height)),
        }
    }

    /// How many planes the blocks are stored in: one per sample for planar
    /// config 2, else one.
    pub fn planes(&self) -> usize {
        if self.planar_config == 2 {
            usize::from(self.samples_per_pixel)
        } else {
            1
        }
    }

    /// Tiles across (1 for strips).
    pub fn tiles_across(&self) -> usize {
        self.width.div_ceil(self.block_size().0.max(1))
    }

    /// Tiles (or strips) down.
    pub fn tiles_down(&self) -> usize {
        self.height.div_ceil(self.block_size().1.max(1))
    }

    /// Index into offsets/byte_counts of tile (tx, ty) of 0-based plane `plane`
    /// (always 0 for planar config 1), or None if out of range. Strips are
    /// tiles (0, ty).
    pub fn tile_index(&self, plane: usize, tx: usize, ty: usize) -> Option<usize> {
        let (across, down) = (self.tiles_across(), self.tiles_down());
        if plane >= self.planes() || tx >= across || ty >= down {
            return None;
        }
        let index = plane
            .checked_mul(down)?
            .checked_add(ty)?
            .checked_mul(across)?
            .checked_add(tx)?;
        (index < self.offsets.len().min(self.byte_counts.len())).then_some(index)
    }

    /// The byte range [start, end) of tile `index` in the file; None for a sparse
    /// tile (offset 0 or byte count 0) or an index out of range.
    pub fn tile_range(&self, index: usize) -> Option<Range<u64>> {
        let start = *self.offsets.get(index)?;
        let len = *self.byte_counts.get(index)?;
        if start == 0 || len == 0 {
            return None;
        }
        Some(start..start.checked_add(len)?)
    }
}

// Baseline and extension TIFF tags.
const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const STRIP_OFFSETS: u16 = 273;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const PLANAR_CONFIGURATION: u16 = 284;
const PREDICTOR: u16 = 317;
const TILE_WIDTH: u16 = 322;
const TILE_LENGTH: u16 = 323;
const TILE_OFFSETS: u16 = 324;
const TILE_BYTE_COUNTS: u16 = 325;
const SAMPLE_FORMAT: u16 = 339;
// GeoTIFF and GDAL tags.
const MODEL_PIXEL_SCALE: u16 = 33550;
const MODEL_TIEPOINT: u16 = 33922;
const MODEL_TRANSFORMATION: u16 = 34264;
const GEO_KEY_DIRECTORY: u16 = 34735;
const GDAL_NODATA: u16 = 42113;
// GeoKeys.
const GT_RASTER_TYPE: u16 = 1025;
const GEOGRAPHIC_TYPE: u16 = 2048;
const PROJECTED_CS_TYPE: u16 = 3072;
const RASTER_PIXEL_IS_POINT: u64 = 2;
const USER_DEFINED: u64 = 32767;

// TIFF field types.
const BYTE: u16 = 1;
const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const SBYTE: u16 = 6;
const UNDEFINED: u16 = 7;
const SSHORT: u16 = 8;
const SLONG: u16 = 9;
const SRATIONAL: u16 = 10;
const FLOAT: u16 = 11;
const DOUBLE: u16 = 12;
const IFD: u16 = 13;
const LONG8: u16 = 16;
const SLONG8: u16 = 17;
const IFD8: u16 = 18;

/// Parse the first image of the TIFF file whose first bytes are `prefix`.
pub fn parse(prefix: &[u8]) -> Result<TiffHeader, HeaderError> {
    let (big_endian, big_tiff, ifd_offset) = file_header(prefix)?;
    Ifd::read(prefix, big_endian, big_tiff, ifd_offset)?.header()
}

fn malformed(message: impl Into<String>) -> HeaderError {
    HeaderError::Malformed(message.into())
}

/// A tag's number and, for the tags read here, its name.
fn tag_name(tag: u16) -> String {
    let name = match tag {
        IMAGE_WIDTH => "ImageWidth",
        IMAGE_LENGTH => "ImageLength",
        BITS_PER_SAMPLE => "BitsPerSample",
        COMPRESSION => "Compression",
        STRIP_OFFSETS => "StripOffsets",
        SAMPLES_PER_PIXEL => "SamplesPerPixel",
        ROWS_PER_STRIP => "RowsPerStrip",
        STRIP_BYTE_COUNTS => "StripByteCounts",
        PLANAR_CONFIGURATION => "PlanarConfiguration",
        PREDICTOR => "Predictor",
        TILE_WIDTH => "TileWidth",
        TILE_LENGTH => "TileLength",
        TILE_OFFSETS => "TileOffsets",
        TILE_BYTE_COUNTS => "TileByteCounts",
        SAMPLE_FORMAT => "SampleFormat",
        MODEL_PIXEL_SCALE => "ModelPixelScale",
        MODEL_TIEPOINT => "ModelTiepoint",
        MODEL_TRANSFORMATION => "ModelTransformation",
        GEO_KEY_DIRECTORY => "GeoKeyDirectory",
        GDAL_NODATA => "GDAL_NODATA",
        _ => return format!("tag {tag}"),
    };
    format!("tag {tag} ({name})")
}

/// Size in bytes of one value of field type `field_type`; None for a type
/// TIFF does not define.
fn type_size(field_type: u16) -> Option<u64> {
    match field_type {
        BYTE | ASCII | SBYTE | UNDEFINED => Some(1),
        SHORT | SSHORT => Some(2),
        LONG | SLONG | FLOAT | IFD => Some(4),
        RATIONAL | SRATIONAL | DOUBLE | LONG8 | SLONG8 | IFD8 => Some(8),
        _ => None,
    }
}

/// `N` bytes of `buf` at file offset `at`, None past its end.
fn bytes_at<const N: usize>(buf: &[u8], at: u64) -> Option<[u8; N]> {
    let start = usize::try_from(at).ok()?;
    buf.get(start..start.checked_add(N)?)?.try_into().ok()
}

fn u16_of(b: [u8; 2], big_endian: bool) -> u16 {
    if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_of(b: [u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn u64_of(b: [u8; 8], big_endian: bool) -> u64 {
    if big_endian {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    }
}

/// Byte order, BigTIFF or not, and the offset of the first IFD, from the
/// 8-byte (classic) or 16-byte (BigTIFF) file header.
fn file_header(buf: &[u8]) -> Result<(bool, bool, u64), HeaderError> {
    const MAGICS: [&[u8; 4]; 4] = [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"];
    let seen = buf.len().min(4);
    let Some(magic) = MAGICS.iter().find(|m| buf.get(..seen) == m.get(..seen)) else {
        return Err(HeaderError::NotTiff);
    };
    if seen < 4 {
        // Enough for either header (any TIFF file is longer).
        return Err(HeaderError::NeedBytes(16));
    }
    let big_endian = magic[0] == b'M';
    let big_tiff = magic[2] == b'+' || magic[3] == b'+';
    let header_len = if big_tiff { 16 } else { 8 };
    let (Some(b4), b8) = (bytes_at::<4>(buf, 4), bytes_at::<8>(buf, 8)) else {
        return Err(HeaderError::NeedBytes(header_len));
    };
    if !big_tiff {
        return Ok((big_endian, false, u64::from(u32_of(b4, big_endian))));
    }
    let Some(b8) = b8 else {
        return Err(HeaderError::NeedBytes(header_len));
    };
    let offset_size = u16_of([b4[0], b4[1]], big_endian);
    let reserved = u16_of([b4[2], b4[3]], big_endian);
    if offset_size != 8 || reserved != 0 {
        return Err(malformed(format!(
            "BigTIFF header with offset size {offset_size} and reserved field {reserved}"
        )));
    }
    Ok((big_endian, true, u64_of(b8, big_endian)))
}

/// One IFD entry: a tag, its field type, how many values and where they start.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    field_type: u16,
    count: u64,
    /// File offset of the first value: inside the entry when the values fit there.
    value_at: u64,
}

/// Some values of one entry, as stored in the file.
struct Values<'a> {
    bytes: &'a [u8],
    field_type: u16,
    big_endian: bool,
}

impl Values<'_> {
    fn len(&self) -> usize {
        let size = type_size(self.field_type).unwrap_or(1);
        self.bytes.len() / usize::try_from(size).unwrap_or(1)
    }

    fn raw<const N: usize>(&self, i: usize) -> Option<[u8; N]> {
        let start = i.checked_mul(N)?;
        self.bytes
            .get(start..start.checked_add(N)?)?
            .try_into()
            .ok()
    }

    /// Value `i` as an integer; None for a non-integer type or a negative value.
    fn uint(&self, i: usize) -> Option<u64> {
        let be = self.big_endian;
        match self.field_type {
            BYTE | UNDEFINED => self.raw::<1>(i).map(|b| u64::from(b[0])),
            SHORT => self.raw(i).map(|b| u64::from(u16_of(b, be))),
            LONG | IFD => self.raw(i).map(|b| u64::from(u32_of(b, be))),
            LONG8 | IFD8 => self.raw(i).map(|b| u64_of(b, be)),
            SBYTE | SSHORT | SLONG | SLONG8 => u64::try_from(self.int(i)?).ok(),
            _ => None,
        }
    }

    /// Value `i` of a signed integer type.
    fn int(&self, i: usize) -> Option<i64> {
        let be = self.big_endian;
        match self.field_type {
            SBYTE => self.raw::<1>(i).map(|b| i64::from(b[0] as i8)),
            SSHORT => self.raw(i).map(|b| i64::from(u16_of(b, be) as i16)),
            SLONG => self.raw(i).map(|b| i64::from(u32_of(b, be) as i32)),
            SLONG8 => self.raw(i).map(|b| u64_of(b, be) as i64),
            _ => None,
        }
    }

    /// Value `i` of any numeric type as a double.
    fn float(&self, i: usize) -> Option<f64> {
        let be = self.big_endian;
        match self.field_type {
            FLOAT => self
                .raw(i)
                .map(|b| f64::from(f32::from_bits(u32_of(b, be)))),
            DOUBLE => self.raw(i).map(|b| f64::from_bits(u64_of(b, be))),
            RATIONAL | SRATIONAL => {
                let b: [u8; 8] = self.raw(i)?;
                let num = u32_of([b[0], b[1], b[2], b[3]], be);
                let den = u32_of([b[4], b[5], b[6], b[7]], be);
                Some(if self.field_type == RATIONAL {
                    f64::from(num) / f64::from(den)
                } else {
                    f64::from(num as i32) / f64::from(den as i32)
                })
            }
            SBYTE | SSHORT | SLONG | SLONG8 => self.int(i).map(|v| v as f64),
            _ => self.uint(i).map(|v| v as f64),
        }
    }

    /// All values as integers.
    fn uints(&self, tag: u16) -> Result<Vec<u64>, HeaderError> {
        (0..self.len())
            .map(|i| self.uint(i))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| {
                malformed(format!(
                    "{} holds type {} values, not non-negative integers",
                    tag_name(tag),
                    self.field_type
                ))
            })
    }

    /// All values as doubles.
    fn floats(&self, tag: u16) -> Result<Vec<f64>, HeaderError> {
        (0..self.len())
            .map(|i| self.float(i))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| {
                malformed(format!(
                    "{} holds type {} values, not numbers",
                    tag_name(tag),
                    self.field_type
                ))
            })
    }
}

/// The entries of one IFD, and a record of the bytes read from them.
struct Ifd<'a> {
    buf: &'a [u8],
    big_endian: bool,
    big_tiff: bool,
    entries: Vec<Entry>,
    /// One past the last byte used so far.
    used: u64,
    /// One past the last needed byte that lies beyond `buf`; 0 while none does.
    missing: u64,
}

impl<'a> Ifd<'a> {
    /// The entries of the IFD at `offset`.
    fn read(
        buf: &'a [u8],
        big_endian: bool,
        big_tiff: bool,
        offset: u64,
    ) -> Result<Self, HeaderError> {
        if offset == 0 {
            return Err(malformed("the file has no image directory"));
        }
        let (count_len, entry_len, inline_len) = if big_tiff { (8, 20, 8) } else { (2, 12, 4) };
        let entries_at = offset
            .checked_add(count_len)
            .ok_or_else(|| malformed(format!("image directory at offset {offset}")))?;
        let count = if big_tiff {
            bytes_at(buf, offset).map(|b| u64_of(b, big_endian))
        } else {
            bytes_at(buf, offset).map(|b| u64::from(u16_of(b, big_endian)))
        };
        let Some(count) = count else {
            return Err(HeaderError::NeedBytes(entries_at));
        };
        if count == 0 {
            return Err(malformed("the first image directory has no entries"));
        }
        let end = count
            .checked_mul(entry_len)
            .and_then(|len| entries_at.checked_add(len))
            .ok_or_else(|| malformed(format!("image directory of {count} entries")))?;
        if end > buf.len() as u64 {
            return Err(HeaderError::NeedBytes(end));
        }
        // `count` entries lie within `buf`, so this is bounded by its length.
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let short = |at: u64| bytes_at(buf, at).map(|b| u16_of(b, big_endian));
        let long = |at: u64| bytes_at(buf, at).map(|b| u64::from(u32_of(b, big_endian)));
        let long8 = |at: u64| bytes_at(buf, at).map(|b| u64_of(b, big_endian));
        for i in 0..count {
            let at = entries_at + i * entry_len;
            let field_at = at + if big_tiff { 12 } else { 8 };
            let read = || -> Option<Entry> {
                let tag = short(at)?;
                let field_type = short(at + 2)?;
                let count = if big_tiff {
                    long8(at + 4)?
                } else {
                    long(at + 4)?
                };
                let inline = type_size(field_type)
                    .and_then(|size| size.checked_mul(count))
                    .is_some_and(|len| len <= inline_len);
                let value_at = match (inline, big_tiff) {
                    (true, _) => field_at,
                    (false, true) => long8(field_at)?,
                    (false, false) => long(field_at)?,
                };
                Some(Entry {
                    tag,
                    field_type,
                    count,
                    value_at,
                })
            };
            entries.push(read().ok_or_else(|| malformed("image directory entry"))?);
        }
        Ok(Ifd {
            buf,
            big_endian,
            big_tiff,
            entries,
            used: end,
            missing: 0,
        })
    }

    /// The entry of `tag` (the first one, if the tag is repeated).
    fn entry(&self, tag: u16) -> Option<Entry> {
        self.entries.iter().find(|e| e.tag == tag).copied()
    }

    /// The first `n` values of `e` (all if it has fewer); None, with
    /// `missing` raised, when they lie beyond the bytes given.
    fn values(&mut self, e: Entry, n: u64) -> Result<Option<Values<'a>>, HeaderError> {
        let size = type_size(e.field_type).ok_or_else(|| {
            malformed(format!(
                "{} has unknown field type {}",
                tag_name(e.tag),
                e.field_type
            ))
        })?;
        let end = n
            .min(e.count)
            .checked_mul(size)
            .and_then(|len| e.value_at.checked_add(len))
            .ok_or_else(|| malformed(format!("{} lies past 2^64 bytes", tag_name(e.tag))))?;
        self.used = self.used.max(end);
        let bytes = match (usize::try_from(e.value_at), usize::try_from(end)) {
            (Ok(start), Ok(stop)) => self.buf.get(start..stop),
            _ => None,
        };
        let Some(bytes) = bytes else {
            self.missing = self.missing.max(end);
            return Ok(None);
        };
        Ok(Some(Values {
            bytes,
            field_type: e.field_type,
            big_endian: self.big_endian,
        }))
    }

    /// The values of `tag`, at most `n` of them: Ok(None) when the tag is
    /// absent or (with `missing` raised) lies beyond the bytes given.
    fn tag_values(&mut self, tag: u16, n: u64) -> Result<Option<Values<'a>>, HeaderError> {
        match self.entry(tag) {
            Some(e) => self.values(e, n),
            None => Ok(None),
        }
    }

    /// The first value of `tag` as an integer: Ok(None) when the tag is absent
    /// or (with `missing` raised) lies beyond the bytes given.
    fn uint(&mut self, tag: u16) -> Result<Option<u64>, HeaderError> {
        let Some(values) = self.tag_values(tag, 1)? else {
            return Ok(None);
        };
        values.uint(0).map(Some).ok_or_else(|| {
            malformed(format!(
                "{} has no value, or not a non-negative integer",
                tag_name(tag)
            ))
        })
    }

    /// The first `n` integer values of `tag`, as [`Self::uint`] does.
    fn uints(&mut self, tag: u16, n: u64) -> Result<Option<Vec<u64>>, HeaderError> {
        match self.tag_values(tag, n)? {
            Some(values) => values.uints(tag).map(Some),
            None => Ok(None),
        }
    }

    /// Every value of `tag` as doubles, when there are at least `min` of them
    /// (then at most `max` are read).
    fn floats(&mut self, tag: u16, min: u64, max: u64) -> Result<Option<Vec<f64>>, HeaderError> {
        match self.entry(tag) {
            Some(e) if e.count >= min => match self.values(e, max)? {
                Some(values) => values.floats(tag).map(Some),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The ModelTransformation matrix, if it has the 16 values GDAL requires.
    fn matrix(&mut self) -> Result<Option<Vec<f64>>, HeaderError> {
        match self.entry(MODEL_TRANSFORMATION) {
            Some(e) if e.count == 16 => self.floats(MODEL_TRANSFORMATION, 16, 16),
            _ => Ok(None),
        }
    }

    /// `NeedBytes` for everything this IFD may need, when some of the tags
    /// that size the rest lie beyond the bytes given: the ends of the block
    /// arrays then come from the counts in their entries.
    fn need_all(mut self) -> HeaderError {
        for tag in [
            TILE_OFFSETS,
            TILE_BYTE_COUNTS,
            STRIP_OFFSETS,
            STRIP_BYTE_COUNTS,
        ] {
            if let Some(e) = self.entry(tag) {
                // An unknown type or absurd size is reported once the
                // bytes are there.
                let _ = self.values(e, e.count);
            }
        }
        let _ = self.georef();
        HeaderError::NeedBytes(self.missing)
    }

    /// The georeferencing tags, read as GDAL reads them: a pixel scale (two
    /// values, neither 0) with a tiepoint wins over a transformation matrix,
    /// so the matrix is read only when there is no scale.
    fn georef(&mut self) -> Result<Georef<'a>, HeaderError> {
        let keys = self.tag_values(GEO_KEY_DIRECTORY, u64::MAX)?;
        let scale_given = self.entry(MODEL_PIXEL_SCALE).is_some_and(|e| e.count >= 2);
        let (mut scale, mut tiepoint, mut matrix) = (None, None, None);
        if scale_given {
            scale = self.floats(MODEL_PIXEL_SCALE, 2, 2)?;
            tiepoint = self.floats(MODEL_TIEPOINT, 6, 6)?;
        } else {
            matrix = self.matrix()?;
        }
        let nodata = self.tag_values(GDAL_NODATA, u64::MAX)?;
        Ok(Georef {
            keys,
            scale_given,
            scale,
            tiepoint,
            matrix,
            nodata,
        })
    }

    /// The image this IFD describes.
    fn header(mut self) -> Result<TiffHeader, HeaderError> {
        let width = self.uint(IMAGE_WIDTH)?;
        let height = self.uint(IMAGE_LENGTH)?;
        let samples = self.uint(SAMPLES_PER_PIXEL)?;
        let compression = self.uint(COMPRESSION)?;
        let planar = self.uint(PLANAR_CONFIGURATION)?;
        let predictor = self.uint(PREDICTOR)?;
        let tile_width = self.uint(TILE_WIDTH)?;
        let tile_length = self.uint(TILE_LENGTH)?;
        let rows_per_strip = self.uint(ROWS_PER_STRIP)?;
        // One value per sample; only as many as there are samples are read.
        let per_sample = samples.unwrap_or(1);
        let bits = self.uints(BITS_PER_SAMPLE, per_sample)?;
        let formats = self.uints(SAMPLE_FORMAT, per_sample)?;
        if self.missing > 0 {
            return Err(self.need_all());
        }

        let dimension = |value: Option<u64>, tag: u16| -> Result<usize, HeaderError> {
            value
                .filter(|&v| v > 0)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| malformed(format!("{} is missing or 0", tag_name(tag))))
        };
        let short = |value: Option<u64>, default: u16, tag: u16| -> Result<u16, HeaderError> {
            value.map_or(Ok(default), |v| {
                u16::try_from(v).map_err(|_| malformed(format!("{} is {v}", tag_name(tag))))
            })
        };
        let width = dimension(width, IMAGE_WIDTH)?;
        let height = dimension(height, IMAGE_LENGTH)?;
        let samples_per_pixel = short(samples, 1, SAMPLES_PER_PIXEL)?;
        if samples_per_pixel == 0 {
            return Err(malformed("SamplesPerPixel is 0"));
        }
        let compression = short(compression, 1, COMPRESSION)?;
        let predictor = short(predictor, 1, PREDICTOR)?;
        let planar_config = short(planar, 1, PLANAR_CONFIGURATION)?;
        if planar_config != 1 && planar_config != 2 {
            return Err(malformed(format!("PlanarConfiguration is {planar_config}")));
        }
        let same_for_all = |values: Option<Vec<u64>>, tag: u16| -> Result<u16, HeaderError> {
            let Some(values) = values else {
                return Ok(1);
            };
            match values.split_first() {
                Some((&first, rest)) if rest.iter().all(|&v| v == first) => {
                    short(Some(first), 1, tag)
                }
                Some(_) => Err(malformed(format!(
                    "{} differs between samples: {values:?}",
                    tag_name(tag)
                ))),
                None => Err(malformed(format!("{} has no value", tag_name(tag)))),
            }
        };
        let bits_per_sample = same_for_all(bits, BITS_PER_SAMPLE)?;
        if bits_per_sample == 0 {
            return Err(malformed("BitsPerSample is 0"));
        }
        let sample_format = same_for_all(formats, SAMPLE_FORMAT)?;

        let (tile, rows_per_strip) = match (tile_width, tile_length) {
            (None, None) => {
                let rows = rows_per_strip.unwrap_or(u64::MAX);
                if rows == 0 {
                    return Err(malformed("RowsPerStrip is 0"));
                }
                let rows = usize::try_from(rows).unwrap_or(usize::MAX).min(height);
                (None, Some(rows))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(malformed("only one of TileWidth and TileLength"));
            }
            (w, h) => (
                Some((dimension(w, TILE_WIDTH)?, dimension(h, TILE_LENGTH)?)),
                None,
            ),
        };
        let mut header = TiffHeader {
            big_endian: self.big_endian,
            big_tiff: self.big_tiff,
            width,
            height,
            tile,
            rows_per_strip,
            samples_per_pixel,
            bits_per_sample,
            sample_format,
            planar_config,
            compression,
            predictor,
            offsets: Vec::new(),
            byte_counts: Vec::new(),
            geotransform: None,
            epsg: None,
            nodata: None,
            header_end: 0,
        };

        // Where the blocks are: one offset and one size per block and plane.
        let blocks = header
            .tiles_across()
            .checked_mul(header.tiles_down())
            .and_then(|n| n.checked_mul(header.planes()))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| malformed("too many tiles"))?;
        let (offsets_tag, counts_tag) = if tile.is_some() {
            (TILE_OFFSETS, TILE_BYTE_COUNTS)
        } else {
            (STRIP_OFFSETS, STRIP_BYTE_COUNTS)
        };
        let mut block_array = |tag: u16| -> Result<Option<Values<'a>>, HeaderError> {
            let e = self
                .entry(tag)
                .ok_or_else(|| malformed(format!("no {}", tag_name(tag))))?;
            if e.count < blocks {
                return Err(malformed(format!(
                    "{} has {} values for {blocks} blocks",
                    tag_name(tag),
                    e.count
                )));
            }
            self.values(e, blocks)
        };
        let offsets = block_array(offsets_tag)?;
        let counts = block_array(counts_tag)?;
        let georef = self.georef()?;
        if self.missing > 0 {
            return Err(HeaderError::NeedBytes(self.missing));
        }

        let Georef {
            keys,
            scale_given,
            scale,
            tiepoint,
            mut matrix,
            nodata,
        } = georef;
        let scale = scale.filter(|s| s.len() == 2 && s[0] != 0.0 && s[1] != 0.0);
        if scale_given && scale.is_none() {
            // The matrix is used after all (then possibly after one more call).
            matrix = self.matrix()?;
            if self.missing > 0 {
                return Err(HeaderError::NeedBytes(self.missing));
            }
        }
        let keys = keys
            .map(|v| GeoKeys::from_directory(&v))
            .unwrap_or_default();
        header.geotransform =
            geotransform(scale.as_deref(), tiepoint.as_deref(), matrix.as_deref()).map(|gt| {
                if keys.raster_type == Some(RASTER_PIXEL_IS_POINT) {
                    shift_to_corner(gt)
                } else {
                    gt
                }
            });
        header.epsg = keys.epsg();
        header.nodata = nodata
            .filter(|v| type_size(v.field_type) == Some(1))
            .map(|v| parse_nodata(v.bytes));
        header.offsets = offsets
            .map(|v| v.uints(offsets_tag))
            .transpose()?
            .unwrap_or_default();
        header.byte_counts = counts
            .map(|v| v.uints(counts_tag))
            .transpose()?
            .unwrap_or_default();
        header.header_end = self.used;
        Ok(header)
    }
}

/// The georeferencing tags of an IFD, as far as they are read.
struct Georef<'a> {
    keys: Option<Values<'a>>,
    /// A ModelPixelScale of at least two values is there.
    scale_given: bool,
    scale: Option<Vec<f64>>,
    tiepoint: Option<Vec<f64>>,
    matrix: Option<Vec<f64>>,
    nodata: Option<Values<'a>>,
}

/// The geotransform from a pixel scale and tiepoint, or else a model
/// transformation matrix, as GDAL computes it (a negative Y scale is taken
/// to mean a north-up image, like a positive one).
fn geotransform(
    scale: Option<&[f64]>,
    tiepoint: Option<&[f64]>,
    matrix: Option<&[f64]>,
) -> Option<[f64; 6]> {
    if let Some(&[sx, sy]) = scale {
        let &[i, j, _, x, y, _] = tiepoint? else {
            return None;
        };
        let dy = -sy.abs();
        return Some([x - i * sx, sx, 0.0, y - j * dy, 0.0, dy]);
    }
    let m = matrix?;
    if m.len() != 16 {
        return None;
    }
    Some([m[3], m[0], m[1], m[7], m[4], m[5]])
}

/// A PixelIsPoint geotransform (coordinates of pixel centres) moved half a
/// pixel to give pixel corners, as GDAL reports it.
fn shift_to_corner(gt: [f64; 6]) -> [f64; 6] {
    let mut gt = gt;
    gt[0] -= gt[1] * 0.5 + gt[2] * 0.5;
    gt[3] -= gt[4] * 0.5 + gt[5] * 0.5;
    gt
}

/// The GeoKeys read here, from a GeoKeyDirectoryTag.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct GeoKeys {
    raster_type: Option<u64>,
    projected: Option<u64>,
    geographic: Option<u64>,
}

impl GeoKeys {
    /// The keys of `dir`: a header of 4 values (the last the number of keys),
    /// then 4 per key (id, location, count, value). The keys read here hold
    /// their value themselves (location 0); one stored elsewhere is taken as
    /// absent. A directory too short for its keys gives none, as GDAL then
    /// ignores the GeoTIFF keys.
    fn from_directory(dir: &Values) -> Self {
        let mut keys = GeoKeys::default();
        let Some(n) = dir.uint(3) else {
            return keys;
        };
        let fits = n
            .checked_mul(4)
            .and_then(|len| len.checked_add(4))
            .is_some_and(|len| len <= dir.len() as u64);
        if !fits {
            return keys;
        }
        for k in 0..n as usize {
            let at = 4 + 4 * k;
            let (Some(id), Some(location), Some(value)) =
                (dir.uint(at), dir.uint(at + 1), dir.uint(at + 3))
            else {
                return GeoKeys::default();
            };
            let value = (location == 0).then_some(value);
            let slot = match u16::try_from(id) {
                Ok(GT_RASTER_TYPE) => &mut keys.raster_type,
                Ok(PROJECTED_CS_TYPE) => &mut keys.projected,
                Ok(GEOGRAPHIC_TYPE) => &mut keys.geographic,
                _ => continue,
            };
            if slot.is_none() {
                *slot = value;
            }
        }
        keys
    }

    /// The projected CRS's EPSG code, else the geographic CRS's.
    fn epsg(&self) -> Option<u32> {
        let code = |c: Option<u64>| {
            c.filter(|&c| c != 0 && c != USER_DEFINED)
                .and_then(|c| u32::try_from(c).ok())
        };
        code(self.projected).or_else(|| code(self.geographic))
    }
}

/// The GDAL_NODATA value: the text up to its first NUL, trimmed, read as C's
/// `atof` would (the longest leading number; 0 if there is none).
fn parse_nodata(bytes: &[u8]) -> f64 {
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    if let Ok(v) = text.parse::<f64>() {
        return v;
    }
    // Numbers are short: look for a leading one among the first characters only.
    let ends: Vec<usize> = text
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take(64)
        .collect();
    ends.iter()
        .rev()
        .find_map(|&end| text.get(..end)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use gdal::raster::{Buffer, GdalDataType, GdalType, RasterCreationOptions};
    use gdal::spatial_ref::SpatialRef;
    use gdal::{Dataset, DriverManager, Metadata};

    use super::*;

    /// A 30 m UTM zone 33N grid.
    const UTM: [f64; 6] = [499_980.0, 30.0, 0.0, 4_600_020.0, 0.0, -30.0];

    /// How a test file is made with GDAL.
    struct Spec<'a> {
        size: (usize, usize),
        bands: usize,
        options: &'a [(&'a str, &'a str)],
        geotransform: [f64; 6],
        epsg: u32,
        nodata: Option<f64>,
        /// Set AREA_OR_POINT=Point.
        point: bool,
        /// The window from (0, 0) written to each band; None writes nothing.
        written: Option<(usize, usize)>,
    }

    impl Default for Spec<'_> {
        fn default() -> Self {
            Spec {
                size: (150, 100),
                bands: 1,
                options: &[],
                geotransform: UTM,
                epsg: 32633,
                nodata: None,
                point: false,
                written: Some((150, 100)),
            }
        }
    }

    fn creation_options(pairs: &[(&str, &str)]) -> RasterCreationOptions {
        let mut opts = RasterCreationOptions::new();
        for (k, v) in pairs {
            opts.add_name_value(k, v).expect("creation option");
        }
        opts
    }

    /// Write a GeoTIFF of `T` samples at `path` with GDAL's GTiff driver.
    fn write<T: GdalType>(path: &Path, spec: &Spec) {
        let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
        let (w, h) = spec.size;
        let opts = creation_options(spec.options);
        let mut ds = driver
            .create_with_band_type_with_options::<T, _>(path, w, h, spec.bands, &opts)
            .expect("create");
        if spec.point {
            ds.set_metadata_item("AREA_OR_POINT", "Point", "")
                .expect("AREA_OR_POINT");
        }
        ds.set_geo_transform(&spec.geotransform)
            .expect("geotransform");
        let srs = SpatialRef::from_epsg(spec.epsg).expect("EPSG code");
        ds.set_spatial_ref(&srs).expect("CRS");
        for b in 1..=spec.bands {
            let mut band = ds.rasterband(b).expect("band");
            if spec.nodata.is_some() {
                band.set_no_data_value(spec.nodata).expect("nodata");
            }
            if let Some((ww, wh)) = spec.written {
                let data = (0..ww * wh)
                    .map(|i| (((i % ww) * 7 + (i / ww) * 13 + b * 29) % 251) as f64)
                    .collect();
                band.write((0, 0), (ww, wh), &mut Buffer::new((ww, wh), data))
                    .expect("write");
            }
        }
    }

    /// Write `spec` with the GTiff driver, then copy it to `name`.tif in `dir`
    /// with the COG driver and `options`.
    fn write_cog<T: GdalType>(
        dir: &Path,
        name: &str,
        spec: &Spec,
        options: &[(&str, &str)],
    ) -> PathBuf {
        let src = dir.join(format!("{name}.src.tif"));
        write::<T>(&src, spec);
        let src = Dataset::open(&src).expect("open source");
        let path = dir.join(format!("{name}.tif"));
        let cog = DriverManager::get_driver_by_name("COG").expect("COG driver");
        src.create_copy(&cog, &path, &creation_options(options))
            .expect("COG copy");
        path
    }

    /// `a` and `b` are the same header (a NaN nodata equal to itself).
    fn same(a: &TiffHeader, b: &TiffHeader) -> bool {
        let key = |h: &TiffHeader| {
            let mut h = h.clone();
            let nodata = h.nodata.take().map(f64::to_bits);
            (h, nodata)
        };
        key(a) == key(b)
    }

    /// One past the end of the first IFD's entries.
    fn ifd_end(bytes: &[u8]) -> u64 {
        let (big_endian, big_tiff, offset) = file_header(bytes).expect("file header");
        Ifd::read(bytes, big_endian, big_tiff, offset)
            .expect("IFD")
            .used
    }

    /// Parse the file at `path` and compare everything with what GDAL reports
    /// for it, every block's place included; then check its prefixes.
    fn check(path: &Path) -> TiffHeader {
        let bytes = std::fs::read(path).expect("read file");
        let header = parse(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let ds = Dataset::open(path).expect("GDAL open");
        let band1 = ds.rasterband(1).expect("band 1");

        assert_eq!((header.width, header.height), ds.raster_size(), "{path:?}");
        assert_eq!(usize::from(header.samples_per_pixel), ds.raster_count());
        assert_eq!(header.block_size(), band1.block_size(), "{path:?}");
        let structure = |item: &str| ds.metadata_item(item, "IMAGE_STRUCTURE");
        match structure("COMPRESSION").as_deref() {
            None => assert_eq!(header.compression, 1),
            Some("DEFLATE") => assert!([8, 32946].contains(&header.compression)),
            Some("LZW") => assert_eq!(header.compression, 5),
            Some("ZSTD") => assert_eq!(header.compression, 50000),
            Some(other) => panic!("{path:?}: compression {other}"),
        }
        let predictor = structure("PREDICTOR").map_or(1, |p| p.parse().expect("predictor"));
        assert_eq!(header.predictor, predictor, "{path:?}");
        if ds.raster_count() > 1 {
            let planar = match structure("INTERLEAVE").as_deref() {
                Some("BAND") => 2,
                Some("PIXEL") => 1,
                other => panic!("{path:?}: interleave {other:?}"),
            };
            assert_eq!(header.planar_config, planar, "{path:?}");
        }
        let sample = match (header.bits_per_sample, header.sample_format) {
            (8, 1) => GdalDataType::UInt8,
            (16, 1) => GdalDataType::UInt16,
            (16, 2) => GdalDataType::Int16,
            (32, 1) => GdalDataType::UInt32,
            (32, 2) => GdalDataType::Int32,
            (32, 3) => GdalDataType::Float32,
            (64, 3) => GdalDataType::Float64,
            other => panic!("{path:?}: sample type {other:?}"),
        };
        assert_eq!(band1.band_type(), sample, "{path:?}");

        let gt = ds.geo_transform().expect("GDAL geotransform");
        let ours = header.geotransform.expect("geotransform");
        for (i, (a, b)) in ours.iter().zip(gt.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9,
                "{path:?}: geotransform[{i}] {a} vs GDAL's {b}"
            );
        }
        let epsg = ds
            .spatial_ref()
            .and_then(|s| s.auth_code())
            .unwrap_or_else(|e| panic!("{path:?}: GDAL's EPSG code: {e}"));
        assert_eq!(
            header.epsg.map(i64::from),
            Some(i64::from(epsg)),
            "{path:?}"
        );
        let nodata = |v: Option<f64>| v.map(f64::to_bits);
        for b in 1..=ds.raster_count() {
            let band = ds.rasterband(b).expect("band");
            assert_eq!(
                nodata(header.nodata),
                nodata(band.no_data_value()),
                "{path:?}"
            );
        }

        // Every block of every band where GDAL says it is.
        let (across, down) = (header.tiles_across(), header.tiles_down());
        let blocks = across * down * header.planes();
        assert_eq!(header.offsets.len(), blocks, "{path:?}");
        assert_eq!(header.byte_counts.len(), blocks, "{path:?}");
        let mut seen = 0;
        for b in 1..=ds.raster_count() {
            let band = ds.rasterband(b).expect("band");
            let plane = if header.planar_config == 2 { b - 1 } else { 0 };
            for ty in 0..down {
                for tx in 0..across {
                    let index = header.tile_index(plane, tx, ty).expect("tile index");
                    let item = |name: &str| {
                        band.metadata_item(&format!("{name}_{tx}_{ty}"), "TIFF")
                            .map(|v| v.parse::<u64>().expect("number"))
                    };
                    let gdal = match (item("BLOCK_OFFSET"), item("BLOCK_SIZE")) {
                        (Some(offset), Some(size)) => Some(offset..offset + size),
                        (None, None) => None,
                        other => panic!("{path:?}: block {tx},{ty}: {other:?}"),
                    };
                    assert_eq!(
                        header.tile_range(index),
                        gdal,
                        "{path:?} band {b} block {tx},{ty}"
                    );
                    seen += 1;
                }
            }
            assert_eq!(header.tile_index(plane, across, 0), None);
            assert_eq!(header.tile_index(plane, 0, down), None);
        }
        assert_eq!(header.tile_index(header.planes(), 0, 0), None);
        assert_eq!(header.tile_range(blocks), None);
        assert!(seen >= blocks);

        check_prefixes(&bytes, &header);
        header
    }

    /// Every prefix shorter than `header.header_end` asks for more, never more
    /// than the header needs; once the IFD's entries are in, the first answer
    /// covers everything; at most 4 answers lead from any prefix to the header.
    fn check_prefixes(bytes: &[u8], header: &TiffHeader) {
        let end = usize::try_from(header.header_end).expect("header end");
        assert!(end <= bytes.len());
        let entries_end = usize::try_from(ifd_end(bytes)).expect("IFD end");
        for k in 0..=end {
            let mut len = k;
            let mut chain = vec![k];
            for answers in 0.. {
                match parse(&bytes[..len]) {
                    Ok(h) => {
                        assert!(same(&h, header), "prefix {len}");
                        assert!(len >= end, "prefix {len} < {end} sufficed");
                        break;
                    }
                    Err(HeaderError::NeedBytes(n)) => {
                        let n = usize::try_from(n).expect("size");
                        assert!(
                            n > len && n <= end,
                            "prefix {len}: NeedBytes({n}), end {end}"
                        );
                        if len >= entries_end {
                            assert_eq!(n, end, "prefix {len} holds the IFD");
                        }
                        chain.push(n);
                        assert!(answers < 4, "prefix {k}: more than 4 answers: {chain:?}");
                        len = n;
                    }
                    Err(e) => panic!("prefix {len}: {e}"),
                }
            }
        }
    }

    const DEFLATE_64X32: &[(&str, &str)] = &[
        ("TILED", "YES"),
        ("BLOCKXSIZE", "64"),
        ("BLOCKYSIZE", "32"),
        ("COMPRESS", "DEFLATE"),
        ("PREDICTOR", "2"),
    ];

    #[test]
    fn tiled_deflate_with_predictor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u16.tif");
        let spec = Spec {
            options: DEFLATE_64X32,
            nodata: Some(0.0),
            ..Spec::default()
        };
        write::<u16>(&path, &spec);
        let h = check(&path);
        assert_eq!((h.tile, h.rows_per_strip), (Some((64, 32)), None));
        assert_eq!((h.compression, h.predictor), (8, 2));
        assert_eq!((h.tiles_across(), h.tiles_down()), (3, 4));
        assert_eq!((h.big_endian, h.big_tiff), (false, false));
        assert_eq!(h.geotransform, Some(UTM));
        assert_eq!((h.epsg, h.nodata), (Some(32633), Some(0.0)));

        // A prefix that holds the IFD but not the tile offsets after it (the
        // first 226 bytes here): one answer says how much the header takes.
        let bytes = std::fs::read(&path).expect("read");
        let cut = usize::try_from(ifd_end(&bytes)).expect("IFD end");
        assert!(h.header_end > cut as u64 + 100);
        assert_eq!(
            parse(&bytes[..cut]),
            Err(HeaderError::NeedBytes(h.header_end))
        );
        let end = usize::try_from(h.header_end).expect("end");
        assert!(same(&parse(&bytes[..end]).expect("prefix parse"), &h));
    }

    #[test]
    fn bigtiff_float32_with_256_tiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f32.tif");
        let spec = Spec {
            size: (600, 300),
            options: &[
                ("TILED", "YES"),
                ("BLOCKXSIZE", "256"),
                ("BLOCKYSIZE", "256"),
                ("COMPRESS", "DEFLATE"),
                ("PREDICTOR", "3"),
                ("BIGTIFF", "YES"),
            ],
            nodata: Some(-9999.5),
            written: Some((600, 300)),
            ..Spec::default()
        };
        write::<f32>(&path, &spec);
        let h = check(&path);
        assert!(h.big_tiff);
        assert_eq!(
            (h.tile, h.tiles_across(), h.tiles_down()),
            (Some((256, 256)), 3, 2)
        );
        assert_eq!(
            (h.bits_per_sample, h.sample_format, h.predictor),
            (32, 3, 3)
        );
        assert_eq!(h.nodata, Some(-9999.5));
    }

    #[test]
    fn band_interleaved_int16() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i16.tif");
        let spec = Spec {
            bands: 3,
            options: &[
                ("TILED", "YES"),
                ("BLOCKXSIZE", "64"),
                ("BLOCKYSIZE", "64"),
                ("COMPRESS", "DEFLATE"),
                ("PREDICTOR", "2"),
                ("INTERLEAVE", "BAND"),
            ],
            nodata: Some(-32768.0),
            ..Spec::default()
        };
        write::<i16>(&path, &spec);
        let h = check(&path);
        assert_eq!(
            (h.samples_per_pixel, h.planar_config, h.planes()),
            (3, 2, 3)
        );
        assert_eq!((h.bits_per_sample, h.sample_format), (16, 2));
        assert_eq!(h.offsets.len(), 3 * 3 * 2);
        // Plane 1's first tile follows plane 0's last in the arrays.
        assert_eq!(h.tile_index(1, 0, 0), Some(6));
        assert_eq!(h.tile_index(2, 2, 1), Some(17));
    }

    #[test]
    fn stripped_files_pixel_and_band_interleaved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u8.tif");
        let spec = Spec {
            bands: 3,
            options: &[("COMPRESS", "LZW")],
            nodata: Some(255.0),
            ..Spec::default()
        };
        write::<u8>(&path, &spec);
        let h = check(&path);
        assert_eq!((h.tile, h.planar_config, h.compression), (None, 1, 5));
        let rows = h.rows_per_strip.expect("rows per strip");
        assert_eq!(
            (h.tiles_across(), h.tiles_down()),
            (1, 100usize.div_ceil(rows))
        );
        assert_eq!(h.block_size(), (150, rows));

        // Big-endian BigTIFF, one plane per band, no compression.
        let path = dir.path().join("i16_be.tif");
        let spec = Spec {
            bands: 3,
            options: &[
                ("ENDIANNESS", "BIG"),
                ("BIGTIFF", "YES"),
                ("INTERLEAVE", "BAND"),
                ("BLOCKYSIZE", "16"),
            ],
            nodata: Some(-1.0),
            ..Spec::default()
        };
        write::<i16>(&path, &spec);
        let h = check(&path);
        assert_eq!((h.big_endian, h.big_tiff, h.planar_config), (true, true, 2));
        assert_eq!((h.rows_per_strip, h.tiles_down()), (Some(16), 7));
        assert_eq!(h.tile_index(2, 0, 6), Some(20));

        // Big-endian classic TIFF, float samples, NaN nodata.
        let path = dir.path().join("f32_be.tif");
        let spec = Spec {
            options: &[("ENDIANNESS", "BIG"), ("COMPRESS", "DEFLATE")],
            nodata: Some(f64::NAN),
            ..Spec::default()
        };
        write::<f32>(&path, &spec);
        let h = check(&path);
        assert!(h.big_endian && !h.big_tiff);
        assert!(h.nodata.is_some_and(f64::is_nan));
    }

    #[test]
    fn cog_first_ifd_is_the_full_resolution_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = Spec {
            size: (1000, 700),
            nodata: Some(0.0),
            written: Some((1000, 700)),
            ..Spec::default()
        };
        let cog_options: &[(&str, &str)] = &[
            ("BLOCKSIZE", "256"),
            ("COMPRESS", "DEFLATE"),
            ("PREDICTOR", "YES"),
        ];
        let path = write_cog::<u16>(dir.path(), "cog", &spec, cog_options);
        let ds = Dataset::open(&path).expect("open");
        let band = ds.rasterband(1).expect("band");
        assert!(band.overview_count().expect("overviews") >= 2);
        assert_eq!(
            ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(),
            Some("COG")
        );
        let h = check(&path);
        assert_eq!((h.width, h.height, h.tile), (1000, 700, Some((256, 256))));
        assert_eq!((h.compression, h.predictor), (8, 2));
        // The IFDs come first, then the tiles: the header is all before them.
        let first_tile = h.offsets.iter().min().copied().expect("tiles");
        assert!(h.header_end <= first_tile);

        // A BigTIFF COG of floats.
        let cog_options: &[(&str, &str)] = &[
            ("BLOCKSIZE", "512"),
            ("COMPRESS", "DEFLATE"),
            ("PREDICTOR", "FLOATING_POINT"),
            ("BIGTIFF", "YES"),
        ];
        let spec = Spec {
            size: (1200, 1100),
            nodata: Some(-1e30),
            written: Some((1200, 1100)),
            ..Spec::default()
        };
        let path = write_cog::<f32>(dir.path(), "cog_f32", &spec, cog_options);
        let h = check(&path);
        assert!(h.big_tiff);
        assert_eq!((h.width, h.tile, h.predictor), (1200, Some((512, 512)), 3));
    }

    #[test]
    fn pixel_is_point_is_shifted_to_corners_as_gdal_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("point.tif");
        let spec = Spec {
            options: DEFLATE_64X32,
            point: true,
            ..Spec::default()
        };
        write::<u16>(&path, &spec);
        let ds = Dataset::open(&path).expect("open");
        assert_eq!(
            ds.metadata_item("AREA_OR_POINT", "").as_deref(),
            Some("Point")
        );
        let h = check(&path);
        assert_eq!(h.geotransform, Some(UTM));

        // The file holds pixel centres: the raster type key says so and the
        // tiepoint is half a pixel inside the corner.
        let bytes = std::fs::read(&path).expect("read");
        let (big_endian, big_tiff, offset) = file_header(&bytes).expect("file header");
        let mut ifd = Ifd::read(&bytes, big_endian, big_tiff, offset).expect("IFD");
        let georef = ifd.georef().expect("georef");
        let keys = GeoKeys::from_directory(&georef.keys.expect("geokeys"));
        assert_eq!(keys.raster_type, Some(RASTER_PIXEL_IS_POINT));
        let tiepoint = georef.tiepoint.expect("tiepoint");
        assert_eq!((tiepoint[3], tiepoint[4]), (UTM[0] + 15.0, UTM[3] - 15.0));
    }

    #[test]
    fn geographic_crs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("4326.tif");
        let spec = Spec {
            options: DEFLATE_64X32,
            geotransform: [12.5, 0.01, 0.0, 48.25, 0.0, -0.01],
            epsg: 4326,
            ..Spec::default()
        };
        write::<u8>(&path, &spec);
        let h = check(&path);
        assert_eq!(h.epsg, Some(4326));
    }

    #[test]
    fn sparse_tiles_have_no_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sparse.tif");
        let options: Vec<(&str, &str)> = DEFLATE_64X32
            .iter()
            .copied()
            .chain([("SPARSE_OK", "TRUE")])
            .collect();
        let spec = Spec {
            options: &options,
            written: Some((64, 32)),
            ..Spec::default()
        };
        write::<u16>(&path, &spec);
        let h = check(&path);
        assert!(h.tile_range(0).is_some());
        assert_eq!(h.tile_range(h.tile_index(0, 1, 1).expect("index")), None);
    }

    #[test]
    fn landsat_sized_header_fits_in_64_kib() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("landsat.tif");
        let spec = Spec {
            size: (7611, 7761),
            options: &[
                ("TILED", "YES"),
                ("BLOCKXSIZE", "512"),
                ("BLOCKYSIZE", "512"),
                ("COMPRESS", "DEFLATE"),
                ("PREDICTOR", "2"),
            ],
            written: None,
            ..Spec::default()
        };
        write::<u16>(&path, &spec);
        let h = check(&path);
        assert_eq!((h.tiles_across(), h.tiles_down()), (15, 16));
        assert!(h.header_end <= 65536, "header_end {}", h.header_end);

        // The same as a COG, overviews and all.
        let cog_options: &[(&str, &str)] = &[
            ("BLOCKSIZE", "512"),
            ("COMPRESS", "DEFLATE"),
            ("PREDICTOR", "YES"),
        ];
        let path = write_cog::<u16>(dir.path(), "landsat_cog", &spec, cog_options);
        let h = check(&path);
        assert_eq!((h.tiles_across(), h.tiles_down()), (15, 16));
        assert!(h.header_end <= 65536, "header_end {}", h.header_end);
    }

    /// A tag value for [`build`].
    enum Val {
        Short(Vec<u16>),
        Long(Vec<u32>),
        Long8(Vec<u64>),
        Double(Vec<f64>),
        Ascii(&'static str),
    }

    impl Val {
        fn field_type(&self) -> u16 {
            match self {
                Val::Short(_) => SHORT,
                Val::Long(_) => LONG,
                Val::Long8(_) => LONG8,
                Val::Double(_) => DOUBLE,
                Val::Ascii(_) => ASCII,
            }
        }

        fn count(&self) -> usize {
            match self {
                Val::Short(v) => v.len(),
                Val::Long(v) => v.len(),
                Val::Long8(v) => v.len(),
                Val::Double(v) => v.len(),
                Val::Ascii(text) => text.len() + 1,
            }
        }

        fn bytes(&self, be: bool) -> Vec<u8> {
            fn each<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
                v.iter().flat_map(|&x| f(x)).collect()
            }
            match self {
                Val::Short(v) => each(v, |x| if be { x.to_be_bytes() } else { x.to_le_bytes() }),
                Val::Long(v) => each(v, |x| if be { x.to_be_bytes() } else { x.to_le_bytes() }),
                Val::Long8(v) => each(v, |x| if be { x.to_be_bytes() } else { x.to_le_bytes() }),
                Val::Double(v) => each(v, |x| if be { x.to_be_bytes() } else { x.to_le_bytes() }),
                Val::Ascii(text) => text.bytes().chain([0]).collect(),
            }
        }
    }

    /// A TIFF file: its header, `data` (so the first byte of `data` is at
    /// offset 8, or 16 for BigTIFF), one IFD of `entries`, then the values that
    /// do not fit in their entries.
    fn build(be: bool, big: bool, data: &[u8], entries: Vec<(u16, Val)>) -> Vec<u8> {
        let mut entries = entries;
        entries.sort_by_key(|(tag, _)| *tag);
        let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let u64b = |v: u64| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let offset = |v: usize| -> Vec<u8> {
            if big {
                u64b(v as u64).to_vec()
            } else {
                u32b(u32::try_from(v).expect("offset")).to_vec()
            }
        };
        let mut out: Vec<u8> = if be { b"MM".to_vec() } else { b"II".to_vec() };
        let header_len = if big { 16 } else { 8 };
        out.extend(u16b(if big { 43 } else { 42 }));
        if big {
            out.extend(u16b(8));
            out.extend(u16b(0));
        }
        let ifd_at = (header_len + data.len()).next_multiple_of(2);
        out.extend(offset(ifd_at));
        out.extend(data);
        out.resize(ifd_at, 0);
        let (count_len, entry_len, inline) = if big { (8, 20, 8) } else { (2, 12, 4) };
        let mut extra_at = ifd_at + count_len + entries.len() * entry_len + inline;
        let mut extra = Vec::new();
        if big {
            out.extend(u64b(entries.len() as u64));
        } else {
            out.extend(u16b(u16::try_from(entries.len()).expect("entries")));
        }
        for (tag, val) in &entries {
            out.extend(u16b(*tag));
            out.extend(u16b(val.field_type()));
            if big {
                out.extend(u64b(val.count() as u64));
            } else {
                out.extend(u32b(u32::try_from(val.count()).expect("count")));
            }
            let mut bytes = val.bytes(be);
            if bytes.len() <= inline {
                bytes.resize(inline, 0);
                out.extend(bytes);
            } else {
                out.extend(offset(extra_at));
                bytes.resize(bytes.len().next_multiple_of(2), 0);
                extra_at += bytes.len();
                extra.extend(bytes);
            }
        }
        out.extend(offset(0));
        out.extend(extra);
        out
    }

    /// The entries of a 40 x 20 single-band byte image in 16 x 16 tiles
    /// whose 6 uncompressed tiles come right after the header, plus `geo`;
    /// and those tiles' bytes.
    fn tiled_image(
        big: bool,
        offsets: impl Fn(Vec<u64>) -> Val,
        geo: Vec<(u16, Val)>,
    ) -> (Vec<u8>, Vec<(u16, Val)>) {
        let data: Vec<u8> = (0..6u8).flat_map(|t| [t * 40 + 1; 256]).collect();
        let first = if big { 16 } else { 8 };
        let mut entries = vec![
            (IMAGE_WIDTH, Val::Short(vec![40])),
            (IMAGE_LENGTH, Val::Long(vec![20])),
            (BITS_PER_SAMPLE, Val::Short(vec![8])),
            (COMPRESSION, Val::Short(vec![1])),
            (262, Val::Short(vec![1])),
            (SAMPLES_PER_PIXEL, Val::Short(vec![1])),
            (PLANAR_CONFIGURATION, Val::Short(vec![1])),
            (TILE_WIDTH, Val::Short(vec![16])),
            (TILE_LENGTH, Val::Short(vec![16])),
            (
                TILE_OFFSETS,
                offsets((0..6).map(|t| first + t * 256).collect()),
            ),
            (TILE_BYTE_COUNTS, offsets(vec![256; 6])),
            (SAMPLE_FORMAT, Val::Short(vec![1])),
        ];
        entries.extend(geo);
        (data, entries)
    }

    /// A GeoKeyDirectory of `keys` (id, location, count, value).
    fn geo_keys(keys: &[[u16; 4]]) -> (u16, Val) {
        let mut dir = vec![1, 1, 0, u16::try_from(keys.len()).expect("keys")];
        dir.extend(keys.iter().flatten());
        (GEO_KEY_DIRECTORY, Val::Short(dir))
    }

    /// Write `bytes` to `name` in `dir` and [`check`] it against GDAL.
    fn check_bytes(dir: &Path, name: &str, bytes: &[u8]) -> TiffHeader {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let h = check(&path);
        assert!(same(&parse(bytes).expect("parse"), &h));
        h
    }

    #[test]
    fn handmade_files_match_gdal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = |v: Vec<u64>| Val::Short(v.into_iter().map(|x| x as u16).collect());
        let long = |v: Vec<u64>| Val::Long(v.into_iter().map(|x| x as u32).collect());

        // SHORT offsets, a rotated ModelTransformation, PixelIsPoint.
        let matrix = vec![
            30.0,
            5.0,
            0.0,
            500_000.0,
            4.0,
            -30.0,
            0.0,
            4_600_000.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ];
        let utm_point = geo_keys(&[[1024, 0, 1, 1], [1025, 0, 1, 2], [3072, 0, 1, 32633]]);
        let (data, entries) = tiled_image(
            false,
            short,
            vec![
                (MODEL_TRANSFORMATION, Val::Double(matrix)),
                utm_point,
                (GDAL_NODATA, Val::Ascii("-9999")),
            ],
        );
        let h = check_bytes(
            dir.path(),
            "matrix.tif",
            &build(false, false, &data, entries),
        );
        let want = [500_000.0 - 17.5, 30.0, 5.0, 4_600_000.0 + 13.0, 4.0, -30.0];
        assert_eq!(h.geotransform, Some(want));
        assert_eq!((h.epsg, h.nodata), (Some(32633), Some(-9999.0)));
        assert_eq!(h.offsets, [8, 264, 520, 776, 1032, 1288]);

        // Big-endian BigTIFF, LONG8 offsets, a negative Y scale, a tiepoint
        // away from (0, 0).
        let latlon = geo_keys(&[[1024, 0, 1, 2], [1025, 0, 1, 1], [2048, 0, 1, 4326]]);
        let (data, entries) = tiled_image(
            true,
            Val::Long8,
            vec![
                (MODEL_PIXEL_SCALE, Val::Double(vec![0.01, -0.01, 0.0])),
                (
                    MODEL_TIEPOINT,
                    Val::Double(vec![2.0, 3.0, 0.0, 12.52, 48.22, 0.0]),
                ),
                latlon,
                (GDAL_NODATA, Val::Ascii("-inf")),
            ],
        );
        let h = check_bytes(dir.path(), "scale.tif", &build(true, true, &data, entries));
        assert!(h.big_endian && h.big_tiff);
        assert_eq!((h.epsg, h.nodata), (Some(4326), Some(f64::NEG_INFINITY)));

        // Several tiepoints with a scale: the first one places the image.
        let utm = geo_keys(&[[1024, 0, 1, 1], [1025, 0, 1, 1], [3072, 0, 1, 32633]]);
        let (data, entries) = tiled_image(
            false,
            long,
            vec![
                (MODEL_PIXEL_SCALE, Val::Double(vec![30.0, 30.0, 0.0])),
                (
                    MODEL_TIEPOINT,
                    Val::Double(vec![
                        0.0,
                        0.0,
                        0.0,
                        500_000.0,
                        4_600_000.0,
                        0.0,
                        10.0,
                        10.0,
                        0.0,
                        500_300.0,
                        4_599_700.0,
                        0.0,
                    ]),
                ),
                utm,
                (GDAL_NODATA, Val::Ascii("nan")),
            ],
        );
        let h = check_bytes(
            dir.path(),
            "tiepoints.tif",
            &build(true, false, &data, entries),
        );
        assert_eq!(
            h.geotransform,
            Some([500_000.0, 30.0, 0.0, 4_600_000.0, 0.0, -30.0])
        );
        assert!(h.nodata.is_some_and(f64::is_nan));

        // A scale of 0 is no scale: the matrix is used.
        let utm = geo_keys(&[[1024, 0, 1, 1], [1025, 0, 1, 1], [3072, 0, 1, 32633]]);
        let matrix = vec![
            30.0,
            0.0,
            0.0,
            500_000.0,
            0.0,
            -30.0,
            0.0,
            4_600_000.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ];
        let (data, entries) = tiled_image(
            false,
            long,
            vec![
                (MODEL_PIXEL_SCALE, Val::Double(vec![0.0, 30.0, 0.0])),
                (
                    MODEL_TIEPOINT,
                    Val::Double(vec![0.0, 0.0, 0.0, 1.0, 2.0, 0.0]),
                ),
                (MODEL_TRANSFORMATION, Val::Double(matrix)),
                utm,
            ],
        );
        let h = check_bytes(
            dir.path(),
            "zero_scale.tif",
            &build(false, false, &data, entries),
        );
        assert_eq!(
            h.geotransform,
            Some([500_000.0, 30.0, 0.0, 4_600_000.0, 0.0, -30.0])
        );
        assert_eq!(h.nodata, None);
    }

    /// `entries` with `tag`'s value replaced by `val` (or added).
    fn with(entries: Vec<(u16, Val)>, tag: u16, val: Val) -> Vec<(u16, Val)> {
        let mut entries: Vec<(u16, Val)> = entries.into_iter().filter(|(t, _)| *t != tag).collect();
        entries.push((tag, val));
        entries
    }

    /// Overwrite the count and value field of `tag`'s entry in a little-endian
    /// BigTIFF file made by [`build`].
    fn patch_bigtiff_entry(bytes: &mut [u8], tag: u16, count: u64, field: u64) {
        let ifd = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let n = u64::from_le_bytes(bytes[ifd..ifd + 8].try_into().expect("8 bytes")) as usize;
        let at = (0..n)
            .map(|i| ifd + 8 + 20 * i)
            .find(|&at| u16::from_le_bytes([bytes[at], bytes[at + 1]]) == tag)
            .expect("entry");
        bytes[at + 4..at + 12].copy_from_slice(&count.to_le_bytes());
        bytes[at + 12..at + 20].copy_from_slice(&field.to_le_bytes());
    }

    #[test]
    fn short_or_foreign_starts() {
        assert_eq!(parse(b""), Err(HeaderError::NeedBytes(16)));
        assert_eq!(parse(b"II"), Err(HeaderError::NeedBytes(16)));
        assert_eq!(parse(b"MM\0+"), Err(HeaderError::NeedBytes(16)));
        assert_eq!(parse(b"II*\0\x08\0\0"), Err(HeaderError::NeedBytes(8)));
        assert_eq!(parse(b"II*\0\x08\0\0\0"), Err(HeaderError::NeedBytes(10)));
        assert_eq!(parse(b"II+\0\x08\0\0\0"), Err(HeaderError::NeedBytes(16)));
        assert_eq!(parse(b"XX"), Err(HeaderError::NotTiff));
        assert_eq!(parse(b"II\x2a\x01\x08\0\0\0"), Err(HeaderError::NotTiff));
        assert_eq!(parse(b"\x89PNG\r\n\x1a\n"), Err(HeaderError::NotTiff));
        assert!(matches!(
            parse(b"II*\0\0\0\0\0"),
            Err(HeaderError::Malformed(_))
        ));
        // BigTIFF with 4-byte offsets does not exist.
        let header = b"II+\0\x04\0\0\0\x10\0\0\0\0\0\0\0";
        assert!(matches!(parse(header), Err(HeaderError::Malformed(_))));
    }

    #[test]
    fn hostile_counts_give_errors_not_allocations() {
        // 65535 entries announced, 100 bytes given: ask for them all at once.
        let mut bytes = b"II*\0\x08\0\0\0\xff\xff".to_vec();
        bytes.resize(100, 0);
        assert_eq!(parse(&bytes), Err(HeaderError::NeedBytes(10 + 12 * 65535)));
        // 2^64 - 1 BigTIFF entries, or an IFD at the very end of 2^64 bytes.
        let mut bytes = b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0".to_vec();
        bytes.extend(u64::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(HeaderError::Malformed(_))));
        bytes[8..16].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert!(matches!(parse(&bytes), Err(HeaderError::Malformed(_))));

        // A 2^32 - 1 pixel square image in 16 x 16 tiles with 6 offsets.
        let huge = |entries| {
            let entries = with(entries, IMAGE_WIDTH, Val::Long(vec![u32::MAX]));
            with(entries, IMAGE_LENGTH, Val::Long(vec![u32::MAX]))
        };
        let (data, entries) = tiled_image(
            false,
            |v| Val::Long(v.into_iter().map(|x| x as u32).collect()),
            vec![],
        );
        let classic = build(false, false, &data, huge(entries));
        assert!(matches!(parse(&classic), Err(HeaderError::Malformed(_))));
        // As a BigTIFF whose offsets claim 2^64 - 1 values at 2^62: it
        // takes bytes no file has, and nothing is allocated for them.
        let (data, entries) = tiled_image(true, Val::Long8, vec![]);
        let mut big = build(false, true, &data, huge(entries));
        patch_bigtiff_entry(&mut big, TILE_OFFSETS, u64::MAX, 1 << 62);
        patch_bigtiff_entry(&mut big, TILE_BYTE_COUNTS, u64::MAX, 1 << 61);
        match parse(&big) {
            Err(HeaderError::NeedBytes(n)) => assert!(n > 1 << 62),
            other => panic!("{other:?}"),
        }
        // Offsets at the very end of 2^64 bytes.
        patch_bigtiff_entry(&mut big, TILE_OFFSETS, 6, u64::MAX - 8);
        assert!(matches!(parse(&big), Err(HeaderError::Malformed(_))));

        // A value of a type TIFF does not have, for a tag that is needed.
        let (data, entries) = tiled_image(true, Val::Long8, vec![]);
        let mut bytes = build(false, true, &data, entries);
        assert!(parse(&bytes).is_ok());
        let ifd = 16 + 6 * 256;
        assert_eq!(
            u16::from_le_bytes([bytes[ifd + 8], bytes[ifd + 9]]),
            IMAGE_WIDTH
        );
        bytes[ifd + 10] = 99;
        assert!(matches!(parse(&bytes), Err(HeaderError::Malformed(_))));
    }

    #[test]
    fn inconsistent_headers_are_malformed() {
        let long = |v: Vec<u64>| Val::Long(v.into_iter().map(|x| x as u32).collect());
        let malformed = |entries: Vec<(u16, Val)>| {
            let (data, _) = tiled_image(false, long, vec![]);
            let bytes = build(true, false, &data, entries);
            assert!(
                matches!(parse(&bytes), Err(HeaderError::Malformed(_))),
                "{:?}",
                parse(&bytes)
            );
        };
        let base = || tiled_image(false, long, vec![]).1;
        let three = |entries| with(entries, SAMPLES_PER_PIXEL, Val::Short(vec![3]));
        malformed(with(
            three(base()),
            BITS_PER_SAMPLE,
            Val::Short(vec![8, 16, 8]),
        ));
        malformed(with(
            three(base()),
            SAMPLE_FORMAT,
            Val::Short(vec![1, 1, 3]),
        ));
        malformed(with(base(), BITS_PER_SAMPLE, Val::Short(vec![0])));
        malformed(with(base(), IMAGE_WIDTH, Val::Short(vec![0])));
        malformed(with(base(), PLANAR_CONFIGURATION, Val::Short(vec![3])));
        malformed(with(base(), TILE_OFFSETS, Val::Long(vec![8; 5])));
        malformed(with(base(), TILE_BYTE_COUNTS, Val::Double(vec![256.0; 6])));
        malformed(with(base(), IMAGE_LENGTH, Val::Ascii("20")));
        malformed(
            base()
                .into_iter()
                .filter(|(t, _)| *t != TILE_LENGTH)
                .collect(),
        );
        malformed(
            base()
                .into_iter()
                .filter(|(t, _)| *t != TILE_BYTE_COUNTS)
                .collect(),
        );
        malformed(
            base()
                .into_iter()
                .filter(|(t, _)| *t != IMAGE_WIDTH)
                .collect(),
        );
        // Strips: RowsPerStrip 0 is no layout; without the tag, one strip.
        let strips = || {
            base()
                .into_iter()
                .filter(|(t, _)| {
                    ![TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS].contains(t)
                })
                .chain([
                    (STRIP_OFFSETS, Val::Long(vec![8])),
                    (STRIP_BYTE_COUNTS, Val::Long(vec![800])),
                ])
                .collect::<Vec<_>>()
        };
        malformed(with(strips(), ROWS_PER_STRIP, Val::Long(vec![0])));
        let (data, _) = tiled_image(false, long, vec![]);
        let h = parse(&build(false, false, &data, strips())).expect("one strip");
        assert_eq!(
            (h.rows_per_strip, h.tiles_across(), h.tiles_down()),
            (Some(20), 1, 1)
        );
        assert_eq!(h.tile_range(0), Some(8..808));
        assert_eq!((h.geotransform, h.epsg, h.nodata), (None, None, None));
    }

    #[test]
    fn nodata_text_reads_as_gdal_does() {
        assert!(parse_nodata(b"nan\0").is_nan());
        assert!(parse_nodata(b"NaN").is_nan());
        assert_eq!(parse_nodata(b"-inf\0"), f64::NEG_INFINITY);
        assert_eq!(parse_nodata(b"inf"), f64::INFINITY);
        assert_eq!(parse_nodata(b" -9999 \0"), -9999.0);
        assert_eq!(parse_nodata(b"1e38\0-5"), 1e38);
        assert_eq!(
            parse_nodata(b"-3.4028234663852886e+38"),
            f64::from(f32::MIN)
        );
        assert_eq!(parse_nodata(b"12abc"), 12.0);
        assert_eq!(parse_nodata(b"abc"), 0.0);
        assert_eq!(parse_nodata(b""), 0.0);
    }

    #[test]
    fn tile_indices_and_ranges() {
        let h = TiffHeader {
            big_endian: false,
            big_tiff: false,
            width: 25,
            height: 15,
            tile: Some((10, 10)),
            rows_per_strip: None,
            samples_per_pixel: 2,
            bits_per_sample: 8,
            sample_format: 1,
            planar_config: 2,
            compression: 1,
            predictor: 1,
            offsets: vec![
                100,
                0,
                300,
                400,
                500,
                600,
                700,
                800,
                900,
                1000,
                1100,
                u64::MAX,
            ],
            byte_counts: vec![10, 10, 10, 0, 10, 10, 10, 10, 10, 10, 10, 10],
            geotransform: None,
            epsg: None,
            nodata: None,
            header_end: 0,
        };
        assert_eq!((h.tiles_across(), h.tiles_down(), h.planes()), (3, 2, 2));
        assert_eq!(h.tile_index(0, 0, 0), Some(0));
        assert_eq!(h.tile_index(0, 2, 1), Some(5));
        assert_eq!(h.tile_index(1, 0, 1), Some(9));
        assert_eq!(h.tile_index(2, 0, 0), None);
        assert_eq!(h.tile_index(0, 3, 0), None);
        assert_eq!(h.tile_index(0, 0, 2), None);
        assert_eq!(h.tile_index(usize::MAX, usize::MAX, usize::MAX), None);
        assert_eq!(h.tile_range(0), Some(100..110));
        assert_eq!(h.tile_range(1), None, "offset 0");
        assert_eq!(h.tile_range(3), None, "byte count 0");
        assert_eq!(h.tile_range(11), None, "past 2^64");
        assert_eq!(h.tile_range(12), None);
        // Chunky samples: one plane.
        let chunky = TiffHeader {
            planar_config: 1,
            ..h.clone()
        };
        assert_eq!((chunky.planes(), chunky.tile_index(1, 0, 0)), (1, None));
        // Strips: one across.
        let strips = TiffHeader {
            tile: None,
            rows_per_strip: Some(4),
            ..h
        };
        assert_eq!((strips.tiles_across(), strips.tiles_down()), (1, 4));
        assert_eq!(strips.tile_index(1, 0, 3), Some(7));
    }

    /// xorshift64*: reproducible noise for the corruption tests.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            match self.below(6) {
                0 => 0,
                1 => 0xff,
                2 => 0x80,
                3 => 1,
                _ => self.next() as u8,
            }
        }
    }

    /// What every answer of [`parse`] satisfies, whatever the bytes; which
    /// answer it was (0 a header, 1 NeedBytes, 2 NotTiff, 3 Malformed).
    fn check_answer(prefix: &[u8]) -> usize {
        match parse(prefix) {
            Ok(h) => {
                assert!(h.header_end <= prefix.len() as u64);
                let blocks = h.tiles_across() * h.tiles_down() * h.planes();
                assert_eq!((h.offsets.len(), h.byte_counts.len()), (blocks, blocks));
                assert!(blocks <= prefix.len());
                for plane in 0..=h.planes().min(4) {
                    for t in 0..3 {
                        if let Some(i) = h.tile_index(plane, t, t) {
                            let _ = h.tile_range(i);
                        }
                    }
                }
                assert_eq!(h.tile_range(blocks), None);
                0
            }
            Err(HeaderError::NeedBytes(n)) => {
                assert!(n > prefix.len() as u64);
                1
            }
            Err(HeaderError::NotTiff) => 2,
            Err(HeaderError::Malformed(_)) => 3,
        }
    }

    #[test]
    fn corrupt_and_random_bytes_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        let tiled = dir.path().join("tiled.tif");
        let spec = Spec {
            options: DEFLATE_64X32,
            nodata: Some(-1.0),
            ..Spec::default()
        };
        write::<u16>(&tiled, &spec);
        files.push(std::fs::read(&tiled).expect("read"));
        let planar = dir.path().join("planar.tif");
        let spec = Spec {
            bands: 3,
            options: &[
                ("ENDIANNESS", "BIG"),
                ("BIGTIFF", "YES"),
                ("INTERLEAVE", "BAND"),
            ],
            nodata: Some(f64::NAN),
            ..Spec::default()
        };
        write::<f32>(&planar, &spec);
        files.push(std::fs::read(&planar).expect("read"));
        let cog = write_cog::<u8>(dir.path(), "cog", &Spec::default(), &[("BLOCKSIZE", "64")]);
        files.push(std::fs::read(&cog).expect("read"));
        let long = |v: Vec<u64>| Val::Long(v.into_iter().map(|x| x as u32).collect());
        let (data, entries) = tiled_image(false, long, vec![(GDAL_NODATA, Val::Ascii("-9999"))]);
        files.push(build(true, false, &data, entries));

        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut answers = [0; 4];
        for file in &files {
            let end = parse(file).expect("valid file").header_end as usize;
            let base = &file[..(end + 64).min(file.len())];
            for _ in 0..3000 {
                let mut bytes = base.to_vec();
                for _ in 0..1 + noise.below(6) {
                    let at = noise.below(end);
                    bytes[at] = noise.byte();
                }
                let len = if noise.below(2) == 0 {
                    bytes.len()
                } else {
                    noise.below(bytes.len() + 1)
                };
                answers[check_answer(&bytes[..len])] += 1;
            }
        }
        // Every kind of answer comes up, many headers among them.
        assert!(
            answers[0] > 3000 && answers.iter().all(|&n| n > 100),
            "{answers:?}"
        );

        // Random bytes after a TIFF header pointing at a small IFD nearby.
        let mut random = [0; 4];
        for _ in 0..20000 {
            let mut bytes: Vec<u8> = (0..noise.below(400)).map(|_| noise.byte()).collect();
            if bytes.len() >= 24 && noise.below(4) != 0 {
                let (big, be) = (noise.below(2) == 0, noise.below(2) == 0);
                let magic: &[u8] = match (big, be) {
                    (false, false) => b"II*\0\x08\0\0\0\x0a\0",
                    (false, true) => b"MM\0*\0\0\0\x08\0\x0a",
                    (true, false) => b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0\x06\0\0\0\0\0\0\0",
                    (true, true) => b"MM\0+\0\x08\0\0\0\0\0\0\0\0\0\x10\0\0\0\0\0\0\0\x06",
                };
                let n = magic.len().min(bytes.len());
                bytes[..n].copy_from_slice(&magic[..n]);
                // Tags from the ones read here, so the parse gets far.
                let (first, size) = if big { (24, 20) } else { (10, 12) };
                let tags = [
                    256, 257, 258, 259, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339,
                    33550, 33922, 34264, 34735, 42113,
                ];
                let mut at = first;
                while at + 4 <= bytes.len() {
                    let tag: u16 = tags[noise.below(tags.len())];
                    let field_type = 1 + noise.below(18) as u16;
                    let (tag, field_type) = if be {
                        (tag.to_be_bytes(), field_type.to_be_bytes())
                    } else {
                        (tag.to_le_bytes(), field_type.to_le_bytes())
                    };
                    bytes[at..at + 2].copy_from_slice(&tag);
                    bytes[at + 2..at + 4].copy_from_slice(&field_type);
                    at += size;
                }
            }
            random[check_answer(&bytes)] += 1;
            for cut in [bytes.len() / 2, bytes.len().saturating_sub(1)] {
                check_answer(&bytes[..cut]);
            }
        }
        // Most get past the header to the entries.
        assert!(random[1] > 1000 && random[3] > 1000, "{random:?}");
    }
}
