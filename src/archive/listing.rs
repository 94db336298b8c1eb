//! Listing an archive location through `object_store`: a folder (searched
//! recursively), a single file or a glob. Local paths are one store among
//! others, so `s3://`, `gs://` and `https://` locations slot in by choosing
//! another store and GDAL prefix (`/vsis3/`, ...) here, with nothing above
//! this module changing.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use globset::{GlobBuilder, GlobMatcher};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, SceneError};

/// One listed file: its path for GDAL and its path relative to the location.
#[derive(Debug, Clone)]
pub struct ListedFile {
    pub gdal_path: String,
    pub file_name: String,
    /// Name of the folder holding the file ("" at the root).
    pub parent_name: String,
}

/// A parsed archive location.
#[derive(Debug)]
pub struct Location {
    /// The location as the user wrote it (made absolute for local paths).
    pub display: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    glob: Option<GlobMatcher>,
}

const GLOB_CHARS: &[char] = &['*', '?', '[', '{'];

/// Make a local path absolute against the current directory; URLs are kept.
pub fn absolutize(location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let trailing = location.ends_with('/');
    let p = std::path::absolute(location).unwrap_or_else(|_| PathBuf::from(location));
    let mut s = p.to_string_lossy().to_string();
    if trailing && !s.ends_with('/') {
        s.push('/');
    }
    s
}

impl Location {
    pub fn parse(location: &str) -> Result<Self> {
        if let Some((scheme, _)) = location.split_once("://")
            && scheme != "file"
        {
            return Err(SceneError::BadOption {
                key: "LOCATION".into(),
                value: location.into(),
                reason: format!(
                    "'{scheme}://' archives are not supported yet; use a local folder, file or glob"
                ),
            });
        }
        let location = location.strip_prefix("file://").unwrap_or(location);
        let abs = absolutize(location);
        // Split at the first path component holding a glob character.
        let (base, glob) = match abs.find(GLOB_CHARS) {
            None => (abs.clone(), None),
            Some(i) => {
                let base = abs[..i]
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or_default();
                let g = GlobBuilder::new(&abs)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| SceneError::BadOption {
                        key: "LOCATION".into(),
                        value: abs.clone(),
                        reason: e.to_string(),
                    })?;
                (
                    if base.is_empty() {
                        "/".to_string()
                    } else {
                        base
                    },
                    Some(g.compile_matcher()),
                )
            }
        };
        let prefix =
            Path::from_filesystem_path(FsPath::new(&base)).map_err(|e| SceneError::Listing {
                location: abs.clone(),
                source: object_store::Error::InvalidPath { source: e },
            })?;
        Ok(Location {
            display: abs,
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            glob,
        })
    }

    fn gdal_path(&self, p: &Path) -> String {
        format!("/{p}")
    }

    fn matches(&self, p: &Path) -> bool {
        let Some(glob) = &self.glob else { return true };
        // A file matches when the glob matches it or one of its folders.
        let full = self.gdal_path(p);
        let mut candidate = full.as_str();
        loop {
            if glob.is_match(candidate) {
                return true;
            }
            match candidate.rsplit_once('/') {
                Some((head, _)) if !head.is_empty() => candidate = head,
                _ => return false,
            }
        }
    }

    /// Every file below the location (recursively), sorted by path.
    pub async fn list(&self) -> Result<Vec<ListedFile>> {
        let err = |source| SceneError::Listing {
            location: self.display.clone(),
            source,
        };
        // A location naming one file lists that file.
        let metas: Vec<_> = match self.store.head(&self.prefix).await {
            Ok(meta) if self.glob.is_none() => vec![meta],
            _ => self
                .store
                .list(Some(&self.prefix))
                .try_collect()
                .await
                .map_err(err)?,
        };
        if metas.is_empty()
            && self.glob.is_none()
            && !FsPath::new(&self.gdal_path(&self.prefix)).is_dir()
        {
            return Err(err(object_store::Error::NotFound {
                path: self.display.clone(),
                source: "no such file or folder".into(),
            }));
        }
        let mut files: Vec<ListedFile> = metas
            .into_iter()
            .filter(|m| self.matches(&m.location))
            .map(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                let file_name = parts
                    .last()
                    .map(|p| p.as_ref().to_string())
                    .unwrap_or_default();
                let parent_name = if parts.len() >= 2 {
                    parts[parts.len() - 2].as_ref().to_string()
                } else {
                    String::new()
                };
                ListedFile {
                    gdal_path: self.gdal_path(&m.location),
                    file_name,
                    parent_name,
                }
            })
            .collect();
        files.sort_by(|a, b| a.gdal_path.cmp(&b.gdal_path));
        Ok(files)
    }
}
