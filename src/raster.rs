//! The GDAL boundary: inspecting raster files (size, geotransform, CRS,
//! sample type, nodata, tiling), reading a window of a band straight into a
//! strided buffer (no intermediate copy), and building warped VRTs that put a
//! file onto a target grid. Everything above this module sees plain Rust
//! types; every GDAL failure becomes a `SceneError` naming the file.

use std::ffi::{CStr, CString, c_void};
use std::ptr::null_mut;

use gdal::Dataset;
use gdal::raster::GdalDataType;
use gdal::spatial_ref::SpatialRef;

use crate::crs_cache::{CrsCache, CrsLookup};
use crate::error::{Result, SceneError};
pub use crate::pixels::{BandMeta, RasterGeom, SampleType};
use crate::vsi;

/// GDAL's sample types as sceneql's.
pub(crate) trait GdalSample: Sized {
    fn from_gdal(t: GdalDataType) -> Option<Self>;
    fn gdal(self) -> gdal_sys::GDALDataType::Type;
}

impl GdalSample for SampleType {
    fn from_gdal(t: GdalDataType) -> Option<Self> {
        Some(match t {
            GdalDataType::UInt8 => Self::U8,
            GdalDataType::UInt16 => Self::U16,
            GdalDataType::Int16 => Self::I16,
            GdalDataType::UInt32 => Self::U32,
            GdalDataType::Int32 => Self::I32,
            GdalDataType::UInt64 => Self::U64,
            GdalDataType::Int64 => Self::I64,
            GdalDataType::Float32 => Self::F32,
            GdalDataType::Float64 => Self::F64,
            _ => return None,
        })
    }

    fn gdal(self) -> gdal_sys::GDALDataType::Type {
        use gdal_sys::GDALDataType as G;
        match self {
            // Int8 needs GDAL >= 3.7; read it as Int16 (lossless).
            Self::U8 => G::GDT_Byte,
            Self::I8 | Self::I16 => G::GDT_Int16,
            Self::U16 => G::GDT_UInt16,
            Self::U32 => G::GDT_UInt32,
            Self::I32 => G::GDT_Int32,
            Self::U64 => G::GDT_UInt64,
            Self::I64 => G::GDT_Int64,
            Self::F32 => G::GDT_Float32,
            Self::F64 => G::GDT_Float64,
        }
    }
}

/// What GDAL reports about a file.
#[derive(Debug, Clone)]
pub struct RasterInfo {
    pub geom: RasterGeom,
    pub bands: Vec<BandMeta>,
}

/// Route GDAL's own messages (`ERROR 1: ...`, driver warnings) to
/// sceneql's log (`-v` shows them, with URL query strings removed) instead
/// of raw stderr, where they came before sceneql's own error for the same
/// failure. Once per process. GDAL still records each error, so reads that
/// raised one still fail.
pub fn log_gdal_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gdal::config::set_error_handler(|class, number, message| {
            use gdal::errors::CplErrType;
            let message = crate::store::first_line(message);
            match class {
                CplErrType::None | CplErrType::Debug => {
                    tracing::debug!(target: "sceneql::gdal", number, "GDAL: {message}")
                }
                CplErrType::Warning => {
                    tracing::info!(target: "sceneql::gdal", number, "GDAL warning: {message}")
                }
                CplErrType::Failure | CplErrType::Fatal => {
                    tracing::info!(target: "sceneql::gdal", number, "GDAL error: {message}")
                }
            }
        });
    });
}

pub(crate) fn last_gdal_error() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local,
    // NUL-terminated buffer owned by GDAL that stays valid until the next
    // GDAL call on this thread; we copy it out at once.
    unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

pub fn open(path: &str) -> Result<Dataset> {
    Dataset::open(vsi::gdal_name(path)).map_err(|e| {
        let message = e.to_string();
        // A store that did not answer (or refused) is not a bad file.
        if crate::store::is_remote(path) && message.contains("HTTP") {
            return SceneError::Object {
                object: path.to_string(),
                problem: "could not be read by GDAL".into(),
                hint: "check the store's settings (endpoint, credentials: the environment or the table's OPTIONS) and the network".into(),
                detail: crate::store::first_line(
                    message
                        .split("Error msg: ")
                        .last()
                        .unwrap_or_default()
                        .trim_matches(['\'', ' ']),
                ),
            };
        }
        SceneError::Unreadable {
            path: path.to_string(),
            message,
        }
    })
}

/// Open a file to read pixels whose metadata the table already holds:
/// without listing its folder for side-car files (`.aux.xml`, `.ovr`,
/// `.msk`), which the pixel reads do not use; that listing is much of the
/// cost of an open in a folder of many scenes.
pub fn open_for_read(path: &str) -> Result<Dataset> {
    // Per thread (the threads scan reads run on: the runtime's workers, or
    // blocking threads), so other opens (table creation inspects files on
    // threads of its own) keep GDAL's defaults.
    let _ =
        gdal::config::set_thread_local_config_option("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
    open(path)
}

/// A file inspected but for its CRS, which another thread may still be
/// finding ([`CrsLookup::Pending`]).
pub struct Inspected {
    path: String,
    width: usize,
    height: usize,
    gt: [f64; 6],
    crs: CrsLookup,
    bands: Vec<BandMeta>,
}

impl Inspected {
    /// The inspection with its CRS: call once the threads inspecting the
    /// table's files have ended.
    pub fn finish(self) -> Result<RasterInfo> {
        let crs = self.crs.resolve().map_err(|_| SceneError::Unreadable {
            path: self.path.clone(),
            message: "finding the file's coordinate reference system failed".into(),
        })?;
        let crs = crs.ok_or_else(|| SceneError::Geometry {
            path: self.path.clone(),
            message: "the file has no coordinate reference system; set one (gdal_edit.py -a_srs) or remove it".into(),
        })?;
        Ok(RasterInfo {
            geom: RasterGeom {
                width: self.width,
                height: self.height,
                gt: self.gt,
                crs_wkt: crs.wkt,
                crs_key: crs.key,
            },
            bands: self.bands,
        })
    }
}

/// Inspect a file's geometry and bands (metadata only: no pixel is read);
/// its CRS through `crs`, shared by the files of one table, without
/// waiting for a CRS another thread is finding
/// ([`Inspected::finish`] gives it).
pub fn inspect(path: &str, crs: &CrsCache) -> Result<Inspected> {
    let ds = open(path)?;
    let gt = ds.geo_transform().map_err(|_| SceneError::Geometry {
        path: path.to_string(),
        message:
            "the file has no geotransform (it is not georeferenced); georeference it or remove it"
                .into(),
    })?;
    let crs = crs.lookup(&ds, path, |ds| {
        ds.spatial_ref().and_then(|s| s.to_wkt()).ok()
    });
    let (width, height) = ds.raster_size();
    let mut bands = Vec::with_capacity(ds.raster_count());
    for i in 1..=ds.raster_count() {
        let band = ds.rasterband(i).map_err(|e| SceneError::Unreadable {
            path: path.into(),
            message: e.to_string(),
        })?;
        let sample =
            SampleType::from_gdal(band.band_type()).ok_or_else(|| SceneError::UnsupportedType {
                path: path.into(),
                band: i.to_string(),
                gdal_type: band.band_type().name(),
            })?;
        bands.push(BandMeta {
            sample,
            nodata: band.no_data_value(),
            block: band.block_size(),
            physical: None,
        });
    }
    Ok(Inspected {
        path: path.to_string(),
        width,
        height,
        gt,
        crs,
        bands,
    })
}

/// A file described from its parsed TIFF header instead of by GDAL: None
/// when the header lacks what GDAL would find (a geotransform, an EPSG
/// CRS, a sample type sceneql reads), so GDAL inspects it after all.
pub fn describe(h: &crate::cog::TiffHeader) -> Option<RasterInfo> {
    let sample = match (h.sample_format, h.bits_per_sample) {
        (1, 8) => SampleType::U8,
        (2, 8) => SampleType::I8,
        (1, 16) => SampleType::U16,
        (2, 16) => SampleType::I16,
        (1, 32) => SampleType::U32,
        (2, 32) => SampleType::I32,
        (1, 64) => SampleType::U64,
        (2, 64) => SampleType::I64,
        (3, 32) => SampleType::F32,
        (3, 64) => SampleType::F64,
        _ => return None,
    };
    let gt = h.geotransform?;
    let code = h.epsg?;
    let crs_wkt = epsg_wkt(code)?;
    let meta = BandMeta {
        sample,
        nodata: h.nodata,
        block: h.block_size(),
        physical: None,
    };
    Some(RasterInfo {
        geom: RasterGeom {
            width: h.width,
            height: h.height,
            gt,
            crs_wkt,
            crs_key: format!("EPSG:{code}"),
        },
        bands: vec![meta; usize::from(h.samples_per_pixel.max(1))],
    })
}

/// The WKT of an EPSG code, as GDAL gives it for a GeoTIFF with that code
/// (found once per code for the process).
pub fn epsg_wkt(code: u32) -> Option<String> {
    static WKT: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<u32, String>>> =
        std::sync::LazyLock::new(Default::default);
    if let Some(w) = WKT.lock().ok()?.get(&code) {
        return Some(w.clone());
    }
    let wkt = SpatialRef::from_epsg(code).and_then(|s| s.to_wkt()).ok()?;
    WKT.lock().ok()?.insert(code, wkt.clone());
    Some(wkt)
}

/// Parse a user CRS (anything GDAL's SetFromUserInput takes) into WKT.
pub fn user_crs_wkt(text: &str) -> Result<String> {
    SpatialRef::from_definition(text)
        .and_then(|s| s.to_wkt())
        .map_err(|e| SceneError::BadOption {
            key: "crs".into(),
            value: text.into(),
            reason: format!("GDAL cannot parse it ({e}); use e.g. 'EPSG:32610' or a WKT string"),
        })
}

/// Read `band` (1-based) of `ds`, the window `(x, y, cols, rows)` in file
/// pixels, into `dst`, whose rows are `dst_stride` samples apart, as
/// `sample.read_as()` values. `dst` must hold at least
/// `(rows - 1) * dst_stride + cols` samples of that type.
pub fn read_window(
    ds: &Dataset,
    band: usize,
    window: (usize, usize, usize, usize),
    sample: SampleType,
    dst: &mut [u8],
    dst_stride: usize,
) -> std::result::Result<(), String> {
    let (x, y, cols, rows) = window;
    if cols == 0 || rows == 0 {
        return Ok(());
    }
    let size = sample.bytes();
    check_destination(window, size, dst.len(), dst_stride)?;
    let b = ds.rasterband(band).map_err(|e| e.to_string())?;
    let mut extra = gdal_sys::GDALRasterIOExtraArg {
        nVersion: 1,
        eResampleAlg: gdal_sys::GDALRIOResampleAlg::GRIORA_NearestNeighbour,
        pfnProgress: None,
        pProgressData: null_mut(),
        bFloatingPointWindowValidity: 0,
        dfXOff: 0.0,
        dfYOff: 0.0,
        dfXSize: 0.0,
        dfYSize: 0.0,
    };
    // GDAL may log a failed read (a dropped connection under /vsis3/, a
    // corrupt block) and still return blank pixels: an error raised during
    // the read fails it, whatever RasterIO returns.
    // SAFETY: reads GDAL's thread-local error counter.
    let errors_before = unsafe { gdal_sys::CPLGetErrorCounter() };
    // SAFETY: `b` is a valid band handle for the life of `ds`; the buffer
    // holds `needed` bytes as checked above, and GDAL writes `cols` samples
    // of `size` bytes per row, rows `dst_stride * size` bytes apart.
    let rv = unsafe {
        gdal_sys::GDALRasterIOEx(
            b.c_rasterband(),
            gdal_sys::GDALRWFlag::GF_Read,
            x as i32,
            y as i32,
            cols as i32,
            rows as i32,
            dst.as_mut_ptr() as *mut c_void,
            cols as i32,
            rows as i32,
            sample.gdal(),
            size as i64,
            (dst_stride * size) as i64,
            &mut extra,
        )
    };
    if rv != gdal_sys::CPLErr::CE_None {
        return Err(last_gdal_error());
    }
    // SAFETY: reads GDAL's thread-local error state.
    let failed_quietly = unsafe {
        gdal_sys::CPLGetErrorCounter() != errors_before
            && gdal_sys::CPLGetLastErrorType() >= gdal_sys::CPLErr::CE_Failure
    };
    if failed_quietly {
        return Err(last_gdal_error());
    }
    Ok(())
}

/// An error unless `dst_len` bytes hold the (non-empty) window `(x, y,
/// cols, rows)` of `size`-byte samples written rows `dst_stride` samples
/// apart, as [`read_window`] and [`crate::tiff::BandRead`] write it.
pub(crate) fn check_destination(
    (_, _, cols, rows): (usize, usize, usize, usize),
    size: usize,
    dst_len: usize,
    dst_stride: usize,
) -> std::result::Result<(), String> {
    let needed = ((rows - 1) * dst_stride + cols) * size;
    if dst_len < needed {
        return Err(format!(
            "internal: buffer of {dst_len} bytes for a window needing {needed}"
        ));
    }
    Ok(())
}

/// A warped VRT of `src` on the grid window with top-left corner `(x0, y0)`,
/// pixel size `(dx, dy)` (dy < 0) and `cols x rows` pixels in `dst_wkt`.
pub struct WarpSpec<'a> {
    pub dst_wkt: &'a str,
    pub x0: f64,
    pub y0: f64,
    pub dx: f64,
    pub dy: f64,
    pub cols: usize,
    pub rows: usize,
    pub resampling: &'a str,
    pub src_nodata: Option<f64>,
}

pub fn warped_vrt(src: &Dataset, path: &str, spec: &WarpSpec) -> Result<Dataset> {
    let err = |m: String| SceneError::Warp {
        path: path.to_string(),
        message: m,
    };
    let (xmax, ymin) = (
        spec.x0 + spec.dx * spec.cols as f64,
        spec.y0 + spec.dy * spec.rows as f64,
    );
    let mut args: Vec<String> = vec![
        "-of".into(),
        "VRT".into(),
        "-t_srs".into(),
        spec.dst_wkt.into(),
        "-te".into(),
        format!("{:.10}", spec.x0),
        format!("{:.10}", ymin),
        format!("{:.10}", xmax),
        format!("{:.10}", spec.y0),
        "-ts".into(),
        spec.cols.to_string(),
        spec.rows.to_string(),
        "-r".into(),
        spec.resampling.into(),
        "-ovr".into(),
        "NONE".into(),
    ];
    if let Some(n) = spec.src_nodata {
        args.extend([
            "-srcnodata".into(),
            n.to_string(),
            "-dstnodata".into(),
            n.to_string(),
        ]);
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let mut argv: Vec<*mut std::ffi::c_char> = cargs.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(null_mut());
    // SAFETY: argv is a NULL-terminated array of valid C strings that outlive
    // the call; GDAL copies what it needs. The options are freed below; the
    // returned handle is owned by the `Dataset` we wrap it in (closed on drop).
    // The VRT holds its own reference to the source dataset.
    unsafe {
        let opts = gdal_sys::GDALWarpAppOptionsNew(argv.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(err(last_gdal_error()));
        }
        let mut srcs = [src.c_dataset()];
        let mut usage_error = 0;
        let dest = CString::new("").expect("no NUL");
        let h = gdal_sys::GDALWarp(
            dest.as_ptr(),
            null_mut(),
            1,
            srcs.as_mut_ptr(),
            opts,
            &mut usage_error,
        );
        gdal_sys::GDALWarpAppOptionsFree(opts);
        if h.is_null() {
            return Err(err(last_gdal_error()));
        }
        Ok(Dataset::from_c_dataset(h))
    }
}

/// Read a small text file (e.g. a product's metadata) through GDAL's
/// virtual file systems, so `/vsis3/`, `/vsicurl/`, ... paths work like
/// local ones. At most 1 MiB; `None` if it cannot be read or is not UTF-8.
pub fn read_small_text(path: &str) -> Option<String> {
    let c_path = std::ffi::CString::new(vsi::gdal_name(path)).ok()?;
    let mut data: *mut gdal_sys::GByte = std::ptr::null_mut();
    let mut size: gdal_sys::vsi_l_offset = 0;
    // SAFETY: GDAL allocates `data` (VSIMalloc) and we free it with VSIFree.
    let ok = unsafe {
        gdal_sys::VSIIngestFile(
            std::ptr::null_mut(),
            c_path.as_ptr(),
            &mut data,
            &mut size,
            1 << 20,
        )
    };
    if ok == 0 || data.is_null() {
        return None;
    }
    // SAFETY: `data` holds `size` bytes written by VSIIngestFile.
    let bytes = unsafe { std::slice::from_raw_parts(data, size as usize) }.to_vec();
    unsafe { gdal_sys::VSIFree(data.cast()) };
    String::from_utf8(bytes).ok()
}
