//! Object-store writes held until the statement that makes them has
//! succeeded: an object store wrapper whose uploads are completed (and
//! whose single-request puts are sent) only by [`StagedWrites::commit`],
//! and aborted by [`StagedWrites::abort`]. A `COPY ... TO 's3://...'` that
//! fails part way (DataFusion's writer completes its open uploads before it
//! reports the error) then leaves no object under the target's name, and a
//! partitioned one no part: an object store has no rename to move a
//! finished output into place, but a multipart upload is invisible until
//! completed.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// A write waiting for the statement's end.
enum Pending {
    Put {
        location: Path,
        payload: PutPayload,
        opts: PutOptions,
    },
    Upload(Box<dyn MultipartUpload>),
}

type Queue = Arc<Mutex<Vec<Pending>>>;

/// `inner`, with its writes held until [`StagedWrites::commit`].
pub struct StagedWrites {
    inner: Arc<dyn ObjectStore>,
    pending: Queue,
}

impl fmt::Debug for StagedWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StagedWrites({})", self.inner)
    }
}

impl fmt::Display for StagedWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StagedWrites({})", self.inner)
    }
}

impl StagedWrites {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        StagedWrites {
            inner,
            pending: Arc::default(),
        }
    }

    fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Make every held write visible: complete the uploads, send the puts.
    pub async fn commit(&self) -> Result<()> {
        for p in self.take() {
            match p {
                Pending::Put {
                    location,
                    payload,
                    opts,
                } => {
                    self.inner.put_opts(&location, payload, opts).await?;
                }
                Pending::Upload(mut upload) => {
                    upload.complete().await?;
                }
            }
        }
        Ok(())
    }

    /// Drop every held write: abort the uploads (their parts are deleted),
    /// forget the puts.
    pub async fn abort(&self) {
        for p in self.take() {
            if let Pending::Upload(mut upload) = p
                && let Err(e) = upload.abort().await
            {
                tracing::warn!(error = %e, "aborting an upload failed; a bucket lifecycle rule removes abandoned multipart uploads (README)");
            }
        }
    }
}

/// An upload whose completion is held in the queue.
struct HeldUpload {
    upload: Option<Box<dyn MultipartUpload>>,
    pending: Queue,
}

impl fmt::Debug for HeldUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeldUpload")
    }
}

#[async_trait]
impl MultipartUpload for HeldUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match &mut self.upload {
            Some(u) => u.put_part(data),
            None => Box::pin(async {
                Err(object_store::Error::Generic {
                    store: "StagedWrites",
                    source: "a part put after the upload was completed".into(),
                })
            }),
        }
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Some(u) = self.upload.take() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Pending::Upload(u));
        }
        Ok(PutResult {
            e_tag: None,
            version: None,
        })
    }

    async fn abort(&mut self) -> Result<()> {
        match self.upload.take() {
            Some(mut u) => u.abort().await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectStore for StagedWrites {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pending::Put {
                location: location.clone(),
                payload,
                opts,
            });
        Ok(PutResult {
            e_tag: None,
            version: None,
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(HeldUpload {
            upload: Some(upload),
            pending: self.pending.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
