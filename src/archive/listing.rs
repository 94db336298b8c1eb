//! Listing an archive location through `object_store`: a folder or prefix
//! (searched recursively), a single file or a glob, on the local disk or in
//! an object store ([`crate::store`]). Files are named as sceneql names them
//! everywhere after: the local path, or the object's URL.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use globset::{GlobBuilder, GlobMatcher};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, SceneError};
use crate::store::{self, ObjectUrl, Scheme, StoreConfig};

/// One listed file: its path (local path or URL) and its name.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// The local path or the object's URL.
    pub path: String,
    pub file_name: String,
    /// Name of the folder holding the file ("" at the root).
    pub parent_name: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag, where the store gives one.
    pub etag: Option<String>,
    /// Its last modification, nanoseconds since 1970.
    pub modified_ns: Option<i64>,
}

/// A parsed archive location.
#[derive(Debug)]
pub struct Location {
    /// The location as the user wrote it (made absolute for local paths).
    pub display: String,
    url: ObjectUrl,
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
    pub fn parse(location: &str, config: &StoreConfig) -> Result<Self> {
        let abs = absolutize(location.strip_prefix("file://").unwrap_or(location));
        let url = ObjectUrl::parse(&abs)?;
        if !url.scheme.lists_and_writes() {
            return Err(SceneError::BadOption {
                key: "LOCATION".into(),
                value: location.into(),
                reason: "an http(s):// location cannot be listed; point it at a STAC document, or put the archive in a bucket (s3://, gs://, az://)".into(),
            });
        }
        // Globs match local paths whole (from `/`), objects by key.
        let local = url.scheme == Scheme::File;
        let full = if local {
            abs.clone()
        } else {
            url.path.as_ref().to_string()
        };
        // Split at the first path component holding a glob character.
        let (base, glob) = match full.find(GLOB_CHARS) {
            None => (full.clone(), None),
            Some(i) => {
                let base = full[..i]
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or_default();
                // `archive/2020*/` means the folders: a trailing `/` would
                // match nothing (files and folders are matched without it).
                let g = GlobBuilder::new(full.trim_end_matches('/'))
                    .literal_separator(true)
                    .build()
                    .map_err(|e| SceneError::BadOption {
                        key: "LOCATION".into(),
                        value: abs.clone(),
                        reason: e.to_string(),
                    })?;
                (base, Some(g.compile_matcher()))
            }
        };
        let base = if local {
            let base = if base.is_empty() {
                "/".to_string()
            } else {
                base
            };
            Path::from_filesystem_path(FsPath::new(&base)).map_err(|e| SceneError::Listing {
                location: abs.clone(),
                source: object_store::Error::InvalidPath { source: e },
            })?
        } else {
            Path::from(base.as_str())
        };
        let store = store::store_for(&url, config)?;
        Ok(Location {
            display: url.display.clone(),
            url,
            store,
            prefix: base,
            glob,
        })
    }

    /// The path sceneql names an object by.
    fn named(&self, p: &Path) -> String {
        self.url.with_path(p)
    }

    /// The path of a listed file relative to the location (to its folder
    /// part before any glob), `/`-separated.
    pub fn relative<'f>(&self, file: &'f ListedFile) -> &'f str {
        let base = self.named(&self.prefix);
        file.path
            .strip_prefix(base.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(&file.path)
    }

    /// True when the location is a glob.
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    fn matches(&self, p: &Path) -> bool {
        let Some(glob) = &self.glob else { return true };
        // A file matches when the glob matches it or one of its folders.
        let full = match self.url.scheme {
            Scheme::File => self.named(p),
            _ => p.as_ref().to_string(),
        };
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
        let err = |source| match self.url.scheme {
            Scheme::File => SceneError::Listing {
                location: self.display.clone(),
                source,
            },
            _ => crate::remote::object_error(&self.display, source),
        };
        // A location naming one file lists that file (one ending in `/` is
        // a folder: no request asks whether it is a file).
        let may_be_file = self.glob.is_none() && !self.display.ends_with('/');
        let one = match may_be_file {
            true => self.store.head(&self.prefix).await.ok(),
            false => None,
        };
        let metas: Vec<_> = match one {
            Some(meta) => vec![meta],
            None => self
                .store
                .list(Some(&self.prefix))
                .try_collect()
                .await
                .map_err(err)?,
        };
        let empty_folder =
            self.url.scheme == Scheme::File && FsPath::new(&self.named(&self.prefix)).is_dir();
        if metas.is_empty() && self.glob.is_none() && !empty_folder {
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
                    path: self.named(&m.location),
                    file_name,
                    parent_name,
                    size: m.size,
                    etag: m.e_tag.clone(),
                    modified_ns: m.last_modified.timestamp_nanos_opt(),
                }
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}
