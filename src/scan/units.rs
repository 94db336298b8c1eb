//! Reading a scan's units (a block's bands for some or all of its scenes,
//! with the scan filter evaluated on the reading thread).
//!
//! A [`UnitRead`] reads one unit; there are two: [`FileUnits`] for files
//! read from disk or through GDAL (synchronously, on a worker or a
//! blocking thread), and [`StoreUnits`] for objects in a store, whose tiles
//! are fetched asynchronously and decoded here. The read-ahead wraps
//! either ([`read_ahead`]): a partition's units read in order, several in
//! flight, some taken over from a helper ([`super::steal`]). Below them,
//! each file band is read by a band reader ([`crate::tiff::BandRead`]),
//! wrapped in the scan's tile carry where a block cuts the file's tiles
//! ([`super::carry::Carried`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::metrics::Count;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use super::carry::TileCarry;
use super::filter::ScanFilter;
use super::read;
use super::steal::{self, ReadBoard, ReadOutput, Turn, Unit};
use crate::grid::Window;
use crate::model::SceneArchive;
use crate::progress;
use crate::remote::RecentTiles;

/// What the partitions of a scan share while it runs.
pub(super) struct Execution {
    pub carry: TileCarry,
    pub board: Arc<ReadBoard>,
    /// Object-store tiles fetched lately, so none is fetched twice.
    pub recent: Arc<RecentTiles>,
}

/// Reads units of a scan.
pub(super) trait UnitRead: Send + Sync + 'static {
    /// Read `unit`; the future holds a read slot while it decodes.
    fn read(self: Arc<Self>, unit: Unit) -> BoxFuture<'static, Result<ReadOutput>>;

    /// How many reads a partition keeps in flight.
    fn depth(&self) -> usize;
}

/// What a scan's unit readers read with.
pub(super) struct Units {
    pub archive: Arc<SceneArchive>,
    pub bands: Vec<String>,
    pub filter: Option<Arc<ScanFilter>>,
    pub execution: Arc<Execution>,
    /// Read slots of the plan ([`super::read_slots`]).
    pub slots: Arc<tokio::sync::Semaphore>,
}

impl Units {
    /// A read slot, held while decoding.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DataFusionError::Internal(format!("scan read slots closed: {e}")))
    }

    /// `unit` is read: the carry is told when its block's last unit is.
    fn done(&self, unit: &Unit) {
        if self.execution.board.read_done(unit.block) {
            self.execution.carry.finish(unit.block);
        }
        progress::add_done(1);
    }
}

/// Reads units of files read from disk or through GDAL, for their own
/// partition or for another ([`steal`]).
pub(super) struct FileUnits {
    pub units: Units,
    /// Read on the runtime's workers, not on blocking threads
    /// (`sceneql.read_on_workers`).
    pub on_workers: bool,
}

impl FileUnits {
    /// Read `unit` on this thread (a helper's reads, on its own thread,
    /// take no slot: its partition's is free).
    pub fn read_now(&self, unit: Unit) -> Result<ReadOutput> {
        let u = &self.units;
        let w = unit.window;
        let out = {
            let _span = tracing::info_span!("scan_block", row = w.row, rows = w.rows).entered();
            read_unit(
                &u.archive,
                &unit.scenes,
                &u.bands,
                w,
                u.filter.as_deref(),
                Some((&u.execution.carry, unit.block)),
            )?
        };
        u.done(&unit);
        Ok(out)
    }
}

impl UnitRead for FileUnits {
    /// Read `unit` when a read slot is free: in this task, or on a
    /// blocking thread.
    fn read(self: Arc<Self>, unit: Unit) -> BoxFuture<'static, Result<ReadOutput>> {
        async move {
            // Held by the read itself, so it frees its slot when it ends,
            // whether or not its rows are still wanted.
            let slot = self.units.slot().await?;
            let on_workers = self.on_workers;
            let read = move || {
                let _slot = slot;
                self.read_now(unit)
            };
            if on_workers {
                read()
            } else {
                tokio::task::spawn_blocking(read).await.map_err(|e| {
                    DataFusionError::Execution(format!("block read task failed: {e}"))
                })?
            }
        }
        .boxed()
    }

    fn depth(&self) -> usize {
        READ_AHEAD
    }
}

/// Reads units of an archive in an object store: the tiles of the bands
/// read first (the filter's) are fetched while the task waits without
/// holding its thread, decoded and filtered, then the other bands' tiles
/// of the scenes kept are fetched the same way and decoded. Other units
/// of the partition (their rows still leave in order) and other
/// partitions run while one waits.
pub(super) struct StoreUnits {
    pub units: Units,
}

impl StoreUnits {
    async fn fetch_and_read(&self, unit: Unit) -> Result<ReadOutput> {
        let u = &self.units;
        let (block, w) = (unit.block, unit.window);
        // The carry never waits here ([`TileCarry::without_waits`]): a tile
        // two blocks cut is fetched once (the scan's recent tiles), and
        // decoded once unless both decode it at the same time.
        let carry = Some((&u.execution.carry, block));
        let filter = u.filter.as_deref();
        let first = first_bands(&u.archive, &unit.scenes, &u.bands, filter);
        let recent = u.execution.recent.clone();
        let fetch = read::fetch_remote(&u.archive, &unit.scenes, &first, w, recent.clone(), carry)?;
        let (tiles, fetch_stats) = crate::remote::on_io(fetch).await??;
        // A read slot while decoding only: the fetches take none, so units
        // fetch ahead of the decodes ([`REMOTE_READ_AHEAD`]), and a unit
        // waiting for its other bands' tiles lets another decode.
        let slot = u.slot().await?;
        let mut first = {
            let _span = tracing::info_span!("scan_block", row = w.row, rows = w.rows).entered();
            read_first(
                &u.archive,
                &unit.scenes,
                &u.bands,
                w,
                filter,
                carry,
                Some(&tiles),
            )?
        };
        first.stats.add(&fetch_stats);
        drop((tiles, slot));
        let rest_tiles = if first.rest.is_empty() {
            None
        } else {
            let fetch =
                read::fetch_remote(&u.archive, &first.kept(), &first.rest, w, recent, carry)?;
            let (tiles, fetch_stats) = crate::remote::on_io(fetch).await??;
            first.stats.add(&fetch_stats);
            Some(tiles)
        };
        let _slot = u.slot().await?;
        let out = {
            let _span = tracing::info_span!("scan_block", row = w.row, rows = w.rows).entered();
            read_rest(&u.archive, first, w, carry, rest_tiles.as_ref())?
        };
        u.done(&unit);
        Ok(out)
    }
}

impl UnitRead for StoreUnits {
    fn read(self: Arc<Self>, unit: Unit) -> BoxFuture<'static, Result<ReadOutput>> {
        async move { self.fetch_and_read(unit).await }.boxed()
    }

    fn depth(&self) -> usize {
        REMOTE_READ_AHEAD
    }
}

/// Run once, when a partition's last unit is read.
pub(super) type AfterLast = Option<Box<dyn FnOnce() + Send>>;

/// A partition's reads, for [`read_ahead`].
pub(super) struct PartitionReads {
    pub partition: usize,
    pub units: Vec<Unit>,
    pub board: Arc<ReadBoard>,
    /// Counts the units taken from a helper.
    pub taken_over: Count,
    /// Run once the partition's last unit is read (a helper for the
    /// others, [`steal::help`]).
    pub after_last: AfterLast,
}

/// Read-ahead around a unit reader: the reads of a partition's units, in
/// order, [`UnitRead::depth`] of them in flight. A unit a helper has read
/// (or is reading) is taken from it instead.
pub(super) fn read_ahead(
    reader: Arc<dyn UnitRead>,
    reads: PartitionReads,
) -> impl Stream<Item = Result<(Unit, ReadOutput)>> {
    let depth = reader.depth();
    let PartitionReads {
        partition,
        units,
        board,
        taken_over,
        after_last,
    } = reads;
    let last = units.len().checked_sub(1);
    let after_last = Arc::new(std::sync::Mutex::new(after_last));
    futures::stream::iter(units.into_iter().enumerate())
        .map(move |(k, unit)| {
            let (reader, board, taken_over) = (reader.clone(), board.clone(), taken_over.clone());
            let after_last = after_last.clone();
            async move {
                let out = match board.claim(partition, k) {
                    Turn::Read => reader.read(unit.clone()).await?,
                    Turn::Take(delivery) => {
                        taken_over.add(1);
                        steal::take(delivery, &unit).await?
                    }
                };
                if Some(k) == last {
                    let f = after_last.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(f) = f {
                        f();
                    }
                }
                Ok((unit, out))
            }
        })
        // The next reads run while this one's rows are consumed.
        .buffered(depth)
}

/// Read `bands` of `scenes` over `block`, and evaluate the scan filter (if
/// any) on the reading thread; its result per block scene comes back with
/// the data. With a filter that reads fewer bands than that, its bands are
/// read first and the scenes with no pixel passing it in the block read
/// nothing more (a cloudy scene costs its QA band only). (Units of
/// archives in object stores are read by [`StoreUnits`], which fetches
/// their tiles first and calls [`read_first`] and [`read_rest`] itself.)
fn read_unit(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    block: Window,
    filter: Option<&ScanFilter>,
    carry: Option<(&TileCarry, usize)>,
) -> Result<ReadOutput> {
    let first = read_first(archive, scenes, bands, block, filter, carry, None)?;
    read_rest(archive, first, block, carry, None)
}

/// A unit's read up to its scan filter: the bands read first, the filter's
/// result per scene kept (those with a pixel passing it), and the bands
/// still to read for them.
struct FirstRead {
    data: read::BlockData,
    stats: read::ReadStats,
    passed: Option<Vec<BooleanBuffer>>,
    rest: Vec<String>,
}

impl FirstRead {
    /// The scenes the other bands are read for.
    fn kept(&self) -> Vec<usize> {
        self.data.scenes.iter().map(|s| s.scene).collect()
    }
}

/// The first part of [`read_unit`].
fn read_first(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    block: Window,
    filter: Option<&ScanFilter>,
    carry: Option<(&TileCarry, usize)>,
    fetched: Option<&crate::remote::TileBytes>,
) -> Result<FirstRead> {
    let first_bands = first_bands(archive, scenes, bands, filter);
    let (data, stats) = read::read_block(archive, scenes, &first_bands, block, carry, fetched)?;
    let Some(filter) = filter else {
        return Ok(FirstRead {
            data,
            stats,
            passed: None,
            rest: Vec::new(),
        });
    };
    let passed = filter.evaluate(archive, &data)?;
    if first_bands.len() == bands.len() {
        return Ok(FirstRead {
            data,
            stats,
            passed: Some(passed),
            rest: Vec::new(),
        });
    }
    let rest: Vec<String> = bands
        .iter()
        .filter(|b| !first_bands.contains(*b))
        .cloned()
        .collect();
    let (kept, kept_passed): (Vec<read::BlockScene>, Vec<BooleanBuffer>) = data
        .scenes
        .into_iter()
        .zip(passed)
        .filter(|(_, p)| p.count_set_bits() > 0)
        .unzip();
    Ok(FirstRead {
        data: read::BlockData {
            window: data.window,
            scenes: kept,
        },
        stats,
        passed: Some(kept_passed),
        rest,
    })
}

/// The rest of [`read_unit`]: the other bands, for the scenes kept (their
/// object-store tiles from `fetched`).
fn read_rest(
    archive: &SceneArchive,
    first: FirstRead,
    block: Window,
    carry: Option<(&TileCarry, usize)>,
    fetched: Option<&crate::remote::TileBytes>,
) -> Result<ReadOutput> {
    let FirstRead {
        data,
        mut stats,
        passed,
        rest,
    } = first;
    if rest.is_empty() {
        return Ok((data, stats, passed));
    }
    let kept_ids: Vec<usize> = data.scenes.iter().map(|s| s.scene).collect();
    let (more, more_stats) = read::read_block(archive, &kept_ids, &rest, block, carry, fetched)?;
    stats.add(&more_stats);
    let mut more = more
        .scenes
        .into_iter()
        .map(|s| (s.scene, s.bands))
        .collect::<BTreeMap<_, _>>();
    let scenes = data
        .scenes
        .into_iter()
        .map(|mut s| {
            if let Some(bands) = more.remove(&s.scene) {
                s.bands.extend(bands);
            }
            s
        })
        .collect();
    Ok((
        read::BlockData {
            window: data.window,
            scenes,
        },
        stats,
        passed,
    ))
}

/// The bands [`read_unit`] reads first: the scan filter's, where it reads
/// fewer than `bands`; else all of them.
fn first_bands(
    archive: &SceneArchive,
    scenes: &[usize],
    bands: &[String],
    filter: Option<&ScanFilter>,
) -> Vec<String> {
    let Some(filter) = filter else {
        return bands.to_vec();
    };
    let first: BTreeSet<String> = scenes
        .iter()
        .flat_map(|&i| filter.bands_of(archive, i))
        .collect();
    if bands.iter().all(|b| first.contains(b)) {
        return bands.to_vec();
    }
    bands
        .iter()
        .filter(|b| first.contains(*b))
        .cloned()
        .collect()
}

/// Reads a partition has in flight: the one whose rows are being consumed
/// and the next. (On the workers, a read runs inside the poll of the
/// partition's task that first reaches its future, so there reads and
/// the aggregation of their rows alternate in that task.)
pub(super) const READ_AHEAD: usize = 2;

/// Reads a partition has in flight over an object store: their fetches run
/// ahead while other units decode, so the network's latency overlaps the
/// decoding.
pub(super) const REMOTE_READ_AHEAD: usize = 6;
