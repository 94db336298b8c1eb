//! Running SQL text the way the CLI does: split into statements, expand
//! `${key}` variables, make relative paths in LOCATION and COPY absolute
//! (so a remote cluster reads the same files), plan, execute, and commit COPY
//! outputs only on success.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use std::sync::Arc;

use crate::archive::listing::absolutize;
use crate::sinks;
use crate::staged_writes::StagedWrites;
use crate::store::{self, ObjectUrl};
use crate::tile_aggregate::TileAggregates;
use datafusion::physical_optimizer::PhysicalOptimizerRule;

/// Replace `${key}` with its value; an undefined variable is an error.
pub fn expand_variables(sql: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            return Err(DataFusionError::Plan(
                "unterminated '${' in the SQL text".into(),
            ));
        };
        let key = &after[..j];
        let value = vars.get(key).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "the SQL uses ${{{key}}} but it is not defined; pass -D {key}=VALUE"
            ))
        })?;
        out.push_str(value);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Split SQL text into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    Ok(DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?
        .into_iter()
        .collect())
}

/// The result of one statement.
pub struct Output {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// For COPY: where the output was written.
    pub written: Option<String>,
}

impl Output {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Run one statement.
pub async fn run_statement(ctx: &SessionContext, statement: Statement) -> Result<Output> {
    // A COPY to an object store: its writes are held until it succeeds.
    let staged = match &statement {
        Statement::CopyTo(c) if store::is_remote(&c.target) => Some(stage_remote(ctx, &c.target)?),
        _ => None,
    };
    // What is under the target before: on a cluster the executors write
    // (and complete) the objects themselves, so a failed job's objects are
    // deleted afterwards.
    let before = match &staged {
        Some((url, _)) => Some(objects_under(url).await?),
        None => None,
    };
    let result = run_staged(ctx, statement).await;
    let Some((url, staged)) = staged else {
        return result;
    };
    let finished = match &result {
        Ok(_) => staged.commit().await.map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot complete the output's upload to {}: {e}",
                url.root
            ))
        }),
        Err(_) => {
            staged.abort().await;
            if let Some(before) = before {
                delete_new_objects(&url, &before).await;
            }
            Ok(())
        }
    };
    if let Ok(key) = url::Url::parse(&url.root) {
        let _ = ctx.runtime_env().deregister_object_store(&key);
    }
    finished?;
    result
}

/// The objects under a COPY target (the object itself, or a folder's).
async fn objects_under(
    url: &ObjectUrl,
) -> Result<std::collections::HashSet<object_store::path::Path>> {
    use futures::TryStreamExt;
    let store = store::store_for_root(url)?;
    let listed: Vec<_> = store
        .list(Some(&url.path))
        .try_collect()
        .await
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(Vec::new()),
            e => Err(crate::remote::object_error(&url.display, e)),
        })?;
    Ok(listed.into_iter().map(|m| m.location).collect())
}

/// Delete the objects under a failed COPY's target that were not there
/// before it (a cluster's executors' partial output).
async fn delete_new_objects(
    url: &ObjectUrl,
    before: &std::collections::HashSet<object_store::path::Path>,
) {
    let Ok(now) = objects_under(url).await else {
        return;
    };
    let Ok(store) = store::store_for_root(url) else {
        return;
    };
    for path in now.difference(before) {
        if let Err(e) = object_store::ObjectStoreExt::delete(store.as_ref(), path).await {
            tracing::warn!(object = %url.with_path(path), error = %e, "cannot delete a failed COPY's output");
        }
    }
}

/// Route a COPY target's writes through a [`StagedWrites`] of its store.
fn stage_remote(ctx: &SessionContext, target: &str) -> Result<(ObjectUrl, Arc<StagedWrites>)> {
    let url = ObjectUrl::parse(target)?;
    if !url.scheme.lists_and_writes() {
        return Err(DataFusionError::Plan(format!(
            "cannot write to '{target}': http(s) locations are read-only; write to s3://, gs://, az:// or a local path"
        )));
    }
    let staged = Arc::new(StagedWrites::new(store::store_for_root(&url)?));
    let key = url::Url::parse(&url.root)
        .map_err(|e| DataFusionError::Plan(format!("'{target}': {e}")))?;
    ctx.register_object_store(&key, staged.clone());
    Ok((url, staged))
}

async fn run_staged(ctx: &SessionContext, statement: Statement) -> Result<Output> {
    let mut statement = statement;
    let mut pending = None;
    match &mut statement {
        Statement::CreateExternalTable(c) => {
            c.locations = c.locations.iter().map(|l| absolutize(l)).collect();
        }
        Statement::CopyTo(c) => {
            c.target = absolutize(&c.target);
            if let Some((temp, p)) = sinks::stage(&c.target) {
                c.target = temp;
                pending = Some(p);
            }
        }
        _ => {}
    }
    // `trend(v, t).slope`: DataFusion 55 only plans `['slope']` on a call.
    sceneql_udfs::trend::rewrite_struct_field_access(&mut statement);
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    let grid = sinks::copy_grid_metadata(&plan);
    let plan = sinks::with_grid_metadata(plan, &state)?;
    let unordered = sinks::copy_writes_unordered(&plan)?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema = df.schema().inner().clone();
    let mut physical = df.create_physical_plan().await?;
    if unordered {
        // A COPY's writer need not wait for the partitions in order (a
        // no-op on a cluster's plan, which runs remotely).
        physical = sinks::UnorderedSinkInput.optimize(physical, state.config_options())?;
        // Without the sink's order, an aggregation over blocks narrower
        // than the grid may now run per block (see `tile_aggregate`).
        physical = TileAggregates.optimize(physical, state.config_options())?;
    }
    let batches = datafusion::physical_plan::collect(physical, ctx.task_ctx()).await?;
    let written = match pending {
        Some(p) => {
            if let Some(grid) = &grid {
                // A cluster's writer drops the grid (see `sinks`): add it.
                sinks::ensure_parquet_metadata(&p.temp, sinks::GRID_METADATA_KEY, grid)?;
            }
            p.commit().map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot move the output into {}: {e}",
                    p.target.display()
                ))
            })?;
            Some(p.target.display().to_string())
        }
        None => None,
    };
    Ok(Output {
        schema,
        batches,
        written,
    })
}

/// Run every statement of `sql` (after variable expansion), returning each output.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    vars: &HashMap<String, String>,
) -> Result<Vec<Output>> {
    let sql = expand_variables(sql, vars)?;
    let mut outputs = Vec::new();
    for statement in parse(&sql)? {
        outputs.push(run_statement(ctx, statement).await?);
    }
    Ok(outputs)
}

/// The message a user should read for an error: the innermost sceneql or
/// DataFusion message, without DataFusion's wrapper prefixes.
pub fn user_message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::External(inner) => inner.to_string(),
        DataFusionError::Context(_, inner) => user_message(inner),
        root => root.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_and_undefined_ones_are_errors() {
        let vars = HashMap::from([("archive".to_string(), "/data/a".to_string())]);
        assert_eq!(
            expand_variables("LOCATION '${archive}/'", &vars).unwrap(),
            "LOCATION '/data/a/'"
        );
        let e = expand_variables("TO '${out}'", &vars)
            .unwrap_err()
            .to_string();
        assert!(e.contains("-D out=VALUE"), "{e}");
    }
}
