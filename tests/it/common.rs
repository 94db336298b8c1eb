//! Helpers shared by the integration tests: sessions, queries, archives.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use sceneql::scan::SceneScanExec;

/// This checkout's root: cargo sets the manifest directory when it runs the
/// tests, which holds even when a build cache shared between checkouts has
/// the test binary built from another checkout's path.
pub fn repo() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// A local session planning two partitions whatever the machine's cores
/// (the plans the tests expect do not change with the machine).
pub fn ctx() -> SessionContext {
    let config = sceneql::session::config().with_target_partitions(2);
    sceneql::session::local_context_with(config).expect("session")
}

pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Run statements as the CLI does (`sceneql::run::run_sql`: COPY outputs
/// get the grid metadata and sceneql's Parquet options); panics on error.
pub async fn run_statements(ctx: &SessionContext, sql: &str) {
    if let Err(e) = sceneql::run::run_sql(ctx, sql, &Default::default()).await {
        panic!("{sql}: {e}");
    }
}

/// The `blocks=N` of the (first) scene scan in a plan's text.
pub fn scan_blocks(plan: &str) -> Option<usize> {
    plan.split("blocks=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

pub async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let b = query(ctx, &format!("EXPLAIN {sql}")).await;
    pretty_format_batches(&b).unwrap().to_string()
}

/// Run a query and return its batches and the scan's summed metric `name`
/// (`output_rows`: the rows it gave).
pub async fn run_with_metric(
    ctx: &SessionContext,
    sql: &str,
    name: &str,
) -> (Vec<RecordBatch>, usize) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
    fn find(p: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
        let own = (p.as_ref() as &dyn ExecutionPlan)
            .downcast_ref::<SceneScanExec>()
            .and_then(|s| s.metrics())
            .and_then(|m| match name {
                // DataFusion's own row count is not summed by name.
                "output_rows" => m.output_rows(),
                _ => m.sum_by_name(name).map(|v| v.as_usize()),
            })
            .unwrap_or(0);
        own + p
            .children()
            .into_iter()
            .map(|c| find(c, name))
            .sum::<usize>()
    }
    let n = find(&plan, name);
    (batches, n)
}

/// The encodings of each column chunk of the first row group, by column path.
pub fn chunk_encodings(path: &Path) -> Vec<(String, Vec<String>)> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let rg = reader.metadata().row_group(0).clone();
    rg.columns()
        .iter()
        .map(|c| {
            let mut e: Vec<String> = c.encodings().map(|e| e.to_string()).collect();
            e.sort();
            (c.column_path().string(), e)
        })
        .collect()
}

pub fn location(dir: &Path) -> String {
    format!("{}/", dir.display())
}

/// A session with the scene table `obs` over the folder `dir`.
pub async fn obs_table(dir: &Path) -> SessionContext {
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'",
            location(dir)
        ),
    )
    .await;
    ctx
}

/// Write one Landsat-C2-named band file for a scene.
#[allow(clippy::too_many_arguments)]
pub fn landsat_band<T: gdal::raster::GdalType + Copy>(
    dir: &Path,
    id: &str,
    band: &str,
    epsg: u32,
    origin: (f64, f64),
    pixel: f64,
    size: (usize, usize),
    data: Vec<T>,
    nodata: Option<f64>,
) {
    let path = dir.join(id).join(format!("{id}_{band}.TIF"));
    sceneql::sample::write_geotiff(&path, epsg, origin, pixel, size, data, nodata, 16)
        .expect("write test raster");
}

/// A column as strings (any string or dictionary type).
pub fn strings(a: &datafusion::arrow::array::ArrayRef) -> Vec<String> {
    use datafusion::arrow::array::{Array, AsArray};
    let s =
        datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
    let s = s.as_string::<i32>();
    (0..s.len()).map(|i| s.value(i).to_string()).collect()
}

/// Per-pixel series of clear-sky NDVI against decimal years since 1970, read
/// from a generated Landsat-style archive's band files directly with GDAL
/// (integer offsets from the geotransforms), independent of sceneql's scan:
/// the input of the pipelines' reference computations. Returns the series by
/// grid pixel and the grid width.
pub fn clear_ndvi_series(
    archive: &Path,
) -> (std::collections::BTreeMap<i64, Vec<(f64, f64)>>, usize) {
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
    let mut series: std::collections::BTreeMap<i64, Vec<(f64, f64)>> = Default::default();
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
    for s in series.values_mut() {
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    (series, width)
}

/// `sceneql gen-sample NAME --size .. --dates .. --tile .. [--seed ..]` in `dir`.
pub fn gen_sample(
    dir: &Path,
    name: &str,
    size: usize,
    dates: usize,
    tile: usize,
    seed: Option<u64>,
) {
    let (size, dates, tile) = (size.to_string(), dates.to_string(), tile.to_string());
    let mut args = vec![
        "gen-sample",
        name,
        "--size",
        &size,
        "--dates",
        &dates,
        "--tile",
        &tile,
    ];
    let seed = seed.map(|s| s.to_string());
    if let Some(s) = &seed {
        args.extend(["--seed", s]);
    }
    sceneql_cli(dir, &args);
}

/// A Chrome trace's events (`--trace` output), in the order written.
pub fn trace_events(path: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The names of a Chrome trace's events (`--trace` output).
pub fn trace_names(path: &Path) -> Vec<String> {
    trace_events(path)
        .iter()
        .filter_map(|e| e["name"].as_str().map(String::from))
        .collect()
}

/// Run the sceneql binary in `dir`; panics with its stderr when it fails.
pub fn sceneql_cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sceneql {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The Python with numpy: SCENEQL_PYTHON (set by scripts/test.sh) or python3.
pub fn python() -> PathBuf {
    let py = std::env::var_os("SCENEQL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} has no numpy: run scripts/test.sh (it creates the venv) or set SCENEQL_PYTHON",
        py.display()
    );
    py
}

/// Rewrite the files of a generated archive whose names end in `suffix`
/// as stripped GeoTIFFs (gdal_translate's default layout), in place: GDAL
/// reads those, sceneql decodes only tiled files itself.
pub fn strip_files(archive: &Path, suffix: &str) {
    for scene in std::fs::read_dir(archive).unwrap() {
        for f in std::fs::read_dir(scene.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            if !f.to_string_lossy().ends_with(suffix) {
                continue;
            }
            let tmp = f.with_extension("strips.tif");
            let status = Command::new("gdal_translate")
                .args(["-q", "-co", "COMPRESS=DEFLATE"])
                .arg(&f)
                .arg(&tmp)
                .status()
                .unwrap();
            assert!(status.success(), "gdal_translate {}", f.display());
            std::fs::rename(&tmp, &f).unwrap();
        }
    }
}

/// Run the sceneql CLI in `dir` with `env`; (success, stdout, stderr).
pub fn run_cli(dir: &Path, env: &[(&str, String)], args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sceneql"))
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
