//! The CLI and the example pipelines: `sql/ndvi_trend.sql` on a generated
//! archive against an independent per-pixel OLS computed from the GeoTIFFs
//! read directly with GDAL; the grid metadata in the Parquet output; output
//! formats; variables and relative paths.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

fn sceneql(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sceneql {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Per-pixel OLS slope of clear-sky NDVI against decimal years since 1970,
/// from the band files themselves (GDAL reads, integer offsets from the
/// geotransforms): the reference for the SQL pipeline.
fn reference_slopes(archive: &Path) -> (HashMap<i64, f64>, usize) {
    let mut scenes = Vec::new();
    for entry in std::fs::read_dir(archive).unwrap() {
        let folder = entry.unwrap().path();
        let id = folder.file_name().unwrap().to_string_lossy().to_string();
        let read = |band: &str| {
            let ds = gdal::Dataset::open(folder.join(format!("{id}_{band}.TIF"))).unwrap();
            let gt = ds.geo_transform().unwrap();
            let (w, h) = ds.raster_size();
            let data = ds
                .rasterband(1)
                .unwrap()
                .read_as::<u16>((0, 0), (w, h), (w, h), None)
                .unwrap()
                .data()
                .to_vec();
            (gt, w, h, data)
        };
        let date = chrono::NaiveDate::parse_from_str(&id[17..25], "%Y%m%d").unwrap();
        let years = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() as f64 / 31_557_600.0;
        scenes.push((years, read("SR_B4"), read("SR_B5"), read("QA_PIXEL")));
    }
    let x0 = scenes
        .iter()
        .map(|s| s.1.0[0])
        .fold(f64::INFINITY, f64::min);
    let y0 = scenes
        .iter()
        .map(|s| s.1.0[3])
        .fold(f64::NEG_INFINITY, f64::max);
    let width = scenes
        .iter()
        .map(|s| ((s.1.0[0] - x0) / 30.0).round() as usize + s.1.1)
        .max()
        .unwrap();
    let mut series: HashMap<i64, Vec<(f64, f64)>> = HashMap::new();
    for (t, (gt, w, h, red), (_, _, _, nir), (_, _, _, qa)) in &scenes {
        let (c0, r0) = (
            ((gt[0] - x0) / 30.0).round() as usize,
            ((y0 - gt[3]) / 30.0).round() as usize,
        );
        for r in 0..*h {
            for c in 0..*w {
                let i = r * w + c;
                if red[i] == 0 || nir[i] == 0 || qa[i] == 1 || qa[i] & 31 != 0 {
                    continue;
                }
                let (rr, nn) = (
                    red[i] as f64 * 0.0000275 - 0.2,
                    nir[i] as f64 * 0.0000275 - 0.2,
                );
                series
                    .entry(((r + r0) * width + c + c0) as i64)
                    .or_default()
                    .push((*t, (nn - rr) / (nn + rr)));
            }
        }
    }
    let slopes = series
        .into_iter()
        .filter(|(_, s)| s.len() >= 2)
        .map(|(p, s)| {
            let n = s.len() as f64;
            let (mx, my) = (
                s.iter().map(|v| v.0).sum::<f64>() / n,
                s.iter().map(|v| v.1).sum::<f64>() / n,
            );
            let sxy: f64 = s.iter().map(|v| (v.0 - mx) * (v.1 - my)).sum();
            let sxx: f64 = s.iter().map(|v| (v.0 - mx).powi(2)).sum();
            (p, sxy / sxx)
        })
        .collect();
    (slopes, width)
}

#[test]
fn ndvi_trend_pipeline_matches_an_independent_ols() {
    let d = tempfile::tempdir().unwrap();
    sceneql(
        d.path(),
        &[
            "gen-sample",
            "archive",
            "--size",
            "48",
            "--dates",
            "10",
            "--tile",
            "16",
            "--seed",
            "5",
        ],
    );
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/ndvi_trend.sql");
    // Relative paths are resolved against the client's working directory.
    sceneql(
        d.path(),
        &[
            "-f",
            sql.to_str().unwrap(),
            "-D",
            "archive=archive/",
            "-D",
            "out=trend.parquet",
        ],
    );
    let out = d.path().join("trend.parquet");
    let (want, width) = reference_slopes(&d.path().join("archive"));
    // The grid travels with the result.
    let reader = SerializedFileReader::new(File::open(&out).unwrap()).unwrap();
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let grid = kv
        .iter()
        .find(|k| k.key == "sceneql.grid")
        .and_then(|k| k.value.clone())
        .expect("sceneql.grid metadata");
    let grid: serde_json::Value = serde_json::from_str(&grid).unwrap();
    assert_eq!(grid["width"].as_u64().unwrap() as usize, width);
    assert_eq!(grid["crs"], "EPSG:32610");
    assert!(grid["crs_wkt"].as_str().unwrap().contains("UTM zone 10N"));
    // Every pixel's slope equals the reference.
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut n = 0;
    for b in reader {
        let b = b.unwrap();
        let (pixel, slope) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            let Some(w) = want.get(&pixel.value(i)) else {
                assert!(
                    slope.is_null(i),
                    "pixel {} has fewer than 2 clear observations",
                    pixel.value(i)
                );
                continue;
            };
            let g = slope.value(i);
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "pixel {}: {g} vs {w}",
                pixel.value(i)
            );
            n += 1;
        }
    }
    assert_eq!(n, want.len(), "every pixel with a trend is in the output");
}

#[test]
fn formats_variables_and_struct_flattening() {
    let d = tempfile::tempdir().unwrap();
    let csv = sceneql(
        d.path(),
        &[
            "-q",
            "-D",
            "n=3",
            "--format",
            "csv",
            "-c",
            "SELECT named_struct('slope', 1.5, 'n', ${n}) AS t, 'a' AS s UNION ALL SELECT NULL, 'b'",
        ],
    );
    let mut lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.remove(0), "t.slope,t.n,s");
    lines.sort();
    assert_eq!(lines, vec![",,b", "1.5,3,a"]);
    let json = sceneql(
        d.path(),
        &[
            "-q",
            "--format",
            "ndjson",
            "-c",
            "SELECT 1 AS a; SELECT 2 AS b",
        ],
    );
    assert!(
        json.contains("| a |"),
        "earlier statements print as tables: {json}"
    );
    assert!(
        json.contains("{\"b\":2}"),
        "the last statement goes to --format: {json}"
    );
    sceneql(
        d.path(),
        &[
            "-q",
            "--format",
            "parquet",
            "--output",
            "one.parquet",
            "-c",
            "SELECT 42 AS answer",
        ],
    );
    let r =
        ParquetRecordBatchReaderBuilder::try_new(File::open(d.path().join("one.parquet")).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let b: Vec<_> = r.map(|b| b.unwrap()).collect();
    assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 42);
}
