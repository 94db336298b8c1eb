//! Where results leave: `COPY ... TO` Parquet (a file, or a folder with
//! `PARTITIONED BY`). Two things are added to DataFusion's writer:
//! - a COPY reading a scene table stores the table's grid (CRS WKT,
//!   geotransform, width, height) as Parquet key-value metadata
//!   `sceneql.grid`, so per-pixel results stay georeferenced;
//! - output is written under a temporary name beside the target and renamed
//!   into place only when the whole statement succeeded, so a failed or
//!   interrupted query never leaves a partial file that looks complete.

use std::path::{Path, PathBuf};

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;

use crate::grid::Grid;
use crate::provider::SceneTable;

/// The Parquet key-value metadata key holding the grid.
pub const GRID_METADATA_KEY: &str = "sceneql.grid";

/// The grids of the scene tables a plan reads (deduplicated).
pub fn scene_grids(plan: &LogicalPlan) -> Vec<Grid> {
    let mut grids: Vec<Grid> = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(t) = (provider.as_ref() as &dyn TableProvider).downcast_ref::<SceneTable>()
        {
            let g = t.archive().grid.clone();
            if !grids.contains(&g) {
                grids.push(g);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    grids
}

/// A COPY target being written under a temporary name.
#[derive(Debug)]
pub struct PendingOutput {
    pub target: PathBuf,
    pub temp: PathBuf,
}

/// Choose a temporary name beside a local COPY target, keeping its extension
/// (DataFusion infers the format from it) and a trailing `/` for folders.
pub fn stage(target: &str) -> Option<(String, PendingOutput)> {
    if target.contains("://") {
        return None;
    }
    let is_dir = target.ends_with('/');
    let path = Path::new(target.trim_end_matches('/'));
    let name = path.file_name()?.to_string_lossy().to_string();
    let temp = path.with_file_name(format!(".sceneql-tmp-{}-{}", std::process::id(), name));
    let mut temp_str = temp.to_string_lossy().to_string();
    if is_dir {
        temp_str.push('/');
    }
    Some((
        temp_str,
        PendingOutput {
            target: path.to_path_buf(),
            temp,
        },
    ))
}

impl PendingOutput {
    /// Move the finished output into place (replacing an older one).
    pub fn commit(&self) -> std::io::Result<()> {
        if !self.temp.exists() {
            // Nothing was written (no rows and no file): nothing to move.
            return Ok(());
        }
        if self.target.is_dir() {
            std::fs::remove_dir_all(&self.target)?;
        } else if self.target.exists() {
            std::fs::remove_file(&self.target)?;
        }
        std::fs::rename(&self.temp, &self.target)
    }

    /// Remove whatever a failed statement wrote.
    pub fn abort(&self) {
        if self.temp.is_dir() {
            let _ = std::fs::remove_dir_all(&self.temp);
        } else {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        // Committed outputs no longer exist under the temporary name.
        self.abort();
    }
}

/// Add the grid metadata option to a COPY plan reading one scene grid.
pub fn with_grid_metadata(plan: LogicalPlan) -> Result<LogicalPlan> {
    let LogicalPlan::Copy(mut copy) = plan else {
        return Ok(plan);
    };
    let grids = scene_grids(&copy.input);
    let is_parquet = copy.file_type.get_ext().eq_ignore_ascii_case("parquet");
    if let [grid] = grids.as_slice()
        && is_parquet
    {
        copy.options.insert(
            format!("format.metadata::{GRID_METADATA_KEY}"),
            grid.metadata_json(),
        );
    }
    Ok(LogicalPlan::Copy(copy))
}
