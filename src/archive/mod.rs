//! Scene discovery: from an archive location to scenes, each with its
//! acquisition time, sensor and band files, then inspected with GDAL.
//!
//! Layouts are recognised per file name: Landsat Collection 1/2
//! ([`landsat`]), Sentinel-2 L2A COG folders ([`sentinel2`]), or a user
//! regex ([`pattern`], which replaces the built-in layouts when given).
//! Files matching no layout are skipped and counted. Listing goes through
//! [`listing`] (object_store), so remote stores slot in there.

pub mod landsat;
pub mod listing;
pub mod pattern;
pub mod sentinel2;
pub mod stac;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDateTime;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::crs_cache;
use crate::error::{Result, SceneError};
use crate::options::{MissingBands, SceneOptions};
use crate::pixels::{BandMeta, RasterGeom, SampleType};
use crate::raster;
use crate::{remote, store};

/// Which band(s) of a file a match provides.
#[derive(Debug, Clone, PartialEq)]
pub enum BandSpec {
    /// One named band: band `index` (1-based) of the file.
    Single { name: String, index: usize },
    /// Every band of a multi-band file (`b1..bN` or `'band_names'`).
    Multi,
}

/// A file recognised by a layout.
#[derive(Debug, Clone)]
pub struct FileMatch {
    pub scene_id: String,
    pub date_text: String,
    pub date_format: Option<String>,
    pub sensor: String,
    pub band: BandSpec,
}

/// One band of one scene, inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Path as GDAL opens it.
    pub path: String,
    /// The file's size in bytes and its ETag (object stores), as listed:
    /// the version a scan reads (a replaced object fails the read).
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub etag: Option<String>,
    /// Its last modification as listed (nanoseconds since 1970): with the
    /// size, how a process reading a local file knows it is the one the
    /// table was made from.
    #[serde(default)]
    pub modified_ns: Option<i64>,
    /// 1-based band index within the file.
    pub index: usize,
    pub geom: Arc<RasterGeom>,
    pub meta: BandMeta,
}

/// A scene: all bands of one acquisition (one footprint, one date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub id: String,
    /// Acquisition time, nanoseconds since 1970-01-01 00:00 UTC.
    pub time_ns: i64,
    pub sensor: String,
    pub bands: BTreeMap<String, Band>,
    /// Common name (`red`, `nir`, ...) -> band name, for this scene's sensor.
    pub common: BTreeMap<String, String>,
    /// Cloud cover in percent, from the product's metadata (Landsat MTL
    /// `CLOUD_COVER`, STAC `eo:cloud_cover`); None when unknown.
    #[serde(default)]
    pub cloud_cover: Option<f64>,
}

impl Band {
    /// An error unless the local file is still the one listed (same size
    /// and modification time); files in object stores are checked by ETag
    /// as they are read.
    pub fn check_unchanged(&self) -> Result<()> {
        let Some(listed) = self.modified_ns else {
            return Ok(());
        };
        if crate::store::is_remote(&self.path) {
            return Ok(());
        }
        let changed = |detail: String| SceneError::Object {
            object: self.path.clone(),
            problem: "changed since the table was created".into(),
            hint: "recreate the table to read the new version".into(),
            detail,
        };
        let meta = std::fs::metadata(&self.path).map_err(|e| changed(e.to_string()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64);
        if meta.len() != self.size || modified != Some(listed) {
            return Err(changed(format!("{} bytes, was {}", meta.len(), self.size)));
        }
        Ok(())
    }
}

impl Scene {
    /// The band defining the scene's footprint and native grid: the finest
    /// resolution, a panchromatic band aside (a Landsat scene's 15 m band 8
    /// would make a grid of 4x the pixels, every 30 m band resampled).
    pub fn reference_band(&self) -> &Band {
        let finest = |pan: bool| {
            self.bands
                .iter()
                .filter(|(name, _)| pan || !landsat::is_panchromatic(&self.sensor, name))
                .map(|(_, b)| b)
                .min_by(|a, b| a.geom.gt[1].abs().total_cmp(&b.geom.gt[1].abs()))
        };
        finest(false)
            .or_else(|| finest(true))
            .expect("a scene has at least one band")
    }
}

/// Files that sit beside rasters and are never rasters themselves: GDAL's
/// and QGIS's `.aux.xml` statistics, overviews (`.ovr`), masks (`.msk`),
/// and metadata text (`.xml`, `.json`, `.txt`, `.md5`, `.html`). (Landsat
/// product metadata, which sceneql reads, is picked out before.)
pub fn is_side_car(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    [
        ".aux.xml", ".aux", ".ovr", ".msk", ".xml", ".json", ".txt", ".md5", ".html",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// Parse a date or date-time with a strftime format.
pub fn parse_time(text: &str, format: &str) -> Option<NaiveDateTime> {
    use chrono::format::{Parsed, StrftimeItems, parse};
    let mut p = Parsed::new();
    parse(&mut p, text, StrftimeItems::new(format)).ok()?;
    // Annual (`%Y`) and monthly (`%Y%m`) products: their first day.
    let by_week =
        p.isoweek().is_some() || p.week_from_sun().is_some() || p.week_from_mon().is_some();
    if p.ordinal().is_none() && !by_week {
        if p.month().is_none() {
            p.set_month(1).ok()?;
        }
        if p.day().is_none() {
            p.set_day(1).ok()?;
        }
    }
    let date = p.to_naive_date().ok()?;
    let time = match p.hour_div_12().or(p.hour_mod_12()) {
        Some(_) => p.to_naive_time().ok()?,
        None => chrono::NaiveTime::MIN,
    };
    Some(date.and_time(time))
}

/// Discover and inspect every scene under `location` (a folder, prefix,
/// file or glob; or a STAC document or API, [`discover_stac`]).
pub async fn discover(location: &str, opts: &SceneOptions) -> Result<Vec<Scene>> {
    if stac::is_stac_location(location) {
        return discover_stac(location, opts).await;
    }
    let loc = listing::Location::parse(location, &opts.store)?;
    let files = loc.list().await?;
    let pattern = match &opts.pattern {
        Some(p) => Some(pattern::Pattern::parse(p, opts.date_format.as_deref())?),
        None => None,
    };
    let mut matched = Vec::new();
    let mut skipped = 0usize;
    let mut side_cars: Vec<&str> = Vec::new();
    // Landsat product metadata (scene center times), by scene id.
    let mut metadata: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        if pattern.is_none()
            && let Some(id) = landsat::match_metadata(&f.file_name)
        {
            metadata.insert(id, f.path.clone());
            continue;
        }
        if is_side_car(&f.file_name) {
            side_cars.push(&f.path);
            continue;
        }
        let m = match &pattern {
            Some(p) if opts.path_pattern => p.match_file(loc.relative(f)),
            Some(p) => p.match_file(&f.file_name),
            None => landsat::match_file(&f.file_name)
                .or_else(|| sentinel2::match_file(&f.parent_name, &f.file_name)),
        };
        match m {
            Some(m) => matched.push((f.clone(), m)),
            None => {
                skipped += 1;
                tracing::debug!(file = %f.path, "skipped: matches no scene layout");
            }
        }
    }
    if !side_cars.is_empty() {
        tracing::info!(
            count = side_cars.len(),
            first = %side_cars[0],
            "side-car files skipped (.aux.xml, .ovr, .msk, metadata text)"
        );
    }
    tracing::info!(location = %loc.display, files = files.len(), matched = matched.len(), skipped, side_cars = side_cars.len(), "archive listed");
    if matched.is_empty() {
        let side = match side_cars.len() {
            0 => String::new(),
            n => format!(", {n} side-car files skipped"),
        };
        let reason = if files.is_empty() && loc.is_glob() {
            "the glob matched no file: check it (`*` stays within one folder name, e.g. 'archive/2020*/' reads the folders whose names start with 2020)".to_string()
        } else if files.is_empty() {
            "the location holds no files: check the path".to_string()
        } else if pattern.is_some() {
            format!(
                "{skipped} files matched no OPTIONS ('pattern' ...){side}: the pattern must match whole file names, extension included"
            )
        } else {
            format!(
                "{skipped} files matched no known layout{side}; for other layouts set OPTIONS ('pattern' '(?P<date>\\d{{8}})_(?P<band>\\w+)\\.tif')"
            )
        };
        return Err(SceneError::NoScenes {
            location: loc.display.clone(),
            reason,
        });
    }
    // GDAL reads of these files use this table's settings.
    for path in matched
        .iter()
        .map(|(f, _)| &f.path)
        .chain(metadata.values())
    {
        store::use_for_gdal(path, &opts.store);
    }
    // Tiled GeoTIFFs in object stores: described from their headers, read
    // concurrently (one ranged GET each); the rest by GDAL.
    let described = describe_files(matched.iter().map(|(f, _)| f), &opts.store).await?;
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || {
        let mut scenes = inspect_all(matched, described, &opts)?;
        add_center_times(&mut scenes, &metadata);
        Ok(scenes)
    })
    .await
    .map_err(|e| {
        SceneError::Io(
            "inspection task failed".into(),
            std::io::Error::other(e.to_string()),
        )
    })?
}

/// Move each scene with a metadata file from its date to its scene center
/// time. A metadata file that cannot be read or has no center time leaves the
/// date at 00:00 (logged), as for archives without metadata files.
fn add_center_times(scenes: &mut [Scene], metadata: &BTreeMap<String, String>) {
    for scene in scenes.iter_mut() {
        let Some(path) = metadata.get(&scene.id) else {
            continue;
        };
        let text = raster::read_small_text(path);
        scene.cloud_cover = text.as_deref().and_then(landsat::cloud_cover);
        match text.as_deref().and_then(landsat::scene_center_time_ns) {
            Some(ns) => scene.time_ns += ns,
            None => tracing::warn!(
                scene = %scene.id, file = %path,
                "no SCENE_CENTER_TIME in the metadata file; using the date at 00:00"
            ),
        }
    }
    scenes.sort_by(|a, b| (a.time_ns, &a.id).cmp(&(b.time_ns, &b.id)));
}

/// Scenes from a STAC location: each item a scene (`scene` its id, `time`
/// its datetime, `sensor` from its platform), each data asset a band named
/// by its key, the assets' common names mapped to sceneql's. Assets whose
/// item gives their grid (`proj:*`) are not opened: one asset per key is,
/// for the file layout (sample type, tiling) the others share; assets
/// without a grid are each described from their headers (or by GDAL).
pub async fn discover_stac(location: &str, opts: &SceneOptions) -> Result<Vec<Scene>> {
    let items = stac::load(location, &stac::options_of(opts)).await?;
    let mut sampled: BTreeMap<&str, &str> = BTreeMap::new();
    let mut files: Vec<listing::ListedFile> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for item in &items {
        for (key, asset) in &item.assets {
            let first_of_key = asset.grid.is_some() && !sampled.contains_key(key.as_str());
            if first_of_key {
                sampled.insert(key, &asset.href);
            }
            if (asset.grid.is_none() || first_of_key) && seen.insert(&asset.href) {
                files.push(listing::ListedFile {
                    path: asset.href.clone(),
                    file_name: key.clone(),
                    parent_name: item.id.clone(),
                    size: 0,
                    etag: None,
                    modified_ns: None,
                });
            }
        }
    }
    // GDAL reads of the assets use this table's settings.
    for asset in items.iter().flat_map(|i| i.assets.values()) {
        store::use_for_gdal(&asset.href, &opts.store);
    }
    let mut infos = describe_files(&files, &opts.store).await?;
    let rest: Vec<String> = files
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| !infos.contains_key(p))
        .collect();
    let inspected = tokio::task::spawn_blocking(move || {
        let paths: Vec<&str> = rest.iter().map(String::as_str).collect();
        let results = inspect_many(&paths);
        rest.into_iter().zip(results).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        SceneError::Io(
            "inspection task failed".into(),
            std::io::Error::other(e.to_string()),
        )
    })?;
    for (path, info) in inspected {
        infos.insert(path, info?);
    }
    let mut geoms: Vec<Arc<RasterGeom>> = Vec::new();
    let mut shared = |g: RasterGeom| match geoms.iter().find(|x| ***x == g) {
        Some(x) => x.clone(),
        None => {
            let x = Arc::new(g);
            geoms.push(x.clone());
            x
        }
    };
    let mut scenes = Vec::with_capacity(items.len());
    for item in &items {
        let mut scene = Scene {
            id: item.id.clone(),
            time_ns: item.time_ns,
            sensor: item.sensor.clone(),
            bands: BTreeMap::new(),
            common: BTreeMap::new(),
            cloud_cover: item.cloud_cover,
        };
        for (key, asset) in &item.assets {
            let (geom, mut meta) = match (infos.get(&asset.href), &asset.grid) {
                (Some(info), _) => (info.geom.clone(), info.bands[0].clone()),
                (None, Some(grid)) => {
                    let layout = sampled
                        .get(key.as_str())
                        .and_then(|h| infos.get(*h))
                        .ok_or_else(|| SceneError::Unreadable {
                            path: asset.href.clone(),
                            message: "internal: no file of this asset key was inspected".into(),
                        })?;
                    let crs_wkt =
                        raster::epsg_wkt(grid.epsg).ok_or_else(|| SceneError::Geometry {
                            path: asset.href.clone(),
                            message: format!(
                                "EPSG:{} (proj:epsg / proj:code) is not a CRS GDAL knows",
                                grid.epsg
                            ),
                        })?;
                    let geom = RasterGeom {
                        width: grid.shape.1,
                        height: grid.shape.0,
                        gt: grid.transform,
                        crs_wkt,
                        crs_key: format!("EPSG:{}", grid.epsg),
                    };
                    (geom, layout.bands[0].clone())
                }
                (None, None) => {
                    return Err(SceneError::Unreadable {
                        path: asset.href.clone(),
                        message: "internal: the asset was not inspected".into(),
                    });
                }
            };
            if let Some(n) = asset.nodata {
                meta.nodata = Some(n);
            }
            if opts.apply_scale && (asset.scale.is_some() || asset.offset.is_some()) {
                meta.physical = Some((asset.scale.unwrap_or(1.0), asset.offset.unwrap_or(0.0)));
            }
            scene.bands.insert(
                key.clone(),
                Band {
                    path: asset.href.clone(),
                    size: 0,
                    etag: None,
                    modified_ns: None,
                    index: 1,
                    geom: shared(geom),
                    meta,
                },
            );
            if let Some(c) = &asset.common_name {
                scene.common.insert(c.clone(), key.clone());
            }
        }
        scenes.push(scene);
    }
    apply_band_selection(&mut scenes, opts)?;
    for s in &mut scenes {
        if opts.common_names.is_some() {
            s.common = common_names(s, opts);
        } else {
            let bands = &s.bands;
            s.common.retain(|_, b| bands.contains_key(b));
        }
    }
    scenes.sort_by(|a, b| (a.time_ns, &a.id).cmp(&(b.time_ns, &b.id)));
    Ok(scenes)
}

/// The files in object stores that are GeoTIFFs sceneql reads itself,
/// described from their headers (fetched concurrently, kept for the
/// process), by path.
async fn describe_files<'a>(
    files: impl IntoIterator<Item = &'a listing::ListedFile>,
    config: &crate::store::StoreConfig,
) -> Result<HashMap<String, raster::RasterInfo>> {
    let stats = Arc::new(remote::FetchStats::default());
    let mut jobs = Vec::new();
    for f in files {
        let lower = f.path.to_ascii_lowercase();
        if !store::is_remote(&f.path) || !(lower.ends_with(".tif") || lower.ends_with(".tiff")) {
            continue;
        }
        let url = store::ObjectUrl::parse(&f.path)?;
        let store = store::store_for(&url, config)?;
        let object = remote::ObjectVersion {
            url: f.path.clone(),
            size: f.size,
            etag: f.etag.clone(),
        };
        let stats = stats.clone();
        jobs.push(async move {
            let header = remote::header(store.as_ref(), &object, &stats).await?;
            Ok::<_, SceneError>((object.url, header))
        });
    }
    let headers: Vec<_> = remote::on_io(async move {
        futures::stream::iter(jobs)
            .buffer_unordered(remote::IN_FLIGHT_PER_HOST)
            .try_collect::<Vec<_>>()
            .await
    })
    .await??;
    let mut out = HashMap::new();
    for (path, header) in headers {
        if let Some(info) = header.and_then(|h| raster::describe(&h)) {
            out.insert(path, info);
        }
    }
    Ok(out)
}

/// `raster::inspect` of each path, in order, on as many threads as there
/// are cores (opening files is most of a table's creation time), with one
/// CRS cache for all. The threads take the next file as they are free, so
/// the one finding a CRS (PROJ's database) does not hold the others up.
fn inspect_many(paths: &[&str]) -> Vec<Result<raster::RasterInfo>> {
    let crs = &crs_cache::CrsCache::default();
    let next = &AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(paths.len().max(1));
    let done: Vec<Option<Result<raster::Inspected>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        mine.push((i, raster::inspect(p, crs)));
                    }
                    mine
                })
            })
            .collect();
        let mut done: Vec<Option<_>> = paths.iter().map(|_| None).collect();
        for h in handles {
            // A thread that panicked leaves its files without a result.
            for (i, r) in h.join().unwrap_or_default() {
                done[i] = Some(r);
            }
        }
        done
    });
    paths
        .iter()
        .zip(done)
        .map(|(p, d)| match d {
            Some(r) => r.and_then(raster::Inspected::finish),
            None => Err(SceneError::Unreadable {
                path: p.to_string(),
                message: "inspecting the file panicked".into(),
            }),
        })
        .collect()
}

/// Group matched files into scenes and inspect every file not `described`
/// already with GDAL.
fn inspect_all(
    matched: Vec<(listing::ListedFile, FileMatch)>,
    mut described: HashMap<String, raster::RasterInfo>,
    opts: &SceneOptions,
) -> Result<Vec<Scene>> {
    let mut scenes: BTreeMap<String, Scene> = BTreeMap::new();
    let mut geoms: Vec<Arc<RasterGeom>> = Vec::new();
    let paths: Vec<&str> = matched
        .iter()
        .map(|(f, _)| f.path.as_str())
        .filter(|p| !described.contains_key(*p))
        .collect();
    let mut infos = inspect_many(&paths).into_iter();
    for (file, m) in matched {
        let path = file.path.clone();
        let info = match described.remove(&path) {
            Some(info) => Ok(info),
            None => infos.next().ok_or_else(|| SceneError::Unreadable {
                path: path.clone(),
                message: "internal: no inspection result".into(),
            })?,
        };
        let format = opts
            .date_format
            .clone()
            .or(m.date_format.clone())
            .unwrap_or_else(|| "%Y%m%d".into());
        let time = parse_time(&m.date_text, &format).ok_or_else(|| SceneError::BadDate {
            path: path.clone(),
            text: m.date_text.clone(),
            format: format.clone(),
        })?;
        let time_ns = time
            .and_utc()
            .timestamp_nanos_opt()
            .ok_or_else(|| SceneError::BadDate {
                path: path.clone(),
                text: m.date_text.clone(),
                format: format.clone(),
            })?;
        let info = info?;
        // Share one geometry per distinct file geometry (S2 has three).
        let geom = match geoms.iter().find(|g| ***g == info.geom) {
            Some(g) => g.clone(),
            None => {
                let g = Arc::new(info.geom.clone());
                geoms.push(g.clone());
                g
            }
        };
        let scene = scenes.entry(m.scene_id.clone()).or_insert_with(|| Scene {
            id: m.scene_id.clone(),
            time_ns,
            sensor: m.sensor.clone(),
            bands: BTreeMap::new(),
            common: BTreeMap::new(),
            cloud_cover: None,
        });
        let entries: Vec<(String, usize)> = match &m.band {
            BandSpec::Single { name, index } => vec![(name.clone(), *index)],
            BandSpec::Multi => (1..=info.bands.len())
                .map(|i| {
                    let name = opts
                        .band_names
                        .as_ref()
                        .and_then(|n| n.get(i - 1).cloned())
                        .unwrap_or_else(|| format!("b{i}"));
                    (name, i)
                })
                .collect(),
        };
        for (name, index) in entries {
            let Some(meta) = info.bands.get(index - 1).cloned() else {
                return Err(SceneError::Unreadable {
                    path: path.clone(),
                    message: format!("the file has no band {index}"),
                });
            };
            let band = Band {
                path: path.clone(),
                size: file.size,
                etag: file.etag.clone(),
                modified_ns: file.modified_ns,
                index,
                geom: geom.clone(),
                meta,
            };
            if let Some(prev) = scene.bands.get(&name) {
                return Err(SceneError::DuplicateBand {
                    scene: scene.id.clone(),
                    band: name,
                    first: prev.path.clone(),
                    second: path.clone(),
                });
            }
            scene.bands.insert(name, band);
        }
    }
    let mut scenes: Vec<Scene> = scenes.into_values().collect();
    apply_band_selection(&mut scenes, opts)?;
    for s in &mut scenes {
        s.common = common_names(s, opts);
    }
    scenes.sort_by(|a, b| (a.time_ns, &a.id).cmp(&(b.time_ns, &b.id)));
    Ok(scenes)
}

/// Keep the bands asked for (`'bands'`), apply nodata overrides, and check that
/// scenes of one sensor have the same bands (a missing band is almost always an
/// incomplete download: an error, not silent NULLs).
fn apply_band_selection(scenes: &mut Vec<Scene>, opts: &SceneOptions) -> Result<()> {
    // Every band of the archive, for the errors below.
    let found: BTreeSet<String> = scenes
        .iter()
        .flat_map(|s| s.bands.keys().cloned())
        .collect();
    let listed = || found.iter().cloned().collect::<Vec<_>>().join(", ");
    if let Some(keep) = &opts.bands
        && let Some(missing) = keep.iter().find(|b| !found.contains(*b))
    {
        return Err(SceneError::BadOption {
            key: "bands".into(),
            value: keep.join(","),
            reason: format!("no scene has a band '{missing}'; bands found: {}", listed()),
        });
    }
    if let Some(unknown) = opts.nodata.per_band.keys().find(|b| !found.contains(*b)) {
        return Err(SceneError::BadOption {
            key: "nodata".into(),
            value: opts
                .nodata
                .per_band
                .iter()
                .map(|(b, v)| format!("{b}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            reason: format!("no scene has a band '{unknown}'; bands found: {}", listed()),
        });
    }
    for s in scenes.iter_mut() {
        if let Some(keep) = &opts.bands {
            s.bands.retain(|name, _| keep.contains(name));
        }
        for (name, band) in s.bands.iter_mut() {
            if let Some(n) = opts.nodata.for_band(name) {
                band.meta.nodata = Some(n);
            }
        }
    }
    let mut by_sensor: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in scenes.iter() {
        by_sensor
            .entry(&s.sensor)
            .or_default()
            .extend(s.bands.keys().map(String::as_str));
    }
    // Scenes lacking bands their sensor's other scenes have, with those bands.
    let incomplete: Vec<(usize, Vec<String>)> = scenes
        .iter()
        .enumerate()
        .filter_map(|(k, s)| {
            let missing: Vec<String> = by_sensor[s.sensor.as_str()]
                .iter()
                .filter(|b| !s.bands.contains_key(**b))
                .map(|b| b.to_string())
                .collect();
            (!missing.is_empty()).then_some((k, missing))
        })
        .collect();
    if !incomplete.is_empty() {
        match opts.missing_bands {
            MissingBands::Null => {
                tracing::info!(
                    scenes = incomplete.len(),
                    "scenes with missing bands read as NULL there"
                );
            }
            MissingBands::Skip => {
                tracing::info!(
                    scenes = incomplete.len(),
                    "scenes with missing bands left out"
                );
                let drop: BTreeSet<usize> = incomplete.iter().map(|(k, _)| *k).collect();
                let mut k = 0;
                scenes.retain(|_| {
                    k += 1;
                    !drop.contains(&(k - 1))
                });
                if scenes.is_empty() {
                    return Err(SceneError::BadOption {
                        key: "missing_bands".into(),
                        value: "skip".into(),
                        reason: "every scene lacks a band: no scene is left".into(),
                    });
                }
            }
            MissingBands::Error => {
                let common: BTreeSet<&str> = found
                    .iter()
                    .map(String::as_str)
                    .filter(|b| scenes.iter().all(|s| s.bands.contains_key(*b)))
                    .collect();
                const SHOWN: usize = 5;
                let mut listed: Vec<String> = incomplete
                    .iter()
                    .take(SHOWN)
                    .map(|(k, missing)| {
                        let s = &scenes[*k];
                        format!(
                            "'{}' lacks {} ({})",
                            s.id,
                            missing.join(", "),
                            s.reference_band().path
                        )
                    })
                    .collect();
                if incomplete.len() > SHOWN {
                    listed.push(format!("and {} more", incomplete.len() - SHOWN));
                }
                return Err(SceneError::MissingBands {
                    count: incomplete.len(),
                    scenes: listed.join("; "),
                    common: common.into_iter().collect::<Vec<_>>().join(","),
                });
            }
        }
    }
    if scenes.iter().any(|s| s.bands.is_empty()) {
        return Err(SceneError::BadOption {
            key: "bands".into(),
            value: opts.bands.clone().unwrap_or_default().join(","),
            reason: "a scene is left with no band".into(),
        });
    }
    Ok(())
}

/// Common name -> band for one scene: the `'common_names'` option when given,
/// else the sensor's built-in mapping.
fn common_names(s: &Scene, opts: &SceneOptions) -> BTreeMap<String, String> {
    if let Some(map) = &opts.common_names {
        return map
            .iter()
            .filter(|(_, b)| s.bands.contains_key(*b))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect();
    }
    let mut out = BTreeMap::new();
    for band in s.bands.keys() {
        let name = if s.sensor.starts_with('L') {
            landsat::common_name(&s.sensor, band)
        } else if s.sensor.starts_with("S2") {
            sentinel2::common_name(band)
        } else {
            None
        };
        // Level-2 products map sr_bN; a level-1 bN only when no sr_ band exists.
        if let Some(n) = name
            && (band.starts_with("sr_") || band == "qa_pixel" || !out.contains_key(n))
        {
            out.insert(n.to_string(), band.clone());
        }
    }
    out
}

/// The widest sample type each band name (and common name) has across scenes.
pub fn column_types(
    scenes: &[Scene],
) -> (BTreeMap<String, SampleType>, BTreeMap<String, SampleType>) {
    let mut bands: BTreeMap<String, SampleType> = BTreeMap::new();
    let mut common: BTreeMap<String, SampleType> = BTreeMap::new();
    for s in scenes {
        for (name, b) in &s.bands {
            let t = b.meta.column_type();
            bands
                .entry(name.clone())
                .and_modify(|e| *e = e.widen(t))
                .or_insert(t);
        }
        for (name, band) in &s.common {
            let t = s.bands[band].meta.column_type();
            common
                .entry(name.clone())
                .and_modify(|e| *e = e.widen(t))
                .or_insert(t);
        }
    }
    (bands, common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_with_strftime_formats() {
        assert_eq!(
            parse_time("20200105", "%Y%m%d").unwrap().to_string(),
            "2020-01-05 00:00:00"
        );
        assert_eq!(
            parse_time("2020005", "%Y%j").unwrap().to_string(),
            "2020-01-05 00:00:00"
        );
        assert_eq!(
            parse_time("2020-01-05T10:30:00", "%Y-%m-%dT%H:%M:%S")
                .unwrap()
                .to_string(),
            "2020-01-05 10:30:00"
        );
        assert!(parse_time("20201345", "%Y%m%d").is_none());
    }

    #[test]
    fn annual_monthly_and_timestamped_names_give_times() {
        let t = |text: &str, format: &str| parse_time(text, format).map(|t| t.to_string());
        // Annual and monthly products: their first day.
        assert_eq!(t("2017", "%Y").as_deref(), Some("2017-01-01 00:00:00"));
        assert_eq!(t("201706", "%Y%m").as_deref(), Some("2017-06-01 00:00:00"));
        assert_eq!(
            t("2017-06", "%Y-%m").as_deref(),
            Some("2017-06-01 00:00:00")
        );
        // Full timestamps.
        assert_eq!(
            t("20170601T103021", "%Y%m%dT%H%M%S").as_deref(),
            Some("2017-06-01 10:30:21")
        );
        // Day of year: 2008 is a leap year, 31 + 29 + 31 = 91 days before
        // April, so day 118 is April 27.
        assert_eq!(t("2008118", "%Y%j").as_deref(), Some("2008-04-27 00:00:00"));
        assert_eq!(t("201713", "%Y%m"), None);
        assert_eq!(t("2017", "%Y%m%d"), None);
        assert_eq!(t("20170230", "%Y%m%d"), None);
    }
}
