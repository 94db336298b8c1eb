//! Helpers shared by the integration tests: sessions, queries, archives.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use sceneql::scan::SceneScanExec;

pub fn ctx() -> SessionContext {
    sceneql::session::local_context().expect("session")
}

pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        Err(e) => panic!("{sql}: {e}"),
    }
}

pub async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let b = query(ctx, &format!("EXPLAIN {sql}")).await;
    pretty_format_batches(&b).unwrap().to_string()
}

/// Run a query and return its batches and the scan's summed metric `name`.
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
            .and_then(|m| m.sum_by_name(name))
            .map(|v| v.as_usize())
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

pub fn location(dir: &Path) -> String {
    format!("{}/", dir.display())
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
