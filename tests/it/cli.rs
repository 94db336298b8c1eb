//! The CLI and the example pipelines: `sql/ndvi_trend.sql` on a generated
//! archive against an independent per-pixel OLS computed from the GeoTIFFs
//! read directly with GDAL; the grid metadata in the Parquet output; output
//! formats; variables and relative paths.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use super::common::*;

/// Per-pixel OLS slope (closed form) of the clear-sky NDVI series: the
/// reference for `trend` in the SQL pipeline.
fn reference_slopes(archive: &Path) -> (HashMap<i64, f64>, usize) {
    let (series, width) = clear_ndvi_series(archive);
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
    gen_sample(d.path(), "archive", 48, 10, 16, Some(5));
    let sql = repo().join("sql/ndvi_trend.sql");
    // Relative paths are resolved against the client's working directory.
    sceneql_cli(
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
    let csv = sceneql_cli(
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
    // Dot access on an aggregate's struct result.
    let dot = sceneql_cli(
        d.path(),
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "SELECT trend(v, t).slope AS slope FROM (VALUES (1.0, 1.0), (3.0, 2.0), (5.0, 3.0)) AS x(v, t)",
        ],
    );
    assert_eq!(dot.lines().collect::<Vec<_>>(), ["slope", "2.0"]);
    let json = sceneql_cli(
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
    sceneql_cli(
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

#[test]
fn trace_writes_a_chrome_trace_with_scan_spans() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "a", 32, 3, 16, None);
    let names: std::collections::BTreeSet<String> = traced(
        d.path(),
        &["SELECT pixel, avg(nir) FROM scenes('a/') GROUP BY pixel"],
    )
    .into_iter()
    .collect();
    for span in ["statement", "scan_block", "decode", "batch"] {
        assert!(
            names.contains(span),
            "trace lacks '{span}' spans: {names:?}"
        );
    }
}

/// Two partitions run at most two block reads at once (one per partition,
/// or two in one while the other is between reads), not two each: counted
/// from the `scan_block` spans of a trace, which the reads run in.
#[test]
fn reads_in_flight_are_capped_at_the_partitions() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "a", 64, 24, 16, None);
    sceneql_cli(
        d.path(),
        &[
            "-q",
            "--trace",
            "trace.json",
            "-c",
            "SET datafusion.execution.target_partitions = 2",
            "-c",
            "SET sceneql.block_pixels = 256",
            "-c",
            "SET sceneql.scenes_per_read = 1",
            "-c",
            "SELECT pixel, trend(CAST(nir AS DOUBLE), time) AS t FROM scenes('a/') GROUP BY pixel",
        ],
    );
    // Open reads over time: +1 at a span's start, -1 at its end.
    let mut edges: Vec<(f64, i32)> = trace_events(&d.path().join("trace.json"))
        .iter()
        .filter(|e| e["name"] == "scan_block")
        .filter_map(|e| match e["ph"].as_str()? {
            "B" => Some((e["ts"].as_f64()?, 1)),
            "E" => Some((e["ts"].as_f64()?, -1)),
            _ => None,
        })
        .collect();
    // Ends before starts at the same instant.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let reads = edges.iter().filter(|e| e.1 == 1).count();
    assert!(reads >= 2 * 24, "{reads} reads traced");
    let most = edges
        .iter()
        .scan(0, |open, e| {
            *open += e.1;
            Some(*open)
        })
        .max()
        .unwrap_or(0);
    assert!(
        most <= 2,
        "{most} block reads ran at once on two partitions"
    );
}

/// A `COPY` of `GROUP BY pixel` on one partition, over blocks narrower than
/// the grid, still aggregates per block (`TileAggregateExec`'s emit spans
/// are in the trace): the sink does not hold its input to the pixel order.
#[test]
fn copy_on_one_partition_aggregates_per_block() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "a", 32, 3, 16, None);
    let emits = traced(
        d.path(),
        &[
            "SET datafusion.execution.target_partitions = 1",
            "SET sceneql.block_pixels = 256",
            "COPY (SELECT pixel, trend(CAST(nir AS DOUBLE), time) AS t FROM scenes('a/') GROUP BY pixel) TO 'out.parquet'",
        ],
    )
    .iter()
        .filter(|n| *n == "tile_aggregate_emit")
        .count();
    assert!(emits >= 4, "{emits} per-block emits");
    let r =
        ParquetRecordBatchReaderBuilder::try_new(File::open(d.path().join("out.parquet")).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let rows: usize = r.map(|b| b.unwrap().num_rows()).sum();
    assert!(rows > 32 * 28, "{rows} pixels written");
}

/// Run `statements` (one `-c` each) with `--trace`; the trace's event names.
fn traced(dir: &Path, statements: &[&str]) -> Vec<String> {
    let mut args = vec!["-q", "--trace", "trace.json"];
    for s in statements {
        args.extend(["-c", s]);
    }
    sceneql_cli(dir, &args);
    trace_names(&dir.join("trace.json"))
}

/// The process runs without transparent huge pages from its first
/// allocation on (the Rust runtime's, before `main`): the kernel's own
/// account of the started process (`/proc/<pid>/smaps`) shows no
/// anonymous huge pages. Skipped where the kernel gives no THP at all.
#[cfg(target_os = "linux")]
#[test]
fn no_transparent_huge_pages_from_the_first_allocation() {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.is_empty() || thp.contains("[never]") {
        eprintln!("skipped: transparent huge pages are off on this machine");
        return;
    }
    // With no statements the CLI waits for input: its runtime is up.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc_dir = format!("/proc/{}", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Started: the async runtime's worker threads (one per core) exist.
    let threads = 1 + std::thread::available_parallelism().map_or(1, |n| n.get());
    while std::fs::read_dir(format!("{proc_dir}/task")).map_or(0, |d| d.count()) < threads {
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let smaps = std::fs::read_to_string(format!("{proc_dir}/smaps")).unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
    let huge_kb: u64 = smaps
        .lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(huge_kb, 0, "anonymous huge pages in the started CLI");
}

#[test]
fn commands_and_files_run_in_the_order_given() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("one.sql"), "SELECT 'file one' AS step;").unwrap();
    std::fs::write(d.path().join("two.sql"), "SELECT 'file two' AS step;").unwrap();
    let (ok, stdout, stderr) = run_cli(
        d.path(),
        &[],
        &[
            "-q",
            "-f",
            "one.sql",
            "-c",
            "SELECT 'command one' AS step",
            "-f",
            "two.sql",
            "-c",
            "SELECT 'command two' AS step",
        ],
    );
    assert!(ok, "{stderr}");
    let order = ["file one", "command one", "file two", "command two"];
    let at: Vec<usize> = order
        .iter()
        .map(|s| {
            stdout
                .find(s)
                .unwrap_or_else(|| panic!("{s} missing: {stdout}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{stdout}");
}

#[test]
fn statements_without_a_result_print_no_row_count() {
    let d = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run_cli(
        d.path(),
        &[],
        &[
            "-c",
            "CREATE TABLE t AS VALUES (1), (2); SET datafusion.execution.batch_size = 100; SELECT count(*) AS n FROM t",
        ],
    );
    assert!(ok, "{stderr}");
    let counts: Vec<&str> = stderr.lines().filter(|l| l.contains(" rows in ")).collect();
    assert_eq!(counts.len(), 1, "{stderr}");
    assert!(counts[0].starts_with("1 rows in "), "{stderr}");
}

#[test]
fn gen_sample_refuses_bad_sizes_and_folders_that_are_not_empty() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--size", "0"], "--size 0 is too small"),
        (vec!["--dates", "0"], "--dates 0"),
        (
            vec!["--tile", "10"],
            "--tile 10 is not a positive multiple of 16",
        ),
    ] {
        let mut all = vec!["gen-sample", "new"];
        all.extend(args);
        let (ok, _, stderr) = run_cli(d.path(), &[], &all);
        assert!(!ok && stderr.contains(needle), "{all:?}: {stderr}");
        assert!(!d.path().join("new").exists(), "{all:?} wrote a folder");
    }
    let small = ["--size", "8", "--dates", "1", "--tile", "16"];
    let mut args = vec!["gen-sample", "full"];
    args.extend(small);
    let (ok, _, stderr) = run_cli(d.path(), &[], &args);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run_cli(d.path(), &[], &args);
    assert!(
        !ok && stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    args.push("--force");
    let (ok, _, stderr) = run_cli(d.path(), &[], &args);
    assert!(ok, "{stderr}");
}

/// CSV output holds list columns as JSON (struct fields flattened as
/// before); a failed statement or an unwritable `--output` leaves no file
/// and no partial text, and the error names the path.
#[test]
fn csv_has_lists_as_json_and_failures_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_cli(
        d.path(),
        &[],
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "SELECT 1 AS a, [1, 2] AS l, named_struct('x', 1.5, 'y', ['p', 'q']) AS s",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "a,l,s.x,s.y\n1,\"[1,2]\",1.5,\"[\"\"p\"\",\"\"q\"\"]\"\n"
    );
    // A failure: nothing on stdout, no file.
    let out = d.path().join("out.csv");
    let (ok, stdout, stderr) = run_cli(
        d.path(),
        &[],
        &["-q", "--format", "csv", "-c", "SELECT 1 / 0 AS a"],
    );
    assert!(!ok && stdout.is_empty(), "{stdout} {stderr}");
    let (ok, _, stderr) = run_cli(
        d.path(),
        &[],
        &[
            "-q",
            "--format",
            "csv",
            "--output",
            "out.csv",
            "-c",
            "SELECT 1 / 0 AS a",
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(
        std::fs::read_dir(d.path()).unwrap().next().is_none(),
        "a file was left"
    );
    assert!(!out.exists());
    let (ok, _, stderr) = run_cli(
        d.path(),
        &[],
        &[
            "-q",
            "--format",
            "csv",
            "--output",
            "no/such/dir/out.csv",
            "-c",
            "SELECT 1 AS a",
        ],
    );
    assert!(!ok && stderr.contains("'no/such/dir/out.csv'"), "{stderr}");
}
