//! `sql/ndvi_trend.sql`, `sql/harmonic.sql` and `sql/mann_kendall.sql` on a generated archive: every
//! pixel's result equals numpy's computation of the same model
//! (`tests/reference/models.py`) over the same series, read from the band
//! files directly.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Command;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::common::*;

/// Run a pipeline on a fresh sample and return its rows and numpy's reference.
fn run(sql: &str) -> (Vec<RecordBatch>, BTreeMap<String, Value>) {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 24, 14, 16, Some(11));
    let sql = repo().join("sql").join(sql);
    sceneql_cli(
        d.path(),
        &[
            "-q",
            "-f",
            sql.to_str().unwrap(),
            "-D",
            "archive=archive/",
            "-D",
            "out=out.parquet",
        ],
    );
    let batches = read_parquet(&d.path().join("out.parquet"));
    let reference = numpy_reference(d.path(), &d.path().join("archive"));
    (batches, reference)
}

/// Every row of a Parquet file.
pub fn read_parquet(path: &std::path::Path) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// numpy's models (`tests/reference/models.py`) of each pixel's clear NDVI
/// series of the generated archive in `archive`, by pixel (`work`: a
/// folder for the script's files).
pub fn numpy_reference(
    work: &std::path::Path,
    archive: &std::path::Path,
) -> BTreeMap<String, Value> {
    let (series, _) = clear_ndvi_series(archive);
    let input: BTreeMap<String, &Vec<(f64, f64)>> =
        series.iter().map(|(p, s)| (p.to_string(), s)).collect();
    std::fs::write(
        work.join("series.json"),
        serde_json::to_string(&input).unwrap(),
    )
    .unwrap();
    let script = repo().join("tests/reference/models.py");
    let out = Command::new(python())
        .arg(script)
        .arg(work.join("series.json"))
        .arg(work.join("ref.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(work.join("ref.json")).unwrap()).unwrap()
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * got.abs().max(want.abs()).max(1.0)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_ref()
}

#[test]
fn harmonic_pipeline_matches_numpy_lstsq() {
    let (batches, reference) = run("harmonic.sql");
    let mut fitted = 0;
    for b in &batches {
        let pixel = column(b, "pixel").as_primitive::<Int64Type>();
        let coefs = column(b, "coefficients").as_list::<i32>();
        let (rmse, r2, n) = (
            column(b, "rmse").as_primitive::<Float64Type>(),
            column(b, "r2").as_primitive::<Float64Type>(),
            column(b, "n").as_primitive::<Int64Type>(),
        );
        let predicted = column(b, "ndvi_2021_07_01").as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let want = &reference[&pixel.value(i).to_string()]["harmonic"];
            if want.is_null() {
                assert!(
                    coefs.is_null(i) || coefs.value(i).null_count() == coefs.value(i).len(),
                    "pixel {}: underdetermined",
                    pixel.value(i)
                );
                continue;
            }
            assert_eq!(n.value(i), want["n"].as_i64().unwrap());
            let c = coefs.value(i);
            let c = c.as_primitive::<Float64Type>();
            let w: Vec<f64> = want["coefficients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(c.len(), 4);
            for (k, wk) in w.iter().enumerate() {
                assert!(
                    close(c.value(k), *wk, 1e-7),
                    "pixel {} coefficient {k}: {} vs numpy {wk}",
                    pixel.value(i),
                    c.value(k)
                );
            }
            if let Some(wr) = want["rmse"].as_f64() {
                assert!(
                    close(rmse.value(i), wr, 1e-7),
                    "pixel {} rmse {} vs {wr}",
                    pixel.value(i),
                    rmse.value(i)
                );
            }
            if let Some(wr2) = want["r2"].as_f64() {
                assert!(
                    close(r2.value(i), wr2, 1e-7),
                    "pixel {} r2 {} vs {wr2}",
                    pixel.value(i),
                    r2.value(i)
                );
            }
            // harmonic_predict evaluates the same model at 2021-07-01.
            let t = chrono::NaiveDate::from_ymd_opt(2021, 7, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp() as f64
                / 31_557_600.0;
            let tau = 2.0 * std::f64::consts::PI * t;
            let model = w[0] + w[1] * t + w[2] * tau.cos() + w[3] * tau.sin();
            assert!(
                close(predicted.value(i), model, 1e-7),
                "pixel {} prediction {} vs {model}",
                pixel.value(i),
                predicted.value(i)
            );
            fitted += 1;
        }
    }
    assert!(fitted > 400, "only {fitted} pixels fitted");
}

#[test]
fn mann_kendall_pipeline_matches_numpy() {
    let (batches, reference) = run("mann_kendall.sql");
    let mut tested = 0;
    for b in &batches {
        let pixel = column(b, "pixel").as_primitive::<Int64Type>();
        let n = column(b, "n").as_primitive::<Int64Type>();
        let s = column(b, "s").as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let want = &reference[&pixel.value(i).to_string()]["mk"];
            if want.is_null() {
                continue;
            }
            assert_eq!(n.value(i), want["n"].as_i64().unwrap());
            assert_eq!(
                s.value(i),
                want["s"].as_i64().unwrap(),
                "pixel {} S",
                pixel.value(i)
            );
            for f in ["tau", "var_s", "z", "p_value"] {
                let got = column(b, f).as_primitive::<Float64Type>().value(i);
                let w = want[f].as_f64().unwrap();
                assert!(
                    close(got, w, 1e-9),
                    "pixel {} {f}: {got} vs numpy {w}",
                    pixel.value(i)
                );
            }
            tested += 1;
        }
    }
    assert!(tested > 400, "only {tested} pixels tested");
}

#[test]
fn ndvi_trend_pipeline_matches_numpy_polyfit() {
    let (batches, reference) = run("ndvi_trend.sql");
    check_trend(&batches, &reference);
}

/// `sql/ndvi_trend.sql`'s output equals numpy's polyfit, every pixel.
pub fn check_trend(batches: &[RecordBatch], reference: &BTreeMap<String, Value>) {
    let mut tested = 0;
    for b in batches {
        let pixel = column(b, "pixel").as_primitive::<Int64Type>();
        let (slope, intercept) = (
            column(b, "slope").as_primitive::<Float64Type>(),
            column(b, "intercept").as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            let want = &reference[&pixel.value(i).to_string()]["trend"];
            if want.is_null() {
                assert!(
                    slope.is_null(i),
                    "pixel {}: no trend from fewer than 2 times",
                    pixel.value(i)
                );
                continue;
            }
            let (ws, wi) = (want[0].as_f64().unwrap(), want[1].as_f64().unwrap());
            assert!(
                close(slope.value(i), ws, 1e-8),
                "pixel {} slope {} vs numpy {ws}",
                pixel.value(i),
                slope.value(i)
            );
            assert!(
                close(intercept.value(i), wi, 1e-8),
                "pixel {} intercept {} vs numpy {wi}",
                pixel.value(i),
                intercept.value(i)
            );
            tested += 1;
        }
    }
    assert!(tested > 400, "only {tested} pixels tested");
}

/// Every example of the function reference (`sceneql functions`,
/// `docs/functions.md`) runs as written: those reading a table against a
/// scene table named `obs` over a generated archive, and each gives rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_runs_against_a_scene_table() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 24, 40, 16, Some(4));
    let ctx = obs_table(&d.path().join("archive")).await;
    let mut with_table = 0;
    for f in sceneql_udfs::docs::functions() {
        let doc = f
            .doc
            .unwrap_or_else(|| panic!("{} has no documentation", f.name));
        let example = doc
            .sql_example
            .unwrap_or_else(|| panic!("{} has no example", f.name));
        assert!(
            !example.contains("```"),
            "{}: the reference adds the code fence itself",
            f.name
        );
        let out = sceneql::run::run_sql(&ctx, &example, &Default::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "example of {} failed: {}\n{example}",
                    f.name,
                    sceneql::run::user_message(&e)
                )
            });
        let rows: usize = out.iter().map(|o| o.rows()).sum();
        assert!(rows > 0, "example of {} gave no rows:\n{example}", f.name);
        if example.contains("FROM obs") {
            with_table += 1;
        }
    }
    assert!(with_table >= 7, "{with_table} examples read the table");
}

/// Per-year composites: `GROUP BY pixel, date_part('year', time)` gives
/// each pixel's yearly median of clear NDVI (README example), equal to the
/// medians of the band files' values read with GDAL, grouped by calendar
/// year there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yearly_medians_per_pixel_equal_the_files() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 24, 30, 16, Some(6));
    let archive = d.path().join("archive");
    let ctx = obs_table(&archive).await;
    let b = query(
        &ctx,
        "SELECT pixel, CAST(date_part('year', time) AS BIGINT) AS year, \
                median(ndvi(landsat_sr(nir), landsat_sr(red))) AS ndvi_median \
         FROM obs WHERE landsat_clear(qa) \
         GROUP BY pixel, date_part('year', time)",
    )
    .await;
    let mut got = std::collections::BTreeMap::new();
    for b in &b {
        let (p, y, m) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            got.insert((p.value(i), y.value(i)), m.value(i));
        }
    }
    let (series, _) = clear_ndvi_series(&archive);
    let mut want = std::collections::BTreeMap::new();
    for (pixel, obs) in &series {
        let mut by_year: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for (years, v) in obs {
            let t =
                chrono::DateTime::from_timestamp((years * 31_557_600.0).round() as i64, 0).unwrap();
            by_year
                .entry(chrono::Datelike::year(&t) as i64)
                .or_default()
                .push(*v);
        }
        for (year, mut v) in by_year {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let median = if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            };
            want.insert((*pixel, year), median);
        }
    }
    assert!(want.len() > 500, "{} pixel-years", want.len());
    assert_eq!(got.len(), want.len());
    for (k, w) in &want {
        let g = got[k];
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{k:?}: {g} vs {w}"
        );
    }
}
