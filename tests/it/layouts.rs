//! Layouts beyond Landsat: a user regex with a year + day-of-year date,
//! multi-band files with named bands, and Sentinel-2 L2A folders whose 20 m
//! bands go onto the 10 m grid by nearest neighbour.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int32Type, Int64Type, UInt16Type};

use super::common::*;

fn write(
    path: &std::path::Path,
    epsg: u32,
    origin: (f64, f64),
    px: f64,
    size: (usize, usize),
    data: Vec<u16>,
) {
    sceneql::sample::write_geotiff(path, epsg, origin, px, size, data, Some(0.0), 16).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_pattern_with_day_of_year_dates() {
    let d = tempfile::tempdir().unwrap();
    for (day, v) in [("2020005", 10u16), ("2020036", 20)] {
        for (band, k) in [("red", 1u16), ("nir", 2)] {
            write(
                &d.path().join(format!("site_{day}_{band}.tif")),
                32633,
                (300_000.0, 5_000_000.0),
                10.0,
                (4, 3),
                vec![v * k; 12],
            );
        }
    }
    std::fs::write(d.path().join("notes.txt"), "not a raster").unwrap();
    let ctx = ctx();
    let sql = format!(
        "SELECT CAST(time AS VARCHAR) AS t, CAST(scene AS VARCHAR) AS s, CAST(sensor AS VARCHAR) AS sensor, count(*) AS n, sum(red) AS red, sum(nir) AS nir \
         FROM scenes('{}', 'pattern', '^site_(?P<date>\\d{{7}})_(?P<band>\\w+)\\.tif$', 'date_format', '%Y%j') GROUP BY 1, 2, 3 ORDER BY 1",
        location(d.path())
    );
    let b = query(&ctx, &sql).await;
    assert_eq!(
        strings(b[0].column(0)),
        ["2020-01-05T00:00:00", "2020-02-05T00:00:00"]
    );
    assert_eq!(
        strings(b[0].column(1)),
        ["2020005", "2020036"],
        "scene defaults to the date text"
    );
    assert_eq!(strings(b[0].column(2)), ["unknown", "unknown"]);
    assert_eq!(
        b[0].column(3).as_primitive::<Int64Type>().values(),
        &[12, 12]
    );
    assert_eq!(
        b[0].column(4)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .values(),
        &[120, 240]
    );
    assert_eq!(
        b[0].column(5)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .values(),
        &[240, 480]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_band_files_with_named_bands_and_common_names() {
    let d = tempfile::tempdir().unwrap();
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    for (i, date) in ["20210101", "20210201"].iter().enumerate() {
        let path = d.path().join(format!("stack_{date}.tif"));
        let mut ds = driver
            .create_with_band_type::<u16, _>(&path, 3, 2, 3)
            .unwrap();
        ds.set_geo_transform(&[0.0, 1.0, 0.0, 6.0, 0.0, -1.0])
            .unwrap();
        ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(3857).unwrap())
            .unwrap();
        for b in 1..=3 {
            let data: Vec<u16> = (0..6).map(|p| (100 * b + 10 * i + p) as u16).collect();
            ds.rasterband(b)
                .unwrap()
                .write((0, 0), (3, 2), &mut gdal::raster::Buffer::new((3, 2), data))
                .unwrap();
        }
    }
    let ctx = ctx();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE s STORED AS SCENES LOCATION '{}' OPTIONS ('pattern' 'stack_(?P<date>\\d{{8}})\\.tif', 'band_names' 'green,red,nir', 'common_names' 'red=red,nir=nir')",
            location(d.path())
        ),
    )
    .await;
    let b = query(&ctx, "SELECT row, col, green, red, nir FROM s WHERE time = TIMESTAMP '2021-02-01' ORDER BY pixel").await;
    let red = b[0].column(3).as_primitive::<UInt16Type>();
    assert_eq!(b[0].num_rows(), 6);
    assert_eq!(
        b[0].column(1).as_primitive::<Int32Type>().values(),
        &[0, 1, 2, 0, 1, 2]
    );
    assert_eq!(
        b[0].column(2).as_primitive::<UInt16Type>().values(),
        &[110, 111, 112, 113, 114, 115]
    );
    assert_eq!(red.values(), &[210, 211, 212, 213, 214, 215]);
    assert_eq!(
        b[0].column(4).as_primitive::<UInt16Type>().values(),
        &[310, 311, 312, 313, 314, 315]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel2_20m_bands_go_onto_the_10m_grid_by_nearest_neighbour() {
    let d = tempfile::tempdir().unwrap();
    let folder = d.path().join("S2A_10SEG_20200105_0_L2A");
    let (x0, y0) = (600_000.0, 4_200_000.0);
    write(
        &folder.join("B04.tif"),
        32610,
        (x0, y0),
        10.0,
        (6, 4),
        (1..=24).collect(),
    );
    write(
        &folder.join("B11.tif"),
        32610,
        (x0, y0),
        20.0,
        (3, 2),
        vec![7, 8, 9, 17, 18, 19],
    );
    write(
        &folder.join("SCL.tif"),
        32610,
        (x0, y0),
        20.0,
        (3, 2),
        vec![4, 4, 9, 4, 5, 6],
    );
    let ctx = ctx();
    let sql = format!(
        "SELECT row, col, b04, red, b11, swir1, qa, CAST(sensor AS VARCHAR) FROM scenes('{}') ORDER BY pixel",
        location(d.path())
    );
    let b = query(&ctx, &sql).await;
    assert_eq!(
        b.iter().map(|b| b.num_rows()).sum::<usize>(),
        24,
        "the grid is the 10 m one"
    );
    let b = &b[0];
    for i in 0..24 {
        let (r, c) = (
            b.column(0).as_primitive::<Int32Type>().value(i) as usize,
            b.column(1).as_primitive::<Int32Type>().value(i) as usize,
        );
        assert_eq!(
            b.column(2).as_primitive::<UInt16Type>().value(i) as usize,
            1 + r * 6 + c
        );
        assert_eq!(
            b.column(3).as_primitive::<UInt16Type>().value(i),
            b.column(2).as_primitive::<UInt16Type>().value(i),
            "red is b04"
        );
        let want = [7, 8, 9, 17, 18, 19][(r / 2) * 3 + c / 2];
        assert_eq!(
            b.column(4).as_primitive::<UInt16Type>().value(i),
            want,
            "b11 at ({r}, {c})"
        );
        assert_eq!(
            b.column(5).as_primitive::<UInt16Type>().value(i),
            want,
            "swir1 is b11"
        );
        assert_eq!(
            b.column(6).as_primitive::<UInt16Type>().value(i),
            [4, 4, 9, 4, 5, 6][(r / 2) * 3 + c / 2],
            "qa is scl"
        );
    }
    assert_eq!(strings(b.column(7))[0], "S2A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_partitioned_by_writes_one_folder_per_value() {
    let d = tempfile::tempdir().unwrap();
    let spec = sceneql::sample::SampleSpec {
        size: 32,
        dates: 3,
        tile: 16,
        seed: 2,
    };
    sceneql::sample::generate(&d.path().join("a"), &spec).unwrap();
    let ctx = ctx();
    let out = d.path().join("by_year");
    let outputs = sceneql::run::run_sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'; \
             COPY (SELECT pixel, sr_b4, CAST(date_part('year', time) AS INT) AS year FROM obs) TO '{}/' STORED AS PARQUET PARTITIONED BY (year)",
            location(&d.path().join("a")),
            out.display()
        ),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(outputs[1].written.as_deref(), Some(out.to_str().unwrap()));
    let mut years: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    years.sort();
    assert_eq!(years.len(), 3, "{years:?}");
    assert!(years.iter().all(|y| y.starts_with("year=20")), "{years:?}");
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landsat_metadata_files_give_scene_center_times() {
    let d = tempfile::tempdir().unwrap();
    let spec = sceneql::sample::SampleSpec {
        size: 16,
        dates: 3,
        tile: 16,
        seed: 3,
    };
    sceneql::sample::generate(d.path(), &spec).unwrap();
    let mut ids: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    ids.sort();
    // MTL.txt (Collection 1 and 2), MTL.xml (Collection 2); the third has none.
    let folder = |id: &str| d.path().join(id);
    std::fs::write(
        folder(&ids[0]).join(format!("{}_MTL.txt", ids[0])),
        "GROUP = L1_METADATA_FILE\n  GROUP = IMAGE_ATTRIBUTES\n    SCENE_CENTER_TIME = \"18:31:14.6410570Z\"\n",
    )
    .unwrap();
    std::fs::write(
        folder(&ids[1]).join(format!("{}_MTL.xml", ids[1])),
        "<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SCENE_CENTER_TIME>09:05:01.50Z</SCENE_CENTER_TIME></IMAGE_ATTRIBUTES></LANDSAT_METADATA_FILE>",
    )
    .unwrap();
    let batches = query(
        &ctx(),
        &format!(
            "SELECT DISTINCT CAST(scene AS VARCHAR) AS s, CAST(time AS VARCHAR) AS t FROM scenes('{}') ORDER BY s",
            location(d.path())
        ),
    )
    .await;
    let b = &batches[0];
    let (scenes, times) = (strings(b.column(0)), strings(b.column(1)));
    assert_eq!(scenes, ids);
    // The date is the product id's 4th field; the time of day comes from the MTL.
    let date = |id: &str| format!("{}-{}-{}", &id[17..21], &id[21..23], &id[23..25]);
    assert_eq!(times[0], format!("{}T18:31:14.641057", date(&ids[0])));
    assert_eq!(times[1], format!("{}T09:05:01.500", date(&ids[1])));
    assert_eq!(times[2], format!("{}T00:00:00", date(&ids[2])));
}

/// Side-car files (GDAL's and QGIS's `.aux.xml`, overviews, masks, text)
/// beside the rasters are skipped, by the built-in layouts and by a custom
/// pattern, which matches whole file names; a pattern's `sensor` group sets
/// `sensor`, and a group of another name is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_cars_are_skipped_and_patterns_match_whole_names() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 16, 3, 16, Some(2));
    let archive = d.path().join("archive");
    let mut rasters = 0;
    for scene in std::fs::read_dir(&archive).unwrap() {
        for f in std::fs::read_dir(scene.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            rasters += 1;
            let name = f.to_string_lossy().to_string();
            std::fs::write(format!("{name}.aux.xml"), "<PAMDataset/>").unwrap();
            std::fs::write(format!("{name}.ovr"), "not a raster").unwrap();
        }
    }
    assert_eq!(rasters, 9);
    let location = location(&archive);
    let summary = "SELECT count(DISTINCT scene) AS scenes, count(DISTINCT time) AS dates, \
                   min(CAST(sensor AS VARCHAR)) AS sensor FROM obs";
    for options in [
        String::new(),
        // The extension is part of the pattern: whole names are matched.
        r"OPTIONS ('pattern' '(?P<sensor>L[CET]0\d)_.*_(?P<date>\d{8})_\d{8}_02_T1_(?P<band>\w+)\.TIF')".to_string(),
    ] {
        let ctx = ctx();
        run_statements(
            &ctx,
            &format!("CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' {options}"),
        )
        .await;
        let b = query(&ctx, summary).await;
        assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 3, "{options}");
        assert_eq!(b[0].column(1).as_primitive::<Int64Type>().value(0), 3, "{options}");
        assert_eq!(strings(b[0].column(2))[0], "LC08", "{options}");
    }
    // Without the extension the pattern matches no file (it used to match
    // the side cars too).
    let ctx = ctx();
    let err = sceneql::run::run_sql(
        &ctx,
        &format!(
            r"CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' OPTIONS ('pattern' '.*_(?P<date>\d{{8}})_\d{{8}}_02_T1_(?P<band>\w+)')"
        ),
        &Default::default(),
    )
    .await
    .err()
    .map(|e| sceneql::run::user_message(&e))
    .expect("a pattern matching no whole name finds no scenes");
    assert!(err.contains("no scenes found"), "{err}");
    let err = sceneql::run::run_sql(
        &ctx,
        &format!(
            r"CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' OPTIONS ('pattern' '(?P<platform>LC08)_.*_(?P<date>\d{{8}})_\d{{8}}_02_T1_(?P<band>\w+)\.TIF')"
        ),
        &Default::default(),
    )
    .await
    .err()
    .map(|e| sceneql::run::user_message(&e))
    .expect("an unknown group is an error");
    assert!(err.contains("unknown group '(?P<platform>...)'"), "{err}");
}

/// Annual and monthly products (`date_format` `%Y`, `%Y%m`) are dated on
/// their first day; a full timestamp in the name keeps its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annual_monthly_and_timestamped_file_names() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "annual",
            "ndvi_2015.tif",
            r"ndvi_(?P<date>\d{4})\.tif",
            "%Y",
            "2015-01-01T00:00:00",
        ),
        (
            "monthly",
            "ndvi_201507.tif",
            r"ndvi_(?P<date>\d{6})\.tif",
            "%Y%m",
            "2015-07-01T00:00:00",
        ),
        (
            "stamped",
            "ndvi_20150704T103021.tif",
            r"ndvi_(?P<date>\d{8}T\d{6})\.tif",
            "%Y%m%dT%H%M%S",
            "2015-07-04T10:30:21",
        ),
    ];
    for (folder, file, pattern, format, want) in cases {
        let dir = d.path().join(folder);
        write(
            &dir.join(file),
            32610,
            (600_000.0, 4_200_000.0),
            30.0,
            (2, 2),
            vec![1, 2, 3, 4],
        );
        let ctx = ctx();
        let b = query(
            &ctx,
            &format!(
                "SELECT DISTINCT CAST(time AS VARCHAR) FROM scenes('{}', 'pattern', '{pattern}', 'date_format', '{format}')",
                location(&dir)
            ),
        )
        .await;
        assert_eq!(strings(b[0].column(0)), vec![want.to_string()], "{folder}");
    }
}

/// The README's glob, `'archive/2020*/'`, reads the folders whose names
/// start with 2020 (a trailing `/` once matched nothing); a glob matching
/// nothing says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_of_folders_reads_those_folders() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "src", 16, 4, 16, Some(3));
    let mut scenes: Vec<_> = std::fs::read_dir(d.path().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scenes.sort();
    // Two scenes under 2020-*, one under 2019-a, one under 2021-a.
    let archive = d.path().join("archive");
    for (scene, folder) in scenes.iter().zip(["2019-a", "2020-a", "2020-b", "2021-a"]) {
        let to = archive.join(folder).join(scene.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(scene).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let ctx = ctx();
    for (glob, want) in [("2020*/", 2), ("2020*", 2), ("20[12][01]-a/", 2), ("*/", 4)] {
        let b = query(
            &ctx,
            &format!(
                "SELECT count(DISTINCT scene) FROM scenes('{}/{glob}')",
                archive.display()
            ),
        )
        .await;
        assert_eq!(
            b[0].column(0).as_primitive::<Int64Type>().value(0),
            want,
            "{glob}"
        );
    }
    let err = ctx
        .sql(&format!(
            "SELECT count(*) FROM scenes('{}/2030*/')",
            archive.display()
        ))
        .await
        .err()
        .map(|e| sceneql::run::user_message(&e))
        .expect("a glob matching nothing is an error");
    assert!(err.contains("the glob matched no file"), "{err}");
}

/// A Landsat Level-1 scene's 15 m panchromatic band 8 does not set the
/// grid: the table stays on the 30 m bands' grid (not 4x its pixels), and
/// band 8 is resampled onto it like any band of another size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panchromatic_band_does_not_set_the_pixel_size() {
    let d = tempfile::tempdir().unwrap();
    let id = "LC08_L1TP_044034_20200105_20200114_02_T1";
    let origin = (500_025.0, 4_100_025.0);
    for band in ["B4", "B5"] {
        landsat_band(
            d.path(),
            id,
            band,
            32610,
            origin,
            30.0,
            (20, 20),
            vec![700u16; 400],
            Some(0.0),
        );
    }
    // Band 8 at 15 m: 40 x 40 pixels over the same 600 m square.
    let pan: Vec<u16> = (0..1600).map(|i| 1000 + (i % 40) as u16).collect();
    landsat_band(
        d.path(),
        id,
        "B8",
        32610,
        origin,
        15.0,
        (40, 40),
        pan,
        Some(0.0),
    );
    let ctx = ctx();
    let b = query(
        &ctx,
        &format!(
            "SELECT count(*) AS n, count(b8) AS pan, min(b8) AS lo, max(b8) AS hi, \
                    max(row) + 1 AS rows, max(col) + 1 AS cols FROM scenes('{}')",
            location(d.path())
        ),
    )
    .await;
    let v = |j: usize| {
        datafusion::arrow::compute::cast(
            b[0].column(j),
            &datafusion::arrow::datatypes::DataType::Int64,
        )
        .unwrap()
        .as_primitive::<Int64Type>()
        .value(0)
    };
    assert_eq!((v(0), v(4), v(5)), (400, 20, 20), "the 30 m grid");
    assert_eq!(v(1), 400, "band 8 read onto every pixel");
    assert!(
        v(2) >= 1000 && v(3) <= 1039,
        "band 8's values: {} .. {}",
        v(2),
        v(3)
    );
}

/// `'path_pattern'` matches the path relative to the location, for
/// archives whose dates and scene ids sit in folder names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_patterns_take_dates_and_scenes_from_folders() {
    let d = tempfile::tempdir().unwrap();
    for (k, day) in ["2017-06-01", "2017-07-15"].iter().enumerate() {
        for (j, band) in ["B04", "B08"].iter().enumerate() {
            let v = (100 * (k + 1) + j) as u16;
            write(
                &d.path().join(format!("{day}_site/{band}.tif")),
                32633,
                (500_000.0, 5_600_000.0),
                10.0,
                (3, 2),
                vec![v; 6],
            );
        }
    }
    let ctx = ctx();
    let b = query(
        &ctx,
        &format!(
            r"SELECT CAST(scene AS VARCHAR) AS s, CAST(CAST(time AS DATE) AS VARCHAR) AS day, min(b04), max(b08), count(*)
              FROM scenes('{}', 'path_pattern', '(?P<scene>(?P<date>\d{{4}}-\d{{2}}-\d{{2}})_site)/(?P<band>B\d\d)\.tif', 'date_format', '%Y-%m-%d')
              GROUP BY 1, 2 ORDER BY 1",
            location(d.path())
        ),
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("_site")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("2017-06-01_site")
            && rows[0].contains("| 2017-06-01 | 100 ")
            && rows[0].contains(" 101 ")
            && rows[0].contains(" 6 "),
        "{text}"
    );
    assert!(
        rows[1].contains("| 2017-07-15 | 200 ") && rows[1].contains(" 201 "),
        "{text}"
    );
}

/// `cloud_cover`: from Landsat MTL (`CLOUD_COVER`, not `CLOUD_COVER_LAND`;
/// -1 means unknown) in .txt, .xml and .json, NULL without metadata; a
/// filter on it chooses scenes like `time` does (no `FilterExec`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_cover_comes_from_the_product_metadata_and_prunes_scenes() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 16, 5, 16, Some(3));
    let archive = d.path().join("archive");
    let mut ids: Vec<String> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    ids.sort();
    let write = |k: usize, ext: &str, text: &str| {
        std::fs::write(
            archive.join(&ids[k]).join(format!("{}_MTL.{ext}", ids[k])),
            text,
        )
        .unwrap()
    };
    write(
        0,
        "txt",
        "GROUP = IMAGE_ATTRIBUTES\n    CLOUD_COVER = 12.34\n    CLOUD_COVER_LAND = 50.00\n",
    );
    write(
        1,
        "xml",
        "<IMAGE_ATTRIBUTES><CLOUD_COVER_LAND>1.00</CLOUD_COVER_LAND><CLOUD_COVER>61.5</CLOUD_COVER></IMAGE_ATTRIBUTES>",
    );
    write(
        2,
        "json",
        r#"{"LANDSAT_METADATA_FILE": {"IMAGE_ATTRIBUTES": {"CLOUD_COVER": "3.07"}}}"#,
    );
    write(3, "txt", "    CLOUD_COVER = -1\n");
    let ctx = obs_table(&archive).await;
    let b = query(
        &ctx,
        "SELECT DISTINCT CAST(scene AS VARCHAR) AS s, cloud_cover FROM obs ORDER BY s",
    )
    .await;
    let covers: Vec<Option<f64>> = b[0]
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .iter()
        .collect();
    assert_eq!(strings(b[0].column(0)), ids);
    assert_eq!(
        covers,
        vec![Some(12.34), Some(61.5), Some(3.07), None, None]
    );
    let sql = "SELECT count(DISTINCT scene) FROM obs WHERE cloud_cover < 20";
    let plan = explain(&ctx, sql).await;
    assert!(
        plan.contains("scenes=2/5") && !plan.contains("FilterExec"),
        "{plan}"
    );
    let b = query(&ctx, sql).await;
    assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 2);
}

/// Pre-collection Landsat scene ids (`LE70350322008118EDC00_b3.tif`) are a
/// built-in layout: year and day of year give the date, `LE7` the sensor,
/// and the common names follow it (ETM+ band 3 is red).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_collection_landsat_ids_need_no_options() {
    let d = tempfile::tempdir().unwrap();
    for (id, v) in [
        ("LE70350322008118EDC00", 300u16),
        ("LT50350322011138PAC01", 500),
    ] {
        for (band, add) in [("b3", 0u16), ("b4", 1)] {
            write(
                &d.path().join(format!("{id}_{band}.tif")),
                32613,
                (400_000.0, 4_500_000.0),
                30.0,
                (2, 2),
                vec![v + add; 4],
            );
        }
    }
    let b = query(
        &ctx(),
        &format!(
            "SELECT CAST(scene AS VARCHAR), CAST(time AS VARCHAR), CAST(sensor AS VARCHAR), min(red), min(nir) \
             FROM scenes('{}') GROUP BY 1, 2, 3 ORDER BY 2",
            location(d.path())
        ),
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    // 2008 is a leap year: day 118 is April 27; 2011's day 138 is May 18.
    assert!(
        text.contains("| LE70350322008118EDC00 | 2008-04-27T00:00:00 | LE07 ")
            && text.contains(" 300 ")
            && text.contains(" 301 "),
        "{text}"
    );
    assert!(
        text.contains("| LT50350322011138PAC01 | 2011-05-18T00:00:00 | LT05 ")
            && text.contains(" 500 ")
            && text.contains(" 501 "),
        "{text}"
    );
}
