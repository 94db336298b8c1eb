//! One STAC item as a [`StacScene`]: time, sensor, data assets, sceneql
//! common names, nodata/scale/offset in each of the spellings STAC has used,
//! requester-pays hrefs and the native grid of the projection extension.

use std::collections::BTreeMap;

use ::stac::{Asset, Item};
use serde_json::{Map, Value};
use url::Url;

use super::{AssetGrid, StacAsset, StacError, StacOptions, StacScene, fetch};

/// Field where a non-numeric nodata (`"nan"`, `"inf"`, `"-inf"`) is kept:
/// the `stac` crate reads `nodata` as a number and would reject the item.
const NODATA_TEXT: &str = "sceneql:nodata";
/// Field where a `data_type` the `stac` crate does not know is kept.
const DATA_TYPE_TEXT: &str = "sceneql:data_type";
/// Sample types the `stac` crate's `DataType` accepts.
const KNOWN_DATA_TYPES: &[&str] = &[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
    "float64", "cint16", "cint32", "cfloat32", "cfloat64", "other",
];
/// Asset keys of quality layers sceneql calls `qa`.
const QA_KEYS: &[&str] = &["qa_pixel", "scl"];

/// Make an item's JSON readable by the `stac` crate without losing values it
/// would reject: string nodata and unknown data types move to fields of
/// their own; a missing `properties` becomes one without `datetime` (the
/// crate would otherwise default the time to now).
pub(crate) fn sanitize_item(item: &mut Value) {
    let Some(obj) = item.as_object_mut() else {
        return;
    };
    if !obj.get("properties").is_some_and(Value::is_object) {
        obj.insert("properties".into(), serde_json::json!({ "datetime": null }));
    }
    let Some(assets) = obj.get_mut("assets").and_then(Value::as_object_mut) else {
        return;
    };
    for asset in assets.values_mut() {
        sanitize_raster_fields(asset);
        if let Some(bands) = asset.get_mut("bands").and_then(Value::as_array_mut) {
            bands.iter_mut().for_each(sanitize_raster_fields);
        }
    }
}

fn sanitize_raster_fields(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    if obj.get("nodata").is_some_and(Value::is_string)
        && let Some(n) = obj.remove("nodata")
    {
        obj.insert(NODATA_TEXT.into(), n);
    }
    let unknown_type = obj.get("data_type").is_some_and(|t| {
        !t.as_str().is_some_and(|s| KNOWN_DATA_TYPES.contains(&s)) && !t.is_null()
    });
    if unknown_type && let Some(t) = obj.remove("data_type") {
        obj.insert(DATA_TYPE_TEXT.into(), t);
    }
}

/// The scene of one item; `None` (logged) when it has no data asset.
pub(crate) fn to_scene(
    item: &Item,
    base: &Url,
    doc: &str,
    opts: &StacOptions,
) -> Result<Option<StacScene>, StacError> {
    let props = &item.properties.additional_fields;
    let time = item
        .properties
        .datetime
        .or(item.properties.start_datetime)
        .ok_or_else(|| StacError::NoTime {
            location: doc.to_string(),
            item: item.id.clone(),
            problem: "neither 'datetime' nor 'start_datetime'".into(),
        })?;
    let time_ns = time
        .timestamp_nanos_opt()
        .ok_or_else(|| StacError::NoTime {
            location: doc.to_string(),
            item: item.id.clone(),
            problem: format!("a time out of range ({time})"),
        })?;
    let sensor = sensor_code(props.get("platform").and_then(Value::as_str));
    let boa_offset_applied = props
        .get("earthsearch:boa_offset_applied")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let selected: Vec<(&String, &Asset)> = match &opts.assets {
        Some(keys) => keys
            .iter()
            .map(|k| {
                item.assets
                    .get_key_value(k)
                    .ok_or_else(|| StacError::MissingAsset {
                        location: doc.to_string(),
                        item: item.id.clone(),
                        key: k.clone(),
                        available: item.assets.keys().cloned().collect::<Vec<_>>().join(", "),
                    })
            })
            .collect::<Result<_, _>>()?,
        None => item
            .assets
            .iter()
            .filter(|(k, a)| is_data_asset(k, a))
            .collect(),
    };
    if selected.is_empty() {
        tracing::warn!(item = %item.id, document = %doc, "STAC item has no data asset; skipped");
        return Ok(None);
    }

    let mut assets = BTreeMap::new();
    // sceneql common name -> (rank, key) of the asset holding it so far.
    let mut holders: BTreeMap<&'static str, (u8, String)> = BTreeMap::new();
    for (key, asset) in selected {
        let raster = RasterFields::of(asset);
        let stac_name = stac_common_name(asset);
        let mut offset = raster.offset;
        let reflectance = asset.roles.iter().any(|r| r == "reflectance") || stac_name.is_some();
        if boa_offset_applied && reflectance && offset.is_some() {
            // Earth Search: the files already have the BOA offset applied.
            offset = Some(0.0);
        }
        if let Some((name, rank)) = sceneql_name(key, stac_name.as_deref()) {
            let better = holders.get(name).is_none_or(|(r, k)| (rank, key) < (*r, k));
            if better {
                holders.insert(name, (rank, key.clone()));
            }
        }
        let href = match requester_pays_href(asset).filter(|_| opts.requester_pays) {
            Some(alt) => fetch::absolute_href(alt, base),
            None => fetch::absolute_href(&asset.href, base),
        };
        assets.insert(
            key.clone(),
            StacAsset {
                href,
                media_type: asset.r#type.clone(),
                common_name: None,
                nodata: raster.nodata,
                scale: raster.scale,
                offset,
                data_type: raster.data_type,
                grid: grid(&asset.additional_fields, props),
            },
        );
    }
    for (name, (_, key)) in holders {
        if let Some(a) = assets.get_mut(&key) {
            a.common_name = Some(name.to_string());
        }
    }
    let bbox = item
        .bbox
        .and_then(|b| match Vec::<f64>::from(b).as_slice() {
            [a, b, c, d] => Some([*a, *b, *c, *d]),
            [a, b, _, d, e, _] => Some([*a, *b, *d, *e]),
            _ => None,
        });
    Ok(Some(StacScene {
        id: item.id.clone(),
        collection: item.collection.clone(),
        time_ns,
        sensor,
        bbox,
        assets,
        cloud_cover: props
            .get("eo:cloud_cover")
            .and_then(Value::as_f64)
            .filter(|c| *c >= 0.0),
    }))
}

/// sceneql's sensor code for a STAC `platform`.
pub(crate) fn sensor_code(platform: Option<&str>) -> String {
    let p = platform
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .replace(['_', ' '], "-");
    match p.as_str() {
        "landsat-8" => "LC08",
        "landsat-9" => "LC09",
        "landsat-7" => "LE07",
        "landsat-5" => "LT05",
        "landsat-4" => "LT04",
        "sentinel-2a" => "S2A",
        "sentinel-2b" => "S2B",
        "sentinel-2c" => "S2C",
        _ => "unknown",
    }
    .to_string()
}

/// True for an asset holding pixels to read: roles include `data`; or no
/// roles and a raster media type (or, without a media type, a raster file
/// extension); or a known quality layer (`qa_pixel`, `scl`) that is a raster.
/// Thumbnails, overviews, visual composites and metadata files are not.
fn is_data_asset(key: &str, asset: &Asset) -> bool {
    let media = asset.r#type.as_deref().map(str::to_ascii_lowercase);
    if media.as_deref().is_some_and(is_non_raster_media) {
        return false;
    }
    if asset.roles.iter().any(|r| r == "data") {
        return true;
    }
    let raster = match media.as_deref() {
        Some(m) => is_raster_media(m),
        None => has_raster_extension(&asset.href),
    };
    if QA_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return raster;
    }
    asset.roles.is_empty() && raster
}

fn is_raster_media(m: &str) -> bool {
    m.starts_with("image/tiff")
        || m.starts_with("image/vnd.stac.geotiff")
        || m.starts_with("image/jp2")
        || m.contains("geotiff")
        || m.contains("netcdf")
        || m.contains("hdf")
        || m.contains("zarr")
}

fn is_non_raster_media(m: &str) -> bool {
    m.contains("json")
        || m.contains("xml")
        || m.starts_with("text/")
        || m.contains("parquet")
        || m.contains("pdf")
        || m.contains("html")
}

fn has_raster_extension(href: &str) -> bool {
    let path = href
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    [".tif", ".tiff", ".jp2", ".nc", ".h5", ".hdf", ".vrt"]
        .iter()
        .any(|e| path.ends_with(e))
}

/// The asset's STAC common name: STAC 1.0 `eo:bands[0].common_name`, STAC
/// 1.1 `bands[0]["eo:common_name"]`, or the asset's own `eo:common_name`.
/// Only single-band assets get one (a 3-band composite is no "red").
fn stac_common_name(asset: &Asset) -> Option<String> {
    let fields = &asset.additional_fields;
    if let Some(Value::Array(eo)) = fields.get("eo:bands") {
        if eo.len() != 1 {
            return None;
        }
        if let Some(n) = eo[0].get("common_name").and_then(Value::as_str) {
            return Some(n.to_string());
        }
    }
    if asset.bands.len() > 1 {
        return None;
    }
    asset
        .bands
        .first()
        .and_then(|b| b.additional_fields.get("eo:common_name"))
        .or_else(|| fields.get("eo:common_name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// sceneql's common name for an asset, with a rank: 0 when the STAC common
/// name (or the key) is exactly sceneql's name, 1 for an alias (`nir08` for
/// `nir`). The lowest rank wins, then the smallest key.
fn sceneql_name(key: &str, stac_name: Option<&str>) -> Option<(&'static str, u8)> {
    fn from_stac(n: &str) -> Option<(&'static str, u8)> {
        Some(match n.to_ascii_lowercase().as_str() {
            "blue" => ("blue", 0),
            "green" => ("green", 0),
            "red" => ("red", 0),
            "nir" => ("nir", 0),
            "nir08" => ("nir", 1),
            "swir16" => ("swir1", 0),
            "swir22" => ("swir2", 0),
            _ => return None,
        })
    }
    if let Some(n) = stac_name {
        return from_stac(n);
    }
    let key = key.to_ascii_lowercase();
    if QA_KEYS.contains(&key.as_str()) {
        return Some(("qa", 0));
    }
    match key.as_str() {
        "swir1" => Some(("swir1", 0)),
        "swir2" => Some(("swir2", 0)),
        k => from_stac(k),
    }
}

/// The `alternate.s3.href` of an asset, else the first alternate href in s3://.
fn requester_pays_href(asset: &Asset) -> Option<&str> {
    let alternate = asset.additional_fields.get("alternate")?.as_object()?;
    fn href(v: &Value) -> Option<&str> {
        v.get("href").and_then(Value::as_str)
    }
    alternate.get("s3").and_then(href).or_else(|| {
        alternate
            .values()
            .filter_map(href)
            .find(|h| h.starts_with("s3://"))
    })
}

/// Nodata, scale, offset and data type of an asset.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RasterFields {
    pub nodata: Option<f64>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    pub data_type: Option<String>,
}

impl RasterFields {
    /// Each field from the first spelling that has it: STAC 1.0
    /// `raster:bands[0]`, then STAC 1.1 `bands[0]`, then the asset itself
    /// (where STAC 1.1 puts values shared by all bands).
    pub(crate) fn of(asset: &Asset) -> RasterFields {
        let v10 = asset
            .additional_fields
            .get("raster:bands")
            .and_then(Value::as_array)
            .and_then(|b| b.first())
            .and_then(Value::as_object)
            .map(|b| RasterFields {
                nodata: b.get("nodata").and_then(number),
                scale: b.get("scale").and_then(number),
                offset: b.get("offset").and_then(number),
                data_type: b
                    .get("data_type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
            .unwrap_or_default();
        let v11 = asset
            .bands
            .first()
            .map(|b| RasterFields {
                nodata: b
                    .nodata
                    .or_else(|| b.additional_fields.get(NODATA_TEXT).and_then(number)),
                scale: b.additional_fields.get("raster:scale").and_then(number),
                offset: b.additional_fields.get("raster:offset").and_then(number),
                data_type: b
                    .data_type
                    .as_ref()
                    .and_then(data_type_name)
                    .or_else(|| text(&b.additional_fields, DATA_TYPE_TEXT)),
            })
            .unwrap_or_default();
        let fields = &asset.additional_fields;
        let own = RasterFields {
            nodata: asset
                .nodata
                .or_else(|| fields.get(NODATA_TEXT).and_then(number)),
            scale: fields.get("raster:scale").and_then(number),
            offset: fields.get("raster:offset").and_then(number),
            data_type: asset
                .data_type
                .as_ref()
                .and_then(data_type_name)
                .or_else(|| text(fields, DATA_TYPE_TEXT)),
        };
        RasterFields {
            nodata: v10.nodata.or(v11.nodata).or(own.nodata),
            scale: v10.scale.or(v11.scale).or(own.scale),
            offset: v10.offset.or(v11.offset).or(own.offset),
            data_type: v10.data_type.or(v11.data_type).or(own.data_type),
        }
    }
}

fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The `stac` crate's data type as STAC spells it (`uint16`).
fn data_type_name(t: &::stac::DataType) -> Option<String> {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

/// A number, or a nodata string: `nan`, `inf`, `-inf` or a number as text.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// The asset's grid from the projection extension: `proj:epsg` or
/// `proj:code` (`EPSG:n`), `proj:transform` (STAC/affine order a..f, 6 or 9
/// numbers) and `proj:shape` ([rows, cols]); each asset-level field
/// overrides the item's. `None` unless all three are there.
pub(crate) fn grid(asset: &Map<String, Value>, item: &Map<String, Value>) -> Option<AssetGrid> {
    let pick = |key: &str| {
        asset
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| item.get(key).filter(|v| !v.is_null()))
    };
    // The asset's own CRS, in either spelling, wins over the item's.
    let has_own_crs = ["proj:epsg", "proj:code"]
        .iter()
        .any(|k| asset.get(*k).is_some_and(|v| !v.is_null()));
    let crs_source = if has_own_crs { asset } else { item };
    let epsg = crs_source
        .get("proj:epsg")
        .and_then(whole)
        .or_else(|| {
            crs_source
                .get("proj:code")
                .and_then(Value::as_str)
                .and_then(|c| c.trim().strip_prefix("EPSG:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .and_then(|n| u32::try_from(n).ok())?;
    let t: Vec<f64> = pick("proj:transform")?
        .as_array()?
        .iter()
        .map(Value::as_f64)
        .collect::<Option<_>>()?;
    if t.len() != 6 && t.len() != 9 {
        return None;
    }
    let shape: Vec<usize> = pick("proj:shape")?
        .as_array()?
        .iter()
        .map(|v| whole(v).and_then(|n| usize::try_from(n).ok()))
        .collect::<Option<_>>()?;
    let [rows, cols] = shape.as_slice() else {
        return None;
    };
    // STAC: x = a*col + b*row + c, y = d*col + e*row + f -> GDAL: c, a, b, f, d, e.
    Some(AssetGrid {
        epsg,
        transform: [t[2], t[0], t[1], t[5], t[3], t[4]],
        shape: (*rows, *cols),
    })
}

/// A non-negative whole number, also when written as a float (`32633.0`).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
            .map(|f| f as u64)
    })
}

/// Whether two lon/lat boxes overlap; a box with min lon > max lon crosses
/// the antimeridian.
pub(crate) fn bboxes_intersect(a: &[f64; 4], b: &[f64; 4]) -> bool {
    fn lon_ranges(b: &[f64; 4]) -> Vec<(f64, f64)> {
        if b[0] <= b[2] {
            vec![(b[0], b[2])]
        } else {
            vec![(b[0], 180.0), (-180.0, b[2])]
        }
    }
    let lat = a[1] <= b[3] && b[1] <= a[3];
    lat && lon_ranges(a)
        .iter()
        .any(|(w1, e1)| lon_ranges(b).iter().any(|(w2, e2)| w1 <= e2 && w2 <= e1))
}
