//! Per-pixel time series from SQL equal the arrays the scenes were written
//! from: scenes differing in extent by whole pixels, nodata borders, clouds,
//! and two adjacent scenes of one date. Every pixel, every date, NULL where
//! nodata, no row outside a scene's footprint.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType, UInt16Type};

use super::common::*;

const PX: f64 = 30.0;
const X0: f64 = 600_015.0;
const Y0: f64 = 4_000_035.0;

/// (pixel, time in ns, scene id).
type RowKey = (i64, i64, String);

struct TestScene {
    id: String,
    date: chrono::NaiveDate,
    /// Offset of the file on the union grid (rows, cols).
    off: (usize, usize),
    size: (usize, usize),
    red: Vec<u16>,
    qa: Vec<u16>,
}

fn scenes() -> Vec<TestScene> {
    // (path/row, date, row offset, col offset, width, height)
    let specs = [
        ("044034", "20200105", 0, 0, 40, 30),
        ("044034", "20200121", 2, 3, 37, 28),
        ("044034", "20200206", 1, 1, 38, 29),
        // An adjacent footprint on the same date as the first scene, overlapping it.
        ("044035", "20200105", 20, 10, 30, 20),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(k, &(pr, date, r0, c0, w, h))| {
            let id = format!("LC08_L2SP_{pr}_{date}_20200301_02_T1");
            let mut red = vec![0u16; w * h];
            let mut qa = vec![1u16; w * h];
            for r in 0..h {
                for c in 0..w {
                    let i = r * w + c;
                    // Slanted nodata border and a cloud blob.
                    if c < 1 + r / 10 + k {
                        continue;
                    }
                    red[i] = (1000 + 7 * k + 13 * r + 3 * c) as u16;
                    let cloud = (r as i64 - 10).pow(2) + (c as i64 - 12 - k as i64).pow(2) < 16;
                    qa[i] = if cloud { 22280 } else { 21824 };
                }
            }
            TestScene {
                id,
                date: chrono::NaiveDate::parse_from_str(date, "%Y%m%d").unwrap(),
                off: (r0, c0),
                size: (w, h),
                red,
                qa,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_match_the_written_arrays_for_every_pixel_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = scenes();
    for s in &scenes {
        let origin = (X0 + s.off.1 as f64 * PX, Y0 - s.off.0 as f64 * PX);
        landsat_band(
            dir.path(),
            &s.id,
            "SR_B4",
            32610,
            origin,
            PX,
            s.size,
            s.red.clone(),
            Some(0.0),
        );
        landsat_band(
            dir.path(),
            &s.id,
            "QA_PIXEL",
            32610,
            origin,
            PX,
            s.size,
            s.qa.clone(),
            Some(1.0),
        );
    }
    // Union grid: rows 0..40 (scene 4 reaches row 40), cols 0..40.
    let (gw, gh) = (40usize, 40usize);
    let ctx = ctx();
    // Small blocks: many partitions, blocks crossing scene edges.
    let sql = format!(
        "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}' OPTIONS ('block_bytes' '1MB')",
        location(dir.path())
    );
    query(&ctx, &sql).await;
    let batches = query(&ctx, "SELECT pixel, row, col, x, y, time, scene, sr_b4, red, qa_pixel FROM obs ORDER BY pixel, time, scene").await;

    // Expected rows from the arrays: (pixel, time, scene) -> (red, qa).
    let mut expected: BTreeMap<RowKey, (Option<u16>, Option<u16>)> = BTreeMap::new();
    for s in &scenes {
        let t = s
            .date
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap();
        for r in 0..s.size.1 {
            for c in 0..s.size.0 {
                let i = r * s.size.0 + c;
                let (gr, gc) = (r + s.off.0, c + s.off.1);
                let pixel = (gr * gw + gc) as i64;
                let red = (s.red[i] != 0).then_some(s.red[i]);
                let qa = (s.qa[i] != 1).then_some(s.qa[i]);
                expected.insert((pixel, t, s.id.clone()), (red, qa));
            }
        }
    }
    let mut got = BTreeMap::new();
    for b in &batches {
        let pixel = b.column(0).as_primitive::<Int64Type>();
        let row = b.column(1).as_primitive::<Int32Type>();
        let col = b.column(2).as_primitive::<Int32Type>();
        let x = b
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let y = b
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let time = b.column(5).as_primitive::<TimestampNanosecondType>();
        let scene = datafusion::arrow::compute::cast(
            b.column(6),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let scene = scene.as_string::<i32>();
        let sr = b.column(7).as_primitive::<UInt16Type>();
        let red = b.column(8).as_primitive::<UInt16Type>();
        let qa = b.column(9).as_primitive::<UInt16Type>();
        for i in 0..b.num_rows() {
            let p = pixel.value(i);
            assert_eq!(
                p,
                row.value(i) as i64 * gw as i64 + col.value(i) as i64,
                "pixel = row * width + col"
            );
            assert_eq!(
                x.value(i),
                X0 + (col.value(i) as f64 + 0.5) * PX,
                "x is the pixel centre"
            );
            assert_eq!(
                y.value(i),
                Y0 - (row.value(i) as f64 + 0.5) * PX,
                "y is the pixel centre"
            );
            let v = |a: &datafusion::arrow::array::PrimitiveArray<UInt16Type>| {
                (!a.is_null(i)).then(|| a.value(i))
            };
            assert_eq!(v(sr), v(red), "red is sr_b4 on Landsat 8");
            let key = (p, time.value(i), scene.value(i).to_string());
            assert!(
                got.insert(key, (v(sr), v(qa))).is_none(),
                "duplicate row for pixel {p}"
            );
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "one row per (pixel, scene) inside the footprints"
    );
    for (k, v) in &expected {
        assert_eq!(got.get(k), Some(v), "pixel/time/scene {k:?}");
    }
    // Ordering holds without ORDER BY inside each partition: check the whole
    // count per pixel and that the grid is the union of the scenes.
    let dims = query(
        &ctx,
        "SELECT CAST(max(row) + 1 AS INT), CAST(max(col) + 1 AS INT) FROM obs",
    )
    .await;
    assert_eq!(
        dims[0].column(0).as_primitive::<Int32Type>().value(0) as usize,
        gh
    );
    assert_eq!(
        dims[0].column(1).as_primitive::<Int32Type>().value(0) as usize,
        gw
    );
}
