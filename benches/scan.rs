//! Scan benches on a generated 512 x 512 x 24-date archive (3 uint16 bands,
//! DEFLATE + predictor 2, 256 x 256 tiles), one core:
//! - block read: GDAL read + decode of one 256-row block from every scene into
//!   Arrow buffers (observations/s);
//! - batches: a decoded block into (pixel, time, red, nir, qa) Arrow batches
//!   ordered by (pixel, time) (observations/s);
//! - batches with the scan filter: the same block, `WHERE landsat_clear(qa)`
//!   run in the scan, into (pixel, time, red, nir) batches of the clear
//!   observations (what `sql/ndvi_trend.sql` scans; observations in/s).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::physical_plan::ExecutionPlan;
use sceneql::provider::{Column, SceneArchive, SceneTable};
use sceneql::scan::filter::ScanFilter;
use sceneql::scan::{SceneScanExec, batch::BlockBatches, plan_blocks, read::read_block};

fn archive() -> (tempfile::TempDir, Arc<SceneArchive>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = sceneql::sample::SampleSpec {
        size: 512,
        dates: 24,
        tile: 256,
        seed: 1,
    };
    sceneql::sample::generate(dir.path(), &spec).expect("sample");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let archive = rt
        .block_on(SceneArchive::open(
            &format!("{}/", dir.path().display()),
            Default::default(),
        ))
        .expect("archive");
    (dir, Arc::new(archive))
}

/// The scan filter DataFusion plans for `WHERE landsat_clear(qa)`.
fn clear_filter(archive: &Arc<SceneArchive>) -> ScanFilter {
    fn find(p: &Arc<dyn ExecutionPlan>) -> Option<ScanFilter> {
        match (p.as_ref() as &dyn ExecutionPlan).downcast_ref::<SceneScanExec>() {
            Some(scan) => scan.filter().cloned(),
            None => p.children().into_iter().find_map(find),
        }
    }
    let ctx = sceneql::session::local_context().expect("session");
    ctx.register_table("obs", Arc::new(SceneTable::new(archive.clone())))
        .expect("table");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let plan = rt
        .block_on(async {
            ctx.sql("SELECT pixel, time, red, nir FROM obs WHERE landsat_clear(qa)")
                .await?
                .create_physical_plan()
                .await
        })
        .expect("plan");
    find(&plan).expect("the scan runs the filter")
}

fn benches(c: &mut Criterion) {
    let (_dir, archive) = archive();
    let scenes: Vec<usize> = (0..archive.scenes.len()).collect();
    let bands: Vec<String> = ["qa_pixel", "sr_b4", "sr_b5"].map(String::from).to_vec();
    let block = plan_blocks(&archive, &scenes, &bands, archive.grid.window())[0];
    let obs = (block.rows * block.cols * scenes.len()) as u64;
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.throughput(Throughput::Elements(obs));
    g.bench_function("block_read_3_bands", |b| {
        b.iter(|| read_block(&archive, &scenes, &bands, block, None, None).expect("read"))
    });
    let all = vec![
        Column::Pixel,
        Column::Time,
        Column::Common("red".into()),
        Column::Common("nir".into()),
        Column::Common("qa".into()),
    ];
    let filter = clear_filter(&archive);
    let sensors: ArrayRef = Arc::new(StringArray::from(archive.sensors.clone()));
    for (name, columns, filter) in [
        ("block_to_batches", all.clone(), None),
        ("block_to_batches_clear", all[..4].to_vec(), Some(&filter)),
    ] {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            columns.iter().map(|c| archive.field(c)).collect::<Vec<_>>(),
        ));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    read_block(&archive, &scenes, &bands, block, None, None)
                        .expect("read")
                        .0
                },
                |data| {
                    let batches = BlockBatches::try_new(
                        archive.clone(),
                        columns.clone(),
                        schema.clone(),
                        data,
                        filter,
                        8192,
                        archive.scene_ids(),
                        sensors.clone(),
                    )
                    .expect("batches");
                    batches.map(|b| b.expect("batch").num_rows()).sum::<usize>()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(scan, benches);
criterion_main!(scan);
