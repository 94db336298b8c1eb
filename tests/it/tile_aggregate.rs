//! `GROUP BY pixel` per block (`TileAggregateExec` over a scene-major scan)
//! gives exactly the rows of DataFusion's hash aggregation over the
//! (pixel, time)-ordered scan, on a mosaic whose scenes cover different
//! parts of the grid, with nodata, a scan filter, FILTER clauses, extra
//! coordinate group columns, blocks narrower than the grid, and aggregate
//! arguments that cannot be evaluated off the rows.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::prelude::SessionContext;

use super::common::*;

/// Two overlapping, offset footprints (40 x 30 px each, the second 10 px
/// east and 5 px south), 3 dates each, 16 x 16 tiles, nodata 0.
fn mosaic(dir: &std::path::Path) {
    for (scene, (dx, dy)) in [("a", (0.0, 0.0)), ("b", (100.0, -50.0))] {
        for (d, date) in ["20200105", "20200321", "20200610"].iter().enumerate() {
            for (b, band) in ["red", "nir"].iter().enumerate() {
                let data: Vec<u16> = (0..40 * 30)
                    .map(|i| {
                        let v = ((i * 37 + d * 101 + b * 53 + dx as usize) % 997) as u16;
                        if v.is_multiple_of(11) { 0 } else { v + 1 }
                    })
                    .collect();
                sceneql::sample::write_geotiff(
                    &dir.join(format!("{scene}_{date}_{band}.tif")),
                    32633,
                    (300_000.0 + dx, 5_000_000.0 + dy),
                    10.0,
                    (40, 30),
                    data,
                    Some(0.0),
                    16,
                )
                .unwrap();
            }
        }
    }
}

const QUERY: &str = "SELECT pixel, x, y, count(*) AS n, count(red) AS n_red, sum(red) AS s, max(red) AS hi, \
     min(nir) AS lo, avg(CAST(nir AS DOUBLE)) AS mean_nir, \
     trend(CAST(red AS DOUBLE), time)['slope'] AS slope, \
     count(nir) FILTER (WHERE red > 500) AS bright \
     FROM m WHERE nir > 100 GROUP BY pixel, x, y";

async fn table(dir: &std::path::Path) -> SessionContext {
    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE m STORED AS SCENES LOCATION '{}' OPTIONS ('pattern' '^(?P<scene>[ab]_(?P<date>\\d{{8}}))_(?P<band>\\w+)\\.tif$')",
            location(dir)
        ),
    )
    .await;
    ctx
}

/// All rows, sorted by pixel (the first column).
fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&batches[0].schema(), batches).unwrap();
    let order = sort_to_indices(all.column(0), None, None).unwrap();
    take_record_batch(&all, &order).unwrap()
}

/// The bytes of samples `dir`'s files hold (2 per uint16 pixel).
fn file_bytes(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|scene| std::fs::read_dir(scene.unwrap().path()).unwrap())
        .map(|f| {
            let ds = gdal::Dataset::open(f.unwrap().path()).unwrap();
            let (w, h) = ds.raster_size();
            w * h * 2
        })
        .sum()
}

/// Each tile decoded once: the bytes decoded are those of `dir`'s files (a
/// 5% margin for a carry wait cut short by its time limit on a very busy
/// machine).
fn assert_decoded_once(decoded: usize, dir: &std::path::Path) {
    let files = file_bytes(dir);
    assert!(
        decoded * 100 <= files * 105,
        "{decoded} bytes decoded, the files hold {files}"
    );
}

/// `(pixel, n, s)` batches hold, for every pixel of `series` and no other,
/// its count of clear observations and the sum of their NDVI.
fn assert_clear_ndvi(
    batches: &[RecordBatch],
    series: &std::collections::BTreeMap<i64, Vec<(f64, f64)>>,
    label: &str,
) {
    let mut got = std::collections::BTreeMap::new();
    for b in batches {
        let p = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let n = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let s = b
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for i in 0..b.num_rows() {
            got.insert(p.value(i), (n.value(i) as usize, s.value(i)));
        }
    }
    assert_eq!(got.len(), series.len(), "{label}");
    for (pixel, obs) in series {
        let (n, s) = got[pixel];
        let want: f64 = obs.iter().map(|o| o.1).sum();
        assert_eq!(n, obs.len(), "{label}: pixel {pixel}");
        assert!(
            (s - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{label}: pixel {pixel}: {s} vs {want}"
        );
    }
}

/// Per pixel, the clear observations and their NDVI sum, over table `t`.
const CLEAR_NDVI: &str = "SELECT pixel, count(*) AS n, \
     sum(ndvi(landsat_sr(nir), landsat_sr(red))) AS s \
     FROM t WHERE landsat_clear(qa) AND red > 0 AND nir > 0 GROUP BY pixel";

/// `gen-sample` archive `name` of `(size, dates, tile, seed)` in `dir`, its
/// clear-NDVI series read from the files (common::clear_ndvi_series), and
/// a session with the archive as table `t`.
async fn sample_table(
    dir: &std::path::Path,
    name: &str,
    (size, dates, tile, seed): (usize, usize, usize, u64),
) -> (
    std::path::PathBuf,
    std::collections::BTreeMap<i64, Vec<(f64, f64)>>,
    SessionContext,
) {
    gen_sample(dir, name, size, dates, tile, Some(seed));
    let archive = dir.join(name);
    let (series, _) = clear_ndvi_series(&archive);
    let ctx = ctx();
    let create = format!(
        "CREATE EXTERNAL TABLE t STORED AS SCENES LOCATION '{}'",
        location(&archive)
    );
    query(&ctx, &create).await;
    (archive, series, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_block_aggregation_equals_hash_aggregation() {
    let d = tempfile::tempdir().unwrap();
    mosaic(d.path());
    let ctx = table(d.path()).await;
    query(&ctx, "SET sceneql.tile_aggregate = false").await;
    let plan = explain(&ctx, QUERY).await;
    assert!(plan.contains("AggregateExec"), "{plan}");
    assert!(!plan.contains("TileAggregateExec"), "{plan}");
    let reference = sorted(&query(&ctx, QUERY).await);
    assert!(reference.num_rows() > 1000, "{}", reference.num_rows());
    query(&ctx, "SET sceneql.tile_aggregate = true").await;
    // Whole grid rows per block (sorted output) and blocks of one or two
    // tiles (output sorted per block only).
    for block_pixels in [1 << 20, 512, 256, 100] {
        query(&ctx, &format!("SET sceneql.block_pixels = {block_pixels}")).await;
        let plan = explain(&ctx, QUERY).await;
        assert!(plan.contains("TileAggregateExec"), "{block_pixels}: {plan}");
        assert!(plan.contains("order=scene-major"), "{block_pixels}: {plan}");
        let got = sorted(&query(&ctx, QUERY).await);
        assert_eq!(got, reference, "block_pixels = {block_pixels}");
    }
    // Scenes read one, two or all at a time, their rows in strips of a
    // few pixels (batches smaller than a strip of every scene, too). Some
    // pixels' only rows have a NULL red: their sum and max must be NULL
    // however the batches fall.
    query(&ctx, "SET sceneql.block_pixels = 256").await;
    for (scenes, batch) in [(1, 8192), (2, 37), (8, 8192), (8, 5)] {
        query(&ctx, &format!("SET sceneql.scenes_per_read = {scenes}")).await;
        query(
            &ctx,
            &format!("SET datafusion.execution.batch_size = {batch}"),
        )
        .await;
        let plan = explain(&ctx, QUERY).await;
        assert!(
            plan.contains(&format!("scenes_per_read={scenes}")),
            "{plan}"
        );
        let got = sorted(&query(&ctx, QUERY).await);
        assert_eq!(
            got, reference,
            "scenes_per_read = {scenes}, batch_size = {batch}"
        );
    }
    // Reads on blocking threads instead of in each partition's task.
    query(&ctx, "SET sceneql.read_on_workers = false").await;
    let got = sorted(&query(&ctx, QUERY).await);
    assert_eq!(got, reference, "read_on_workers = false");
}

/// The scene-major scan's batches are dense: every pixel of a strip is a
/// row slot, and slots that are not rows (outside a footprint, failing the
/// scan filter) are masked. An aggregate argument that fails on such a
/// slot (a division by zero where `nir` is 50, which `nir > 100` drops)
/// or that is volatile is evaluated on the rows alone: the results are
/// hash aggregation's, and the scan counts rows, not slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_failing_off_the_rows_are_evaluated_on_the_rows_only() {
    let d = tempfile::tempdir().unwrap();
    mosaic(d.path());
    let ctx = table(d.path()).await;
    let ratio = "1000 / (CAST(nir AS BIGINT) - 50)";
    // Over every observation, the division fails.
    let err = ctx
        .sql(&format!("SELECT sum({ratio}) FROM m"))
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("a division by zero");
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    let ratio_sql = format!(
        "SELECT pixel, count(*) AS n, sum({ratio}) AS r FROM m WHERE nir > 100 GROUP BY pixel"
    );
    let random_sql = "SELECT pixel, count(*) AS n, count(CASE WHEN random() >= 0 THEN red END) AS r \
                      FROM m WHERE nir > 100 GROUP BY pixel";
    // On the rows alone with no FILTER, values NULL at every 13th pixel on
    // every date, in batches of 5 slots (so most batches hold no NULL):
    // those pixels' sum and max must be NULL, not 0 (a batch with no
    // NULLs and no filter must not mark the block's other pixels seen).
    let nulls_sql = "SELECT pixel, count(*) AS n, \
                     sum(CASE WHEN random() >= 0 AND pixel % 13 <> 0 THEN coalesce(red, 1) END) AS r, \
                     max(CASE WHEN random() >= 0 AND pixel % 13 <> 0 THEN coalesce(red, 1) END) AS hi \
                     FROM m WHERE nir > 100 GROUP BY pixel";
    for sql in [ratio_sql.as_str(), random_sql, nulls_sql] {
        query(&ctx, "SET sceneql.tile_aggregate = false").await;
        let reference = sorted(&query(&ctx, sql).await);
        assert!(reference.num_rows() > 1000, "{}", reference.num_rows());
        if sql == nulls_sql {
            assert!(reference.column(2).null_count() > 0, "no all-NULL pixel");
        }
        query(&ctx, "SET sceneql.tile_aggregate = true").await;
        query(&ctx, "SET sceneql.block_pixels = 256").await;
        let batch = if sql == nulls_sql { 5 } else { 8192 };
        query(
            &ctx,
            &format!("SET datafusion.execution.batch_size = {batch}"),
        )
        .await;
        assert!(explain(&ctx, sql).await.contains("TileAggregateExec"));
        let (batches, scan_rows) = run_with_metric(&ctx, sql, "output_rows").await;
        assert_eq!(sorted(&batches), reference, "{sql}");
        let rows: i64 = reference
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .iter()
            .sum();
        assert_eq!(scan_rows as i64, rows, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_above_are_kept_and_copy_writes_every_row() {
    let d = tempfile::tempdir().unwrap();
    mosaic(d.path());
    let ctx = table(d.path()).await;
    let ordered = format!("{QUERY} ORDER BY pixel");
    query(&ctx, "SET sceneql.tile_aggregate = false").await;
    let reference = query(&ctx, &ordered).await;
    let reference = concat_batches(&reference[0].schema(), &reference).unwrap();
    query(&ctx, "SET sceneql.tile_aggregate = true").await;
    // One partition too: there DataFusion drops the ORDER BY's sort over the
    // pixel-sorted aggregation, and no merge above asks for the order.
    for partitions in [2, 1] {
        query(
            &ctx,
            &format!("SET datafusion.execution.target_partitions = {partitions}"),
        )
        .await;
        for block_pixels in [1 << 20, 256] {
            let case = format!("{partitions} partitions, block_pixels = {block_pixels}");
            query(&ctx, &format!("SET sceneql.block_pixels = {block_pixels}")).await;
            // ORDER BY is honoured whether or not the per-block plan is
            // kept, also when a block's groups go out in many batches.
            for batch in [8192, 37] {
                query(
                    &ctx,
                    &format!("SET datafusion.execution.batch_size = {batch}"),
                )
                .await;
                let got = query(&ctx, &ordered).await;
                let got = concat_batches(&got[0].schema(), &got).unwrap();
                assert_eq!(got, reference, "{case}, batch {batch}");
            }
            // So it is by the statement runner (the CLI's path).
            let outputs = sceneql::run::run_sql(&ctx, &ordered, &Default::default())
                .await
                .unwrap();
            let got = &outputs[0].batches;
            assert_eq!(
                concat_batches(&got[0].schema(), got).unwrap(),
                reference,
                "{case}, statement runner"
            );
            // A COPY without ORDER BY writes every row; one whose ORDER BY
            // picks rows (LIMIT) writes the first ones.
            let head = 50;
            for (name, sql, want) in [
                ("all", QUERY.to_string(), None),
                ("head", format!("{ordered} LIMIT {head}"), Some(head)),
            ] {
                let out = d
                    .path()
                    .join(format!("{name}_{partitions}_{block_pixels}.parquet"));
                run_statements(&ctx, &format!("COPY ({sql}) TO '{}'", out.display())).await;
                let table = format!("{name}_{partitions}_{block_pixels}");
                let create = format!(
                    "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{}'",
                    out.display()
                );
                query(&ctx, &create).await;
                let written = sorted(&query(&ctx, &format!("SELECT * FROM {table}")).await);
                let want = want.map_or(reference.clone(), |n| reference.slice(0, n));
                assert_eq!(written, want, "{case}, COPY {name}");
            }
        }
    }
}

/// Blocks keep whole file tiles even when a tile holds more pixels than
/// `block_pixels`: with 128 x 128 tiles and a budget of 4096 pixels, each
/// block is one tile (not four strips of it read one after another), the
/// bytes decoded are those of the files, and the per-pixel results equal an
/// independent read of the whole files (common::clear_ndvi_series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_larger_than_a_block_are_decoded_once() {
    let d = tempfile::tempdir().unwrap();
    let (dir, series, ctx) = sample_table(d.path(), "big_tiles", (256, 4, 128, 5)).await;
    query(&ctx, "SET sceneql.block_pixels = 4096").await;
    let sql = CLEAR_NDVI;
    let plan = explain(&ctx, sql).await;
    assert!(plan.contains("TileAggregateExec"), "{plan}");
    // A 256 x 256 grid (the files shifted by up to 3 pixels) in 128 x 128
    // tiles: 3 x 3 blocks at most, not 4 strips per tile.
    let blocks = scan_blocks(&plan).unwrap_or_else(|| panic!("no blocks in {plan}"));
    assert!(blocks <= 9, "{blocks} blocks: {plan}");
    let (batches, decoded) = run_with_metric(&ctx, sql, "bytes_decoded").await;
    assert_decoded_once(decoded, &dir);
    assert_clear_ndvi(&batches, &series, "big_tiles");
}

/// Tiles cut by block edges are decoded once and their edges carried to the
/// other blocks: with blocks of 2 x 2 tiles (scene-major), strips of a few
/// rows ((pixel, time)), and four partitions of one block each on two
/// threads (boundaries read at the same time, or a partition begun after
/// others have ended: the carry outlives them) over
/// archives whose dates are shifted by up to 4 pixels, per-pixel
/// clear-observation counts and NDVI sums equal an independent read of the
/// whole files (common::clear_ndvi_series). With four partitions, the bytes
/// decoded are those of the files: each tile is decoded once (a 5% margin
/// for a wait cut short by its time limit on a very busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_edges_carried_between_blocks_give_the_files_pixels() {
    let d = tempfile::tempdir().unwrap();
    let ctx = ctx();
    query(&ctx, "SET sceneql.scenes_per_read = 2").await;
    // (archive, tile size, block options, per-block aggregation,
    // partitions, sceneql.block_pixels)
    let cases = [
        ("a16", 16, "", true, 2, 1024),
        ("a16", 16, "OPTIONS ('block_bytes' '1MB')", false, 2, 1024),
        ("a64", 64, "", true, 4, 64 * 200),
    ];
    for (k, (name, tile, options, per_block, partitions, block_pixels)) in
        cases.into_iter().enumerate()
    {
        let dir = d.path().join(name);
        if !dir.exists() {
            gen_sample(d.path(), name, 200, 5, tile, Some(3));
        }
        let (series, _) = clear_ndvi_series(&dir);
        let table = format!("t{k}");
        let create = format!(
            "CREATE EXTERNAL TABLE {table} STORED AS SCENES LOCATION '{}' {options}",
            location(&dir)
        );
        query(&ctx, &create).await;
        query(&ctx, &format!("SET sceneql.tile_aggregate = {per_block}")).await;
        query(&ctx, &format!("SET sceneql.block_pixels = {block_pixels}")).await;
        query(
            &ctx,
            &format!("SET datafusion.execution.target_partitions = {partitions}"),
        )
        .await;
        let sql = format!(
            "SELECT pixel, count(*) AS n, sum(ndvi(landsat_sr(nir), landsat_sr(red))) AS s \
             FROM {table} WHERE landsat_clear(qa) AND red > 0 AND nir > 0 GROUP BY pixel"
        );
        let plan = explain(&ctx, &sql).await;
        assert_eq!(plan.contains("TileAggregateExec"), per_block, "{plan}");
        if partitions == 4 {
            assert!(plan.contains("blocks=4, partitions=4"), "{plan}");
            let (_, decoded) = run_with_metric(&ctx, &sql, "bytes_decoded").await;
            assert_decoded_once(decoded, &dir);
        }
        let (batches, carried) = run_with_metric(&ctx, &sql, "bytes_carried").await;
        assert!(carried > 0, "{table}: no tile edge was carried");
        assert_clear_ndvi(&batches, &series, &table);
    }
}

/// A partition that has read its blocks reads scenes just ahead of one
/// still reading and hands the reads over ([`sceneql::scan::steal`]): with three
/// partitions of one, one and two strips of blocks (the third has twice the
/// reads), one scene per read, the per-pixel results equal an independent
/// read of the files, with reads taken over (in one of at most ten runs:
/// which partition ends first is up to the machine) and without
/// (`sceneql.steal_reads = false`), and each tile is still decoded once;
/// with reads on the runtime's workers and on blocking threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_that_end_first_read_for_the_others() {
    let d = tempfile::tempdir().unwrap();
    let (dir, series, ctx) = sample_table(d.path(), "a64", (200, 5, 64, 3)).await;
    for set in [
        "sceneql.scenes_per_read = 1",
        "sceneql.block_pixels = 12800",
        "datafusion.execution.target_partitions = 3",
    ] {
        query(&ctx, &format!("SET {set}")).await;
    }
    let sql = CLEAR_NDVI;
    let plan = explain(&ctx, sql).await;
    assert!(plan.contains("TileAggregateExec"), "{plan}");
    assert!(plan.contains("blocks=4, partitions=3"), "{plan}");
    // Partitions read on the runtime's workers, then on blocking threads.
    for on_workers in [true, false] {
        let label = format!("reads taken over, read_on_workers = {on_workers}");
        query(&ctx, &format!("SET sceneql.read_on_workers = {on_workers}")).await;
        let mut taken = 0;
        for _ in 0..10 {
            let (batches, n) = run_with_metric(&ctx, sql, "reads_taken_over").await;
            assert_clear_ndvi(&batches, &series, &label);
            taken += n;
            if taken > 0 {
                break;
            }
        }
        assert!(taken > 0, "{label}: no read was taken over in ten runs");
        let (_, decoded) = run_with_metric(&ctx, sql, "bytes_decoded").await;
        assert_decoded_once(decoded, &dir);
    }
    query(&ctx, "SET sceneql.steal_reads = false").await;
    let (batches, taken) = run_with_metric(&ctx, sql, "reads_taken_over").await;
    assert_eq!(taken, 0);
    assert_clear_ndvi(&batches, &series, "no read taken over");
}
