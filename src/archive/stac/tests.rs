//! Tests of STAC loading against hand-written fixtures (tests/fixtures/stac:
//! USGS Landsat C2 L2 and Earth Search Sentinel-2 item collections, NDJSON,
//! a static catalog, a malformed file) and a real STAC API (`rustac serve`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::search::{Request, search_body};
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stac")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn ns(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

/// One item's JSON as a scene, as `load` would make it.
fn scene_of(item: Value, opts: &StacOptions) -> Result<Option<StacScene>, StacError> {
    let base = Url::parse("https://example.com/stac/items/x.json").unwrap();
    let raw = parse_item(item, &base, "test.json", true)?;
    scene::to_scene(&raw.item, &raw.base, "test.json", opts)
}

/// A minimal item with one asset `a` described by `asset`.
fn item_with_asset(asset: Value) -> Value {
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": "x",
        "geometry": null,
        "properties": {"datetime": "2023-01-01T00:00:00Z"},
        "links": [],
        "assets": {"a": asset}
    })
}

const LS: [&str; 3] = [
    "LC08_L2SP_042034_20230612_20230622_02_T1_SR",
    "LC09_L2SP_042034_20230620_20230621_02_T1_SR",
    "LC08_L2SP_042034_20230628_20230706_02_T1_SR",
];

#[test]
fn stac_locations_are_told_from_raster_folders() {
    for yes in [
        "items.json",
        "/data/catalog.JSON",
        "s3://bucket/collection.json",
        "search.geojson",
        "items.ndjson",
        "https://earth-search.aws.element84.com/v1",
        "https://landsatlook.usgs.gov/stac-server/",
        "https://host/catalog.json?token=abc",
        "file:///tmp/catalog.json",
    ] {
        assert!(is_stac_location(yes), "{yes}");
    }
    for no in [
        "/data/landsat",
        "s3://bucket/landsat/",
        "https://host/scene/B04.tif",
        "https://host/scene/B04.TIF?sig=x",
        "https://host/scene/T33UWP_B04.jp2",
        "http://host/era5.nc",
        "file:///data/scenes",
    ] {
        assert!(!is_stac_location(no), "{no}");
    }
}

#[tokio::test]
async fn landsat_item_collection_gives_scenes_in_the_usgs_shape() {
    let scenes = load(&fixture("landsat-c2l2-sr.json"), &StacOptions::default())
        .await
        .unwrap();
    let ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, LS);
    let sensors: Vec<&str> = scenes.iter().map(|s| s.sensor.as_str()).collect();
    assert_eq!(sensors, ["LC08", "LC09", "LC08"]);
    assert_eq!(scenes[0].time_ns, ns("2023-06-12T18:37:42.183716Z"));
    assert_eq!(scenes[0].collection.as_deref(), Some("landsat-c2l2-sr"));
    assert_eq!(scenes[0].bbox, Some([-121.43, 35.02, -118.83, 37.18]));

    let s = &scenes[0];
    // Data assets only: no thumbnail/browse/MTL/ANG, and the QA layers whose
    // roles do not say "data" (qa_aerosol, qa_radsat), except qa_pixel.
    let keys: Vec<&str> = s.assets.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "blue", "coastal", "green", "nir08", "qa_pixel", "red", "swir16", "swir22"
        ]
    );
    let common = |k: &str| s.assets[k].common_name.as_deref();
    assert_eq!(common("blue"), Some("blue"));
    assert_eq!(common("green"), Some("green"));
    assert_eq!(common("red"), Some("red"));
    assert_eq!(common("nir08"), Some("nir"));
    assert_eq!(common("swir16"), Some("swir1"));
    assert_eq!(common("swir22"), Some("swir2"));
    assert_eq!(common("qa_pixel"), Some("qa"));
    assert_eq!(common("coastal"), None);

    let red = &s.assets["red"];
    assert_eq!(
        red.href,
        "https://landsatlook.usgs.gov/data/collection02/level-2/standard/oli-tirs/2023/042/034/\
         LC08_L2SP_042034_20230612_20230622_02_T1/LC08_L2SP_042034_20230612_20230622_02_T1_SR_B4.TIF"
    );
    assert_eq!(
        red.media_type.as_deref(),
        Some("image/vnd.stac.geotiff; cloud-optimized=true")
    );
    assert_eq!(red.scale, Some(2.75e-05));
    assert_eq!(red.offset, Some(-0.2));
    assert_eq!(red.nodata, Some(0.0));
    assert_eq!(red.data_type.as_deref(), Some("uint16"));
    let qa = &s.assets["qa_pixel"];
    assert_eq!(
        (qa.nodata, qa.scale, qa.offset, qa.data_type.as_deref()),
        (Some(1.0), None, None, Some("uint16"))
    );
    // Landsat puts the grid on the item; the third item says proj:code, not proj:epsg.
    for s in &scenes {
        let g = s.assets["red"].grid.as_ref().unwrap();
        assert_eq!(g.epsg, 32611, "{}", s.id);
        assert_eq!(g.shape, (7811, 7681));
        assert_eq!(g.transform, [262185.0, 30.0, 0.0, 4113315.0, 0.0, -30.0]);
    }
}

#[tokio::test]
async fn requester_pays_uses_the_alternate_s3_hrefs() {
    let opts = StacOptions {
        requester_pays: true,
        ..Default::default()
    };
    let scenes = load(&fixture("landsat-c2l2-sr.json"), &opts).await.unwrap();
    assert_eq!(
        scenes[1].assets["qa_pixel"].href,
        "s3://usgs-landsat/collection02/level-2/standard/oli-tirs/2023/042/034/\
         LC09_L2SP_042034_20230620_20230621_02_T1/LC09_L2SP_042034_20230620_20230621_02_T1_QA_PIXEL.TIF"
    );
    for s in &scenes {
        for (k, a) in &s.assets {
            assert!(
                a.href.starts_with("s3://usgs-landsat/collection02/"),
                "{k}: {}",
                a.href
            );
        }
    }
    // Assets without an alternate keep their href.
    let s2 = load(&fixture("sentinel-2-c1-l2a.json"), &opts)
        .await
        .unwrap();
    assert!(s2[0].assets["red"].href.starts_with("https://"));
    // An alternate that is not named "s3" but is in s3:// is used too.
    let item = item_with_asset(json!({
        "href": "https://host/b.tif", "type": "image/tiff", "roles": ["data"],
        "alternate": {"https": {"href": "https://mirror/b.tif"}, "aws": {"href": "s3://bucket/b.tif"}}
    }));
    let s = scene_of(item, &opts).unwrap().unwrap();
    assert_eq!(s.assets["a"].href, "s3://bucket/b.tif");
}

#[tokio::test]
async fn sentinel2_items_in_stac_1_1_shape() {
    let scenes = load(&fixture("sentinel-2-c1-l2a.json"), &StacOptions::default())
        .await
        .unwrap();
    assert_eq!(scenes.len(), 2);
    assert_eq!(scenes[0].id, "S2B_T33UWP_20230615T100031_L2A");
    assert_eq!(scenes[0].sensor, "S2B");
    assert_eq!(scenes[1].sensor, "S2A");
    assert_eq!(scenes[0].time_ns, ns("2023-06-15T10:10:17.024Z"));
    let s = &scenes[0];
    let keys: Vec<&str> = s.assets.keys().map(String::as_str).collect();
    // visual (roles: visual), thumbnail and metadata are not data.
    assert_eq!(
        keys,
        [
            "aot", "blue", "coastal", "green", "nir", "nir08", "red", "scl", "swir16", "swir22"
        ]
    );
    let common = |k: &str| s.assets[k].common_name.as_deref();
    // Both nir (B08) and nir08 (B8A) exist: the exact "nir" wins.
    assert_eq!(common("nir"), Some("nir"));
    assert_eq!(common("nir08"), None);
    assert_eq!(common("swir16"), Some("swir1"));
    assert_eq!(common("swir22"), Some("swir2"));
    assert_eq!(common("scl"), Some("qa"));
    assert_eq!(common("red"), Some("red"));
    assert_eq!(common("aot"), None);
    // red has its raster fields in bands[0], nir at the asset level (both STAC 1.1).
    for k in ["red", "nir", "swir16"] {
        let a = &s.assets[k];
        assert_eq!(
            (a.scale, a.offset, a.nodata, a.data_type.as_deref()),
            (Some(0.0001), Some(-0.1), Some(0.0), Some("uint16")),
            "{k}"
        );
    }
    let scl = &s.assets["scl"];
    assert_eq!(
        (scl.scale, scl.offset, scl.nodata, scl.data_type.as_deref()),
        (None, None, Some(0.0), Some("uint8"))
    );
    // Per-asset grids (10, 20 and 60 m) with the item's proj:code.
    let g = |k: &str| s.assets[k].grid.clone().unwrap();
    assert_eq!(g("red").epsg, 32633);
    assert_eq!(g("red").shape, (10980, 10980));
    assert_eq!(
        g("red").transform,
        [499980.0, 10.0, 0.0, 5600040.0, 0.0, -10.0]
    );
    assert_eq!(g("swir16").shape, (5490, 5490));
    assert_eq!(
        g("swir16").transform,
        [499980.0, 20.0, 0.0, 5600040.0, 0.0, -20.0]
    );
    assert_eq!(g("scl").shape, (5490, 5490));
    assert_eq!(g("coastal").shape, (1830, 1830));
}

#[test]
fn common_names_prefer_exact_matches_whatever_the_key_order() {
    let band = |cn: &str| {
        json!({"href": format!("https://h/{cn}.tif"), "type": "image/tiff", "roles": ["data"],
               "eo:bands": [{"name": cn, "common_name": cn}]})
    };
    // "a_nir08" sorts before "z_nir": the exact name still wins.
    let mut item = item_with_asset(band("nir08"));
    item["assets"] = json!({"a_nir08": band("nir08"), "z_nir": band("nir")});
    let s = scene_of(item, &StacOptions::default()).unwrap().unwrap();
    assert_eq!(s.assets["z_nir"].common_name.as_deref(), Some("nir"));
    assert_eq!(s.assets["a_nir08"].common_name, None);
    // Two assets with the same common name: the smaller key, every time.
    let mut item = item_with_asset(band("red"));
    item["assets"] = json!({"red_b": band("red"), "red_a": band("red")});
    let s = scene_of(item, &StacOptions::default()).unwrap().unwrap();
    assert_eq!(s.assets["red_a"].common_name.as_deref(), Some("red"));
    assert_eq!(s.assets["red_b"].common_name, None);
    // Without eo metadata, a key equal to a common name keeps it.
    let mut item = item_with_asset(json!({}));
    item["assets"] = json!({
        "red": {"href": "r.tif", "type": "image/tiff", "roles": ["data"]},
        "swir16": {"href": "s.tif", "type": "image/tiff", "roles": ["data"]},
        "B05": {"href": "b5.tif"}
    });
    let s = scene_of(item, &StacOptions::default()).unwrap().unwrap();
    assert_eq!(s.assets["red"].common_name.as_deref(), Some("red"));
    assert_eq!(s.assets["swir16"].common_name.as_deref(), Some("swir1"));
    // No roles, no media type, a .tif href: data, with no common name.
    assert_eq!(s.assets["B05"].common_name, None);
    // Relative hrefs resolve against the item's self link / document.
    assert_eq!(s.assets["red"].href, "https://example.com/stac/items/r.tif");
    // STAC 1.1 single band and asset-level eo:common_name; a 3-band composite gets none.
    let mut item = item_with_asset(json!({}));
    item["assets"] = json!({
        "b4": {"href": "b4.tif", "roles": ["data"], "bands": [{"name": "B4", "eo:common_name": "red"}]},
        "b8": {"href": "b8.tif", "roles": ["data"], "eo:common_name": "nir"},
        "rgb": {"href": "rgb.tif", "roles": ["data"], "bands": [
            {"eo:common_name": "red"}, {"eo:common_name": "green"}, {"eo:common_name": "blue"}]}
    });
    let s = scene_of(item, &StacOptions::default()).unwrap().unwrap();
    assert_eq!(s.assets["b4"].common_name.as_deref(), Some("red"));
    assert_eq!(s.assets["b8"].common_name.as_deref(), Some("nir"));
    assert_eq!(s.assets["rgb"].common_name, None);
}

/// The same red band in STAC 1.0 `raster:bands`, STAC 1.1 `bands[0]` and
/// STAC 1.1 asset-level fields.
fn raster_spellings() -> [(&'static str, Value); 3] {
    [
        (
            "STAC 1.0 raster:bands",
            json!({"href": "b.tif", "type": "image/tiff", "roles": ["data"],
                   "eo:bands": [{"name": "B4", "common_name": "red"}],
                   "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 2.75e-05, "offset": -0.2}]}),
        ),
        (
            "STAC 1.1 bands[0]",
            json!({"href": "b.tif", "type": "image/tiff", "roles": ["data"],
                   "bands": [{"name": "B4", "eo:common_name": "red", "nodata": 0, "data_type": "uint16",
                              "raster:scale": 2.75e-05, "raster:offset": -0.2}]}),
        ),
        (
            "STAC 1.1 asset level",
            json!({"href": "b.tif", "type": "image/tiff", "roles": ["data"],
                   "eo:common_name": "red", "nodata": 0, "data_type": "uint16",
                   "raster:scale": 2.75e-05, "raster:offset": -0.2}),
        ),
    ]
}

#[test]
fn the_three_raster_spellings_give_the_same_numbers() {
    for (name, asset) in raster_spellings() {
        let s = scene_of(item_with_asset(asset), &StacOptions::default())
            .unwrap()
            .unwrap();
        let a = &s.assets["a"];
        assert_eq!(
            (
                a.nodata,
                a.scale,
                a.offset,
                a.data_type.as_deref(),
                a.common_name.as_deref()
            ),
            (
                Some(0.0),
                Some(2.75e-05),
                Some(-0.2),
                Some("uint16"),
                Some("red")
            ),
            "{name}"
        );
    }
}

#[test]
fn migrating_stac_1_0_with_the_stac_crate_keeps_the_numbers() {
    use ::stac::Migrate;
    let [(_, v10), _, _] = raster_spellings();
    let mut value = item_with_asset(v10);
    scene::sanitize_item(&mut value);
    let item: ::stac::Item = serde_json::from_value(value).unwrap();
    let migrated = item.clone().migrate(&::stac::Version::v1_1_0).unwrap();
    let asset = &migrated.assets["a"];
    // The crate moved raster:bands into bands[] with raster:scale / raster:offset ...
    assert!(!asset.additional_fields.contains_key("raster:bands"));
    assert_eq!(
        asset.bands[0].additional_fields.get("raster:scale"),
        Some(&json!(2.75e-05))
    );
    // ... and the scene is the same.
    let base = Url::parse("https://h/x.json").unwrap();
    let before = scene::to_scene(&item, &base, "t", &StacOptions::default()).unwrap();
    let after = scene::to_scene(&migrated, &base, "t", &StacOptions::default()).unwrap();
    assert_eq!(before, after);
}

#[test]
fn raster_spellings_take_precedence_in_order() {
    // All three: STAC 1.0 raster:bands wins.
    let all = json!({"href": "b.tif", "roles": ["data"],
        "raster:bands": [{"nodata": 1, "scale": 0.1, "offset": 1.0, "data_type": "int16"}],
        "bands": [{"nodata": 2, "raster:scale": 0.2, "raster:offset": 2.0, "data_type": "uint16"}],
        "nodata": 3, "raster:scale": 0.3, "raster:offset": 3.0, "data_type": "float32"});
    let s = scene_of(item_with_asset(all), &StacOptions::default())
        .unwrap()
        .unwrap();
    let a = &s.assets["a"];
    assert_eq!(
        (a.nodata, a.scale, a.offset, a.data_type.as_deref()),
        (Some(1.0), Some(0.1), Some(1.0), Some("int16"))
    );
    // bands[0] over the asset level; a field bands[0] lacks comes from the asset.
    let two = json!({"href": "b.tif", "roles": ["data"],
        "bands": [{"nodata": 2, "raster:scale": 0.2}],
        "nodata": 3, "raster:scale": 0.3, "raster:offset": 3.0, "data_type": "float32"});
    let s = scene_of(item_with_asset(two), &StacOptions::default())
        .unwrap()
        .unwrap();
    let a = &s.assets["a"];
    assert_eq!(
        (a.nodata, a.scale, a.offset, a.data_type.as_deref()),
        (Some(2.0), Some(0.2), Some(3.0), Some("float32"))
    );
}

#[test]
fn text_nodata_and_unknown_data_types_do_not_break_items() {
    for asset in [
        json!({"href": "b.tif", "roles": ["data"], "nodata": "nan", "data_type": "float32"}),
        json!({"href": "b.tif", "roles": ["data"], "bands": [{"nodata": "nan"}], "data_type": "float32"}),
        json!({"href": "b.tif", "roles": ["data"], "raster:bands": [{"nodata": "nan", "data_type": "float32"}]}),
    ] {
        let s = scene_of(item_with_asset(asset.clone()), &StacOptions::default())
            .unwrap()
            .unwrap();
        let a = &s.assets["a"];
        assert!(a.nodata.is_some_and(f64::is_nan), "{asset}");
        assert_eq!(a.data_type.as_deref(), Some("float32"));
    }
    let asset =
        json!({"href": "b.tif", "roles": ["data"], "nodata": "-inf", "data_type": "uint12"});
    let s = scene_of(item_with_asset(asset), &StacOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(s.assets["a"].nodata, Some(f64::NEG_INFINITY));
    assert_eq!(s.assets["a"].data_type.as_deref(), Some("uint12"));
}

#[test]
fn earth_search_boa_offset_applied_means_no_offset() {
    let mut fc = read_json("sentinel-2-c1-l2a.json");
    let mut item = fc["features"][0].take();
    item["properties"]["earthsearch:boa_offset_applied"] = json!(true);
    let s = scene_of(item.clone(), &StacOptions::default())
        .unwrap()
        .unwrap();
    for k in ["red", "nir", "nir08", "swir22", "coastal"] {
        assert_eq!(s.assets[k].offset, Some(0.0), "{k}");
        assert_eq!(s.assets[k].scale, Some(0.0001), "{k}");
    }
    assert_eq!(s.assets["scl"].offset, None);
    item["properties"]["earthsearch:boa_offset_applied"] = json!(false);
    let s = scene_of(item, &StacOptions::default()).unwrap().unwrap();
    assert_eq!(s.assets["red"].offset, Some(-0.1));
}

#[tokio::test]
async fn asset_selection_keeps_exactly_the_keys_asked_for() {
    let opts = StacOptions {
        assets: Some(vec![
            "red".into(),
            "nir08".into(),
            "qa_pixel".into(),
            "qa_radsat".into(),
        ]),
        ..Default::default()
    };
    let scenes = load(&fixture("landsat-c2l2-sr.json"), &opts).await.unwrap();
    for s in &scenes {
        let keys: Vec<&str> = s.assets.keys().map(String::as_str).collect();
        // qa_radsat has no "data" role but was asked for.
        assert_eq!(keys, ["nir08", "qa_pixel", "qa_radsat", "red"]);
    }
    let opts = StacOptions {
        assets: Some(vec!["red".into(), "nir".into()]),
        ..Default::default()
    };
    let err = load(&fixture("landsat-c2l2-sr.json"), &opts)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StacError::MissingAsset { .. }), "{msg}");
    assert!(msg.contains(LS[0]), "{msg}");
    assert!(msg.contains("no asset 'nir'"), "{msg}");
    assert!(msg.contains("nir08, swir16"), "{msg}");
    assert!(msg.contains("OPTIONS ('assets'"), "{msg}");
}

#[tokio::test]
async fn malformed_json_names_the_document_and_position() {
    let path = fixture("malformed.json");
    let err = load(&path, &StacOptions::default()).await.unwrap_err();
    match &err {
        StacError::Malformed {
            location,
            line,
            column,
            ..
        } => {
            assert_eq!(location, &path);
            assert_eq!((*line, *column), (4, 24));
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains("line 4, column 24"),
        "{msg}"
    );
    assert!(msg.contains("expected `,` or `}`"), "{msg}");
}

#[tokio::test]
async fn ndjson_gives_the_same_scenes_as_json() {
    let json = load(&fixture("landsat-c2l2-sr.json"), &StacOptions::default())
        .await
        .unwrap();
    let ndjson = load(&fixture("landsat-c2l2-sr.ndjson"), &StacOptions::default())
        .await
        .unwrap();
    assert_eq!(json, ndjson);
    // Detected by content, whatever the name.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("items.json");
    std::fs::copy(fixtures().join("landsat-c2l2-sr.ndjson"), &renamed).unwrap();
    let by_content = load(&renamed.display().to_string(), &StacOptions::default())
        .await
        .unwrap();
    assert_eq!(json, by_content);
}

#[tokio::test]
async fn ndjson_bad_line_is_named() {
    let path = fixture("landsat-bad-line.ndjson");
    let err = load(&path, &StacOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StacError::NdjsonLine { line: 3, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("line 3 of the NDJSON document") && msg.contains(&path),
        "{msg}"
    );
    assert!(msg.contains("EOF"), "{msg}");
}

#[tokio::test]
async fn static_catalog_is_followed_through_child_and_item_links() {
    let scenes = load(&fixture("catalog/catalog.json"), &StacOptions::default())
        .await
        .unwrap();
    let ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, LS);
    // Relative asset hrefs are local paths next to each item file.
    let dir = fixtures().join("catalog/landsat-c2l2-sr").join(LS[1]);
    assert_eq!(
        scenes[1].assets["red"].href,
        dir.join("LC09_L2SP_042034_20230620_20230621_02_T1_SR_B4.TIF")
            .display()
            .to_string()
    );
    assert_eq!(scenes[1].assets["red"].scale, Some(2.75e-05));
    // The same through a file:// URL, and from the collection alone.
    let url = Url::from_file_path(fixtures().join("catalog/catalog.json")).unwrap();
    let by_url = load(url.as_str(), &StacOptions::default()).await.unwrap();
    assert_eq!(scenes, by_url);
    let from_collection = load(
        &fixture("catalog/landsat-c2l2-sr/collection.json"),
        &StacOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(scenes, from_collection);
    // One item file on its own.
    let one = load(
        &fixture(&format!("catalog/landsat-c2l2-sr/{0}/{0}.json", LS[2])),
        &StacOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(one, scenes[2..]);
}

#[tokio::test]
async fn catalog_cycles_end() {
    let dir = tempfile::tempdir().unwrap();
    let item = read_json(&format!("catalog/landsat-c2l2-sr/{0}/{0}.json", LS[0]));
    std::fs::write(dir.path().join("item.json"), item.to_string()).unwrap();
    let a = json!({"type": "Catalog", "id": "a", "description": "a", "links": [
        {"rel": "child", "href": "./b/b.json"}, {"rel": "item", "href": "./item.json"}]});
    let b = json!({"type": "Catalog", "id": "b", "description": "b", "links": [
        {"rel": "child", "href": "../a.json"}, {"rel": "child", "href": "../a.json#again"},
        {"rel": "item", "href": "../item.json"}]});
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("a.json"), a.to_string()).unwrap();
    std::fs::write(dir.path().join("b/b.json"), b.to_string()).unwrap();
    let scenes = load(
        &dir.path().join("a.json").display().to_string(),
        &StacOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(scenes.len(), 1);
}

#[tokio::test]
async fn options_filter_static_documents() {
    let load_with =
        |opts: StacOptions| async move { load(&fixture("landsat-c2l2-sr.json"), &opts).await };
    let by_date = load_with(StacOptions {
        datetime: Some("2023-06-15/2023-06-30".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_date.len(), 2);
    let first = load_with(StacOptions {
        max_items: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let err = load_with(StacOptions {
        bbox: Some([10.0, 45.0, 11.0, 46.0]),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StacError::NoItems { .. }), "{err}");
    assert!(err.to_string().contains("'bbox'"), "{err}");
    let near = load_with(StacOptions {
        bbox: Some([-120.0, 36.0, -119.5, 36.5]),
        collections: Some(vec!["landsat-c2l2-sr".into()]),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(near.len(), 3);
    let err = load_with(StacOptions {
        query: Some(json!({"eo:cloud_cover": {"lt": 10}})),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StacError::NeedsApi { .. }), "{err}");
    let err = load_with(StacOptions {
        datetime: Some("June 2023".into()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("'datetime'"), "{err}");
}

#[test]
fn item_times_and_sensors() {
    let mut item = item_with_asset(json!({"href": "b.tif", "roles": ["data"]}));
    item["properties"] = json!({"datetime": null, "start_datetime": "2020-05-01T10:00:00Z",
                                "end_datetime": "2020-05-02T10:00:00Z", "platform": "sentinel-2c"});
    let s = scene_of(item.clone(), &StacOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(s.time_ns, ns("2020-05-01T10:00:00Z"));
    assert_eq!(s.sensor, "S2C");
    item["properties"] = json!({"datetime": null});
    let err = scene_of(item.clone(), &StacOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("item 'x'") && msg.contains("neither 'datetime' nor 'start_datetime'"),
        "{msg}"
    );
    // No properties at all: still no time (not "now").
    item.as_object_mut().unwrap().remove("properties");
    assert!(scene_of(item, &StacOptions::default()).is_err());
    for (platform, code) in [
        ("landsat-8", "LC08"),
        ("LANDSAT_8", "LC08"),
        ("landsat-9", "LC09"),
        ("LANDSAT_9", "LC09"),
        ("landsat-7", "LE07"),
        ("landsat-5", "LT05"),
        ("landsat-4", "LT04"),
        ("sentinel-2a", "S2A"),
        ("Sentinel-2B", "S2B"),
        ("sentinel-2c", "S2C"),
        ("terra", "unknown"),
    ] {
        assert_eq!(scene::sensor_code(Some(platform)), code, "{platform}");
    }
    assert_eq!(scene::sensor_code(None), "unknown");
}

#[test]
fn grids_from_the_projection_extension() {
    let m = |v: Value| v.as_object().unwrap().clone();
    let item = m(json!({"proj:epsg": 32611, "proj:shape": [100, 200],
                        "proj:transform": [30, 0, 1000, 0, -30, 5000, 0, 0, 1]}));
    let g = scene::grid(&m(json!({})), &item).unwrap();
    assert_eq!(g.epsg, 32611);
    assert_eq!(g.shape, (100, 200));
    assert_eq!(g.transform, [1000.0, 30.0, 0.0, 5000.0, 0.0, -30.0]);
    // Asset-level values override the item's, field by field.
    let asset = m(json!({"proj:code": "EPSG:32612", "proj:shape": [50, 100],
                         "proj:transform": [60, 0, 1000, 0, -60, 5000]}));
    let g = scene::grid(&asset, &item).unwrap();
    assert_eq!((g.epsg, g.shape), (32612, (50, 100)));
    assert_eq!(g.transform, [1000.0, 60.0, 0.0, 5000.0, 0.0, -60.0]);
    // Whole numbers written as floats are fine.
    let floats = m(json!({"proj:epsg": 32633.0, "proj:shape": [5490.0, 5490.0]}));
    let g = scene::grid(&floats, &item).unwrap();
    assert_eq!((g.epsg, g.shape), (32633, (5490, 5490)));
    // Incomplete or non-EPSG: no grid.
    assert!(scene::grid(&m(json!({"proj:code": "IAU_2015:30100"})), &item).is_none());
    assert!(scene::grid(&m(json!({})), &m(json!({"proj:epsg": 32611}))).is_none());
    assert!(scene::grid(&m(json!({"proj:transform": [1, 2, 3]})), &item).is_none());
}

#[test]
fn search_body_passes_query_and_filter_through() {
    let opts = StacOptions {
        collections: Some(vec!["sentinel-2-c1-l2a".into()]),
        bbox: Some([15.0, 49.5, 16.5, 50.5]),
        datetime: Some("2023-06-01/2023-06-30".into()),
        query: Some(json!({"eo:cloud_cover": {"lt": 20}})),
        filter: Some(json!({"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]})),
        ..Default::default()
    };
    let body = Value::Object(search_body(&opts, "api").unwrap());
    assert_eq!(
        body,
        json!({
            "collections": ["sentinel-2-c1-l2a"],
            "bbox": [15.0, 49.5, 16.5, 50.5],
            "datetime": "2023-06-01T00:00:00+00:00/2023-06-30T23:59:59+00:00",
            "limit": 100,
            "query": {"eo:cloud_cover": {"lt": 20}},
            "filter-lang": "cql2-json",
            "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]}
        })
    );
    let opts = StacOptions {
        datetime: Some("2023-06-01T00:00:00Z/..".into()),
        filter: Some(json!("eo:cloud_cover <= 20")),
        max_items: Some(7),
        ..Default::default()
    };
    let body = Value::Object(search_body(&opts, "api").unwrap());
    assert_eq!(
        body,
        json!({"datetime": "2023-06-01T00:00:00+00:00/..", "limit": 7,
               "filter-lang": "cql2-text", "filter": "eo:cloud_cover <= 20"})
    );
    // Neither bbox nor datetime: refused.
    let err = search_body(&StacOptions::default(), "https://api/v1").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'https://api/v1'")
            && msg.contains("OPTIONS ('bbox'")
            && msg.contains("('datetime'"),
        "{msg}"
    );
    // A projected box is caught.
    let opts = StacOptions {
        bbox: Some([262185.0, 3878985.0, 492615.0, 4113315.0]),
        ..Default::default()
    };
    assert!(
        search_body(&opts, "api")
            .unwrap_err()
            .to_string()
            .contains("projected")
    );
    let opts = StacOptions {
        datetime: Some("2023-06-30/2023-06-01".into()),
        ..Default::default()
    };
    assert!(search_body(&opts, "api").is_err());
}

#[test]
fn next_links_follow_their_method_body_and_merge() {
    let url = Url::parse("https://api.test/v1/search").unwrap();
    let body = json!({"limit": 10, "datetime": "2023"});
    let first = Request {
        method: reqwest::Method::POST,
        url: url.clone(),
        body: body.as_object().cloned(),
        headers: None,
    };
    let page = |next: Value| json!({"type": "FeatureCollection", "features": [], "links": [next]});
    let next_of = |v: Value| search::Page::parse_for(&first, v).unwrap().next.unwrap();
    // merge: the link's body over the current one.
    let n = next_of(page(
        json!({"rel": "next", "href": "search", "method": "POST",
                                  "body": {"token": "p2"}, "merge": true}),
    ));
    assert_eq!(n.method, reqwest::Method::POST);
    assert_eq!(n.url, url);
    assert_eq!(
        Value::Object(n.body.unwrap()),
        json!({"limit": 10, "datetime": "2023", "token": "p2"})
    );
    // No merge: the link's body alone.
    let n = next_of(page(
        json!({"rel": "next", "href": "/v1/search", "method": "POST",
                                  "body": {"token": "p2"}}),
    ));
    assert_eq!(Value::Object(n.body.unwrap()), json!({"token": "p2"}));
    // POST without a body: the current body again.
    let n = next_of(page(
        json!({"rel": "next", "href": "search?page=2", "method": "POST"}),
    ));
    assert_eq!(Value::Object(n.body.unwrap()), body);
    assert_eq!(n.url.as_str(), "https://api.test/v1/search?page=2");
    // GET (the default method): no body.
    let n = next_of(page(
        json!({"rel": "next", "href": "https://api.test/v1/search?token=next:abc"}),
    ));
    assert_eq!(n.method, reqwest::Method::GET);
    assert!(n.body.is_none());
}

#[test]
fn locations_are_shown_without_secrets() {
    let u = Url::parse("https://user:pw@api.test/v1/search?token=abc&sig=s#x").unwrap();
    assert_eq!(fetch::display(&u), "https://api.test/v1/search?...");
    let u = Url::parse("http://127.0.0.1:8080/search").unwrap();
    assert_eq!(fetch::display(&u), "http://127.0.0.1:8080/search");
    let err = fetch::location_url("s3://bucket/catalog.json").unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
}

#[tokio::test]
async fn missing_documents_and_non_stac_json_are_explained() {
    let err = load(&fixture("nope.json"), &StacOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StacError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.json"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    std::fs::write(&p, r#"{"type": "Topology", "objects": {}}"#).unwrap();
    let err = load(&p.display().to_string(), &StacOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StacError::NotStac { .. }), "{err}");
    assert!(err.to_string().contains("\"Topology\""), "{err}");
}

/// How to get the STAC API test server.
const RUSTAC_HOWTO: &str = "this test needs rustac's STAC API server: \
     python3 -m venv /tmp/rustac-venv && /tmp/rustac-venv/bin/pip install rustac==0.9.18, \
     then run the tests with SCENEQL_PYTHON=/tmp/rustac-venv/bin/python \
     (scripts/test.sh uses $HOME/.cache/sceneql/venv-test: \
     $HOME/.cache/sceneql/venv-test/bin/pip install rustac==0.9.18)";

/// A `rustac serve` child process, killed when dropped (also when a test fails).
struct RustacServer {
    child: std::process::Child,
    url: String,
}

impl Drop for RustacServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `rustac serve` on a free port with the Landsat collection and items,
/// and wait until it answers.
fn start_rustac() -> RustacServer {
    let python = std::env::var_os("SCENEQL_PYTHON")
        .unwrap_or_else(|| panic!("SCENEQL_PYTHON is not set; {RUSTAC_HOWTO}"));
    // The venv's bin directory, without resolving the python symlink.
    let rustac = Path::new(&python)
        .parent()
        .map(|d| d.join("rustac"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no rustac next to SCENEQL_PYTHON={}; {RUSTAC_HOWTO}",
                Path::new(&python).display()
            )
        });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = std::process::Command::new(&rustac)
        .arg("serve")
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg(fixtures().join("api/collection.json"))
        .arg(fixtures().join("landsat-c2l2-sr.json"))
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {RUSTAC_HOWTO}", rustac.display()));
    let mut server = RustacServer {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    };
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("rustac serve exited ({status}): {text}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            // Unwinding drops `server`, which kills the child.
            panic!("rustac serve did not answer on port {port} within 60 s: {text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test]
async fn stac_api_search_pages_through_rustac_serve() {
    let server = start_rustac();
    // Unbounded searches are refused.
    let err = load(&server.url, &StacOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StacError::UnboundedSearch { .. }), "{err}");
    assert!(err.to_string().contains(&server.url), "{err}");

    // One item per page: three pages, through POST `next` links.
    let opts = StacOptions {
        collections: Some(vec!["landsat-c2l2-sr".into()]),
        datetime: Some("2023-06-01/2023-06-30".into()),
        page_size: Some(1),
        ..Default::default()
    };
    let root_url = Url::parse(&server.url).unwrap();
    let fetcher = fetch::Fetcher::new();
    let root: Value = serde_json::from_slice(&fetcher.get(&root_url).await.unwrap()).unwrap();
    assert!(search::is_api_root(&root));
    let result = search::search(&fetcher, &root_url, &root, &opts)
        .await
        .unwrap();
    assert_eq!(result.pages, 3);
    let mut ids: Vec<&str> = result.items.iter().map(|r| r.item.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [LS[0], LS[2], LS[1]]);

    // The same through `load`: every item once, as scenes.
    let scenes = load(&server.url, &opts).await.unwrap();
    let ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, LS);
    let local = load(&fixture("landsat-c2l2-sr.json"), &StacOptions::default())
        .await
        .unwrap();
    assert_eq!(scenes, local);

    // bbox (lon/lat) and datetime narrow the search; max_items stops paging.
    let opts = StacOptions {
        bbox: Some([-120.0, 36.0, -119.5, 36.5]),
        datetime: Some("2023-06-15T00:00:00Z/..".into()),
        page_size: Some(1),
        ..Default::default()
    };
    let scenes = load(&server.url, &opts).await.unwrap();
    let ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [LS[1], LS[2]]);
    let first = load(
        &server.url,
        &StacOptions {
            max_items: Some(1),
            ..opts.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let none = load(
        &server.url,
        &StacOptions {
            bbox: Some([10.0, 45.0, 11.0, 46.0]),
            ..opts
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(none, StacError::NoItems { .. }), "{none}");
    drop(server);
}

/// A small HTTP/1.1 server of the fixtures on loopback, in a thread: answers
/// the first `fail_first` requests with 503, then files (404 when missing).
/// Stops when dropped.
struct FixtureServer {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_fixtures(fail_first: usize) -> FixtureServer {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop2, requests2) = (stop.clone(), requests.clone());
    let thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            let mut sock = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
            };
            let _ = sock.set_nonblocking(false);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let n = requests2.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(&head);
            let path = text.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or_default();
            let (status, body) = if n < fail_first {
                ("503 Service Unavailable", b"SlowDown".to_vec())
            } else {
                match std::fs::read(fixtures().join(path.trim_start_matches('/'))) {
                    Ok(b) => ("200 OK", b),
                    Err(_) => ("404 Not Found", b"no such document".to_vec()),
                }
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes());
            let _ = sock.write_all(&body);
        }
    });
    FixtureServer {
        url,
        stop,
        requests,
        thread: Some(thread),
    }
}

#[tokio::test]
async fn static_catalog_over_http_with_retries() {
    // Two 503s first: retried.
    let server = serve_fixtures(2);
    let scenes = load(
        &format!("{}catalog/catalog.json", server.url),
        &StacOptions::default(),
    )
    .await
    .unwrap();
    let ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, LS);
    // catalog + collection + 3 items, plus the 2 failed tries.
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 7);
    // Relative asset hrefs resolve against each item's URL.
    assert_eq!(
        scenes[0].assets["red"].href,
        format!(
            "{}catalog/landsat-c2l2-sr/{}/LC08_L2SP_042034_20230612_20230622_02_T1_SR_B4.TIF",
            server.url, LS[0]
        )
    );
    // NDJSON by extension over HTTP.
    let ndjson = load(
        &format!("{}landsat-c2l2-sr.ndjson", server.url),
        &StacOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ndjson.len(), 3);
    // A missing document: HTTP 404, named without its query string.
    let err = load(
        &format!("{}nope.json?token=secret", server.url),
        &StacOptions::default(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StacError::Http { status: 404, .. }), "{msg}");
    assert!(
        msg.contains(&format!("{}nope.json?...", server.url)),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
    assert!(msg.contains("no such document"), "{msg}");
}
