//! What the model knows of a file's pixels, in plain Rust types (no GDAL,
//! no Arrow): sample types, a file's geometry (size, geotransform, CRS) and
//! each band's metadata (type, nodata, tiling, scale). GDAL's side of them
//! is in [`crate::raster`], Arrow's in the provider.

use serde::{Deserialize, Serialize};

/// The sample types sceneql reads (GDAL's integer and float types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SampleType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl SampleType {
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// The type samples are read as (Int8 is read as Int16 on GDAL 3.6).
    pub fn read_as(self) -> Self {
        if self == Self::I8 { Self::I16 } else { self }
    }

    pub fn bytes(self) -> usize {
        match self.read_as() {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// The narrowest type holding both (used when one band name has
    /// different types in different scenes).
    pub fn widen(self, other: Self) -> Self {
        use SampleType::*;
        if self == other {
            return self;
        }
        let float = matches!(self, F32 | F64) || matches!(other, F32 | F64);
        let big = self.bytes().max(other.bytes());
        let signed = matches!(self, I8 | I16 | I32 | I64) || matches!(other, I8 | I16 | I32 | I64);
        match (float, big, signed) {
            (true, b, _) if b <= 2 => F32,
            (true, _, _) => F64,
            (false, 1, true) => I16,
            (false, 2, true) => I32,
            (false, 4, true) => I64,
            (false, 2, false) => U16,
            (false, 4, false) => U32,
            (false, 8, false) if !signed => U64,
            _ => F64,
        }
    }
}

/// Position, size and CRS of a raster file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RasterGeom {
    pub width: usize,
    pub height: usize,
    /// GDAL geotransform: x0, dx, rot, y0, rot, dy (dy < 0 for north-up).
    pub gt: [f64; 6],
    pub crs_wkt: String,
    /// [`crate::crs_cache::crs_key`] of `crs_wkt`, found once per distinct CRS as the files
    /// are inspected.
    pub crs_key: String,
}

/// One band of a file as inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandMeta {
    pub sample: SampleType,
    pub nodata: Option<f64>,
    /// Internal block (tile) size, columns x rows.
    pub block: (usize, usize),
    /// `(scale, offset)` to turn stored values into physical ones, when the
    /// table was asked to (`apply_scale`): the band is then read as Float32.
    #[serde(default)]
    pub physical: Option<(f64, f64)>,
}

impl BandMeta {
    /// The type of the band's column values.
    pub fn column_type(&self) -> SampleType {
        if self.physical.is_some() {
            SampleType::F32
        } else {
            self.sample.read_as()
        }
    }
}
