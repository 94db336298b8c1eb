//! Partition tokens: how a scan's partitions are divided among a cluster's
//! tasks.
//!
//! Ballista's scheduler gives each task a slice of a stage's partitions by
//! rewriting the stage's leaves, and it only knows how to rewrite its own
//! leaf types (file scans and in-memory tables); a custom leaf would run
//! every partition in every task. So on a cluster the scan gets a child: an
//! in-memory table with one single-row batch per partition, holding that
//! partition's index. The scheduler slices that table like any other; the
//! scan, rebuilt over the sliced child, runs exactly the partitions whose
//! tokens it received. Locally there is no child and nothing changes.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;

const TOKEN_COLUMN: &str = "scan_partition";

/// An in-memory plan with `n` partitions, partition `i` holding one row `i`.
pub fn tokens(n: usize) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        TOKEN_COLUMN,
        DataType::UInt32,
        false,
    )]));
    let partitions = (0..n)
        .map(|i| {
            let id = u32::try_from(i)
                .map_err(|_| DataFusionError::Internal(format!("too many scan partitions: {n}")))?;
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt32Array::from(vec![id]))])?;
            Ok(vec![batch])
        })
        .collect::<Result<Vec<_>>>()?;
    let source = MemorySourceConfig::try_new(&partitions, schema, None)?;
    Ok(DataSourceExec::from_data_source(source))
}

/// The partition indices a token plan (as made by [`tokens`], possibly
/// sliced) still holds, in partition order.
pub fn token_ids(plan: &Arc<dyn ExecutionPlan>) -> Result<Vec<usize>> {
    let not_tokens = || {
        DataFusionError::Internal(format!(
            "a scene scan's child must be its partition tokens, got {}",
            plan.name()
        ))
    };
    let exec = plan
        .downcast_ref::<DataSourceExec>()
        .ok_or_else(not_tokens)?;
    let source = exec
        .data_source()
        .as_ref()
        .downcast_ref::<MemorySourceConfig>()
        .ok_or_else(not_tokens)?;
    source
        .partitions()
        .iter()
        .map(|batches| {
            batches
                .first()
                .and_then(|b| b.columns().first())
                .and_then(|c| c.as_primitive_opt::<UInt32Type>())
                .filter(|a| !a.is_empty())
                .map(|a| a.value(0) as usize)
                .ok_or_else(not_tokens)
        })
        .collect()
}
