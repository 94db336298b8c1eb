//! The scan's own filter: query predicates that read only band columns
//! (`WHERE landsat_clear(qa)`, `WHERE sr_b4 > 0`) run inside the scan, once
//! per scene over a whole block of decoded pixels, before any row is built.
//! Rows that fail are never materialised, and a band read only by the filter
//! (the QA band) never becomes an output column.
//!
//! The provider declares these predicates `Exact`, so DataFusion drops its
//! own `FilterExec`; the predicate is evaluated with DataFusion's physical
//! expressions on the same values and types the row would have carried, so
//! the rows kept are exactly those a `FilterExec` would keep (NULL is not
//! true: dropped).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;

use super::read::BlockData;
use super::read::band_sources;
use crate::model::{Column, SceneArchive};

/// A predicate over band columns, run by the scan.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    /// The table columns the predicate reads (all band or common-name columns).
    pub columns: Vec<Column>,
    /// Their fields, in that order: the schema `expr` is bound to.
    pub schema: SchemaRef,
    pub expr: Arc<dyn PhysicalExpr>,
}

/// The table column named `name`, when it is a band or common-name column.
fn band_column<'a>(archive: &'a SceneArchive, name: &str) -> Option<&'a Column> {
    archive.columns.iter().find(|c| {
        matches!(c, Column::Band(_) | Column::Common(_)) && SceneArchive::column_name(c) == name
    })
}

/// True when the scan can run `e` itself: it reads band columns only, is
/// deterministic, and has no subquery, aggregate or placeholder.
pub fn is_scan_filter(e: &Expr, archive: &SceneArchive) -> bool {
    let cols = e.column_refs();
    if cols.is_empty() || !cols.iter().all(|c| band_column(archive, &c.name).is_some()) {
        return false;
    }
    if e.is_volatile() {
        return false;
    }
    let unsupported = e
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
                    | Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
            ))
        })
        .unwrap_or(true);
    !unsupported
}

impl ScanFilter {
    /// The schema of the predicate's input: `columns`' fields in order.
    pub fn schema_for(archive: &SceneArchive, columns: &[Column]) -> SchemaRef {
        Arc::new(Schema::new(
            columns.iter().map(|c| archive.field(c)).collect::<Vec<_>>(),
        ))
    }

    /// The scan filter for the `filters` [`is_scan_filter`] accepts, if any.
    pub fn try_new(
        archive: &SceneArchive,
        filters: &[Expr],
        state: &dyn Session,
    ) -> Result<Option<Self>> {
        let ours: Vec<Expr> = filters
            .iter()
            .filter(|f| is_scan_filter(f, archive))
            .cloned()
            .collect();
        let Some(expr) = conjunction(ours) else {
            return Ok(None);
        };
        let mut columns: Vec<Column> = Vec::new();
        for c in expr.column_refs() {
            let column = band_column(archive, &c.name).ok_or_else(|| {
                DataFusionError::Internal(format!("scan filter column {} is not a band", c.name))
            })?;
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        // Table order, so equal filters give equal plans.
        columns.sort_by_key(|c| archive.columns.iter().position(|a| a == c));
        let schema = Self::schema_for(archive, &columns);
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let expr = state.create_physical_expr(expr, &df_schema)?;
        if expr.data_type(&schema)? != DataType::Boolean {
            return Err(DataFusionError::Plan(format!(
                "the filter {expr} is not a boolean expression"
            )));
        }
        Ok(Some(ScanFilter {
            columns,
            schema,
            expr,
        }))
    }

    /// Per block scene, the block pixels where the predicate is true.
    pub fn evaluate(&self, archive: &SceneArchive, data: &BlockData) -> Result<Vec<BooleanBuffer>> {
        let len = data.window.rows * data.window.cols;
        let sources = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                band_sources(archive, data, c, f.data_type())?.ok_or_else(|| {
                    DataFusionError::Internal("scan filter columns are bands".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(len));
        (0..data.scenes.len())
            .map(|k| {
                let arrays = sources.iter().map(|s| s[k].clone()).collect();
                let batch =
                    RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
                let result = self.expr.evaluate(&batch)?.into_array(len)?;
                let passed = result.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "scan filter {} returned {}",
                        self.expr,
                        result.data_type()
                    ))
                })?;
                Ok(true_bits(passed))
            })
            .collect()
    }
}

impl ScanFilter {
    /// The bands of `scene` this filter reads (common names resolved).
    pub fn bands_of(&self, archive: &SceneArchive, scene: usize) -> Vec<String> {
        self.columns
            .iter()
            .filter_map(|c| c.band_in(&archive.scenes[scene]))
            .collect()
    }
}

impl std::fmt::Display for ScanFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.expr)
    }
}

/// The positions where a boolean predicate is true: NULL counts as false,
/// as in SQL's WHERE and FILTER.
pub(crate) fn true_bits(predicate: &BooleanArray) -> BooleanBuffer {
    match predicate.nulls() {
        Some(n) => predicate.values() & n.inner(),
        None => predicate.values().clone(),
    }
}
