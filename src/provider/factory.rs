//! `CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '...' OPTIONS (...)`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::logical_expr::CreateExternalTable;

use super::{SceneArchive, SceneTable};
use crate::options::SceneOptions;

/// Creates scene tables; registered under the name `SCENES`.
#[derive(Debug, Default)]
pub struct SceneTableFactory;

#[async_trait]
impl TableProviderFactory for SceneTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let options =
            SceneOptions::parse(cmd.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let location = match cmd.locations.as_slice() {
            [one] => one,
            _ => {
                return plan_err!(
                    "a SCENES table takes one LOCATION (a folder, file or glob); got {}",
                    cmd.locations.len()
                );
            }
        };
        let archive = SceneArchive::open(location, options).await?;
        Ok(Arc::new(SceneTable::new(Arc::new(archive))))
    }
}
