//! STAC documents as scene descriptions.
//!
//! Archives published as STAC (Landsat Collection 2 from the USGS,
//! Sentinel-2 from Earth Search, self-made static catalogs) describe each
//! scene as an item whose assets are the band files, with the metadata that
//! sceneql otherwise reads from file names and GDAL: acquisition time,
//! platform, nodata, scale/offset and the native grid. This module turns a
//! STAC location into [`StacScene`]s, so scenes can be found without listing
//! buckets and without opening every file first.
//!
//! Accepted locations (see [`load`]): an item, an item collection (JSON or
//! NDJSON), a static catalog or collection (followed through its `child` and
//! `item` links), or a STAC API root (searched with POST `/search`, paging
//! through `next` links). Documents are parsed into the `stac` crate's types;
//! per-asset metadata is read in all the spellings found in the wild (STAC
//! 1.0 `eo:bands` / `raster:bands`, STAC 1.1 `bands`, asset-level fields).

mod fetch;
mod scene;
mod search;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet, VecDeque};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use fetch::Fetcher;

/// One STAC item as a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StacScene {
    /// The item id.
    pub id: String,
    /// The item's collection, when it names one.
    pub collection: Option<String>,
    /// `datetime`, else `start_datetime`: nanoseconds since 1970-01-01 00:00 UTC.
    pub time_ns: i64,
    /// Sensor code from `platform` (`LC08`, `LC09`, `S2A`, ...), `unknown` when not recognised.
    pub sensor: String,
    /// The item's WGS 84 bounding box (min lon, min lat, max lon, max lat), when given.
    pub bbox: Option<[f64; 4]>,
    /// Data assets, by asset key.
    pub assets: BTreeMap<String, StacAsset>,
    /// `eo:cloud_cover` (percent), when given.
    pub cloud_cover: Option<f64>,
}

/// One data asset (a band file) of a STAC item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StacAsset {
    /// Absolute href: a local path, or a URL (`https://`, `s3://`, ...).
    pub href: String,
    /// The asset's media type as the item gives it.
    pub media_type: Option<String>,
    /// sceneql's common name: blue green red nir swir1 swir2 qa.
    pub common_name: Option<String>,
    pub nodata: Option<f64>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    /// Sample type as STAC spells it: `uint16`, `int16`, `float32`, ...
    pub data_type: Option<String>,
    /// The asset's native grid, when the projection extension gives all of it.
    pub grid: Option<AssetGrid>,
}

/// A raster grid from the STAC projection extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetGrid {
    pub epsg: u32,
    /// GDAL order: x0, dx, rot, y0, rot, dy.
    pub transform: [f64; 6],
    /// (rows, cols).
    pub shape: (usize, usize),
}

/// What to load from a STAC location.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StacOptions {
    /// Collection ids to keep.
    pub collections: Option<Vec<String>>,
    /// WGS 84 lon/lat box: min lon, min lat, max lon, max lat.
    pub bbox: Option<[f64; 4]>,
    /// An instant or interval: RFC 3339 (`2023-01-01T00:00:00Z/..`) or dates (`2023-01-01/2023-06-30`).
    pub datetime: Option<String>,
    /// STAC API query extension object, passed through to the API.
    pub query: Option<Value>,
    /// CQL2 filter, passed through to the API: an object (cql2-json) or a string (cql2-text).
    pub filter: Option<Value>,
    /// Asset keys to keep (exactly these); by default every data asset.
    pub assets: Option<Vec<String>>,
    /// Use the assets' `alternate.s3` hrefs (requester-pays buckets).
    pub requester_pays: bool,
    /// Stop after this many items.
    pub max_items: Option<usize>,
    /// Items per page of a STAC API search (default 100).
    pub page_size: Option<usize>,
}

pub use crate::error::StacError;

/// Raster file extensions: an http(s) URL ending in one is a file, not STAC.
const RASTER_EXTENSIONS: &[&str] = &[
    ".tif", ".tiff", ".jp2", ".nc", ".nc4", ".vrt", ".img", ".hdf", ".h5", ".hdf5", ".he5",
    ".grib", ".grib2", ".grb", ".grb2", ".zarr", ".png", ".jpg", ".jpeg",
];

/// What a STAC location is searched with, from a table's options.
pub fn options_of(o: &crate::options::SceneOptions) -> StacOptions {
    use serde_json::Value;
    let json = |t: &Option<String>| -> Option<Value> {
        t.as_ref()
            .map(|t| serde_json::from_str(t).unwrap_or(Value::String(t.clone())))
    };
    StacOptions {
        collections: o.collections.clone(),
        bbox: o.bbox,
        datetime: o.datetime.clone(),
        query: json(&o.query),
        filter: json(&o.filter),
        assets: o.assets.clone(),
        requester_pays: o
            .store
            .public
            .get("aws.requester_pays")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        max_items: o.max_items,
        page_size: o.page_size,
    }
}

/// True when `location` looks like a STAC document or API rather than a folder of rasters:
/// ends with .json / .geojson / .ndjson, or is an http(s) URL not ending in a raster extension.
pub fn is_stac_location(location: &str) -> bool {
    let lower = location.trim().to_ascii_lowercase();
    let is_url = lower.contains("://");
    // A URL's query string and fragment are not part of its path.
    let path = if is_url {
        lower.split(['?', '#']).next().unwrap_or_default()
    } else {
        lower.as_str()
    };
    if [".json", ".geojson", ".ndjson"]
        .iter()
        .any(|e| path.ends_with(e))
    {
        return true;
    }
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && !RASTER_EXTENSIONS.iter().any(|e| path.ends_with(e))
}

/// Load scenes from a STAC location (a local path, file:// URL or http(s) URL).
///
/// Items without any data asset are skipped (logged); scenes come back sorted
/// by time then id, each (collection, id) once. An empty result is an error
/// saying what was searched.
pub async fn load(location: &str, opts: &StacOptions) -> Result<Vec<StacScene>, StacError> {
    let url = fetch::location_url(location)?;
    let shown = fetch::display(&url);
    let fetcher = Fetcher::new();
    let raw = collect_items(&fetcher, &url, opts).await?;
    let found = raw.len();
    let mut seen = HashSet::new();
    let mut scenes = Vec::new();
    for r in raw {
        if !seen.insert((r.item.collection.clone(), r.item.id.clone())) {
            tracing::debug!(item = %r.item.id, "duplicate STAC item skipped");
            continue;
        }
        if let Some(s) = scene::to_scene(&r.item, &r.base, &r.doc, opts)? {
            scenes.push(s);
        }
    }
    tracing::info!(location = %shown, items = found, scenes = scenes.len(), "STAC scenes loaded");
    if scenes.is_empty() {
        let hint = if found > 0 {
            format!(
                " ({found} items, none with a data asset); select assets with OPTIONS ('assets' 'red,nir,...')"
            )
        } else if opts.bbox.is_some() || opts.datetime.is_some() || opts.collections.is_some() {
            "; widen or check OPTIONS 'bbox' (lon/lat), 'datetime' and 'collections'".to_string()
        } else {
            "; check that the location is the STAC document you meant".to_string()
        };
        return Err(StacError::NoItems {
            location: shown,
            hint,
        });
    }
    scenes.sort_by(|a, b| (a.time_ns, &a.id).cmp(&(b.time_ns, &b.id)));
    Ok(scenes)
}

/// An item as read, with what its relative hrefs resolve against.
#[derive(Debug)]
pub(crate) struct RawItem {
    pub item: ::stac::Item,
    /// Base URL for the item's relative hrefs.
    pub base: Url,
    /// The document the item came from, for messages.
    pub doc: String,
}

/// The items at `url`, after the options' filters and `max_items`.
async fn collect_items(
    fetcher: &Fetcher,
    url: &Url,
    opts: &StacOptions,
) -> Result<Vec<RawItem>, StacError> {
    let shown = fetch::display(url);
    let bytes = fetcher.get(url).await?;
    let doc = parse_document(url, &bytes)?;
    let mut items = match doc {
        Document::Items(items) => {
            check_static_options(&shown, opts)?;
            items
        }
        Document::Json(value) => match doc_type(&value) {
            "Feature" => {
                check_static_options(&shown, opts)?;
                vec![parse_item(value, url, &shown, false)?]
            }
            "FeatureCollection" => {
                check_static_options(&shown, opts)?;
                collection_pages(fetcher, url, value, opts).await?
            }
            "Catalog" if search::is_api_root(&value) => {
                let found = search::search(fetcher, url, &value, opts).await?;
                tracing::info!(location = %shown, items = found.items.len(), pages = found.pages, "STAC API searched");
                return Ok(found.items);
            }
            "Catalog" | "Collection" => {
                check_static_options(&shown, opts)?;
                traverse(fetcher, url, value, opts).await?
            }
            other => {
                return Err(StacError::NotStac {
                    location: shown,
                    found: describe_type(other),
                });
            }
        },
    };
    let filter = StaticFilter::new(opts)?;
    items.retain(|r| filter.keeps(&r.item));
    if let Some(max) = opts.max_items {
        items.truncate(max);
    }
    Ok(items)
}

/// A parsed document: NDJSON items, or one JSON value.
enum Document {
    Items(Vec<RawItem>),
    Json(Value),
}

/// Parse `bytes` read from `url` as JSON, or as NDJSON when the path ends in
/// `.ndjson` or the content is several JSON values on separate lines.
fn parse_document(url: &Url, bytes: &[u8]) -> Result<Document, StacError> {
    let shown = fetch::display(url);
    if url.path().to_ascii_lowercase().ends_with(".ndjson") {
        return parse_ndjson(url, bytes).map(Document::Items);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(Document::Json(v)),
        Err(e) => {
            if looks_like_ndjson(bytes) {
                return parse_ndjson(url, bytes).map(Document::Items);
            }
            Err(StacError::Malformed {
                location: shown,
                line: e.line(),
                column: e.column(),
                message: json_message(&e),
            })
        }
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((m, _)) => m.to_string(),
        None => text,
    }
}

/// True when the first non-empty line is a JSON object on its own and another
/// non-empty line follows: NDJSON without the `.ndjson` extension.
fn looks_like_ndjson(bytes: &[u8]) -> bool {
    let mut lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let first_is_object = lines
        .next()
        .and_then(|l| serde_json::from_slice::<Value>(l).ok())
        .is_some_and(|v| v.is_object());
    first_is_object && lines.next().is_some()
}

/// One item per non-empty line; a bad line is an error naming its number.
fn parse_ndjson(url: &Url, bytes: &[u8]) -> Result<Vec<RawItem>, StacError> {
    let shown = fetch::display(url);
    let mut items = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(line).map_err(|e| StacError::NdjsonLine {
            location: shown.clone(),
            line: i + 1,
            column: format!(" (column {})", e.column()),
            message: json_message(&e),
        })?;
        let found = doc_type(&value);
        if found != "Feature" {
            return Err(StacError::NdjsonLine {
                location: shown.clone(),
                line: i + 1,
                column: String::new(),
                message: format!(
                    "expected an item (\"type\": \"Feature\"), found {}",
                    describe_type(found)
                ),
            });
        }
        items.push(parse_item(value, url, &shown, true)?);
    }
    Ok(items)
}

/// The document's `type`, or "" when it has none.
fn doc_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn describe_type(t: &str) -> String {
    if t.is_empty() {
        "no \"type\" field".to_string()
    } else {
        format!("\"type\": \"{t}\"")
    }
}

/// Parse one item from JSON read at `doc_url`. An item embedded in a
/// collection, NDJSON file or search page resolves its relative hrefs against
/// its own `self` link when it has one; a standalone item file against where
/// it was read.
pub(crate) fn parse_item(
    mut value: Value,
    doc_url: &Url,
    shown: &str,
    embedded: bool,
) -> Result<RawItem, StacError> {
    scene::sanitize_item(&mut value);
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("(no id)")
        .to_string();
    let item: ::stac::Item = serde_json::from_value(value).map_err(|e| StacError::Invalid {
        location: shown.to_string(),
        kind: "item",
        message: format!("item '{id}': {e}"),
    })?;
    let base = if embedded {
        item.links
            .iter()
            .find(|l| l.rel == "self")
            .and_then(|l| fetch::resolve(&l.href, doc_url).ok())
            .unwrap_or_else(|| doc_url.clone())
    } else {
        doc_url.clone()
    };
    Ok(RawItem {
        item,
        base,
        doc: shown.to_string(),
    })
}

/// The links of a catalog, collection or item collection.
fn links_of(
    value: &Value,
    shown: &str,
    kind: &'static str,
) -> Result<Vec<::stac::Link>, StacError> {
    match value.get("links") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(l) => serde_json::from_value(l.clone()).map_err(|e| StacError::Invalid {
            location: shown.to_string(),
            kind,
            message: format!("bad 'links': {e}"),
        }),
    }
}

/// Items of an item collection, following its `next` links (an OGC API
/// `/items` page, or a saved search page) until none is left or `max_items`
/// items are read.
async fn collection_pages(
    fetcher: &Fetcher,
    url: &Url,
    value: Value,
    opts: &StacOptions,
) -> Result<Vec<RawItem>, StacError> {
    let mut items = Vec::new();
    let mut page = search::Page::parse(url, value)?;
    let mut pages = 1usize;
    let mut seen = HashSet::new();
    loop {
        let next = page.next.take();
        items.append(&mut page.items);
        let full = opts.max_items.is_some_and(|m| items.len() >= m);
        let Some(request) = next else { break };
        if full || page.was_empty {
            break;
        }
        if !seen.insert(request.key()) {
            return Err(StacError::PagingLoop {
                location: fetch::display(url),
                page: pages,
            });
        }
        page = request.send(fetcher).await?;
        pages += 1;
    }
    Ok(items)
}

/// Walk a static catalog or collection: `child` links recursively, `item`
/// links as items; relative hrefs against each document's location; every
/// document at most once (catalogs with cycles end).
async fn traverse(
    fetcher: &Fetcher,
    url: &Url,
    value: Value,
    opts: &StacOptions,
) -> Result<Vec<RawItem>, StacError> {
    let filter = StaticFilter::new(opts)?;
    let root_shown = fetch::display(url);
    let mut visited: HashSet<Url> = HashSet::new();
    visited.insert(fetch::without_fragment(url));
    let mut queue: VecDeque<(Url, Value)> = VecDeque::from([(url.clone(), value)]);
    let mut items = Vec::new();
    let mut first = true;
    while let Some((doc_url, doc)) = queue.pop_front() {
        let shown = fetch::display(&doc_url);
        let kind = if doc_type(&doc) == "Collection" {
            "collection"
        } else {
            "catalog"
        };
        let links = links_of(&doc, &shown, kind)?;
        let is_structural = |l: &::stac::Link| l.rel == "item" || l.rel == "child";
        // An API collection (`items` link, no item/child links) cannot be walked.
        if first
            && kind == "collection"
            && !links.iter().any(is_structural)
            && let Some(api_items) = links.iter().find(|l| l.rel == "items")
        {
            let root = links
                .iter()
                .find(|l| l.rel == "root")
                .and_then(|l| fetch::resolve(&l.href, &doc_url).ok())
                .map(|u| fetch::display(&u))
                .unwrap_or_else(|| api_items.href.clone());
            return Err(StacError::ApiCollection {
                location: shown,
                root,
                id: doc
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("...")
                    .to_string(),
            });
        }
        first = false;
        let mut item_urls = Vec::new();
        for link in links.iter().filter(|l| is_structural(l)) {
            let target = fetch::resolve(&link.href, &doc_url).map_err(|e| StacError::Invalid {
                location: shown.clone(),
                kind,
                message: format!("bad {} link '{}': {e}", link.rel, link.href),
            })?;
            if !visited.insert(fetch::without_fragment(&target)) {
                continue;
            }
            if link.rel == "item" {
                item_urls.push(target);
            } else {
                let bytes = fetcher.get(&target).await?;
                match parse_document(&target, &bytes)? {
                    Document::Json(v) if matches!(doc_type(&v), "Catalog" | "Collection") => {
                        queue.push_back((target, v));
                    }
                    Document::Json(v) if doc_type(&v) == "FeatureCollection" => {
                        let t = fetch::display(&target);
                        for f in features(&v, &t)? {
                            items.push(parse_item(f, &target, &t, true)?);
                        }
                    }
                    Document::Json(v) if doc_type(&v) == "Feature" => {
                        let t = fetch::display(&target);
                        items.push(parse_item(v, &target, &t, false)?);
                    }
                    Document::Items(mut more) => items.append(&mut more),
                    Document::Json(v) => {
                        return Err(StacError::NotStac {
                            location: fetch::display(&target),
                            found: describe_type(doc_type(&v)),
                        });
                    }
                }
            }
        }
        // Item files are small and many: read several at once, in link order.
        let mut reads = futures::stream::iter(item_urls)
            .map(|u| async move {
                let bytes = fetcher.get(&u).await?;
                read_item_document(&u, &bytes)
            })
            .buffered(8);
        while let Some(r) = reads.next().await {
            items.extend(r?);
        }
        let kept = items.iter().filter(|r| filter.keeps(&r.item)).count();
        if opts.max_items.is_some_and(|m| kept >= m) {
            break;
        }
    }
    if items.is_empty() {
        tracing::warn!(location = %root_shown, "the STAC catalog links no items");
    }
    Ok(items)
}

/// An `item` link's target: normally one item; an item collection is accepted too.
fn read_item_document(url: &Url, bytes: &[u8]) -> Result<Vec<RawItem>, StacError> {
    let shown = fetch::display(url);
    match parse_document(url, bytes)? {
        Document::Items(items) => Ok(items),
        Document::Json(v) => match doc_type(&v) {
            "Feature" => Ok(vec![parse_item(v, url, &shown, false)?]),
            "FeatureCollection" => features(&v, &shown)?
                .into_iter()
                .map(|f| parse_item(f, url, &shown, true))
                .collect(),
            other => Err(StacError::Invalid {
                location: shown,
                kind: "item",
                message: format!(
                    "an 'item' link points here but it has {}",
                    describe_type(other)
                ),
            }),
        },
    }
}

/// The `features` of an item collection.
pub(crate) fn features(v: &Value, shown: &str) -> Result<Vec<Value>, StacError> {
    match v.get("features") {
        Some(Value::Array(f)) => Ok(f.clone()),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(StacError::Invalid {
            location: shown.to_string(),
            kind: "item collection",
            message: "'features' is not an array".into(),
        }),
    }
}

/// `query` and `filter` need an API: refuse them on static documents rather
/// than ignore them.
fn check_static_options(shown: &str, opts: &StacOptions) -> Result<(), StacError> {
    for (key, set) in [
        ("query", opts.query.is_some()),
        ("filter", opts.filter.is_some()),
    ] {
        if set {
            return Err(StacError::NeedsApi {
                location: shown.to_string(),
                key: key.into(),
            });
        }
    }
    Ok(())
}

/// A time interval; `None` ends are open.
type Interval = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The options' collections / bbox / datetime, applied to items of static
/// documents (an API applies them itself; applying them again is harmless).
struct StaticFilter<'a> {
    collections: Option<&'a [String]>,
    bbox: Option<[f64; 4]>,
    datetime: Option<Interval>,
}

impl<'a> StaticFilter<'a> {
    fn new(opts: &'a StacOptions) -> Result<Self, StacError> {
        let bbox = opts.bbox.map(search::check_bbox).transpose()?;
        let datetime = match &opts.datetime {
            Some(d) => {
                let normal = search::normalize_datetime(d)?;
                let interval =
                    ::stac::datetime::parse(&normal).map_err(|e| StacError::BadOption {
                        key: "datetime".into(),
                        value: d.clone(),
                        reason: e.to_string(),
                    })?;
                Some(interval)
            }
            None => None,
        };
        Ok(StaticFilter {
            collections: opts.collections.as_deref(),
            bbox,
            datetime,
        })
    }

    fn keeps(&self, item: &::stac::Item) -> bool {
        if let Some(c) = self.collections
            && !item.collection.as_ref().is_some_and(|id| c.contains(id))
        {
            return false;
        }
        if let Some((start, end)) = self.datetime
            && !item.intersects_datetimes(start, end).unwrap_or(true)
        {
            return false;
        }
        if let (Some(b), Some(ib)) = (self.bbox, item.bbox) {
            let ib: Vec<f64> = ib.into();
            let ib = match ib.as_slice() {
                [a, b, c, d] => [*a, *b, *c, *d],
                [a, b, _, d, e, _] => [*a, *b, *d, *e],
                _ => return true,
            };
            return scene::bboxes_intersect(&b, &ib);
        }
        true
    }
}
