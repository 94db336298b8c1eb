//! The table function `scenes('location' [, 'key', 'value', ...])`: the same
//! table as `CREATE EXTERNAL TABLE ... STORED AS SCENES`, inline in a query.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;

use super::{SceneArchive, SceneTable};
use crate::options::SceneOptions;

#[derive(Debug, Default)]
pub struct ScenesFunction;

fn string_arg(e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        Expr::Literal(v, _) if !v.is_null() => Ok(v.to_string()),
        _ => plan_err!(
            "scenes('location' [, 'key', 'value', ...]): {what} must be a string literal, got {e}"
        ),
    }
}

impl TableFunctionImpl for ScenesFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() % 2 == 0 {
            return plan_err!(
                "scenes('location' [, 'key', 'value', ...]) takes a location and key/value pairs; got {} arguments",
                exprs.len()
            );
        }
        let location = string_arg(&exprs[0], "the location")?;
        let mut pairs = Vec::new();
        for kv in exprs[1..].chunks(2) {
            pairs.push((
                string_arg(&kv[0], "an option key")?,
                string_arg(&kv[1], "an option value")?,
            ));
        }
        let options = SceneOptions::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        // Planning is synchronous here; discovery is async I/O plus blocking
        // GDAL calls, so it runs on its own thread and runtime.
        let archive = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| DataFusionError::External(e.into()))?;
                rt.block_on(SceneArchive::open(&location, options))
                    .map_err(DataFusionError::from)
            })
            .join()
            .map_err(|_| DataFusionError::Execution("scene discovery panicked".into()))?
        })?;
        Ok(Arc::new(SceneTable::new(Arc::new(archive))))
    }
}
