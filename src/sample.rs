//! `sceneql gen-sample`: a synthetic Landsat Collection 2 Level-2 archive with
//! a known answer, for the demo and for tests. Each pixel's NDVI follows a
//! planted linear trend plus an annual cycle; scenes differ in extent by whole
//! pixels, have slanted nodata borders (SR = 0, QA_PIXEL fill bit), and
//! clouds / cloud shadows flagged in QA_PIXEL. Files are tiled, DEFLATE +
//! predictor 2 GeoTIFFs named like real products.
//!
//! [`write_geotiff`] is also what tests use to write their own archives.

use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use gdal::DriverManager;
use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::spatial_ref::SpatialRef;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, SceneError};

/// Scale and offset of Landsat C2 L2 surface reflectance.
pub const SR_SCALE: f64 = 0.0000275;
pub const SR_OFFSET: f64 = -0.2;

/// QA_PIXEL values written by the generator.
pub const QA_FILL: u16 = 1;
pub const QA_CLEAR: u16 = 21824; // clear + low confidences (as in real products)
pub const QA_CLOUD: u16 = 22280; // dilated cloud + cloud + high cloud confidence
pub const QA_SHADOW: u16 = 23888; // cloud shadow + confidences

/// Write a single-band GeoTIFF.
#[allow(clippy::too_many_arguments)]
pub fn write_geotiff<T: GdalType + Copy>(
    path: &Path,
    epsg: u32,
    origin: (f64, f64),
    pixel: f64,
    size: (usize, usize),
    data: Vec<T>,
    nodata: Option<f64>,
    tile: usize,
) -> Result<()> {
    let err = |m: String| SceneError::Sample {
        path: path.to_path_buf(),
        message: m,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
    }
    let driver = DriverManager::get_driver_by_name("GTiff").map_err(|e| err(e.to_string()))?;
    let mut options = RasterCreationOptions::new();
    for (k, v) in [
        ("COMPRESS", "DEFLATE"),
        ("PREDICTOR", "2"),
        ("TILED", "YES"),
    ] {
        options
            .add_name_value(k, v)
            .map_err(|e| err(e.to_string()))?;
    }
    options
        .add_name_value("BLOCKXSIZE", &tile.to_string())
        .map_err(|e| err(e.to_string()))?;
    options
        .add_name_value("BLOCKYSIZE", &tile.to_string())
        .map_err(|e| err(e.to_string()))?;
    let mut ds = driver
        .create_with_band_type_with_options::<T, _>(path, size.0, size.1, 1, &options)
        .map_err(|e| err(e.to_string()))?;
    ds.set_geo_transform(&[origin.0, pixel, 0.0, origin.1, 0.0, -pixel])
        .map_err(|e| err(e.to_string()))?;
    let srs = SpatialRef::from_epsg(epsg).map_err(|e| err(e.to_string()))?;
    ds.set_spatial_ref(&srs).map_err(|e| err(e.to_string()))?;
    let mut band = ds.rasterband(1).map_err(|e| err(e.to_string()))?;
    band.set_no_data_value(nodata)
        .map_err(|e| err(e.to_string()))?;
    let mut buf = Buffer::new(size, data);
    band.write((0, 0), size, &mut buf)
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Settings of a generated archive.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub size: usize,
    pub dates: usize,
    pub tile: usize,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            size: 512,
            dates: 24,
            tile: 256,
            seed: 1,
        }
    }
}

/// The planted model, per union-grid pixel (row, col) and decimal year t
/// since 2013: NDVI = base + slope * t + 0.1 sin(2 pi t).
pub fn planted_slope(row: usize, size: usize) -> f64 {
    0.02 * (row as f64 / size as f64 - 0.5)
}

pub fn planted_ndvi(row: usize, col: usize, size: usize, years: f64) -> f64 {
    let base = 0.3 + 0.3 * col as f64 / size as f64;
    base + planted_slope(row, size) * years + 0.1 * (2.0 * std::f64::consts::PI * years).sin()
}

fn to_dn(reflectance: f64) -> u16 {
    ((reflectance - SR_OFFSET) / SR_SCALE)
        .round()
        .clamp(1.0, 65535.0) as u16
}

/// The smallest archive side `generate` writes (its scenes are the grid
/// minus up to a quarter on each side).
pub const MIN_SIZE: usize = 4;

/// Check `spec` and the folder before anything is written: a size of at
/// least [`MIN_SIZE`], at least one date, tiles a positive multiple of 16
/// (GeoTIFF's rule), and `dir` missing or empty unless `force`.
pub fn check(dir: &Path, spec: &SampleSpec, force: bool) -> Result<()> {
    let bad = |message: String| SceneError::Sample {
        path: dir.to_path_buf(),
        message,
    };
    if spec.size < MIN_SIZE {
        return Err(bad(format!(
            "--size {} is too small: give at least {MIN_SIZE} (pixels per side)",
            spec.size
        )));
    }
    if spec.dates == 0 {
        return Err(bad("--dates 0 writes nothing: give at least 1".into()));
    }
    if spec.tile == 0 || !spec.tile.is_multiple_of(16) {
        return Err(bad(format!(
            "--tile {} is not a positive multiple of 16 (GeoTIFF tiles are): e.g. 256 or 512",
            spec.tile
        )));
    }
    let not_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if not_empty && !force {
        return Err(bad(
            "the folder is not empty: give an empty or new folder, or --force to write into it (files of the same names are replaced)"
                .into(),
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists and is not a folder".into()));
    }
    Ok(())
}

/// Generate the archive under `dir` (after [`check`]); returns the scene
/// folders written.
pub fn generate(dir: &Path, spec: &SampleSpec) -> Result<Vec<PathBuf>> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.size;
    let shrink = 4usize.min(n / 4);
    let start = NaiveDate::from_ymd_opt(2013, 4, 11).expect("valid date");
    let step = (8 * 365 / spec.dates.max(1)).max(1) as i64;
    let (x0, y0, pixel) = (499_995.0, 4_200_015.0, 30.0);
    let mut written = Vec::new();
    for d in 0..spec.dates {
        let date = start + Duration::days(step * d as i64 + rng.random_range(0..3));
        let years = (date - start).num_days() as f64 / 365.25;
        // Scene extent: the union grid minus up to `shrink` pixels on each side.
        let (sx, sy) = match d {
            0 => (0, 0),
            1 => (shrink, shrink),
            _ => (rng.random_range(0..=shrink), rng.random_range(0..=shrink)),
        };
        let (w, h) = (n - shrink, n - shrink);
        let clouds: Vec<(f64, f64, f64)> = (0..rng.random_range(0..4))
            .map(|_| {
                (
                    rng.random_range(0.0..n as f64),
                    rng.random_range(0.0..n as f64),
                    rng.random_range(n as f64 / 20.0..n as f64 / 8.0),
                )
            })
            .collect();
        let (mut red, mut nir, mut qa) =
            (vec![0u16; w * h], vec![0u16; w * h], vec![QA_FILL; w * h]);
        for r in 0..h {
            // Slanted nodata border on the left, as on real path/row scenes.
            let border = 2 + r * 3 / h.max(1) + d % 3;
            for c in 0..w {
                let i = r * w + c;
                if c < border {
                    continue;
                }
                let (gr, gc) = (r + sy, c + sx);
                let ndvi = planted_ndvi(gr, gc, n, years).clamp(-0.9, 0.95);
                let noise = rng.random_range(-0.002..0.002);
                let red_r = 0.06 + 0.04 * gr as f64 / n as f64 + noise;
                let nir_r = red_r * (1.0 + ndvi) / (1.0 - ndvi);
                let (mut q, mut rr, mut nr) = (QA_CLEAR, red_r, nir_r);
                for &(cy, cx, rad) in &clouds {
                    let dist = ((gr as f64 - cy).powi(2) + (gc as f64 - cx).powi(2)).sqrt();
                    let shadow =
                        ((gr as f64 - cy - rad).powi(2) + (gc as f64 - cx - rad).powi(2)).sqrt();
                    if dist < rad {
                        (q, rr, nr) = (QA_CLOUD, 0.45, 0.47);
                    } else if shadow < rad * 0.6 && q == QA_CLEAR {
                        (q, rr, nr) = (QA_SHADOW, rr * 0.4, nr * 0.4);
                    }
                }
                red[i] = to_dn(rr);
                nir[i] = to_dn(nr);
                qa[i] = q;
            }
        }
        let acq = date.format("%Y%m%d").to_string();
        let proc = (date + Duration::days(9)).format("%Y%m%d").to_string();
        let id = format!("LC08_L2SP_044034_{acq}_{proc}_02_T1");
        let folder = dir.join(&id);
        let origin = (x0 + sx as f64 * pixel, y0 - sy as f64 * pixel);
        let tile = spec.tile;
        write_geotiff(
            &folder.join(format!("{id}_SR_B4.TIF")),
            32610,
            origin,
            pixel,
            (w, h),
            red,
            Some(0.0),
            tile,
        )?;
        write_geotiff(
            &folder.join(format!("{id}_SR_B5.TIF")),
            32610,
            origin,
            pixel,
            (w, h),
            nir,
            Some(0.0),
            tile,
        )?;
        write_geotiff(
            &folder.join(format!("{id}_QA_PIXEL.TIF")),
            32610,
            origin,
            pixel,
            (w, h),
            qa,
            Some(QA_FILL as f64),
            tile,
        )?;
        written.push(folder);
    }
    Ok(written)
}
