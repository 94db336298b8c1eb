//! Scene tables over STAC: item collections in the real shapes of the USGS
//! Landsat Collection 2 Level-2 items (asset keys `red`, `nir08`,
//! `qa_pixel`, ..., `eo:bands`, `raster:bands` with scale 2.75e-05 and
//! offset -0.2, `proj:*`), written here for a generated archive whose files
//! sit in the tests' S3 server, and a STAC API (`rustac serve`) holding the
//! same items: the per-pixel trends equal the folder layout's, and creating
//! the table reads one header per asset key, not one per file.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float32Type, UInt16Type};
use serde_json::{Value, json};

use super::common::*;
use super::stores::{TREND, archive_in_s3, free_port, options_for, reads, sorted_rows, venv_bin};

/// USGS-shaped items for the generated archive in `archive`, their assets
/// at `{prefix}/...` (e.g. `s3://bucket/a`).
fn landsat_items(archive: &Path, prefix: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut scenes: Vec<_> = std::fs::read_dir(archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scenes.sort();
    for scene in scenes {
        let id = scene.file_name().unwrap().to_string_lossy().to_string();
        let date = &id[17..25];
        let datetime = format!("{}-{}-{}T00:00:00Z", &date[..4], &date[4..6], &date[6..8]);
        let ds = gdal::Dataset::open(scene.join(format!("{id}_SR_B4.TIF"))).unwrap();
        let gt = ds.geo_transform().unwrap();
        let (w, h) = ds.raster_size();
        let epsg: u32 = ds.spatial_ref().unwrap().auth_code().unwrap() as u32;
        let href = |band: &str| format!("{prefix}/{id}/{id}_{band}.TIF");
        let reflectance = |band: &str, name: &str, common: &str| {
            json!({
                "href": href(band),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "reflectance"],
                "eo:bands": [{"name": name, "common_name": common}],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 2.75e-05, "offset": -0.2, "unit": "1"}],
                "alternate": {"s3": {"href": href(band), "storage:platform": "AWS", "storage:requester_pays": true}},
            })
        };
        items.push(json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/raster/v1.0.0/schema.json",
                "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v1.0.0/schema.json"
            ],
            "id": id,
            "collection": "landsat-c2l2-sr",
            "bbox": [-122.0, 37.0, -121.9, 37.1],
            "geometry": {"type": "Polygon", "coordinates": [[[-122.0, 37.0], [-121.9, 37.0], [-121.9, 37.1], [-122.0, 37.1], [-122.0, 37.0]]]},
            "properties": {
                "datetime": datetime,
                "platform": "LANDSAT_8",
                "instruments": ["OLI", "TIRS"],
                "eo:cloud_cover": 12.5,
                "landsat:wrs_path": "044",
                "landsat:wrs_row": "034",
                "proj:epsg": epsg,
                "proj:shape": [h, w],
                "proj:transform": [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]],
            },
            "links": [],
            "assets": {
                "thumbnail": {"href": format!("https://landsatlook.usgs.gov/data/{id}_thumb_small.jpeg"), "type": "image/jpeg", "roles": ["thumbnail"]},
                "red": reflectance("SR_B4", "B4", "red"),
                "nir08": reflectance("SR_B5", "B5", "nir08"),
                "qa_pixel": {
                    "href": href("QA_PIXEL"),
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
                    "raster:bands": [{"nodata": 1, "data_type": "uint16", "unit": "bit index"}],
                },
                "MTL.json": {"href": format!("https://landsatlook.usgs.gov/data/{id}_MTL.json"), "type": "application/json", "roles": ["metadata"]},
            },
        }));
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landsat_items_give_the_same_trends_as_the_folder_and_open_one_file_per_key() {
    let (s3, d) = archive_in_s3("stacls", 64, 6);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let items = landsat_items(&d.path().join("archive"), "s3://stacls/a");
    let n_items = items.len();
    let collection = json!({"type": "FeatureCollection", "features": items});
    let doc = d.path().join("items.json");
    std::fs::write(&doc, serde_json::to_string_pretty(&collection).unwrap()).unwrap();

    let stac = ctx();
    run_statements(
        &stac,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}' {}",
            doc.display(),
            options_for(&proxy.endpoint)
        ),
    )
    .await;
    // The items give every grid: one file per asset key is opened.
    let (headers, others) = reads(&proxy.log());
    assert_eq!(headers.len(), 3, "{headers:#?}");
    assert!(others.is_empty(), "{others:#?}");
    let columns = query(&stac, "SELECT * FROM obs LIMIT 1").await;
    let schema = columns[0].schema();
    for c in ["red", "nir", "qa", "nir08", "qa_pixel", "scene", "sensor"] {
        assert!(
            schema.field_with_name(c).is_ok(),
            "no column {c}: {schema:?}"
        );
    }
    assert!(schema.field_with_name("thumbnail").is_err());
    let scenes = query(
        &stac,
        "SELECT count(DISTINCT scene) AS n, min(sensor) AS s FROM obs",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&scenes)
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("| {n_items} ")) && text.contains("LC08"),
        "{text}"
    );
    // The items' eo:cloud_cover, per scene.
    let covers = query(&stac, "SELECT DISTINCT cloud_cover FROM obs").await;
    assert_eq!(
        covers[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .values()
            .to_vec(),
        vec![12.5]
    );

    let folder = obs_table(&d.path().join("archive")).await;
    let want = sorted_rows(&folder, TREND).await;
    assert!(want.len() > 1000, "{} rows", want.len());
    assert_eq!(sorted_rows(&stac, TREND).await, want);
}

/// Items whose assets are plain `http://` URLs (the tests' S3 server read
/// anonymously, path-style, behind the counting proxy): the tiled bands
/// are fetched by sceneql (ranged GETs), the QA files, stripped, by GDAL
/// through `/vsicurl/`; the trends equal the folder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_with_http_hrefs_give_the_folder_trends() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 48, 5, 16, Some(11));
    let archive = d.path().join("archive");
    // The QA files stripped: GDAL reads them.
    strip_files(&archive, "_QA_PIXEL.TIF");
    let s3 = super::stores::S3Server::start();
    s3.s3py(&["mkbucket", "web"]);
    s3.s3py(&["upload-public", "web", "a", archive.to_str().unwrap()]);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let items = landsat_items(&archive, &format!("{}/web/a", proxy.endpoint));
    let doc = d.path().join("items.json");
    std::fs::write(
        &doc,
        json!({"type": "FeatureCollection", "features": items}).to_string(),
    )
    .unwrap();
    // No credentials, nor any store setting: the URLs are all it takes.
    let web = ctx();
    run_statements(
        &web,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'",
            doc.display()
        ),
    )
    .await;
    let got = sorted_rows(&web, TREND).await;
    let folder = obs_table(&archive).await;
    let want = sorted_rows(&folder, TREND).await;
    assert!(want.len() > 500, "{} rows", want.len());
    assert_eq!(got, want);
    let log = proxy.log();
    let ranged = |suffix: &str| {
        log.iter()
            .filter(|l| l.method == "GET" && l.range.is_some() && l.path.ends_with(suffix))
            .count()
    };
    assert!(
        ranged("_SR_B4.TIF") > 0 && ranged("_SR_B5.TIF") > 0,
        "{log:#?}"
    );
    assert!(
        ranged("_QA_PIXEL.TIF") > 0,
        "GDAL read no QA file: {log:#?}"
    );
    assert!(log.iter().all(|l| l.status < 400), "{log:#?}");
}

/// Earth Search `sentinel-2-c1-l2a`-shaped items (STAC 1.1 `bands[]` with
/// `raster:scale` / `raster:offset`, per-asset `proj:shape` and
/// `proj:transform` with the item's `proj:code`, a 20 m SCL beside 10 m
/// bands, `earthsearch:boa_offset_applied`), their COGs in the tests' S3
/// server: the series equal the values written (red and nir as stored, SCL
/// by nearest neighbour onto the 10 m grid), the same as the Sentinel-2
/// folder layout's, and creating the table reads one header per asset key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earth_search_sentinel2_items_give_the_values_written_and_the_folder_series() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("s2");
    let (x0, y0, epsg) = (499_980.0, 5_600_040.0, 32633);
    let (w, h) = (40, 24);
    // Three dates; the second scene's footprint 20 m east of the others.
    let dates = ["20230605", "20230615", "20230625"];
    let red = |k: usize, r: usize, c: usize| (1000 + 100 * k + 7 * r + 3 * c) as u16;
    let nir = |k: usize, r: usize, c: usize| (3000 + 50 * k + 5 * r + 11 * c) as u16;
    // SCL per 20 m pixel: vegetation (4), cloud (9) or cloud shadow (3).
    let scl = |k: usize, r: usize, c: usize| [4u16, 4, 9, 3][(k + r + 2 * c) % 4];
    let shift = |k: usize| if k == 1 { 20.0 } else { 0.0 };
    let mut items = Vec::new();
    for (k, date) in dates.iter().enumerate() {
        let folder = root.join(format!("S2A_33UWP_{date}_0_L2A"));
        let origin = (x0 + shift(k), y0);
        let grid = |f: &dyn Fn(usize, usize) -> u16, w: usize, h: usize| -> Vec<u16> {
            (0..h)
                .flat_map(|r| (0..w).map(move |c| (r, c)))
                .map(|(r, c)| f(r, c))
                .collect()
        };
        let write = |name: &str, px: f64, size: (usize, usize), data: Vec<u16>| {
            sceneql::sample::write_geotiff(
                &folder.join(name),
                epsg,
                origin,
                px,
                size,
                data,
                Some(0.0),
                16,
            )
            .unwrap();
        };
        write("B04.tif", 10.0, (w, h), grid(&|r, c| red(k, r, c), w, h));
        write("B08.tif", 10.0, (w, h), grid(&|r, c| nir(k, r, c), w, h));
        write(
            "SCL.tif",
            20.0,
            (w / 2, h / 2),
            grid(&|r, c| scl(k, r, c), w / 2, h / 2),
        );
        let id = format!("S2A_T33UWP_{date}T100031_L2A");
        let href = |f: &str| format!("s3://sentinel/a/S2A_33UWP_{date}_0_L2A/{f}");
        let grid_of = |px: f64, (w, h): (usize, usize)| json!({"proj:shape": [h, w], "proj:transform": [px, 0.0, origin.0, 0.0, -px, origin.1, 0.0, 0.0, 1.0]});
        let reflectance = |f: &str, name: &str, common: &str| {
            let mut a = json!({
                "href": href(f),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "gsd": 10,
                "bands": [{"name": name, "eo:common_name": common, "nodata": 0, "data_type": "uint16",
                           "raster:spatial_resolution": 10, "raster:scale": 0.0001, "raster:offset": -0.1}],
                "roles": ["data", "reflectance"],
            });
            a.as_object_mut()
                .unwrap()
                .extend(grid_of(10.0, (w, h)).as_object().unwrap().clone());
            a
        };
        let mut scl_asset = json!({
            "href": href("SCL.tif"),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "bands": [{"name": "SCL", "nodata": 0, "data_type": "uint16", "raster:spatial_resolution": 20}],
            "roles": ["data"],
        });
        scl_asset
            .as_object_mut()
            .unwrap()
            .extend(grid_of(20.0, (w / 2, h / 2)).as_object().unwrap().clone());
        items.push(json!({
            "type": "Feature",
            "stac_version": "1.1.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
                "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
            ],
            "id": id,
            "collection": "sentinel-2-c1-l2a",
            "bbox": [15.0, 50.5, 15.1, 50.6],
            "geometry": {"type": "Polygon", "coordinates": [[[15.0, 50.5], [15.1, 50.5], [15.1, 50.6], [15.0, 50.6], [15.0, 50.5]]]},
            "properties": {
                "datetime": format!("{}-{}-{}T10:10:17.024000Z", &date[..4], &date[4..6], &date[6..]),
                "platform": "sentinel-2a",
                "constellation": "sentinel-2",
                "instruments": ["msi"],
                "eo:cloud_cover": 3.2,
                "proj:code": format!("EPSG:{epsg}"),
                "mgrs:utm_zone": 33, "mgrs:latitude_band": "U", "mgrs:grid_square": "WP",
                "earthsearch:boa_offset_applied": true,
            },
            "links": [],
            "assets": {
                "red": reflectance("B04.tif", "B04", "red"),
                "nir": reflectance("B08.tif", "B08", "nir"),
                "scl": scl_asset,
                "visual": {"href": href("TCI.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["visual"]},
                "thumbnail": {"href": href("thumbnail.jpg"), "type": "image/jpeg", "roles": ["thumbnail"]},
            },
        }));
    }
    let s3 = super::stores::S3Server::start();
    s3.s3py(&["mkbucket", "sentinel"]);
    s3.s3py(&["upload", "sentinel", "a", root.to_str().unwrap()]);
    let proxy = super::proxy::Proxy::start(&s3.endpoint);
    let doc = d.path().join("items.json");
    std::fs::write(
        &doc,
        json!({"type": "FeatureCollection", "features": items}).to_string(),
    )
    .unwrap();
    let stac = ctx();
    run_statements(
        &stac,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}' {}",
            doc.display(),
            options_for(&proxy.endpoint)
        ),
    )
    .await;
    let (headers, others) = reads(&proxy.log());
    // The items give every grid: one file per asset key is opened (for
    // its sample type and tiling), whatever the number of items.
    assert_eq!(headers.len(), 3, "{headers:#?}");
    assert!(others.is_empty(), "{others:#?}");
    // (Dates only: the folder layout's times are its names' dates.)
    let series = "SELECT CAST(CAST(time AS DATE) AS VARCHAR) AS day, row, col, red, nir, qa FROM obs ORDER BY day, row, col";
    let got = query(&stac, series).await;
    // The grid: the union of the footprints (the shifted scene reaches 2
    // columns further east), 10 m.
    let rows: usize = got.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        rows,
        3 * w * h,
        "one row per pixel of each scene's footprint"
    );
    for b in &got {
        let days = strings(b.column(0));
        for (i, day) in days.iter().enumerate() {
            let k = (0..3).find(|&k| day.ends_with(&dates[k][6..])).unwrap();
            let (r, c) = (
                b.column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .value(i) as usize,
                b.column(2)
                    .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .value(i) as usize,
            );
            // Grid column -> the scene's own column.
            let c = c - if k == 1 { 2 } else { 0 };
            let v = |j: usize| b.column(j).as_primitive::<UInt16Type>().value(i);
            assert_eq!(v(3), red(k, r, c), "red, scene {k} ({r}, {c})");
            assert_eq!(v(4), nir(k, r, c), "nir, scene {k} ({r}, {c})");
            assert_eq!(v(5), scl(k, r / 2, c / 2), "qa (SCL), scene {k} ({r}, {c})");
        }
    }
    let sensors = query(&stac, "SELECT DISTINCT CAST(sensor AS VARCHAR) FROM obs").await;
    assert_eq!(strings(sensors[0].column(0)), vec!["S2A"]);
    let folder = obs_table(&root).await;
    assert_eq!(
        sorted_rows(&stac, series).await,
        sorted_rows(&folder, series).await
    );
}

/// A `rustac serve` STAC API on a free loopback port, killed when dropped.
struct StacApi {
    child: Child,
    url: String,
}

impl Drop for StacApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StacApi {
    fn start(collection: &Path, items: &Path) -> Self {
        let port = free_port();
        let child = Command::new(venv_bin("rustac"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg(collection)
            .arg(items)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rustac serve");
        let api = StacApi {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rustac serve did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        api
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stac_api_search_over_three_pages_gives_the_folder_trends() {
    let (s3, d) = archive_in_s3("stacapi", 48, 7);
    let items = landsat_items(&d.path().join("archive"), "s3://stacapi/a");
    let collection = json!({
        "type": "Collection", "stac_version": "1.0.0", "id": "landsat-c2l2-sr",
        "description": "generated", "license": "PDDL-1.0", "links": [],
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                   "temporal": {"interval": [["2000-01-01T00:00:00Z", null]]}},
    });
    let (cpath, ipath) = (
        d.path().join("collection.json"),
        d.path().join("items.json"),
    );
    std::fs::write(&cpath, collection.to_string()).unwrap();
    std::fs::write(
        &ipath,
        json!({"type": "FeatureCollection", "features": items}).to_string(),
    )
    .unwrap();
    let api = StacApi::start(&cpath, &ipath);
    let ctx = ctx();
    // Without bbox or datetime the search is refused.
    let refused = sceneql::run::run_sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE everything STORED AS SCENES LOCATION '{}' OPTIONS ('collections' 'landsat-c2l2-sr')",
            api.url
        ),
        &Default::default(),
    )
    .await
    .err()
    .map(|e| sceneql::run::user_message(&e))
    .expect("an unbounded search is refused");
    assert!(
        refused.contains("datetime") && refused.contains("bbox"),
        "{refused}"
    );
    // Three items per page: seven items take three pages.
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}' OPTIONS ('collections' 'landsat-c2l2-sr', 'datetime' '2000-01-01T00:00:00Z/2100-01-01T00:00:00Z', 'page_size' '3', {})",
            api.url,
            options_for(&s3.endpoint)
                .trim_start_matches("OPTIONS (")
                .trim_end_matches(')')
        ),
    )
    .await;
    let folder = obs_table(&d.path().join("archive")).await;
    let want = sorted_rows(&folder, TREND).await;
    assert_eq!(sorted_rows(&ctx, TREND).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_scale_gives_physical_values_from_the_items_scale_and_offset() {
    let (s3, d) = archive_in_s3("stacscale", 32, 3);
    let items = landsat_items(&d.path().join("archive"), "s3://stacscale/a");
    let doc = d.path().join("items.json");
    std::fs::write(
        &doc,
        json!({"type": "FeatureCollection", "features": items}).to_string(),
    )
    .unwrap();
    let options = options_for(&s3.endpoint);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE raw STORED AS SCENES LOCATION '{0}' {1};
             CREATE EXTERNAL TABLE phys STORED AS SCENES LOCATION '{0}' {2}",
            doc.display(),
            options,
            options.replace("OPTIONS (", "OPTIONS ('apply_scale' 'true', ")
        ),
    )
    .await;
    let got = query(
        &ctx,
        "SELECT r.red AS stored, p.red AS physical, p.qa AS qa, r.qa AS qa_stored
         FROM raw r JOIN phys p ON r.pixel = p.pixel AND r.scene = p.scene
         WHERE r.red IS NOT NULL",
    )
    .await;
    let mut n = 0;
    for b in &got {
        assert_eq!(
            b.schema().field_with_name("physical").unwrap().data_type(),
            &datafusion::arrow::datatypes::DataType::Float32
        );
        let stored = b.column(0).as_primitive::<UInt16Type>();
        let physical = b.column(1).as_primitive::<Float32Type>();
        // qa has no scale: still its stored type and values.
        assert_eq!(b.column(2).data_type(), b.column(3).data_type());
        for i in 0..b.num_rows() {
            let want = stored.value(i) as f64 * 2.75e-05 - 0.2;
            assert!(
                (physical.value(i) as f64 - want).abs() < 1e-6,
                "{} -> {} (want {want})",
                stored.value(i),
                physical.value(i)
            );
            n += 1;
        }
    }
    assert!(n > 1000, "{n} values compared");
}
