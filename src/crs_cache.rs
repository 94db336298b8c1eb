//! A table's files' CRS at the cost of one per distinct CRS.
//!
//! Creating a scene table asks GDAL for every file's coordinate reference
//! system, and for a GeoTIFF GDAL builds it from the file's GeoTIFF keys
//! through PROJ (database lookups, WKT export and re-import): about 1 ms of
//! CPU a file, most of a table's creation time. The files of an archive
//! mostly share one CRS, written as the same keys. So each GeoTIFF's keys
//! (the GeoKeyDirectory, GeoDoubleParams and GeoAsciiParams tags of its
//! first image) are read here, raw, and the CRS GDAL gave for the first
//! file with those exact bytes is reused for the others.
//!
//! Only where the keys are all GDAL can take the CRS from: the file is
//! opened by the GTiff driver and has no side-car file (`.aux.xml`, `.prj`,
//! ...), which GDAL may prefer. Anything else (other formats, side-cars, a
//! TIFF this does not parse) is asked of GDAL as before.
//!
//! The thread that asks GDAL first for some keys also identifies the CRS
//! ([`crs_key`]) while PROJ's database is open in that
//! thread (each thread opens its own), so the grid is chosen later without
//! asking PROJ again. Other threads meeting the same keys meanwhile do not
//! wait: they get a [`CrsLookup::Pending`] answer and go on to their next
//! file; the answer is read once every file has been inspected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use gdal::Dataset;
use gdal::spatial_ref::SpatialRef;

use crate::vsi::VsiFile;

/// GeoKeyDirectoryTag, GeoDoubleParamsTag, GeoAsciiParamsTag.
const GEO_TAGS: [u16; 3] = [34735, 34736, 34737];

/// Largest IFD (entries) and tag value (bytes) read; beyond, GDAL is asked.
const MAX_ENTRIES: u64 = 4096;
const MAX_VALUE_BYTES: u64 = 1 << 20;

/// A file's coordinate reference system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crs {
    pub wkt: String,
    /// [`crs_key`] of `wkt`.
    pub key: String,
}

/// One set of keys' answer (None: GDAL found no CRS), set by the thread
/// that claimed it.
#[derive(Default)]
pub struct Slot {
    claimed: AtomicBool,
    answer: OnceLock<Option<Crs>>,
}

/// The CRS of one file: known, or being found by another thread.
pub enum CrsLookup {
    Ready(Option<Crs>),
    Pending(Arc<Slot>),
}

impl CrsLookup {
    /// The answer, once the thread finding it is done (after every
    /// inspecting thread has ended). `Err` when that thread gave none (it
    /// panicked).
    pub fn resolve(self) -> Result<Option<Crs>, Unanswered> {
        match self {
            CrsLookup::Ready(crs) => Ok(crs),
            CrsLookup::Pending(slot) => slot.answer.get().cloned().ok_or(Unanswered),
        }
    }
}

/// The thread finding a CRS ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered;

/// CRS by GeoTIFF keys, shared by the threads inspecting a table's files.
#[derive(Default)]
pub struct CrsCache {
    by_keys: Mutex<HashMap<Vec<u8>, Arc<Slot>>>,
    /// [`crs_key`] by WKT (for files whose CRS GDAL gave
    /// one by one: other formats, side-cars).
    key_by_wkt: Mutex<HashMap<String, String>>,
}

impl CrsCache {
    /// The CRS of `ds` (opened from `path`), None where it has none:
    /// `compute(ds)` (GDAL's WKT), identified, unless a file with the same
    /// GeoTIFF keys was asked before. Pending while another thread is
    /// finding the CRS of the same keys.
    pub fn lookup(
        &self,
        ds: &Dataset,
        path: &str,
        compute: impl FnOnce(&Dataset) -> Option<String>,
    ) -> CrsLookup {
        let Some(keys) = keys_alone(ds, path) else {
            return CrsLookup::Ready(compute(ds).map(|wkt| self.identify(wkt)));
        };
        let slot = {
            let mut map = self.by_keys.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(keys).or_default().clone()
        };
        if slot.claimed.swap(true, Ordering::AcqRel) {
            return match slot.answer.get() {
                Some(crs) => CrsLookup::Ready(crs.clone()),
                None => CrsLookup::Pending(slot),
            };
        }
        let crs = compute(ds).map(|wkt| self.identify(wkt));
        let _ = slot.answer.set(crs.clone());
        CrsLookup::Ready(crs)
    }

    /// A WKT with its key, identified once per distinct WKT (asks PROJ's
    /// database).
    fn identify(&self, wkt: String) -> Crs {
        let known = self
            .key_by_wkt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&wkt)
            .cloned();
        let key = known.unwrap_or_else(|| {
            let key = crs_key(&wkt);
            self.key_by_wkt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(wkt.clone(), key.clone());
            key
        });
        Crs { wkt, key }
    }
}

/// The GeoTIFF keys of `ds` when they are all its CRS can come from.
fn keys_alone(ds: &Dataset, path: &str) -> Option<Vec<u8>> {
    if ds.driver().short_name() != "GTiff" || !file_is_alone(ds, path) {
        return None;
    }
    geotiff_keys(&mut VsiFile::open(path)?)
}

/// True when GDAL lists `path` as the dataset's only file.
fn file_is_alone(ds: &Dataset, path: &str) -> bool {
    // SAFETY: the dataset is open; GDALGetFileList returns a NULL-terminated
    // list of NUL-terminated strings that we own and free with CSLDestroy.
    unsafe {
        let list = gdal_sys::GDALGetFileList(ds.c_dataset());
        if list.is_null() {
            return false;
        }
        let n = gdal_sys::CSLCount(list);
        let alone = n == 1
            && std::ffi::CStr::from_ptr(*list)
                .to_str()
                .is_ok_and(|f| f == path);
        gdal_sys::CSLDestroy(list);
        alone
    }
}

/// The raw GeoTIFF key tags of the file's first image: its byte order, then
/// per tag present its number, type, count and value bytes. None when the
/// file is not a TIFF this parses or has no GeoKeyDirectory.
fn geotiff_keys(file: &mut VsiFile) -> Option<Vec<u8>> {
    let mut head = [0u8; 16];
    if !file.read_at(0, &mut head[..8]) {
        return None;
    }
    let little = match &head[..2] {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |b: &[u8]| {
        let a = [b[0], b[1]];
        if little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    };
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let u64_at = |b: &[u8]| {
        let a: [u8; 8] = b[..8].try_into().unwrap_or_default();
        if little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    };
    // Classic TIFF: 12-byte entries, 4-byte counts and values; BigTIFF: 20,
    // 8 and 8.
    let big = match u16_at(&head[2..4]) {
        42 => false,
        43 => true,
        _ => return None,
    };
    let (ifd, count_bytes, entry_bytes, inline) = if big {
        if !file.read_at(8, &mut head[8..16]) {
            return None;
        }
        (u64_at(&head[8..16]), 8usize, 20usize, 8u64)
    } else {
        (u32_at(&head[4..8]) as u64, 2, 12, 4)
    };
    let mut count = [0u8; 8];
    if !file.read_at(ifd, &mut count[..count_bytes]) {
        return None;
    }
    let entries = if big {
        u64_at(&count)
    } else {
        u16_at(&count) as u64
    };
    if entries == 0 || entries > MAX_ENTRIES {
        return None;
    }
    let mut table = vec![0u8; entries as usize * entry_bytes];
    if !file.read_at(ifd + count_bytes as u64, &mut table) {
        return None;
    }
    let mut keys = vec![little as u8];
    let mut directory = false;
    for e in table.chunks_exact(entry_bytes) {
        let tag = u16_at(&e[0..2]);
        if !GEO_TAGS.contains(&tag) {
            continue;
        }
        let kind = u16_at(&e[2..4]);
        let (n, value) = if big {
            (u64_at(&e[4..12]), &e[12..20])
        } else {
            (u32_at(&e[4..8]) as u64, &e[8..12])
        };
        let bytes = n.checked_mul(type_size(kind)?)?;
        if bytes > MAX_VALUE_BYTES {
            return None;
        }
        keys.extend_from_slice(&e[0..4]);
        keys.extend_from_slice(&n.to_le_bytes());
        if bytes <= inline {
            keys.extend_from_slice(&value[..bytes as usize]);
        } else {
            let at = if big {
                u64_at(value)
            } else {
                u32_at(value) as u64
            };
            let mut buf = vec![0u8; bytes as usize];
            if !file.read_at(at, &mut buf) {
                return None;
            }
            keys.extend_from_slice(&buf);
        }
        directory |= tag == GEO_TAGS[0];
    }
    directory.then_some(keys)
}

/// Bytes per value of a TIFF field type; None for a type TIFF does not define.
fn type_size(kind: u16) -> Option<u64> {
    Some(match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => return None,
    })
}

/// A canonical key for a CRS: `EPSG:nnnn` where GDAL identifies it, else its WKT.
pub fn crs_key(wkt: &str) -> String {
    let Ok(mut srs) = SpatialRef::from_wkt(wkt) else {
        return wkt.to_string();
    };
    if srs.auth_name().as_deref() != Some("EPSG") {
        let _ = srs.auto_identify_epsg();
    }
    match (srs.auth_name(), srs.auth_code()) {
        (Some(name), Ok(code)) => format!("{name}:{code}"),
        _ => srs.to_proj4().unwrap_or_else(|_| wkt.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdal::DriverManager;
    use gdal::raster::RasterCreationOptions;
    use gdal::spatial_ref::SpatialRef;

    fn write(path: &std::path::Path, epsg: u32, options: &[(&str, &str)]) {
        let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
        let mut opts = RasterCreationOptions::new();
        for (k, v) in options {
            opts.add_name_value(k, v).expect("creation option");
        }
        let mut ds = driver
            .create_with_band_type_with_options::<u16, _>(path, 64, 64, 1, &opts)
            .expect("create");
        ds.set_geo_transform(&[500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0])
            .expect("geotransform");
        ds.set_spatial_ref(&SpatialRef::from_epsg(epsg).expect("srs"))
            .expect("srs");
    }

    fn keys(path: &std::path::Path) -> Option<Vec<u8>> {
        geotiff_keys(&mut VsiFile::open(path.to_str().expect("utf-8")).expect("open"))
    }

    #[test]
    fn keys_tell_crs_apart_in_classic_and_big_tiffs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        write(&p("a.tif"), 32610, &[]);
        write(
            &p("b.tif"),
            32610,
            &[("TILED", "YES"), ("COMPRESS", "DEFLATE")],
        );
        write(&p("c.tif"), 32611, &[]);
        write(&p("d.tif"), 32610, &[("BIGTIFF", "YES")]);
        write(&p("e.tif"), 32611, &[("BIGTIFF", "YES")]);
        let (a, b, c, d, e) = (
            keys(&p("a.tif")).expect("keys of a"),
            keys(&p("b.tif")).expect("keys of b"),
            keys(&p("c.tif")).expect("keys of c"),
            keys(&p("d.tif")).expect("keys of d"),
            keys(&p("e.tif")).expect("keys of e"),
        );
        // Same CRS, other layout: same keys; another zone: other keys.
        assert_eq!(a, b);
        assert_ne!(a, c);
        // BigTIFF stores the same key values (counts widened the same way).
        assert_eq!(a, d);
        assert_eq!(c, e);
        assert_ne!(d, e);
    }

    #[test]
    fn files_without_keys_or_not_tiff_have_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain.tif");
        {
            let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
            driver
                .create_with_band_type::<u8, _>(&plain, 8, 8, 1)
                .expect("create");
        }
        assert_eq!(keys(&plain), None);
        let text = dir.path().join("x.tif");
        std::fs::write(&text, b"not a tiff at all").expect("write");
        assert_eq!(keys(&text), None);
    }

    #[test]
    fn a_thread_meeting_keys_being_looked_up_does_not_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.tif"), dir.path().join("b.tif"));
        write(&a, 32610, &[]);
        write(&b, 32610, &[]);
        let (a, b) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
        let cache = &CrsCache::default();
        let (to_first, wait_here) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            // The first thread finds the CRS only once the second has
            // looked up the same keys (a deadlock if that waited).
            let first = scope.spawn(move || {
                let ds = Dataset::open(a).expect("open a");
                cache.lookup(&ds, a, |ds| {
                    wait_here.recv().expect("second lookup done");
                    ds.spatial_ref().and_then(|s| s.to_wkt()).ok()
                })
            });
            while !cache
                .by_keys
                .lock()
                .expect("lock")
                .values()
                .any(|s| s.claimed.load(Ordering::Acquire))
            {
                std::thread::yield_now();
            }
            let ds = Dataset::open(b).expect("open b");
            let second = cache.lookup(&ds, b, |_| panic!("asked GDAL twice for one set of keys"));
            assert!(matches!(second, CrsLookup::Pending(_)));
            to_first.send(()).expect("send");
            let first = first.join().expect("first thread").resolve();
            let second = second.resolve();
            let want = ds.spatial_ref().and_then(|s| s.to_wkt()).ok();
            assert_eq!(first.clone().ok().flatten().map(|c| c.wkt), want);
            assert_eq!(first, second);
            assert_eq!(
                second.ok().flatten().map(|c| c.key).as_deref(),
                Some("EPSG:32610")
            );
        });
    }

    #[test]
    fn the_cache_asks_gdal_once_per_keys_and_always_beside_side_cars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        for n in ["a.tif", "b.tif"] {
            write(&p(n), 32610, &[]);
        }
        write(&p("c.tif"), 32611, &[]);
        write(&p("d.tif"), 32610, &[]);
        // A side-car may carry its own CRS: that file is always asked.
        std::fs::write(p("d.tif.aux.xml"), "<PAMDataset></PAMDataset>").expect("aux");
        let cache = CrsCache::default();
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let gdal_wkt = |ds: &Dataset| {
            asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ds.spatial_ref().and_then(|s| s.to_wkt()).ok()
        };
        let mut got = Vec::new();
        for n in ["a.tif", "b.tif", "c.tif", "d.tif", "a.tif"] {
            let path = p(n).to_str().expect("utf-8").to_string();
            let ds = Dataset::open(&path).expect("open");
            let want = ds.spatial_ref().and_then(|s| s.to_wkt()).ok();
            let crs = match cache.lookup(&ds, &path, gdal_wkt) {
                CrsLookup::Ready(crs) => crs,
                CrsLookup::Pending(_) => panic!("{n}: pending on one thread"),
            };
            let wkt = crs.as_ref().map(|c| c.wkt.clone());
            assert_eq!(wkt, want, "{n}");
            assert_eq!(
                crs.map(|c| c.key),
                Some(format!("EPSG:{}", if n == "c.tif" { 32611 } else { 32610 })),
                "{n}"
            );
            got.push(wkt);
        }
        // a (b and the second a reuse it), c, and d (side-car).
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_ne!(got[0], got[2]);
    }
}
