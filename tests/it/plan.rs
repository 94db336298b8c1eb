//! Plans and pruning: GROUP BY pixel runs per scan partition, sorted, with no
//! shuffle; predicates over bands run inside the scan; time filters open
//! only matching scenes; a band projection opens only those bands; pixel
//! filters shrink the window read.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::common::*;

async fn sample_table(dates: usize) -> (tempfile::TempDir, datafusion::prelude::SessionContext) {
    let dir = tempfile::tempdir().unwrap();
    let spec = sceneql::sample::SampleSpec {
        size: 64,
        dates,
        tile: 16,
        seed: 3,
    };
    sceneql::sample::generate(dir.path(), &spec).unwrap();
    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'",
            location(dir.path())
        ),
    )
    .await;
    (dir, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_pixel_streams_without_a_shuffle() {
    let (_dir, ctx) = sample_table(4).await;
    let plan = explain(&ctx, "SELECT pixel, regr_slope(CAST(nir AS DOUBLE), CAST(time AS BIGINT)) FROM obs WHERE qa = 21824 GROUP BY pixel").await;
    assert!(plan.contains("mode=SinglePartitioned"), "{plan}");
    assert!(plan.contains("ordering_mode=Sorted"), "{plan}");
    assert!(!plan.contains("RepartitionExec"), "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");
    // Results of the shuffle-free plan equal a plan with a full shuffle.
    let a = query(
        &ctx,
        "SELECT pixel, count(nir) AS n FROM obs GROUP BY pixel ORDER BY pixel",
    )
    .await;
    let b = query(
        &ctx,
        "SELECT pixel + 0 AS pixel, count(nir) AS n FROM obs GROUP BY pixel + 0 ORDER BY pixel",
    )
    .await;
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_open_only_matching_scenes() {
    let (_dir, ctx) = sample_table(6).await;
    let (_, all) = run_with_metric(&ctx, "SELECT count(sr_b4) FROM obs", "files_opened").await;
    let times = query(&ctx, "SELECT DISTINCT time FROM obs ORDER BY time").await;
    let t2 = times[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
        .value(2);
    let t2 = chrono::DateTime::from_timestamp_nanos(t2).naive_utc();
    let (b, one) = run_with_metric(
        &ctx,
        &format!("SELECT count(sr_b4) FROM obs WHERE time = TIMESTAMP '{t2}'"),
        "files_opened",
    )
    .await;
    assert!(b[0].column(0).as_primitive::<Int64Type>().value(0) > 0);
    // Files are opened once per block and scene: one scene is 1/6 of all.
    assert!(
        all > 0 && one * 6 == all,
        "time filter: {one} files opened of {all}"
    );
    let (_, two) = run_with_metric(
        &ctx,
        &format!("SELECT count(*) FROM obs WHERE time > TIMESTAMP '{t2}' AND sensor = 'LC08'"),
        "scenes_read",
    )
    .await;
    let (_, six) = run_with_metric(&ctx, "SELECT count(*) FROM obs", "scenes_read").await;
    assert_eq!(two * 6, six * 3, "scenes after the third of six");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_open_only_the_bands_used() {
    let (_dir, ctx) = sample_table(3).await;
    let (_, one_band) = run_with_metric(&ctx, "SELECT sum(sr_b4) FROM obs", "files_opened").await;
    let (_, two_bands) =
        run_with_metric(&ctx, "SELECT sum(red), sum(nir) FROM obs", "files_opened").await;
    let (_, three) = run_with_metric(&ctx, "SELECT * FROM obs", "files_opened").await;
    let (_, none) = run_with_metric(&ctx, "SELECT count(*) FROM obs", "files_opened").await;
    assert!(one_band > 0);
    assert_eq!(two_bands, 2 * one_band);
    assert_eq!(three, 3 * one_band);
    assert_eq!(none, 0, "count(*) reads no pixel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pixel_filters_shrink_the_window() {
    let (_dir, ctx) = sample_table(2).await;
    let (_, all) = run_with_metric(&ctx, "SELECT count(sr_b4) FROM obs", "bytes_decoded").await;
    let (b, some) = run_with_metric(
        &ctx,
        "SELECT count(sr_b4) FROM obs WHERE row BETWEEN 10 AND 12 AND col < 20",
        "bytes_decoded",
    )
    .await;
    let (c, _) = run_with_metric(&ctx, "SELECT count(*) FROM (SELECT sr_b4 FROM obs WHERE row + 0 BETWEEN 10 AND 12 AND col + 0 < 20 AND sr_b4 IS NOT NULL)", "bytes_decoded").await;
    assert_eq!(
        b[0].column(0).as_primitive::<Int64Type>().value(0),
        c[0].column(0).as_primitive::<Int64Type>().value(0)
    );
    assert!(
        some * 4 < all,
        "window pruning: {some} bytes decoded of {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_the_scan_metrics() {
    let (_dir, ctx) = sample_table(2).await;
    let b = query(
        &ctx,
        "EXPLAIN ANALYZE SELECT pixel, avg(nir) FROM obs GROUP BY pixel",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    for m in [
        "SceneScanExec",
        "files_opened=",
        "scenes_read=",
        "bytes_decoded=",
        "blocks=",
        "read_time=",
        "output_rows=",
    ] {
        assert!(text.contains(m), "EXPLAIN ANALYZE lacks {m}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn band_filters_run_in_the_scan_and_keep_the_same_rows() {
    let (_dir, ctx) = sample_table(5).await;
    let sql = "SELECT pixel, count(nir) FROM obs WHERE landsat_clear(qa) GROUP BY pixel";
    let plan = explain(&ctx, sql).await;
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert!(plan.contains("filter=landsat_clear(qa"), "{plan}");
    assert!(plan.contains("TileAggregateExec"), "{plan}");
    // `OR pixel < 0` (never true) keeps the predicate out of the scan, so
    // DataFusion's FilterExec evaluates it: both must keep the same rows.
    for predicate in [
        "landsat_clear(qa)",
        "sr_b4 > 9000",
        "nir > red AND qa_pixel <> 1",
        "landsat_clear(qa) AND ndvi(landsat_sr(nir), landsat_sr(red)) > 0.3",
    ] {
        let in_scan = format!(
            "SELECT pixel, count(*) AS n, sum(nir) AS s, min(time) AS t, max(CAST(scene AS VARCHAR)) AS sc \
             FROM obs WHERE {predicate} GROUP BY pixel ORDER BY pixel"
        );
        let in_filter = in_scan.replace(
            &format!("WHERE {predicate}"),
            &format!("WHERE ({predicate}) OR pixel < 0"),
        );
        let plan = explain(&ctx, &in_filter).await;
        assert!(plan.contains("FilterExec"), "{plan}");
        let a = query(&ctx, &in_scan).await;
        let b = query(&ctx, &in_filter).await;
        let rows: usize = a.iter().map(|b| b.num_rows()).sum();
        assert!(rows > 0, "{predicate}: no rows");
        assert_eq!(
            pretty_format_batches(&a).unwrap().to_string(),
            pretty_format_batches(&b).unwrap().to_string(),
            "{predicate}"
        );
    }
    // The filter's band is read even when no output column uses it.
    let (_, files) = run_with_metric(
        &ctx,
        "SELECT count(*) FROM obs WHERE landsat_clear(qa)",
        "files_opened",
    )
    .await;
    let (_, qa_files) = run_with_metric(&ctx, "SELECT count(qa) FROM obs", "files_opened").await;
    assert!(files > 0);
    assert_eq!(files, qa_files, "the QA band's files, and only those");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_writes_every_row_and_keeps_an_explicit_order() {
    let (_dir, ctx) = sample_table(3).await;
    let out = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for (name, order) in [("any", ""), ("sorted", "ORDER BY pixel")] {
        let path = out.path().join(format!("{name}.parquet"));
        let sql = format!(
            "COPY (SELECT pixel, count(nir) AS n FROM obs GROUP BY pixel {order}) TO '{}'",
            path.display()
        );
        for statement in sceneql::run::parse(&sql).unwrap() {
            sceneql::run::run_statement(&ctx, statement).await.unwrap();
        }
        let batches = ctx
            .read_parquet(path.display().to_string(), Default::default())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let pixels: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        written.push(pixels);
    }
    let (mut any, sorted) = (written[0].clone(), written[1].clone());
    assert!(
        sorted.len() > 4000,
        "one row per covered pixel: {}",
        sorted.len()
    );
    assert!(
        sorted.windows(2).all(|w| w[0] < w[1]),
        "ORDER BY pixel is kept"
    );
    any.sort_unstable();
    assert_eq!(any, sorted, "the unordered COPY writes the same rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_failing_the_filter_are_not_decoded_further() {
    // Three dates; on the second every red value is 1, so `red > 100`
    // passes nowhere: its nir band need not be decoded.
    let d = tempfile::tempdir().unwrap();
    for (k, date) in ["20200105", "20200321", "20200610"].iter().enumerate() {
        for band in ["red", "nir"] {
            let data: Vec<u16> = (0..32 * 32)
                .map(|i| match (k, band) {
                    (1, "red") => 1,
                    _ => 200 + (i % 50) as u16,
                })
                .collect();
            sceneql::sample::write_geotiff(
                &d.path().join(format!("s_{date}_{band}.tif")),
                32633,
                (300_000.0, 5_000_000.0),
                10.0,
                (32, 32),
                data,
                Some(0.0),
                16,
            )
            .unwrap();
        }
    }
    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE f STORED AS SCENES LOCATION '{}' OPTIONS ('pattern' '^s_(?P<date>\\d{{8}})_(?P<band>\\w+)\\.tif$')",
            location(d.path())
        ),
    )
    .await;
    let (all, all_bytes) = run_with_metric(
        &ctx,
        "SELECT count(nir) AS n, count(red) AS r FROM f",
        "bytes_decoded",
    )
    .await;
    let (passed, filtered_bytes) = run_with_metric(
        &ctx,
        "SELECT count(nir) AS n FROM f WHERE red > 100",
        "bytes_decoded",
    )
    .await;
    let count = |b: &[datafusion::arrow::array::RecordBatch]| {
        b[0].column(0).as_primitive::<Int64Type>().value(0)
    };
    assert_eq!(count(&all), 3 * 32 * 32);
    assert_eq!(count(&passed), 2 * 32 * 32);
    // red of the three dates and nir of two: 5 of the 6 band reads.
    assert_eq!(
        filtered_bytes * 6,
        all_bytes * 5,
        "{filtered_bytes} vs {all_bytes}"
    );
}

/// Parquet output is zstd level 1, without dictionaries, in row groups of
/// 256 Ki rows unless a statement says otherwise (DataFusion's defaults:
/// level 3, dictionaries, 1 Mi rows; see src/session.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_output_defaults_to_zstd_level_1_without_dictionaries_in_256ki_row_groups() {
    let ctx = ctx();
    let setting = "datafusion.execution.parquet.compression";
    let value = |b: &[datafusion::arrow::array::RecordBatch]| strings(b[0].column(1))[0].clone();
    assert_eq!(
        value(&query(&ctx, &format!("SHOW {setting}")).await),
        "zstd(1)"
    );
    query(&ctx, &format!("SET {setting} = 'snappy'")).await;
    assert_eq!(
        value(&query(&ctx, &format!("SHOW {setting}")).await),
        "snappy"
    );
    // Written column chunks have no dictionary page, unless a COPY asks.
    let d = tempfile::tempdir().unwrap();
    let has_dictionary = |path: &std::path::Path| {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let chunk = reader.metadata().row_group(0).column(0).clone();
        chunk.dictionary_page_offset().is_some()
    };
    let rows = "SELECT v FROM (VALUES (1.5), (1.5), (2.5), (1.5)) AS t(v)";
    let plain = d.path().join("plain.parquet");
    query(&ctx, &format!("COPY ({rows}) TO '{}'", plain.display())).await;
    assert!(!has_dictionary(&plain));
    let dict = d.path().join("dict.parquet");
    query(
        &ctx,
        &format!(
            "COPY ({rows}) TO '{}' OPTIONS ('format.dictionary_enabled' 'true')",
            dict.display()
        ),
    )
    .await;
    assert!(has_dictionary(&dict));
    // Row groups of 256 Ki rows.
    let many = d.path().join("many.parquet");
    query(
        &ctx,
        &format!(
            "COPY (SELECT value FROM generate_series(1, 300000)) TO '{}'",
            many.display()
        ),
    )
    .await;
    let row_groups: Vec<i64> = {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(&many).unwrap()).unwrap();
        let m = reader.metadata();
        (0..m.num_row_groups())
            .map(|i| m.row_group(i).num_rows())
            .collect()
    };
    assert_eq!(row_groups, vec![262144, 300000 - 262144]);
}

/// A COPY writes floating-point columns (nested ones too) BYTE_STREAM_SPLIT,
/// others with the default encoding, unless the statement chooses; the
/// values read back are the values written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_splits_float_bytes_unless_told_otherwise() {
    let ctx = ctx();
    let d = tempfile::tempdir().unwrap();
    let rows = "SELECT value AS i, CAST(value AS DOUBLE) / 7 AS v, \
                named_struct('f', CAST(value AS FLOAT) / 3) AS s \
                FROM generate_series(1, 5000)";
    // Per column path, whether its chunk uses BYTE_STREAM_SPLIT.
    let split = |path: &std::path::Path| -> Vec<(String, bool)> {
        chunk_encodings(path)
            .into_iter()
            .map(|(column, e)| (column, e.iter().any(|e| e == "BYTE_STREAM_SPLIT")))
            .collect()
    };
    let cases = [
        ("", [false, true, true]),
        ("OPTIONS ('format.encoding' 'plain')", [false, false, false]),
        (
            "OPTIONS ('format.encoding::v' 'plain')",
            [false, false, true],
        ),
    ];
    for (k, (options, expected)) in cases.into_iter().enumerate() {
        let out = d.path().join(format!("out{k}.parquet"));
        run_statements(
            &ctx,
            &format!("COPY ({rows}) TO '{}' {options}", out.display()),
        )
        .await;
        let got = split(&out);
        let want: Vec<(String, bool)> = ["i", "v", "s.f"]
            .iter()
            .map(|p| p.to_string())
            .zip(expected)
            .collect();
        assert_eq!(got, want, "{options}");
        query(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE out{k} STORED AS PARQUET LOCATION '{}'",
                out.display()
            ),
        )
        .await;
        // Rounded: the sums' order of addition may differ.
        let sums = "count(*) AS n, sum(i) AS si, round(sum(v), 6) AS sv, \
                    round(sum(CAST(s['f'] AS DOUBLE)), 3) AS sf";
        let back = query(&ctx, &format!("SELECT {sums} FROM out{k}")).await;
        let written = query(&ctx, &format!("SELECT {sums} FROM ({rows})")).await;
        assert_eq!(
            pretty_format_batches(&back).unwrap().to_string(),
            pretty_format_batches(&written).unwrap().to_string(),
            "{options}"
        );
    }
}

/// A filter on time (the most common trend query: from a date on), or on
/// scene and sensor, chooses the scenes read, exactly: no `FilterExec`
/// stays between the scan and the per-block aggregation. The per-pixel
/// counts equal those of the band files read with GDAL, dates compared
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_keep_the_per_block_aggregation_and_its_results() {
    let (dir, ctx) = sample_table(10).await;
    let times = query(&ctx, "SELECT DISTINCT time FROM obs ORDER BY time").await;
    let t = times[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
        .value(4);
    let from = chrono::DateTime::from_timestamp_nanos(t).naive_utc();
    let sql = format!(
        "SELECT pixel, count(ndvi(nir, red)) AS n FROM obs \
         WHERE landsat_clear(qa) AND time >= TIMESTAMP '{from}' AND sensor = 'LC08' GROUP BY pixel"
    );
    let plan = explain(&ctx, &sql).await;
    assert!(plan.contains("TileAggregateExec"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert!(plan.contains("scenes=6/10"), "{plan}");
    // The reference: per pixel, the clear observations from that date on.
    let (series, _) = clear_ndvi_series(dir.path());
    let from_years = t as f64 / 1e9 / 31_557_600.0;
    let want: std::collections::BTreeMap<i64, i64> = series
        .iter()
        .map(|(p, s)| {
            (
                *p,
                s.iter().filter(|(y, _)| *y >= from_years - 1e-9).count() as i64,
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let got: std::collections::BTreeMap<i64, i64> = query(&ctx, &sql)
        .await
        .iter()
        .flat_map(|b| {
            let p = b.column(0).as_primitive::<Int64Type>();
            let n = b.column(1).as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|i| (p.value(i), n.value(i)))
                .collect::<Vec<_>>()
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(want.len() > 1000, "{} pixels", want.len());
    assert_eq!(got, want);
}
