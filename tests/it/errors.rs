//! Bad input through the CLI: each case exits non-zero with an error naming
//! the file (or option) and what to do, never panics, and leaves no partial
//! output file.

use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use super::common::*;

fn sceneql(dir: &Path, sql: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .current_dir(dir)
        .args(["-q", "-c", sql])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.success(), stderr)
}

fn create(location: &str, options: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' {options}; SELECT count(*) FROM obs"
    )
}

fn scene(dir: &Path, id: &str, bands: &[&str], epsg: u32) {
    for b in bands {
        landsat_band(
            dir,
            id,
            b,
            epsg,
            (500_025.0, 4_100_025.0),
            30.0,
            (20, 20),
            vec![500u16; 400],
            Some(0.0),
        );
    }
}

fn assert_fails(dir: &Path, sql: &str, needles: &[&str]) {
    let (ok, stderr) = sceneql(dir, sql);
    assert!(!ok, "expected a failure for {sql}");
    for n in needles {
        assert!(stderr.contains(n), "error should mention '{n}': {stderr}");
    }
}

const ID_A: &str = "LC08_L2SP_044034_20200105_20200114_02_T1";
const ID_B: &str = "LC08_L2SP_044034_20200121_20200130_02_T1";

#[test]
fn empty_folder() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("empty")).unwrap();
    assert_fails(
        d.path(),
        &create("empty/", ""),
        &["no scenes found", "empty", "holds no files"],
    );
}

#[test]
fn corrupt_tiff() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4"], 32610);
    let bad = d.path().join(ID_B).join(format!("{ID_B}_SR_B4.TIF"));
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"II*\0 this is not a TIFF at all").unwrap();
    assert_fails(
        d.path(),
        &create("./", ""),
        &[&format!("{ID_B}_SR_B4.TIF"), "remove or replace"],
    );
    // GDAL's own message goes to the log (`-v`), not raw to stderr.
    let (_, quiet) = sceneql(d.path(), &create("./", ""));
    assert!(!quiet.contains("ERROR 1:"), "{quiet}");
    assert_eq!(
        quiet.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{quiet}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sceneql"))
        .current_dir(d.path())
        .args(["-q", "-v", "-c", &create("./", "")])
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(
        verbose.contains("GDAL error: ") && !verbose.contains("ERROR 1:"),
        "{verbose}"
    );
}

#[test]
fn truncated_tiff_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let spec = sceneql::sample::SampleSpec {
        size: 64,
        dates: 2,
        tile: 16,
        seed: 9,
    };
    let folders = sceneql::sample::generate(&d.path().join("a"), &spec).unwrap();
    let victim = std::fs::read_dir(&folders[1])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("SR_B5.TIF"))
        .unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let sql = "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION 'a/'; COPY (SELECT pixel, avg(nir) FROM obs GROUP BY pixel) TO 'out.parquet'";
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert_fails(d.path(), sql, &[&name]);
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(left, vec!["a".to_string()], "no partial output may be left");
}

#[test]
fn scene_missing_a_band() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4", "QA_PIXEL"], 32610);
    scene(d.path(), ID_B, &["SR_B4"], 32610);
    assert_fails(
        d.path(),
        &create("./", ""),
        &[ID_B, "lacks qa_pixel", "OPTIONS ('bands' 'sr_b4')"],
    );
    // The suggested fix works.
    let (ok, stderr) = sceneql(d.path(), &create("./", "OPTIONS ('bands' 'sr_b4')"));
    assert!(ok, "{stderr}");
}

#[test]
fn unparsable_date() {
    let d = tempfile::tempdir().unwrap();
    scene(
        d.path(),
        "LC08_L2SP_044034_20201345_20200114_02_T1",
        &["SR_B4"],
        32610,
    );
    assert_fails(
        d.path(),
        &create("./", ""),
        &[
            "20201345",
            "LC08_L2SP_044034_20201345_20200114_02_T1_SR_B4.TIF",
            "date_format",
        ],
    );
}

#[test]
fn unknown_option() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4"], 32610);
    assert_fails(
        d.path(),
        &create("./", "OPTIONS ('resolutoin' '30')"),
        &["unknown option 'resolutoin'", "resolution"],
    );
    assert_fails(
        d.path(),
        "SELECT count(*) FROM scenes('./', 'bbox', '1,2,3')",
        &["bbox", "minx,miny,maxx,maxy"],
    );
}

#[test]
fn scenes_split_between_two_crs_need_a_target_grid() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4"], 32610);
    scene(d.path(), ID_B, &["SR_B4"], 32611);
    assert_fails(
        d.path(),
        &create("./", ""),
        &[
            "no target grid dominates",
            "EPSG:32610",
            "EPSG:32611",
            "'crs'",
            "'resolution'",
        ],
    );
    let (ok, stderr) = sceneql(
        d.path(),
        &create("./", "OPTIONS ('crs' 'EPSG:32610', 'resolution' '30')"),
    );
    assert!(ok, "{stderr}");
}

/// A local file changed after the table was created (another size or
/// modification time) fails the query, naming it, rather than reading a
/// file the table's plan was not made from (on a cluster: a node whose
/// copy differs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_table_creation_fails_the_query_naming_it() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4", "SR_B5", "QA_PIXEL"], 32610);
    scene(d.path(), ID_B, &["SR_B4", "SR_B5", "QA_PIXEL"], 32610);
    let ctx = ctx();
    run_statements(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}'",
            location(d.path())
        ),
    )
    .await;
    query(&ctx, "SELECT sum(red) FROM obs").await;
    let changed = d.path().join(ID_B).join(format!("{ID_B}_SR_B4.TIF"));
    let bytes = std::fs::read(&changed).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&changed, &bytes).unwrap();
    let err = ctx
        .sql("SELECT sum(red) FROM obs")
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("a changed file fails the query");
    let msg = sceneql::run::user_message(&err);
    assert!(msg.contains(&changed.display().to_string()), "{msg}");
    assert!(msg.contains("changed since the table was created"), "{msg}");
}

/// Options are checked against the archive before any pixel is read: a grid
/// too large for `max_grid_pixels` (a resolution of 1 mm on 30 m scenes
/// once tried to allocate 120 GB), a `bbox` that misses the scenes (a
/// lon/lat swap gave an empty table), `nodata` and `bands` naming bands no
/// scene has (listing the bands there are). Each fails within seconds.
#[test]
fn options_are_checked_against_the_archive_before_reading() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4", "SR_B5", "QA_PIXEL"], 32610);
    let cases: [(&str, &[&str]); 5] = [
        (
            "OPTIONS ('resolution' '0.001')",
            &[
                "'resolution'",
                "600000 x 600000",
                "max_grid_pixels",
                "metre",
            ],
        ),
        (
            "OPTIONS ('resolution' '1', 'max_grid_pixels' '1000')",
            &["600 x 600 = 360000 pixels", "max_grid_pixels (1000)"],
        ),
        (
            "OPTIONS ('bbox' '0,0,1,1')",
            &["'bbox'", "does not overlap", "500025", "lon before lat"],
        ),
        (
            "OPTIONS ('nodata' 'sr_b9=0')",
            &["'nodata'", "'sr_b9'", "qa_pixel, sr_b4, sr_b5"],
        ),
        (
            "OPTIONS ('bands' 'sr_b4,sr_b9')",
            &["'bands'", "'sr_b9'", "qa_pixel, sr_b4, sr_b5"],
        ),
    ];
    for (options, needles) in cases {
        let start = std::time::Instant::now();
        assert_fails(d.path(), &create(".", options), needles);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{options}: {:?}",
            start.elapsed()
        );
    }
}

/// A scene lacking a band the others have: by default an error listing
/// the scene, what it lacks, and the two options; `'missing_bands' 'skip'`
/// leaves it out, `'null'` reads it with that band NULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_lacking_a_band_is_listed_skipped_or_read_as_null() {
    let d = tempfile::tempdir().unwrap();
    scene(d.path(), ID_A, &["SR_B4", "SR_B5", "QA_PIXEL"], 32610);
    scene(d.path(), ID_B, &["SR_B4", "QA_PIXEL"], 32610);
    assert_fails(
        d.path(),
        &create(".", ""),
        &[
            "1 scenes lack bands",
            &format!("'{ID_B}' lacks sr_b5"),
            "'missing_bands' 'null'",
            "'skip'",
            "'bands' 'qa_pixel,sr_b4'",
        ],
    );
    let per_scene = "SELECT CAST(scene AS VARCHAR) AS s, count(red) AS red, count(nir) AS nir \
                     FROM obs GROUP BY 1 ORDER BY 1";
    for (option, want) in [
        ("skip", vec![(ID_A, 400, 400)]),
        ("null", vec![(ID_A, 400, 400), (ID_B, 400, 0)]),
    ] {
        let ctx = ctx();
        run_statements(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}' OPTIONS ('missing_bands' '{option}')",
                location(d.path())
            ),
        )
        .await;
        let b = query(&ctx, per_scene).await;
        let b = datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
        let got: Vec<(String, i64, i64)> = (0..b.num_rows())
            .map(|i| {
                (
                    strings(b.column(0))[i].clone(),
                    b.column(1).as_primitive::<Int64Type>().value(i),
                    b.column(2).as_primitive::<Int64Type>().value(i),
                )
            })
            .collect();
        let want: Vec<(String, i64, i64)> = want
            .into_iter()
            .map(|(s, r, n)| (s.to_string(), r, n))
            .collect();
        assert_eq!(got, want, "{option}");
        // The per-pixel aggregation sees scene B's NULL nir: one
        // observation per pixel either way.
        let b = query(
            &ctx,
            "SELECT min(n), max(n), count(*) FROM (SELECT pixel, count(ndvi(nir, red)) AS n FROM obs GROUP BY pixel)",
        )
        .await;
        let v = |j: usize| b[0].column(j).as_primitive::<Int64Type>().value(0);
        assert_eq!((v(0), v(1), v(2)), (1, 1, 400), "{option}");
    }
}
