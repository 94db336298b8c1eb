//! Reading tiled GeoTIFFs (COGs) in object stores without GDAL: a file's
//! header comes with one ranged GET ([`header`]) and is kept for the process
//! by object and version (ETag, else size), so a warm query makes no header
//! request; the tiles a block needs come with range requests
//! ([`fetch_tiles`]) that are merged where they are (nearly) adjacent, run
//! concurrently under caps on requests in flight (for the process and per
//! host) and on bytes held fetched but not yet decoded (backpressure: a
//! reader waits for room rather than buffering without bound), and are
//! pinned to the object's ETag, so an object replaced during a query fails
//! the query instead of mixing versions. Transient failures (5xx, 429 /
//! SlowDown, dropped connections, short bodies) are retried with backoff
//! and jitter; 403 and 404 fail at once, naming the object (never the
//! credentials). Decoding is the reader's ([`crate::tiff`]), on the
//! partition's thread.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cog::{self, HeaderError, TiffHeader};
use crate::error::{Result, SceneError};
use crate::store::{ObjectUrl, RETRY_TIMEOUT, first_line};

/// The bytes a header read asks for first: COG headers of Landsat- and
/// Sentinel-2-sized files fit.
pub const HEADER_BYTES: u64 = 64 * 1024;

/// Ranges closer than this are fetched with one request (the bytes
/// between are fetched and dropped).
const MERGE_GAP: u64 = 8 * 1024;
/// A merged request is kept under this size.
const MAX_REQUEST: u64 = 16 * 1024 * 1024;
/// Requests in flight for the whole process, and per host.
const IN_FLIGHT: usize = 128;
pub const IN_FLIGHT_PER_HOST: usize = 64;
/// Bytes fetched and not yet decoded, for the whole process.
const BUFFERED_BYTES: usize = 512 * 1024 * 1024;
/// Concurrent requests of one [`fetch_tiles`] call.
const PER_CALL: usize = 16;

/// The runtime object-store requests run on: its own threads, so requests
/// progress whatever the caller's runtime does (a scan's workers decode
/// while they wait), and connections are made and reused on one runtime.
static IO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sceneql-io")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the object-store runtime: {e}"))
});

/// Run `f` on the object-store runtime and wait for it without blocking.
pub async fn on_io<F>(f: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    IO.spawn(f).await.map_err(|e| {
        SceneError::Io(
            "object-store request task failed".into(),
            std::io::Error::other(e.to_string()),
        )
    })
}

/// Run `f` on the object-store runtime and block this thread until it
/// ends (for the scan's synchronous reads; never blocks the runtime the
/// requests need).
pub fn block_on_io<F>(f: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    IO.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|e| {
        SceneError::Io(
            "object-store request task failed".into(),
            std::io::Error::other(e.to_string()),
        )
    })
}

/// One object as a table saw it: its URL, size and ETag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion {
    pub url: String,
    pub size: u64,
    pub etag: Option<String>,
}

impl ObjectVersion {
    fn key(&self) -> (String, String) {
        let version = match &self.etag {
            Some(e) => format!("etag:{e}"),
            None => format!("size:{}", self.size),
        };
        (self.url.clone(), version)
    }
}

/// Request counters of one scan (or table creation).
#[derive(Debug, Default)]
pub struct FetchStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
    pub header_hits: AtomicU64,
    pub header_requests: AtomicU64,
}

impl FetchStats {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Headers read, with the ETag the object had then.
type HeaderEntry = (Arc<TiffHeader>, Option<String>);

static HEADERS: LazyLock<Mutex<HashMap<(String, String), HeaderEntry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A header already read for this version of the object.
pub fn cached_header(object: &ObjectVersion) -> Option<Arc<TiffHeader>> {
    HEADERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&object.key())
        .map(|(h, _)| h.clone())
}

/// `object` pinned to the ETag its header was read at, when it was given
/// without one (a STAC asset: its href, not a listing).
fn pinned(object: &ObjectVersion) -> ObjectVersion {
    let mut o = object.clone();
    if o.etag.is_none() {
        o.etag = HEADERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&object.key())
            .and_then(|(_, e)| e.clone());
    }
    o
}

/// The header of `object`: from the cache, else with one ranged GET of its
/// first [`HEADER_BYTES`] (a second only for a header that goes on past
/// them). `Ok(None)` when the object is not a TIFF the parse accepts.
pub async fn header(
    store: &dyn ObjectStore,
    object: &ObjectVersion,
    stats: &FetchStats,
) -> Result<Option<Arc<TiffHeader>>> {
    if let Some(h) = cached_header(object) {
        stats.add(&stats.header_hits, 1);
        return Ok(Some(h));
    }
    let url = ObjectUrl::parse(&object.url)?;
    // Size 0: not known (a STAC href); the first answer gives it.
    let mut size = if object.size == 0 {
        u64::MAX
    } else {
        object.size
    };
    let mut etag = object.etag.clone();
    let mut want = HEADER_BYTES.min(size);
    let mut prefix = Bytes::new();
    for _ in 0..2 {
        stats.add(&stats.header_requests, 1);
        let pinned = ObjectVersion {
            etag: etag.clone(),
            ..object.clone()
        };
        let got = get_range(store, &url, &pinned, prefix.len() as u64..want, stats).await?;
        size = got.size;
        etag = etag.or(got.etag);
        prefix = if prefix.is_empty() {
            got.bytes
        } else {
            let mut all = prefix.to_vec();
            all.extend_from_slice(&got.bytes);
            Bytes::from(all)
        };
        match cog::parse(&prefix) {
            Ok(h) => {
                let h = Arc::new(h);
                HEADERS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(object.key(), (h.clone(), etag));
                return Ok(Some(h));
            }
            Err(HeaderError::NeedBytes(n)) if n <= size && n > want => want = n,
            Err(HeaderError::NeedBytes(_)) => {
                return Err(SceneError::Read {
                    path: object.url.clone(),
                    what: "the TIFF header".into(),
                    message: "the header points past the end of the file".into(),
                });
            }
            Err(HeaderError::NotTiff) | Err(HeaderError::Malformed(_)) => return Ok(None),
        }
    }
    Ok(None)
}

/// Bytes fetched for a read, and their share of the process's buffer
/// budget (given back when dropped).
pub struct Fetched {
    pub parts: Vec<Bytes>,
    _budget: Option<OwnedSemaphorePermit>,
}

static BUDGET: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(BUFFERED_BYTES / 1024)));
static IN_FLIGHT_ALL: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(IN_FLIGHT)));
static IN_FLIGHT_HOSTS: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn host_slots(root: &str) -> Arc<Semaphore> {
    IN_FLIGHT_HOSTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(root.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(IN_FLIGHT_PER_HOST)))
        .clone()
}

/// Compressed tiles fetched from object stores for one read, by object
/// URL and tile index.
/// A tile missing from them (one another block's read was expected to
/// decode) is fetched when asked for ([`TileBytes::fetch_now`]).
#[derive(Default)]
pub struct TileBytes {
    tiles: HashMap<(String, usize), Bytes>,
    /// The fetches' shares of the buffer budget, held with the bytes.
    held: Vec<Fetched>,
    objects: HashMap<String, (Arc<dyn ObjectStore>, ObjectVersion)>,
    /// The scan's recently fetched tiles, for [`TileBytes::fetch_now`].
    recent: Option<Arc<RecentTiles>>,
}

/// The compressed tiles a scan fetched last, up to [`RECENT_BYTES`], by
/// object URL and tile index, and those being fetched: a tile that two
/// blocks decode (a tile their edge cuts) is fetched once, also when both
/// ask for it at the same time ([`RecentTiles::claim`]).
#[derive(Debug, Default)]
pub struct RecentTiles {
    inner: Mutex<Recent>,
    /// Woken when a fetch being waited for ends.
    fetched: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Recent {
    tiles: HashMap<(String, usize), Bytes>,
    order: std::collections::VecDeque<(String, usize)>,
    bytes: usize,
    /// Tiles a read has claimed and is fetching.
    fetching: std::collections::HashSet<(String, usize)>,
}

/// What a read should do about a tile ([`RecentTiles::claim`]).
pub enum Claim {
    /// Here it is.
    Have(Bytes),
    /// Fetch it: this read claimed it (and [`RecentTiles::put`]s or
    /// [`RecentTiles::release`]s it).
    Fetch,
    /// Another read is fetching it: [`RecentTiles::wait`] for it.
    Wait,
}

/// The most [`RecentTiles`] holds.
pub const RECENT_BYTES: usize = 64 << 20;

impl RecentTiles {
    /// The tile if it is here; else claim it for this read to fetch, unless
    /// another read is fetching it.
    pub fn claim(&self, url: &str, index: usize) -> Claim {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (url.to_string(), index);
        if let Some(b) = inner.tiles.get(&key) {
            return Claim::Have(b.clone());
        }
        if inner.fetching.insert(key) {
            Claim::Fetch
        } else {
            Claim::Wait
        }
    }

    /// Wait for a tile another read claimed: its bytes, or None when that
    /// read gave it up (failed) or it was already evicted.
    pub async fn wait(&self, url: &str, index: usize) -> Option<Bytes> {
        let key = (url.to_string(), index);
        loop {
            let notified = self.fetched.notified();
            {
                let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(b) = inner.tiles.get(&key) {
                    return Some(b.clone());
                }
                if !inner.fetching.contains(&key) {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Give up claims on tiles this read did not fetch after all.
    pub fn release(&self, url: &str, indexes: &[usize]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for &i in indexes {
            inner.fetching.remove(&(url.to_string(), i));
        }
        drop(inner);
        self.fetched.notify_waiters();
    }

    pub fn get(&self, url: &str, index: usize) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tiles.get(&(url.to_string(), index)).cloned()
    }

    pub fn put(&self, url: &str, index: usize, bytes: Bytes) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (url.to_string(), index);
        let was_fetching = inner.fetching.remove(&key);
        if inner.tiles.contains_key(&key) || bytes.len() > RECENT_BYTES {
            drop(inner);
            if was_fetching {
                self.fetched.notify_waiters();
            }
            return;
        }
        inner.bytes += bytes.len();
        inner.tiles.insert(key.clone(), bytes);
        inner.order.push_back(key);
        while inner.bytes > RECENT_BYTES {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.tiles.remove(&old) {
                inner.bytes -= b.len();
            }
        }
        drop(inner);
        if was_fetching {
            self.fetched.notify_waiters();
        }
    }
}

impl TileBytes {
    pub fn insert(&mut self, url: &str, index: usize, bytes: Bytes) {
        self.tiles.insert((url.to_string(), index), bytes);
    }

    /// Keep a fetch's budget as long as these bytes.
    pub fn hold(&mut self, fetched: Fetched) {
        self.held.push(fetched);
    }

    /// Let [`TileBytes::fetch_now`] fetch more of `object` from `store`.
    pub fn add_object(&mut self, store: Arc<dyn ObjectStore>, object: ObjectVersion) {
        self.objects.insert(object.url.clone(), (store, object));
    }

    /// Fetch the bytes `range` of the object at `url` now, waiting for them;
    /// None if the object is not one of these or the request fails (the
    /// reader then leaves the band to GDAL, which reports the failure).
    pub fn fetch_now(&self, url: &str, index: usize, range: Range<u64>) -> Option<Bytes> {
        if let Some(b) = self.recent.as_ref().and_then(|r| r.get(url, index)) {
            return Some(b);
        }
        let (store, object) = self.objects.get(url)?.clone();
        let got = block_on_io(async move {
            let stats = FetchStats::default();
            fetch_tiles(store.as_ref(), &object, &[range], &stats).await
        });
        let bytes = got.ok()?.ok()?.parts.into_iter().next()?;
        if let Some(r) = &self.recent {
            r.put(url, index, bytes.clone());
        }
        Some(bytes)
    }

    /// Tiles fetched for these are also the scan's [`RecentTiles`].
    pub fn with_recent(&mut self, recent: Option<Arc<RecentTiles>>) {
        self.recent = recent;
    }

    pub fn get(&self, url: &str, index: usize) -> Option<&Bytes> {
        self.tiles.get(&(url.to_string(), index))
    }

    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

/// Fetch byte ranges of `object` (in any order), returning each range's
/// bytes in the order asked. Ranges closer than a few KiB share a request.
pub async fn fetch_tiles(
    store: &dyn ObjectStore,
    object: &ObjectVersion,
    ranges: &[Range<u64>],
    stats: &FetchStats,
) -> Result<Fetched> {
    let url = ObjectUrl::parse(&object.url)?;
    let object = &pinned(object);
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let kib = (total.div_ceil(1024) as usize).clamp(1, BUFFERED_BYTES / 1024) as u32;
    let budget = BUDGET.clone().acquire_many_owned(kib).await.ok();
    let merged = merge(ranges);
    let fetched: Vec<(Range<u64>, Bytes)> = futures::stream::iter(merged)
        .map(|r| {
            let url = &url;
            async move {
                let got = get_range(store, url, object, r.clone(), stats).await?;
                if (got.bytes.len() as u64) < r.end - r.start {
                    return Err(SceneError::Read {
                        path: object.url.clone(),
                        what: format!("bytes {}..{}", r.start, r.end),
                        message: format!("the object ends at byte {}", got.size),
                    });
                }
                Ok::<_, SceneError>((r, got.bytes))
            }
        })
        .buffer_unordered(PER_CALL)
        .try_collect()
        .await?;
    let parts = ranges
        .iter()
        .map(|r| {
            let (m, bytes) = fetched
                .iter()
                .find(|(m, _)| m.start <= r.start && r.end <= m.end)
                .ok_or_else(|| SceneError::Read {
                    path: object.url.clone(),
                    what: format!("bytes {}..{}", r.start, r.end),
                    message: "internal: no request covered the range".into(),
                })?;
            let s = (r.start - m.start) as usize;
            Ok(bytes.slice(s..s + (r.end - r.start) as usize))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Fetched {
        parts,
        _budget: budget,
    })
}

/// Sorted ranges with those less than [`MERGE_GAP`] apart merged (up to
/// [`MAX_REQUEST`] a request).
fn merge(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some(last)
                if r.start <= last.end + MERGE_GAP
                    && r.end.max(last.end) - last.start <= MAX_REQUEST =>
            {
                last.end = last.end.max(r.end)
            }
            _ => out.push(r),
        }
    }
    out
}

/// What a ranged GET gave: the bytes (fewer than asked for when the object
/// ends first), the object's size and ETag.
struct Got {
    bytes: Bytes,
    size: u64,
    etag: Option<String>,
}

/// One ranged GET pinned to the object's ETag, retried on transient
/// failures for up to [`RETRY_TIMEOUT`].
async fn get_range(
    store: &dyn ObjectStore,
    url: &ObjectUrl,
    object: &ObjectVersion,
    range: Range<u64>,
    stats: &FetchStats,
) -> Result<Got> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        let host = host_slots(&url.root);
        let _slots = (
            IN_FLIGHT_ALL.clone().acquire_owned().await.ok(),
            host.acquire_owned().await.ok(),
        );
        stats.add(&stats.requests, 1);
        let result = async {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                if_match: object.etag.clone(),
                ..Default::default()
            };
            let got = store.get_opts(&url.path, options).await?;
            let (size, etag) = (got.meta.size, got.meta.e_tag.clone());
            Ok::<_, object_store::Error>((got.bytes().await?, size, etag))
        }
        .await;
        let error = match result {
            Ok((bytes, size, etag))
                if bytes.len() as u64 == range.end.min(size).saturating_sub(range.start) =>
            {
                stats.add(&stats.bytes, bytes.len() as u64);
                return Ok(Got { bytes, size, etag });
            }
            Ok((bytes, _, _)) => Failure::Transient(format!(
                "short body: {} of {} bytes",
                bytes.len(),
                range.end - range.start
            )),
            Err(e) => classify(e),
        };
        match error {
            Failure::Transient(message) if start.elapsed() < RETRY_TIMEOUT => {
                attempt += 1;
                stats.add(&stats.retries, 1);
                tracing::debug!(object = %object.url, attempt, %message, "retrying a range read");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Failure::Transient(message) => {
                return Err(SceneError::Object {
                    object: object.url.clone(),
                    problem: format!(
                        "could not be read (bytes {}..{}, retried for {:.1} s)",
                        range.start,
                        range.end,
                        start.elapsed().as_secs_f64()
                    ),
                    hint: "check the store and the network, then run the query again".into(),
                    detail: first_line(&message),
                });
            }
            Failure::Fatal(e) => return Err(object_error(&object.url, e)),
        }
    }
}

enum Failure {
    Transient(String),
    Fatal(object_store::Error),
}

fn classify(e: object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => Failure::Fatal(e),
        // A request the HTTP client could not even build (a bad URL, plain
        // HTTP not allowed): another try gives the same.
        other if other.to_string().contains("builder error") => Failure::Fatal(other),
        // What the store's own retries gave up on, a dropped connection or
        // a body cut short: worth another try while time is left.
        other => Failure::Transient(other.to_string()),
    }
}

/// Exponential backoff from 50 ms (to 1 s) with full jitter.
fn backoff(attempt: u32) -> Duration {
    let cap = (50u64 << attempt.min(5)).min(1000);
    Duration::from_millis(rand::random_range(cap / 2..=cap))
}

/// The error a user reads for a failed request on `object` (an object, a
/// prefix or a bucket).
pub fn object_error(object: &str, e: object_store::Error) -> SceneError {
    use object_store::Error as E;
    let text = e.to_string();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let (problem, hint) = match &e {
        E::Precondition { .. } => (
            "was replaced since the table was created (its ETag changed)",
            "recreate the table to read the new version",
        ),
        E::NotFound { .. } => (
            "does not exist (404)",
            "check the location, or recreate the table if the archive changed",
        ),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
            "refused access (403)",
            "check the credentials (AWS_* / GOOGLE_* / AZURE_* or the table's OPTIONS) and the bucket's policy; public buckets need 'aws.skip_signature' 'true'",
        ),
        _ if has(&["NoSuchBucket"]) => (
            "is in a bucket that does not exist (404)",
            "check the bucket's name and the endpoint (AWS_ENDPOINT_URL or 'aws.endpoint')",
        ),
        _ if has(&["404 Not Found"]) => ("does not exist (404)", "check the location"),
        _ if has(&["403 Forbidden", "AccessDenied", "401 Unauthorized"]) => (
            "refused access (403)",
            "check the credentials (AWS_* / GOOGLE_* / AZURE_* or the table's OPTIONS) and the bucket's policy; public buckets need 'aws.skip_signature' 'true'",
        ),
        _ if has(&[
            "error sending request",
            "Connection refused",
            "dns error",
            "timed out",
        ]) =>
        {
            (
                "could not be reached",
                "check the endpoint (AWS_ENDPOINT_URL or 'aws.endpoint') and the network",
            )
        }
        _ => ("could not be read", "check the store and the network"),
    };
    SceneError::Object {
        object: object.to_string(),
        problem: problem.into(),
        hint: hint.into(),
        detail: first_line(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ranges_share_a_request() {
        let m = merge(&[100..200, 0..50, 50..60, 20_000..30_000, 205..300]);
        assert_eq!(m, vec![0..300, 20_000..30_000]);
        assert!(merge(&[0..MAX_REQUEST, MAX_REQUEST..MAX_REQUEST + 10]).len() == 2);
    }

    #[test]
    fn store_errors_name_the_object_not_the_server_body() {
        let e = object_error(
            "s3://b/k.tif",
            object_store::Error::NotFound {
                path: "k.tif".into(),
                source: "Server returned 404: <?xml version=\"1.0\"?><Error>...".into(),
            },
        )
        .to_string();
        assert!(e.contains("s3://b/k.tif") && e.contains("404"), "{e}");
        assert!(!e.contains("<?xml"), "{e}");
        let e = object_error(
            "az://c/k.tif",
            object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: "Error performing GET https://a.blob.core.windows.net/c/k.tif?sv=2022&sig=SECRETSIG in 1s - 403 Forbidden".into(),
            },
        )
        .to_string();
        assert!(!e.contains("SECRETSIG") && e.contains("403"), "{e}");
    }
}
