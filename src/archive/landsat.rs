//! Landsat Collection 1 and 2 product layouts (L1 and L2, Landsat 4-9): one
//! file per band named `<product id>_<band>.TIF`, e.g.
//! `LC08_L2SP_044034_20200105_20200114_02_T1_SR_B4.TIF`; and pre-collection
//! scene ids, `LE70350322008118EDC00_b3.tif` (date: year and day of year). The band column is the
//! lower-cased suffix (`sr_b4`, `qa_pixel`, `bqa`); the scene time is the
//! acquisition date, the product id's 4th field (not the processing date),
//! plus the scene center time of day from the product's metadata file
//! (`<product id>_MTL.txt`, `.xml` or `.json`) when the archive has it.

use std::sync::LazyLock;

use regex::Regex;

use super::{BandSpec, FileMatch};

static PRODUCT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        (?P<id>(?P<sensor>L[COTEM]0[1-9])_L(?P<level>[12])[A-Z]{2}_\d{6}_(?P<date>\d{8})_\d{8}_\d{2}_(?:T1|T2|RT))
        _(?P<band>(?:SR_|ST_)?B\d{1,2}|BQA|QA_PIXEL|QA_RADSAT|SR_QA_AEROSOL|SR_ATMOS_OPACITY|SR_CLOUD_QA|ST_(?:QA|TRAD|URAD|DRAD|ATRAN|EMIS|EMSD|CDIST)|[SV][AZ]A)
        \.TIF{1,2}$",
    )
    .expect("static regex")
});

/// Pre-collection scene ids, `LE70350322008118EDC00_b3.tif`: sensor and
/// satellite (`LE7`), path, row, year and day of year, station, version.
static PRE_COLLECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        (?P<id>L(?P<kind>[COTEM])(?P<sat>[1-9])\d{6}(?P<date>\d{7})[A-Z]{3}\d{2})
        _(?P<band>(?:sr_)?b\d{1,2}|bqa|(?:pixel|cfmask|sr_cloud)_qa|cfmask|fmask)
        \.tif{1,2}$",
    )
    .expect("static regex")
});

static METADATA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        (?P<id>L[COTEM]0[1-9]_L[12][A-Z]{2}_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT))
        _MTL\.(?:txt|xml|json)$",
    )
    .expect("static regex")
});

static CENTER_TIME: LazyLock<Regex> = LazyLock::new(|| {
    // MTL.txt `SCENE_CENTER_TIME = "18:31:14.6410570Z"`, MTL.xml
    // `<SCENE_CENTER_TIME>18:31:14.6410570Z<`, MTL.json `"SCENE_CENTER_TIME": "..."`.
    Regex::new(r#"SCENE_CENTER_TIME\W*(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?"#)
        .expect("static regex")
});

static CLOUD_COVER: LazyLock<Regex> = LazyLock::new(|| {
    // MTL.txt `CLOUD_COVER = 12.34`, MTL.xml `<CLOUD_COVER>12.34<`, MTL.json
    // `"CLOUD_COVER": "12.34"` (not CLOUD_COVER_LAND).
    Regex::new(r#"\bCLOUD_COVER\b[\s=:"'>]*(-?\d+(?:\.\d+)?)"#).expect("static regex")
});

/// The scene's cloud cover (percent) from its product metadata text; None
/// when absent or unknown (USGS writes -1).
pub fn cloud_cover(text: &str) -> Option<f64> {
    let v: f64 = CLOUD_COVER.captures(text)?[1].parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v)
}

/// Recognise a Landsat product metadata file by name; returns its scene id.
pub fn match_metadata(file_name: &str) -> Option<String> {
    METADATA.captures(file_name).map(|c| c["id"].to_uppercase())
}

/// The scene center time of day in a Landsat metadata file's text, as
/// nanoseconds after midnight UTC.
pub fn scene_center_time_ns(text: &str) -> Option<i64> {
    let c = CENTER_TIME.captures(text)?;
    let (h, m, s): (i64, i64, i64) = (c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let fraction = c.get(4).map_or(0, |f| {
        let digits = f.as_str();
        digits.parse::<i64>().unwrap_or(0) * 10i64.pow(9 - digits.len() as u32)
    });
    Some(((h * 60 + m) * 60 + s) * 1_000_000_000 + fraction)
}

/// Recognise a Landsat band file by name: a Collection 1 or 2 product id,
/// or a pre-collection scene id (its date is year and day of year).
pub fn match_file(file_name: &str) -> Option<FileMatch> {
    if let Some(c) = PRE_COLLECTION.captures(file_name) {
        return Some(FileMatch {
            scene_id: c["id"].to_uppercase(),
            date_text: c["date"].to_string(),
            date_format: Some("%Y%j".to_string()),
            sensor: format!("L{}0{}", c["kind"].to_uppercase(), &c["sat"]),
            band: BandSpec::Single {
                name: c["band"].to_lowercase(),
                index: 1,
            },
        });
    }
    let c = PRODUCT.captures(file_name)?;
    Some(FileMatch {
        scene_id: c["id"].to_uppercase(),
        date_text: c["date"].to_string(),
        date_format: Some("%Y%m%d".to_string()),
        sensor: c["sensor"].to_uppercase(),
        band: BandSpec::Single {
            name: c["band"].to_lowercase(),
            index: 1,
        },
    })
}

/// Common name of a Landsat band: band numbers mean different things per
/// sensor (`b4` is red on Landsat 8/9 but near-infrared on 4/5/7).
pub fn common_name(sensor: &str, band: &str) -> Option<&'static str> {
    if band == "qa_pixel" || band == "bqa" {
        return Some("qa");
    }
    let number = band.strip_prefix("sr_").unwrap_or(band).strip_prefix('b')?;
    let oli = sensor.starts_with("LC") || sensor.starts_with("LO");
    match (oli, number) {
        (true, "2") | (false, "1") => Some("blue"),
        (true, "3") | (false, "2") => Some("green"),
        (true, "4") | (false, "3") => Some("red"),
        (true, "5") | (false, "4") => Some("nir"),
        (true, "6") | (false, "5") => Some("swir1"),
        (_, "7") => Some("swir2"),
        _ => None,
    }
}

/// True for a Landsat panchromatic band (band 8 of ETM+, OLI): it never
/// sets a table's pixel size.
pub fn is_panchromatic(sensor: &str, band: &str) -> bool {
    let pan_sensor = ["LE07", "LC08", "LC09", "LO08", "LO09"].contains(&sensor);
    pan_sensor && band.strip_prefix("sr_").unwrap_or(band) == "b8"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_pre_collection_scene_ids() {
        let m = match_file("LE70350322008118EDC00_b3.tif").unwrap();
        assert_eq!(
            (m.scene_id.as_str(), m.date_text.as_str(), m.sensor.as_str()),
            ("LE70350322008118EDC00", "2008118", "LE07")
        );
        assert_eq!(m.date_format.as_deref(), Some("%Y%j"));
        assert!(matches!(m.band, BandSpec::Single { ref name, .. } if name == "b3"));
        let m = match_file("LT50350322011138PAC01_sr_b4.TIF").unwrap();
        assert_eq!(m.sensor, "LT05");
        assert!(matches!(m.band, BandSpec::Single { ref name, .. } if name == "sr_b4"));
        assert!(match_file("LE70350322008118EDC00_b3.tif.aux.xml").is_none());
        assert!(match_file("LE70350322008118EDC00_MTL.txt").is_none());
    }

    #[test]
    fn recognises_collection_1_and_2_names() {
        let m = match_file("LC08_L2SP_044034_20200105_20200114_02_T1_SR_B4.TIF").unwrap();
        assert_eq!(m.scene_id, "LC08_L2SP_044034_20200105_20200114_02_T1");
        assert_eq!(m.date_text, "20200105");
        assert!(matches!(m.band, BandSpec::Single { ref name, .. } if name == "sr_b4"));
        let m = match_file("LC08_L1TP_224077_20200518_20200518_01_RT_B2.TIF").unwrap();
        assert_eq!(m.sensor, "LC08");
        let m = match_file("LT05_L1TP_044034_19900105_20160926_01_T1_BQA.TIF").unwrap();
        assert!(matches!(m.band, BandSpec::Single { ref name, .. } if name == "bqa"));
        assert!(match_file("LC08_L1TP_224077_20200518_20200518_01_RT_B2_60m.TIF").is_none());
        assert!(match_file("LC08_L1TP_224078_20200518_20200518_01_RT.TIF").is_none());
    }

    #[test]
    fn metadata_files_and_center_times() {
        assert_eq!(
            match_metadata("LC08_L2SP_044034_20200105_20200114_02_T1_MTL.txt").as_deref(),
            Some("LC08_L2SP_044034_20200105_20200114_02_T1")
        );
        assert!(match_metadata("LC08_L2SP_044034_20200105_20200114_02_T1_ANG.txt").is_none());
        let ns = |h: i64, m: i64, s: i64| ((h * 60 + m) * 60 + s) * 1_000_000_000;
        assert_eq!(
            scene_center_time_ns("    SCENE_CENTER_TIME = \"18:31:14.6410570Z\"\n"),
            Some(ns(18, 31, 14) + 641_057_000)
        );
        assert_eq!(
            scene_center_time_ns("<SCENE_CENTER_TIME>09:05:01.5Z</SCENE_CENTER_TIME>"),
            Some(ns(9, 5, 1) + 500_000_000)
        );
        assert_eq!(
            scene_center_time_ns("\"SCENE_CENTER_TIME\": \"02:00:00Z\","),
            Some(ns(2, 0, 0))
        );
        assert_eq!(scene_center_time_ns("DATE_ACQUIRED = 2020-01-05"), None);
        assert_eq!(
            scene_center_time_ns("SCENE_CENTER_TIME = \"25:00:00Z\""),
            None
        );
    }

    #[test]
    fn common_names_follow_the_sensor() {
        assert_eq!(common_name("LC08", "sr_b4"), Some("red"));
        assert_eq!(common_name("LT05", "sr_b4"), Some("nir"));
        assert_eq!(common_name("LE07", "b3"), Some("red"));
        assert_eq!(common_name("LC09", "sr_b5"), Some("nir"));
        assert_eq!(common_name("LC08", "st_b10"), None);
        assert_eq!(common_name("LC08", "qa_pixel"), Some("qa"));
    }
}
