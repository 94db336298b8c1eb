//! Archives and results in object stores: a real S3 API server (moto's,
//! started here on a free loopback port and stopped at the end) holds the
//! generated archive; the pipelines read it and write their results to it
//! through `s3://` URLs, and every pixel equals the local run and numpy's
//! reference. boto3 (an independent client) uploads and reads back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};

use super::common::*;
use super::pipelines::{check_trend, numpy_reference, read_parquet};

/// A moto S3 server on 127.0.0.1, killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tests' venv's `bin` folder (beside SCENEQL_PYTHON).
pub fn venv_bin(tool: &str) -> PathBuf {
    let py = python();
    let bin = py.parent().map(Path::to_path_buf).unwrap_or_default();
    let t = bin.join(tool);
    assert!(
        t.exists(),
        "{} not found: run scripts/test.sh (it installs tests/reference/requirements.txt into the venv) or set SCENEQL_PYTHON to a venv's python with moto[server]",
        t.display()
    );
    t
}

impl S3Server {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Run `tests/reference/s3.py` against this server.
    pub fn s3py(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(repo().join("tests/reference/s3.py"))
            .arg(&self.endpoint)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "s3.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The environment a process reaches this server with (the standard
    /// AWS variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// OPTIONS giving a table this server.
    pub fn options(&self) -> String {
        format!(
            "OPTIONS ('aws.endpoint' '{}', 'aws.access_key_id' 'testing', 'aws.secret_access_key' 'testing', 'aws.region' 'us-east-1', 'aws.allow_http' 'true')",
            self.endpoint
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (pixel, slope, intercept, n) of every row, sorted by pixel.
fn trend_rows(batches: &[RecordBatch]) -> Vec<(i64, Option<f64>, Option<f64>, i64)> {
    let mut rows = Vec::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (p, s, i, n) = (col("pixel"), col("slope"), col("intercept"), col("n"));
        let (p, s, i, n) = (
            p.as_primitive::<Int64Type>(),
            s.as_primitive::<Float64Type>(),
            i.as_primitive::<Float64Type>(),
            n.as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            rows.push((
                p.value(r),
                s.is_valid(r).then(|| s.value(r)),
                i.is_valid(r).then(|| i.value(r)),
                n.value(r),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows
}

#[test]
fn trend_from_s3_to_s3_equals_local_and_numpy() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 24, 14, 16, Some(11));
    s3.s3py(&["mkbucket", "scenes"]);
    s3.s3py(&[
        "upload",
        "scenes",
        "landsat",
        d.path().join("archive").to_str().unwrap(),
    ]);
    let sql = repo().join("sql/ndvi_trend.sql");
    let sql = sql.to_str().unwrap();
    let (ok, _, err) = run_cli(
        d.path(),
        &s3.env(),
        &[
            "-q",
            "-f",
            sql,
            "-D",
            "archive=s3://scenes/landsat/",
            "-D",
            "out=s3://scenes/results/trend.parquet",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(
        d.path(),
        &[],
        &[
            "-q",
            "-f",
            sql,
            "-D",
            "archive=archive/",
            "-D",
            "out=local.parquet",
        ],
    );
    assert!(ok, "{err}");
    let fetched = d.path().join("fetched.parquet");
    s3.s3py(&[
        "download",
        "scenes",
        "results/trend.parquet",
        fetched.to_str().unwrap(),
    ]);
    let remote = read_parquet(&fetched);
    let local = read_parquet(&d.path().join("local.parquet"));
    let rows = trend_rows(&remote);
    assert!(rows.len() > 400, "{} rows", rows.len());
    assert_eq!(rows, trend_rows(&local), "s3 and local runs differ");
    check_trend(
        &remote,
        &numpy_reference(d.path(), &d.path().join("archive")),
    );
    // The written file is georeferenced like a local one.
    let meta = sceneql::sinks::GRID_METADATA_KEY;
    let kv = |p: &Path| {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let r = SerializedFileReader::new(std::fs::File::open(p).unwrap()).unwrap();
        r.metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key == meta).cloned())
            .and_then(|e| e.value)
    };
    assert!(kv(&fetched).is_some(), "no {meta} in the s3 output");
    assert_eq!(kv(&fetched), kv(&d.path().join("local.parquet")));
}

#[test]
fn table_options_give_the_store_and_secrets_stay_out_of_plans_logs_and_traces() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 16, 4, 16, Some(3));
    s3.s3py(&["mkbucket", "opts"]);
    s3.s3py(&[
        "upload",
        "opts",
        "a",
        d.path().join("archive").to_str().unwrap(),
    ]);
    let secret = "testing"; // moto accepts any; the point is where it shows
    let sql = format!(
        "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://opts/a/' {};
         EXPLAIN SELECT count(*) FROM obs;
         SELECT count(*) AS n, count(DISTINCT scene) AS scenes FROM obs WHERE red IS NOT NULL;",
        s3.options().replace(
            "'aws.secret_access_key' 'testing'",
            &format!("'aws.secret_access_key' '{secret}-SECRET'")
        )
    );
    let sql = format!("{sql} SHOW ALL; EXPLAIN ANALYZE SELECT count(*) FROM obs;");
    let trace = d.path().join("trace.json");
    let (ok, out, err) = run_cli(
        d.path(),
        &[("RUST_LOG", "debug".to_string())],
        &["-vv", "--trace", trace.to_str().unwrap(), "-c", &sql],
    );
    assert!(ok, "{err}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(trace.contains("scan_block"), "the trace holds the scan");
    for (what, text) in [("output", &out), ("log", &err), ("trace", &trace)] {
        assert!(
            !text.contains("testing-SECRET"),
            "the secret is in the {what}: {text}"
        );
    }
    assert!(out.contains("| 4 "), "{out}");
}

#[test]
fn store_failures_fail_fast_naming_the_object() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    type Env = Vec<(&'static str, String)>;
    let cases: Vec<(String, Env, &str)> = vec![
        (
            "s3://no-such-bucket/landsat/".into(),
            s3.env(),
            "no-such-bucket",
        ),
        (
            "s3://scenes/landsat/".into(),
            vec![
                (
                    "AWS_ENDPOINT_URL",
                    format!("http://127.0.0.1:{}", free_port()),
                ),
                ("AWS_ACCESS_KEY_ID", "x".into()),
                ("AWS_SECRET_ACCESS_KEY", "y".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ALLOW_HTTP", "true".into()),
            ],
            "s3://scenes",
        ),
    ];
    for (location, env, needle) in cases {
        let start = Instant::now();
        let sql = format!("COPY (SELECT * FROM scenes('{location}')) TO 'out.parquet'");
        let (ok, _, err) = run_cli(d.path(), &env, &["-q", "-c", &sql]);
        assert!(!ok, "{location}: expected a failure");
        assert!(err.contains(needle), "{location}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{location}: took {:?}",
            start.elapsed()
        );
        assert!(!d.path().join("out.parquet").exists());
    }
}

/// The summed byte counts (GDAL's `BLOCK_SIZE_x_y`, an independent read of
/// the files) of the tiles of the band files ending in `suffixes` that
/// intersect the grid window `rows x cols` (grid: the files' union, 30 m
/// pixels, as the sample archive's), and how many tiles that is.
fn tiles_touched(
    archive: &Path,
    suffixes: &[&str],
    rows: std::ops::Range<i64>,
    cols: std::ops::Range<i64>,
) -> (u64, usize) {
    use gdal::Metadata;
    let mut files = Vec::new();
    for scene in std::fs::read_dir(archive).unwrap() {
        for f in std::fs::read_dir(scene.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if suffixes.iter().any(|s| name.ends_with(s)) {
                files.push(p);
            }
        }
    }
    let gts: Vec<_> = files
        .iter()
        .map(|p| gdal::Dataset::open(p).unwrap().geo_transform().unwrap())
        .collect();
    let x0 = gts.iter().map(|g| g[0]).fold(f64::INFINITY, f64::min);
    let y0 = gts.iter().map(|g| g[3]).fold(f64::NEG_INFINITY, f64::max);
    let (mut bytes, mut tiles) = (0, 0);
    for (p, gt) in files.iter().zip(&gts) {
        let ds = gdal::Dataset::open(p).unwrap();
        let band = ds.rasterband(1).unwrap();
        let (tw, th) = band.block_size();
        let (w, h) = ds.raster_size();
        let (c_off, r_off) = (
            ((gt[0] - x0) / 30.0).round() as i64,
            ((y0 - gt[3]) / 30.0).round() as i64,
        );
        for ty in 0..h.div_ceil(th) {
            for tx in 0..w.div_ceil(tw) {
                let (r, c) = (r_off + (ty * th) as i64, c_off + (tx * tw) as i64);
                let (r_end, c_end) = (
                    (r + th as i64).min(r_off + h as i64),
                    (c + tw as i64).min(c_off + w as i64),
                );
                if r < rows.end && rows.start < r_end && c < cols.end && cols.start < c_end {
                    let size: u64 = band
                        .metadata_item(&format!("BLOCK_SIZE_{tx}_{ty}"), "TIFF")
                        .unwrap()
                        .parse()
                        .unwrap();
                    bytes += size;
                    tiles += 1;
                }
            }
        }
    }
    (bytes, tiles)
}

/// A generated archive in a bucket of a fresh S3 server: (server, temp
/// dir holding `archive/`).
pub fn archive_in_s3(bucket: &str, size: usize, dates: usize) -> (S3Server, tempfile::TempDir) {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", size, dates, 32, Some(5));
    s3.s3py(&["mkbucket", bucket]);
    s3.s3py(&[
        "upload",
        bucket,
        "a",
        d.path().join("archive").to_str().unwrap(),
    ]);
    (s3, d)
}

pub fn options_for(endpoint: &str) -> String {
    format!(
        "OPTIONS ('aws.endpoint' '{endpoint}', 'aws.access_key_id' 'testing', 'aws.secret_access_key' 'testing', 'aws.region' 'us-east-1')"
    )
}

/// Object reads the proxy logged: (header reads from byte 0, other reads).
pub fn reads(
    log: &[super::proxy::Logged],
) -> (Vec<super::proxy::Logged>, Vec<super::proxy::Logged>) {
    log.iter()
        .filter(|l| l.method == "GET" && l.range.is_some())
        .cloned()
        .partition(|l| l.range.is_some_and(|r| r.0 == 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_and_warm_reads_fetch_headers_once_and_only_the_tiles_touched() {
    let (s3, d) = archive_in_s3("counted", 96, 5);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://counted/a/' {}",
            options_for(&proxy.endpoint)
        ),
    )
    .await;
    // Cold: one header read per file, of at most 64 KiB; no tile read.
    let (headers, others) = reads(&proxy.log());
    let files = 5 * 3;
    assert_eq!(headers.len(), files, "{headers:#?}");
    let mut paths: Vec<_> = headers.iter().map(|h| h.path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), files, "a file's header read twice");
    assert!(
        headers.iter().all(|h| h.range.unwrap().1 < 64 * 1024),
        "{headers:#?}"
    );
    assert!(others.is_empty(), "table creation read tiles: {others:#?}");

    // Warm, the whole grid: no header read; every tile of the bands read,
    // fetched once (within 10% of their byte counts).
    proxy.clear();
    query(&ctx, "SELECT sum(red), sum(nir), sum(qa) FROM obs").await;
    let (headers, tiles) = reads(&proxy.log());
    assert!(headers.is_empty(), "warm query read headers: {headers:#?}");
    let fetched: usize = tiles.iter().map(|t| t.bytes).sum();
    let archive = d.path().join("archive");
    let bands = ["_SR_B4.TIF", "_SR_B5.TIF", "_QA_PIXEL.TIF"];
    let (want, _) = tiles_touched(&archive, &bands, 0..i64::MAX, 0..i64::MAX);
    assert!(
        fetched as u64 >= want && fetched as f64 <= 1.1 * want as f64,
        "fetched {fetched} bytes for {want} bytes of tiles"
    );

    // Blocks of one tile's size on a grid the shifted scenes' tiles do not
    // follow, so nearly every tile is cut by up to four blocks: the same
    // sums, each tile still fetched once.
    let sums = "SELECT sum(red), sum(nir), sum(qa), count(*) FROM obs";
    let whole = sorted_rows(&ctx, sums).await;
    run_statements(&ctx, "SET sceneql.block_pixels = 1024").await;
    proxy.clear();
    assert_eq!(sorted_rows(&ctx, sums).await, whole);
    let (_, tiles) = reads(&proxy.log());
    let fetched: usize = tiles.iter().map(|t| t.bytes).sum();
    assert!(
        fetched as u64 >= want && fetched as f64 <= 1.1 * want as f64,
        "small blocks fetched {fetched} bytes for {want} bytes of tiles"
    );
    // (DataFusion 55's RESET knows no extension's settings.)
    let default = sceneql::settings::SceneqlOptions::default().block_pixels;
    run_statements(&ctx, &format!("SET sceneql.block_pixels = {default}")).await;

    // A window: only its tiles.
    proxy.clear();
    let window = "row >= 40 AND row < 50 AND col >= 10 AND col < 20";
    query(&ctx, &format!("SELECT sum(red) FROM obs WHERE {window}")).await;
    let (headers, tiles) = reads(&proxy.log());
    assert!(headers.is_empty(), "{headers:#?}");
    let fetched: usize = tiles.iter().map(|t| t.bytes).sum();
    let (want, n) = tiles_touched(&archive, &["_SR_B4.TIF"], 40..50, 10..20);
    assert!(n > 0);
    assert!(
        fetched as u64 >= want && fetched as f64 <= 1.1 * want as f64,
        "fetched {fetched} bytes ({} requests) for the {n} tiles ({want} bytes) the window touches",
        tiles.len()
    );
}

/// Every row of a query, as text sorted (for equality across runs).
pub async fn sorted_rows(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<String> {
    let batches = query(ctx, sql).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let mut rows: Vec<String> = text.lines().map(str::to_string).collect();
    rows.sort();
    rows
}

pub const TREND: &str = "SELECT pixel, trend(ndvi(landsat_sr(nir), landsat_sr(red)), time) AS t \
     FROM obs WHERE landsat_clear(qa) GROUP BY pixel";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_reads_are_retried_and_leave_results_identical() {
    use super::proxy::Fault;
    let (s3, _d) = archive_in_s3("faulty", 64, 6);
    let clean = ctx();
    run_statements(
        &clean,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://faulty/a/' {}",
            options_for(&s3.endpoint)
        ),
    )
    .await;
    let want = sorted_rows(&clean, TREND).await;
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let faults = [
        Fault::SlowDown,
        Fault::InternalError,
        Fault::DropAfterHeaders,
        Fault::ShortBody,
    ];
    proxy.inject(&faults, 3);
    let faulty = ctx();
    // Other credentials: another store, so nothing is shared with the clean
    // table's (headers included: the cache is by object and version).
    run_statements(
        &faulty,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://faulty/a/' {}",
            options_for(&proxy.endpoint).replace("'testing')", "'testing2')")
        ),
    )
    .await;
    let got = sorted_rows(&faulty, TREND).await;
    assert_eq!(got, want, "results differ under faults");
    let log = proxy.log();
    for f in faults {
        assert!(
            log.iter().any(|l| l.fault == Some(f)),
            "no {f:?} was injected: {} requests",
            log.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_or_deleted_after_table_creation_fails_the_query_naming_it() {
    let (s3, d) = archive_in_s3("changing", 64, 3);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://changing/a/' {}",
            options_for(&s3.endpoint)
        ),
    )
    .await;
    let keys = s3.s3py(&["list", "changing", "a/"]);
    let reds: Vec<&str> = keys.lines().filter(|k| k.ends_with("_SR_B4.TIF")).collect();
    assert!(reds.len() >= 2);
    // Replace one red band with another scene's (a new ETag).
    let other = d
        .path()
        .join("archive")
        .join(reds[1].trim_start_matches("a/"));
    s3.s3py(&["put", "changing", reds[0], other.to_str().unwrap()]);
    let out = d.path().join("out.parquet");
    let sql = format!(
        "COPY (SELECT pixel, sum(red) FROM obs GROUP BY pixel) TO '{}'",
        out.display()
    );
    let err = sceneql::run::run_sql(&ctx, &sql, &Default::default())
        .await
        .err()
        .expect("a replaced object fails the query");
    let msg = sceneql::run::user_message(&err);
    assert!(msg.contains(&format!("s3://changing/{}", reds[0])), "{msg}");
    assert!(msg.contains("replaced"), "{msg}");
    assert!(!out.exists());
    // Deleted: 404, naming the object.
    s3.s3py(&["delete", "changing", reds[1]]);
    let err = sceneql::run::run_sql(
        &ctx,
        &format!(
            "COPY (SELECT pixel, sum(red) FROM obs WHERE scene <> '{}' GROUP BY pixel) TO '{}'",
            reds[0].split('/').nth(1).unwrap(),
            out.display()
        ),
        &Default::default(),
    )
    .await
    .err()
    .expect("a deleted object fails the query");
    let msg = sceneql::run::user_message(&err);
    assert!(msg.contains(&format!("s3://changing/{}", reds[1])), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    assert!(!out.exists());
}

#[test]
fn access_denied_fails_fast_naming_the_location() {
    let s3 = S3Server::start();
    s3.s3py(&["mkbucket", "locked"]);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    proxy.forbid(true);
    let d = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "AWS_ENDPOINT_URL" {
                proxy.endpoint.clone()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let start = Instant::now();
    let (ok, _, err) = run_cli(
        d.path(),
        &env,
        &[
            "-q",
            "-c",
            "COPY (SELECT * FROM scenes('s3://locked/a/')) TO 'out.parquet'",
        ],
    );
    assert!(!ok);
    assert!(err.contains("s3://locked"), "{err}");
    assert!(
        err.contains("403") || err.to_lowercase().contains("denied"),
        "{err}"
    );
    assert!(!err.contains("testing"), "a credential in the error: {err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!d.path().join("out.parquet").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_to_a_bucket_leaves_no_object_and_a_good_one_appears_whole() {
    let (s3, _d) = archive_in_s3("outputs", 64, 4);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://outputs/a/' {}",
            options_for(&s3.endpoint)
        ),
    )
    .await;
    // Fails on a late row (a division by zero), after rows were written.
    let failing = "SELECT pixel, time, red FROM obs WHERE pixel < 3000 OR red / (red - red) > 0";
    for target in ["s3://outputs/out/one.parquet", "s3://outputs/parts/"] {
        let err = sceneql::run::run_sql(
            &ctx,
            &format!("COPY ({failing}) TO '{target}' STORED AS PARQUET"),
            &Default::default(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{target}: the query should fail"));
        assert!(
            sceneql::run::user_message(&err).contains("zero"),
            "{target}: {err}"
        );
    }
    let left = s3.s3py(&["list", "outputs", "out/"]) + &s3.s3py(&["list", "outputs", "parts/"]);
    assert!(left.trim().is_empty(), "a failed COPY left objects: {left}");
    // The same targets written by a good query: every row, read back.
    for (i, target) in ["s3://outputs/out/one.parquet", "s3://outputs/parts/"]
        .iter()
        .enumerate()
    {
        run_statements(
            &ctx,
            &format!(
                "COPY (SELECT pixel, time, red FROM obs) TO '{target}' STORED AS PARQUET;
                 CREATE EXTERNAL TABLE back{i} STORED AS PARQUET LOCATION '{target}'"
            ),
        )
        .await;
        let back = query(&ctx, &format!("SELECT count(*) AS n FROM back{i}")).await;
        let n = back[0].column(0).as_primitive::<Int64Type>().value(0);
        let want = query(&ctx, "SELECT count(*) FROM obs").await[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        assert_eq!(n, want, "{target}");
    }
}

/// Files GDAL reads (strips, not tiles) through /vsis3/ behind a proxy that
/// breaks some reads: the query either fails or gives exactly the clean
/// result; GDAL's habit of logging a failed read and returning blank
/// pixels never reaches the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_gdal_reads_never_become_rows() {
    use super::proxy::Fault;
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "tiled", 48, 4, 16, Some(9));
    // The same scenes stripped (GDAL reads them; sceneql decodes only tiles).
    let stripped = d.path().join("tiled");
    strip_files(&stripped, ".TIF");
    let s3 = S3Server::start();
    s3.s3py(&["mkbucket", "strips"]);
    s3.s3py(&["upload", "strips", "a", stripped.to_str().unwrap()]);
    let want = {
        let local = ctx();
        run_statements(
            &local,
            &format!(
                "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}/'",
                stripped.display()
            ),
        )
        .await;
        sorted_rows(&local, TREND).await
    };
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://strips/a/' {}",
            options_for(&proxy.endpoint)
        ),
    )
    .await;
    proxy.inject(
        &[Fault::DropAfterHeaders, Fault::ShortBody, Fault::SlowDown],
        2,
    );
    match ctx.sql(TREND).await.unwrap().collect().await {
        Ok(batches) => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            let mut got: Vec<String> = text.lines().map(str::to_string).collect();
            got.sort();
            assert_eq!(got, want, "rows differ from the clean run's");
        }
        Err(e) => {
            let msg = sceneql::run::user_message(&e);
            assert!(
                msg.contains("s3://strips/a/"),
                "the error names no file: {msg}"
            );
        }
    }
    assert!(
        proxy.log().iter().any(|l| l.fault.is_some()),
        "no fault was injected"
    );
}

/// Two tables on one bucket, each with its own settings (here each its own
/// endpoint, a counting proxy, in front of the same server; in practice
/// credentials per prefix), their files read by GDAL (stripped), both in
/// one query: each table's reads go through its own settings, and the rows
/// equal the local folders'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_on_one_bucket_keep_their_own_settings_for_gdal_reads() {
    let d = tempfile::tempdir().unwrap();
    for (name, seed) in [("a", 3), ("b", 4)] {
        gen_sample(d.path(), name, 40, 4, 16, Some(seed));
        strip_files(&d.path().join(name), ".TIF");
    }
    let s3 = S3Server::start();
    s3.s3py(&["mkbucket", "shared"]);
    for name in ["a", "b"] {
        let dir = d.path().join(name);
        s3.s3py(&["upload", "shared", name, dir.to_str().unwrap()]);
    }
    let proxies = [
        super::proxy::Proxy::start(&s3.endpoint),
        super::proxy::Proxy::start(&s3.endpoint),
    ];
    let ctx = ctx();
    for (name, proxy) in ["a", "b"].iter().zip(&proxies) {
        run_statements(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE {name} STORED AS SCENES LOCATION 's3://shared/{name}/' {}",
                options_for(&proxy.endpoint)
            ),
        )
        .await;
    }
    for p in &proxies {
        p.clear();
    }
    // Both tables in one query: their reads interleave.
    let both = "SELECT 'a', pixel, time, red, nir, qa FROM a UNION ALL SELECT 'b', pixel, time, red, nir, qa FROM b";
    let want = {
        let local = super::common::ctx();
        for name in ["a", "b"] {
            run_statements(
                &local,
                &format!(
                    "CREATE EXTERNAL TABLE {name} STORED AS SCENES LOCATION '{}/'",
                    d.path().join(name).display()
                ),
            )
            .await;
        }
        sorted_rows(&local, both).await
    };
    assert!(want.len() > 200, "{} rows", want.len());
    assert_eq!(sorted_rows(&ctx, both).await, want);
    for (k, name) in ["a", "b"].iter().enumerate() {
        let log = proxies[k].log();
        assert!(
            log.iter()
                .any(|l| l.path.starts_with(&format!("/shared/{name}/"))),
            "table {name}'s reads did not go through its endpoint"
        );
        let strays: Vec<_> = log
            .iter()
            .filter(|l| !l.path.starts_with(&format!("/shared/{name}/")))
            .collect();
        assert!(
            strays.is_empty(),
            "the other table read through table {name}'s endpoint: {strays:#?}"
        );
    }
}

/// Requests in flight are capped per host: against a slow store (each
/// request held 150 ms), creating a table over 120 files (one header read
/// each) keeps the cap's worth in flight, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_to_one_host_are_capped() {
    let (s3, _d) = archive_in_s3("capped", 16, 40);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    proxy.delay(Duration::from_millis(150));
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://capped/a/' {}",
            options_for(&proxy.endpoint)
        ),
    )
    .await;
    let (headers, _) = reads(&proxy.log());
    assert_eq!(headers.len(), 120);
    let cap = sceneql::remote::IN_FLIGHT_PER_HOST;
    let most = proxy.most_at_once();
    assert!(
        most <= cap && most >= cap * 3 / 4,
        "{most} requests at once (cap {cap})"
    );
}
