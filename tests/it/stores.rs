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
fn venv_bin(tool: &str) -> PathBuf {
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

/// Run the sceneql CLI in `dir` with `env`; (success, stdout, stderr).
fn cli(dir: &Path, env: &[(&str, String)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
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
    let (ok, _, err) = cli(
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
    let (ok, _, err) = cli(
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
fn table_options_give_the_store_and_stay_out_of_plans() {
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
    let (ok, out, err) = cli(d.path(), &[], &["-c", &sql]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("testing-SECRET") && !err.contains("testing-SECRET"),
        "{out}{err}"
    );
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
        let (ok, _, err) = cli(d.path(), &env, &["-q", "-c", &sql]);
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
