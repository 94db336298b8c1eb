//! The same SQL on a Ballista cluster: one scheduler and two executors as
//! separate `sceneql` processes on free loopback ports. Results must equal
//! the local run's, the work must be spread over both executors, a killed
//! executor must not leave a partial Parquet file that looks complete, and
//! bad addresses must fail fast with clear errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::scalar::ScalarValue;

use crate::common::{chunk_encodings, scan_blocks, sceneql_cli};
use crate::stores::S3Server;

fn sceneql() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sceneql"))
}

fn repo_file(rel: &str) -> String {
    format!("{}/{rel}", crate::common::repo().display())
}

/// Wait until a whole line of `path` contains `needle`; returns the
/// file's whole lines. (A line can be read half written: stderr is not
/// buffered, so `eprintln!` writes its pieces one by one.)
fn wait_for_text(path: &Path, needle: &str, timeout: Duration, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        if text.contains(needle) {
            return text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("process exited ({status}) before printing '{needle}':\n{text}");
        }
        assert!(
            start.elapsed() < timeout,
            "no '{needle}' in {} after {timeout:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listening_addr(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .expect("a 'listening on' line")
        .trim()
        .to_string()
}

/// Send SIGTERM and wait for the process to exit.
fn terminate(child: &mut Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("process {} ignored SIGTERM for 20 s", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a cluster's processes are started; the default is the tests' usual
/// cluster.
struct ClusterSetup {
    /// Variables added to the scheduler's and every executor's environment.
    env: Vec<(&'static str, String)>,
    /// The scheduler's SCENEQL_LOG (None: this process's environment's).
    scheduler_log: Option<&'static str>,
    /// Each executor's SCENEQL_LOG. Ballista logs each task it runs at
    /// info: the tests count them.
    executor_log: &'static str,
    /// Run each executor in its own empty temporary directory (else in this
    /// process's current directory).
    isolated_executors: bool,
}

impl Default for ClusterSetup {
    fn default() -> Self {
        ClusterSetup {
            env: Vec::new(),
            scheduler_log: None,
            executor_log: "warn,ballista_executor=info",
            isolated_executors: false,
        }
    }
}

/// A scheduler and executors, each a `sceneql` process logging to a file.
struct Cluster {
    dir: PathBuf,
    setup: ClusterSetup,
    scheduler: Child,
    scheduler_addr: String,
    executors: Vec<Child>,
    /// The executors' current directories when isolated (removed after the
    /// processes are stopped: fields drop after `Drop::drop`).
    executor_dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start(dir: &Path, executors: usize) -> Cluster {
        Cluster::start_with(dir, executors, ClusterSetup::default())
    }

    fn start_with(dir: &Path, executors: usize, setup: ClusterSetup) -> Cluster {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("scheduler.log");
        let mut command = sceneql();
        command.args([
            "scheduler",
            "--bind",
            "127.0.0.1:0",
            "--executor-timeout",
            "10",
        ]);
        if let Some(filter) = setup.scheduler_log {
            command.env("SCENEQL_LOG", filter);
        }
        let mut scheduler = command
            .envs(setup.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let text = wait_for_text(
            &log,
            "listening on",
            Duration::from_secs(30),
            &mut scheduler,
        );
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            setup,
            scheduler_addr: listening_addr(&text),
            scheduler,
            executors: Vec::new(),
            executor_dirs: Vec::new(),
        };
        for i in 0..executors {
            cluster.add_executor(i);
        }
        cluster.wait_for_executors(executors);
        cluster
    }

    fn executor_log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("executor-{i}.log"))
    }

    fn add_executor(&mut self, i: usize) {
        let log = self.executor_log(i);
        let work = self.dir.join(format!("work-{i}"));
        let mut command = sceneql();
        if self.setup.isolated_executors {
            let cwd = tempfile::tempdir().unwrap();
            command.current_dir(cwd.path());
            self.executor_dirs.push(cwd);
        }
        let mut child = command
            .args(["executor", "--scheduler", &self.scheduler_addr])
            .args(["--bind", "127.0.0.1:0", "--concurrency", "2"])
            .arg("--work-dir")
            .arg(&work)
            .env("SCENEQL_LOG", self.setup.executor_log)
            .envs(self.setup.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_text(&log, "listening on", Duration::from_secs(30), &mut child);
        self.executors.push(child);
    }

    /// Wait until the scheduler's REST API lists `n` executors.
    fn wait_for_executors(&self, n: usize) {
        let start = Instant::now();
        loop {
            let listed = rest_get(&self.scheduler_addr, "/api/executors")
                .and_then(|v| v.as_array().map(|a| a.len()))
                .unwrap_or(0);
            if listed >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "only {listed} of {n} executors registered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("df://{}", self.scheduler_addr)
    }

    /// Tasks each executor logged as started so far.
    fn tasks_per_executor(&self) -> Vec<usize> {
        (0..self.executors.len())
            .map(|i| {
                std::fs::read_to_string(self.executor_log(i))
                    .unwrap_or_default()
                    .matches("Execute task")
                    .count()
            })
            .collect()
    }

    /// Stop every process with SIGTERM; each must exit cleanly.
    fn stop(mut self) {
        for (i, e) in self.executors.iter_mut().enumerate() {
            let status = terminate(e);
            assert!(
                status.success(),
                "executor {i} exited with {status} on SIGTERM"
            );
        }
        let status = terminate(&mut self.scheduler);
        assert!(
            status.success(),
            "scheduler exited with {status} on SIGTERM"
        );
        self.executors.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for e in &mut self.executors {
            let _ = e.kill();
            let _ = e.wait();
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
    }
}

/// GET `path` from a scheduler's REST API: the whole HTTP response (status
/// line, headers and body).
fn rest_response(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// GET a JSON document from a scheduler's REST API.
fn rest_get(addr: &str, path: &str) -> Option<serde_json::Value> {
    let text = rest_response(addr, path)?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// Every row of a Parquet file (or folder), sorted by `pixel` (then `time`
/// when present), read with DataFusion in a local session.
fn read_sorted(path: &Path) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let df = ctx
            .read_parquet(
                path.to_str().unwrap(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .unwrap();
        let has_time = df.schema().has_column_with_unqualified_name("time");
        let mut order = vec![datafusion::prelude::col("pixel").sort(true, true)];
        if has_time {
            order.push(datafusion::prelude::col("time").sort(true, true));
        }
        df.sort(order).unwrap().collect().await.unwrap()
    })
}

/// The `pixel` column of a Parquet file, in the file's row order.
fn pixels_in_file_order(path: &Path) -> Vec<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut pixels = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch.column_by_name("pixel").expect("a pixel column");
        pixels.extend(column.as_primitive::<Int64Type>().values().iter().copied());
    }
    pixels
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * 1f64.max(a.abs()).max(b.abs())
}

fn same_value(a: &ScalarValue, b: &ScalarValue) -> bool {
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => close(*x, *y),
        (ScalarValue::Float32(Some(x)), ScalarValue::Float32(Some(y))) => {
            close(*x as f64, *y as f64)
        }
        (ScalarValue::List(x), ScalarValue::List(y)) => same_array(x.values(), y.values()),
        _ => a == b,
    }
}

fn same_array(a: &dyn Array, b: &dyn Array) -> bool {
    a.len() == b.len()
        && (0..a.len()).all(|i| {
            let (x, y) = (
                ScalarValue::try_from_array(a, i).unwrap(),
                ScalarValue::try_from_array(b, i).unwrap(),
            );
            same_value(&x, &y)
        })
}

/// Two results are equal row by row (sorted by pixel), floats within
/// |a - b| <= 1e-9 * max(1, |a|, |b|). Returns the row count.
fn assert_same_rows(local: &Path, remote: &Path) -> usize {
    let concat = |batches: Vec<RecordBatch>| {
        let schema = batches[0].schema();
        datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
    };
    let (a, b) = (concat(read_sorted(local)), concat(read_sorted(remote)));
    assert_eq!(a.num_rows(), b.num_rows(), "row counts differ");
    assert_eq!(a.schema().fields(), b.schema().fields(), "schemas differ");
    for (field, (x, y)) in a
        .schema()
        .fields()
        .iter()
        .zip(a.columns().iter().zip(b.columns()))
    {
        for i in 0..x.len() {
            let (u, v) = (
                ScalarValue::try_from_array(x, i).unwrap(),
                ScalarValue::try_from_array(y, i).unwrap(),
            );
            assert!(
                same_value(&u, &v),
                "column {} row {i}: local {u} vs cluster {v}",
                field.name()
            );
        }
    }
    a.num_rows()
}

fn grid_metadata(path: &Path) -> Option<String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == sceneql::sinks::GRID_METADATA_KEY)
        .and_then(|kv| kv.value.clone())
}

fn gen_sample(dir: &Path, size: &str, dates: &str, tile: &str) -> String {
    sceneql_cli(
        dir,
        &[
            "gen-sample",
            "archive",
            "--size",
            size,
            "--dates",
            dates,
            "--tile",
            tile,
        ],
    );
    format!("{}/archive/", dir.display())
}

#[test]
fn cluster_results_equal_local_and_use_both_executors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = gen_sample(dir, "256", "12", "64");
    let cluster = Cluster::start(&dir.join("cluster"), 2);
    let remote = cluster.url();
    let export = "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';
        COPY (SELECT pixel, time, x, y, red, nir, qa FROM obs WHERE pixel % 7 = 0)
        TO '${out}'";
    let runs = [
        ("ndvi_trend", repo_file("sql/ndvi_trend.sql")),
        ("harmonic", repo_file("sql/harmonic.sql")),
    ];
    for (name, sql) in &runs {
        let (local, cluster_out) = (
            dir.join(format!("{name}-local.parquet")),
            dir.join(format!("{name}-cluster.parquet")),
        );
        for (out, extra) in [(&local, vec![]), (&cluster_out, vec!["--remote", &remote])] {
            let mut args = vec!["-q", "-f", sql.as_str()];
            args.extend(extra);
            let (a, o) = (
                format!("archive={archive}"),
                format!("out={}", out.display()),
            );
            args.extend(["-D", &a, "-D", &o]);
            sceneql_cli(dir, &args);
        }
        let rows = assert_same_rows(&local, &cluster_out);
        assert!(rows > 60_000, "{name}: only {rows} pixels");
        assert_eq!(
            grid_metadata(&local),
            grid_metadata(&cluster_out),
            "{name}: the cluster's output must carry the same grid metadata"
        );
        assert!(grid_metadata(&cluster_out).is_some());
        // The executors write with the client's options (floats split).
        let encodings = chunk_encodings(&cluster_out);
        assert_eq!(chunk_encodings(&local), encodings, "{name}");
        assert!(
            encodings
                .iter()
                .any(|(_, e)| e.iter().any(|e| e == "BYTE_STREAM_SPLIT")),
            "{name}: {encodings:?}"
        );
    }
    // The time-series export, through -c.
    let (local, cluster_out) = (dir.join("export-local"), dir.join("export-cluster"));
    for (out, remote_args) in [(&local, vec![]), (&cluster_out, vec!["--remote", &remote])] {
        let out = format!("{}.parquet", out.display());
        let (a, o) = (format!("archive={archive}"), format!("out={out}"));
        let mut args = vec!["-q", "-c", export, "-D", &a, "-D", &o];
        args.extend(remote_args);
        sceneql_cli(dir, &args);
    }
    let rows = assert_same_rows(
        &dir.join("export-local.parquet"),
        &dir.join("export-cluster.parquet"),
    );
    assert!(rows > 50_000, "export: only {rows} rows");

    // A sorted COPY over blocks narrower than the grid is written in pixel
    // order by both (the per-block aggregation gives way to the sorted one).
    let sorted = "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '${archive}';
        SET sceneql.block_pixels = 1024;
        COPY (SELECT pixel, count(*) AS n FROM obs WHERE landsat_clear(qa)
              GROUP BY pixel ORDER BY pixel) TO '${out}'";
    let (local, cluster_out) = (
        dir.join("sorted-local.parquet"),
        dir.join("sorted-cluster.parquet"),
    );
    for (out, remote_args) in [(&local, vec![]), (&cluster_out, vec!["--remote", &remote])] {
        let (a, o) = (
            format!("archive={archive}"),
            format!("out={}", out.display()),
        );
        let mut args = vec!["-q", "-c", sorted, "-D", &a, "-D", &o];
        args.extend(remote_args);
        sceneql_cli(dir, &args);
        let pixels = pixels_in_file_order(out);
        assert!(
            pixels.len() > 60_000,
            "{}: {} rows",
            out.display(),
            pixels.len()
        );
        assert!(
            pixels.windows(2).all(|w| w[0] < w[1]),
            "{} is not in pixel order",
            out.display()
        );
    }
    assert_same_rows(&local, &cluster_out);
    // The session's sceneql settings reach the scheduler: its plan has the
    // blocks of `block_pixels` set on the client, not of the default.
    let blocks = |block_pixels: usize| {
        let explain = format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{archive}';
             SET sceneql.block_pixels = {block_pixels};
             EXPLAIN SELECT pixel, count(*) FROM obs GROUP BY pixel"
        );
        let plan = sceneql_cli(dir, &["-q", "-c", &explain, "--remote", &remote]);
        scan_blocks(&plan).unwrap_or_else(|| panic!("no scan blocks in the cluster's plan: {plan}"))
    };
    assert_eq!(blocks(1 << 20), 1);
    assert!(
        blocks(1024) > 1,
        "SET sceneql.block_pixels did not reach the cluster"
    );

    // Every job ran as several tasks, on both executors.
    let tasks = cluster.tasks_per_executor();
    assert!(
        tasks.iter().all(|&n| n >= 2),
        "tasks per executor: {tasks:?} (the work must be spread over both)"
    );
    let state = rest_get(&cluster.scheduler_addr, "/api/state").expect("REST /api/state");
    assert!(state["scheduler_id"].is_string(), "{state}");
    let jobs = rest_get(&cluster.scheduler_addr, "/api/jobs").expect("REST /api/jobs");
    let jobs = jobs.as_array().unwrap();
    assert!(jobs.len() >= 3, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "Completed"), "{jobs:?}");
    cluster.stop();
}

/// Run the CLI in `dir` with none of this process's `AWS_*` variables: its
/// store settings can only come from the SQL.
fn sceneql_without_aws_env(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = sceneql();
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.current_dir(dir).args(args).output().unwrap()
}

#[test]
fn cluster_reads_the_archive_from_s3_and_equals_local() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = gen_sample(dir, "64", "8", "32");
    let s3 = S3Server::start();
    s3.s3py(&["mkbucket", "scenes"]);
    s3.s3py(&["upload", "scenes", "landsat", &archive]);
    // The scheduler and the executors reach the store through the standard
    // environment; each executor runs in an empty directory of its own.
    let cluster = Cluster::start_with(
        &dir.join("cluster"),
        2,
        ClusterSetup {
            env: s3.env(),
            // Verbose enough to log the plans they are sent.
            scheduler_log: Some("info,sceneql=debug"),
            executor_log: "info,sceneql=debug",
            isolated_executors: true,
        },
    );
    if cfg!(target_os = "linux") {
        for (e, cwd) in cluster.executors.iter().zip(&cluster.executor_dirs) {
            let actual = std::fs::read_link(format!("/proc/{}/cwd", e.id())).unwrap();
            assert_eq!(actual, cwd.path().canonicalize().unwrap());
        }
    }
    // The client has no AWS_* environment: the table's OPTIONS give it the
    // store, with credentials that must stay in the client (moto accepts
    // any; the executors use their environment's).
    const KEY_ID: &str = "client-KEY-ID-123";
    const SECRET: &str = "testing-SECRET-123";
    let trend = |location: &str, options: &str, out: &Path| {
        format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' {options};
             COPY (
               SELECT pixel, t.slope AS slope, t.intercept AS intercept, t.r2 AS r2,
                      t.stderr AS stderr, t.p_value AS p_value, t.n AS n,
                      t.first AS first, t.last AS last
               FROM (
                 SELECT pixel, trend(ndvi(landsat_sr(nir), landsat_sr(red)), time) AS t
                 FROM obs
                 WHERE landsat_clear(qa)
                 GROUP BY pixel
               )
             ) TO '{}'",
            out.display()
        )
    };
    let options = format!(
        "OPTIONS ('aws.endpoint' '{}', 'aws.access_key_id' '{KEY_ID}', \
         'aws.secret_access_key' '{SECRET}', 'aws.region' 'us-east-1', \
         'aws.allow_http' 'true')",
        s3.endpoint
    );
    let (local, cluster_out) = (dir.join("s3-local.parquet"), dir.join("s3-cluster.parquet"));
    let sql = trend("s3://scenes/landsat/", &options, &cluster_out);
    let out = sceneql_without_aws_env(dir, &["-q", "--remote", &cluster.url(), "-c", &sql]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let logs = |cluster: &Cluster| {
        let mut all = format!(
            "--- scheduler ---\n{}",
            std::fs::read_to_string(cluster.dir.join("scheduler.log")).unwrap_or_default()
        );
        for i in 0..cluster.executors.len() {
            all += &format!(
                "--- executor {i} ---\n{}",
                std::fs::read_to_string(cluster.executor_log(i)).unwrap_or_default()
            );
        }
        all
    };
    assert!(
        out.status.success(),
        "the cluster's run from s3 failed: {stderr}\n{}",
        logs(&cluster)
    );
    for secret in [SECRET, KEY_ID] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the client printed {secret}: {stdout}{stderr}"
        );
    }
    sceneql_cli(dir, &["-q", "-c", &trend(&archive, "", &local)]);

    let rows = assert_same_rows(&local, &cluster_out);
    assert!(rows > 3_000, "only {rows} pixels");
    assert!(grid_metadata(&cluster_out).is_some());
    assert_eq!(grid_metadata(&local), grid_metadata(&cluster_out));
    // The executors read the scenes (the client did not send them).
    let tasks = cluster.tasks_per_executor();
    assert!(
        tasks.iter().all(|&n| n >= 1),
        "tasks per executor: {tasks:?} (the work must be spread over both)"
    );

    // The client's credentials reached neither the scheduler nor the
    // executors: not in their logs (which do show the plans they were sent)...
    let logs = logs(&cluster);
    assert!(
        logs.contains("s3://scenes/landsat"),
        "the logs show no plan, so their check would prove nothing:\n{logs}"
    );
    for secret in [SECRET, KEY_ID] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
    // ... nor in anything the scheduler's REST API shows of the jobs.
    let addr = &cluster.scheduler_addr;
    let jobs = rest_get(addr, "/api/jobs").expect("REST /api/jobs");
    let jobs = jobs.as_array().unwrap();
    assert!(!jobs.is_empty());
    assert!(jobs.iter().all(|j| j["status"] == "Completed"), "{jobs:?}");
    let mut paths: Vec<String> = ["/api/state", "/api/executors", "/api/jobs"]
        .map(String::from)
        .to_vec();
    for job in jobs {
        let id = job["job_id"].as_str().expect("a job_id");
        for tail in [
            "",
            "?plan_format=tree",
            "?plan_format=metrics",
            "/config",
            "/stages",
            "/dot",
        ] {
            paths.push(format!("/api/job/{id}{tail}"));
        }
        let stages = rest_get(addr, &format!("/api/job/{id}/stages")).expect("REST stages");
        for stage in stages["stages"].as_array().expect("stages") {
            let sid = stage["stage_id"].as_str().expect("a stage_id");
            paths.push(format!("/api/job/{id}/stage/{sid}/dot"));
        }
    }
    let mut shown = String::new();
    for path in &paths {
        let response = rest_response(addr, path).unwrap_or_else(|| panic!("REST {path}"));
        assert!(
            response.lines().next().is_some_and(|l| l.contains(" 200 ")),
            "{path}: {response}"
        );
        for secret in [SECRET, KEY_ID] {
            assert!(!response.contains(secret), "{secret} in {path}: {response}");
        }
        shown += &response;
    }
    assert!(
        shown.contains("s3://scenes/landsat"),
        "the REST API showed no plan naming the archive"
    );
    // Written to the bucket by the executors: the same rows, georeferenced
    // by the executor's writer (a bucket's footer cannot be patched); a
    // failed job leaves no object there.
    let to_s3 = trend(
        "s3://scenes/landsat/",
        &options,
        Path::new("s3://scenes/out/trend.parquet"),
    );
    let out = sceneql_without_aws_env(dir, &["-q", "--remote", &cluster.url(), "-c", &to_s3]);
    assert!(
        out.status.success(),
        "COPY to s3 on the cluster: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fetched = dir.join("s3-fetched.parquet");
    s3.s3py(&[
        "download",
        "scenes",
        "out/trend.parquet",
        fetched.to_str().unwrap(),
    ]);
    assert_eq!(assert_same_rows(&local, &fetched), rows);
    assert_eq!(grid_metadata(&fetched), grid_metadata(&local));
    let failing = format!(
        "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 's3://scenes/landsat/' {options};
         COPY (SELECT pixel, time, red FROM obs WHERE pixel < 3000 OR red / (red - red) > 0)
         TO 's3://scenes/failed/out.parquet'"
    );
    let out = sceneql_without_aws_env(dir, &["-q", "--remote", &cluster.url(), "-c", &failing]);
    assert!(!out.status.success(), "the failing COPY succeeded");
    let left = s3.s3py(&["list", "scenes", "failed/"]);
    assert!(left.trim().is_empty(), "a failed job left objects: {left}");

    cluster.stop();
}

#[test]
fn standalone_cluster_matches_local() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = gen_sample(dir, "128", "8", "32");
    let sql = repo_file("sql/ndvi_trend.sql");
    let a = format!("archive={archive}");
    for (out, mode) in [
        ("local.parquet", None),
        ("standalone.parquet", Some("--standalone")),
    ] {
        let o = format!("out={}", dir.join(out).display());
        let mut args = vec!["-q", "-f", sql.as_str(), "-D", &a, "-D", &o];
        args.extend(mode);
        sceneql_cli(dir, &args);
    }
    let rows = assert_same_rows(&dir.join("local.parquet"), &dir.join("standalone.parquet"));
    assert!(rows > 15_000);
    assert!(grid_metadata(&dir.join("standalone.parquet")).is_some());
    // The cluster runs the same per-block aggregation (its node and the
    // scene-major scan go through the codecs), over sharded scans.
    let explain = format!(
        "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{archive}'; \
         EXPLAIN SELECT pixel, trend(ndvi(landsat_sr(nir), landsat_sr(red)), time) AS t \
         FROM obs WHERE landsat_clear(qa) GROUP BY pixel"
    );
    let plan = sceneql_cli(dir, &["-q", "--standalone", "-c", &explain]);
    assert!(plan.contains("ShuffleWriterExec"), "{plan}");
    assert!(plan.contains("TileAggregateExec"), "{plan}");
    assert!(plan.contains("order=scene-major"), "{plan}");
}

#[test]
fn killing_an_executor_mid_query_leaves_no_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = gen_sample(dir, "768", "16", "128");
    let mut cluster = Cluster::start(&dir.join("cluster"), 2);
    let out = dir.join("trend.parquet");
    let client_log = dir.join("client.log");
    let mut client = sceneql()
        .current_dir(dir)
        .args(["-q", "--remote", &cluster.url(), "-f"])
        .arg(repo_file("sql/ndvi_trend.sql"))
        .arg("-D")
        .arg(format!("archive={archive}"))
        .arg("-D")
        .arg(format!("out={}", out.display()))
        .stderr(std::fs::File::create(&client_log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill executor 1 once both are running tasks of the query.
    let start = Instant::now();
    while cluster.tasks_per_executor().contains(&0) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the query never reached both executors: {:?}",
            cluster.tasks_per_executor()
        );
        assert!(
            client.try_wait().unwrap().is_none(),
            "the query ended too soon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.executors[1].kill().unwrap();
    cluster.executors[1].wait().unwrap();
    // The query finishes on the other executor, or fails with a clear error.
    let status = loop {
        if let Some(s) = client.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the query neither finished nor failed after an executor was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&client_log).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".sceneql-tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary outputs left: {leftovers:?}"
    );
    eprintln!(
        "after killing an executor the query {}",
        if status.success() {
            "finished on the survivor".to_string()
        } else {
            format!("failed: {stderr}")
        }
    );
    if status.success() {
        // Finished on the survivor: the output is complete and right.
        let local = dir.join("local.parquet");
        sceneql_cli(
            dir,
            &[
                "-q",
                "-f",
                &repo_file("sql/ndvi_trend.sql"),
                "-D",
                &format!("archive={archive}"),
                "-D",
                &format!("out={}", local.display()),
            ],
        );
        assert_same_rows(&local, &out);
    } else {
        assert!(!out.exists(), "a failed query left {}", out.display());
        assert!(
            stderr.contains("error:") && stderr.to_lowercase().contains("executor"),
            "the error should say what happened: {stderr}"
        );
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_wrong_scheduler_address_fails_fast_and_clearly() {
    let start = Instant::now();
    let out = sceneql()
        .args(["--remote", &format!("df://127.0.0.1:{}", dead_port())])
        .args(["-c", "SELECT 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        stderr.contains("cannot reach a sceneql scheduler at df://127.0.0.1:"),
        "{stderr}"
    );
    let out = sceneql()
        .args(["--remote", "127.0.0.1", "-c", "SELECT 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("df://HOST:PORT"), "{stderr}");
}

#[test]
fn an_executor_retries_a_scheduler_that_is_down_then_gives_up() {
    let start = Instant::now();
    let out = sceneql()
        .args([
            "executor",
            "--scheduler",
            &format!("127.0.0.1:{}", dead_port()),
        ])
        .args(["--bind", "127.0.0.1:0", "--scheduler-timeout", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(15), "{stderr}");
    let tries = stderr.matches("retrying").count();
    assert!(tries >= 2, "one line per try expected: {stderr}");
    assert!(stderr.contains("no scheduler at 127.0.0.1:"), "{stderr}");
}
