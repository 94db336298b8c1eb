//! Aggregate bench: `GROUP BY g` over 2 M in-memory rows (50,000 groups of
//! 40 rows, the shape of per-pixel series) with sceneql's
//! `trend` and DataFusion's built-in `regr_slope`, side by side (rows/s per
//! core): one partition (accumulate + emit, the sorted per-pixel path), and
//! two partitions aggregated in two phases on one thread (accumulate, state,
//! merge + emit).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

const ROWS: usize = 2_000_000;
const PER_GROUP: usize = 40;

fn context(partitions: usize) -> SessionContext {
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    sceneql::session::register(&ctx).expect("register");
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("t", DataType::Float64, false),
        Field::new("v", DataType::Float64, true),
    ]));
    let batches: Vec<RecordBatch> = (0..ROWS)
        .step_by(8192)
        .map(|start| {
            let idx: Vec<usize> = (start..(start + 8192).min(ROWS)).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        idx.iter().map(|&i| (i / PER_GROUP) as i64),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        idx.iter().map(|&i| 2000.0 + (i % PER_GROUP) as f64 * 0.5),
                    )),
                    Arc::new(Float64Array::from_iter(idx.iter().map(|&i| {
                        (i % 7 != 0).then(|| ((i * 7919) % 1000) as f64 / 1000.0)
                    }))),
                ],
            )
            .expect("batch")
        })
        .collect();
    // `partitions` partitions of interleaved batches: every group in each,
    // so a two-phase plan merges every group's states.
    let mut parts = vec![Vec::new(); partitions];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % partitions].push(b);
    }
    ctx.register_table(
        "s",
        Arc::new(MemTable::try_new(schema, parts).expect("table")),
    )
    .expect("register table");
    ctx
}

fn benches(c: &mut Criterion) {
    let one = context(1);
    let two = context(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("aggregate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    for (name, ctx, sql) in [
        ("trend", &one, "SELECT g, trend(v, t) FROM s GROUP BY g"),
        (
            "regr_slope",
            &one,
            "SELECT g, regr_slope(v, t) FROM s GROUP BY g",
        ),
        (
            "trend_merge",
            &two,
            "SELECT g, trend(v, t) FROM s GROUP BY g",
        ),
        (
            "regr_slope_merge",
            &two,
            "SELECT g, regr_slope(v, t) FROM s GROUP BY g",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    ctx.sql(sql)
                        .await
                        .expect("plan")
                        .collect()
                        .await
                        .expect("run")
                        .len()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(aggregate, benches);
criterion_main!(aggregate);
