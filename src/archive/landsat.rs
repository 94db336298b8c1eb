//! Landsat Collection 1 and 2 product layouts (L1 and L2, Landsat 4-9): one
//! file per band named `<product id>_<band>.TIF`, e.g.
//! `LC08_L2SP_044034_20200105_20200114_02_T1_SR_B4.TIF`. The band column is the
//! lower-cased suffix (`sr_b4`, `qa_pixel`, `bqa`); the scene time is the
//! acquisition date, the product id's 4th field (not the processing date).

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

/// Recognise a Landsat band file by name.
pub fn match_file(file_name: &str) -> Option<FileMatch> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn common_names_follow_the_sensor() {
        assert_eq!(common_name("LC08", "sr_b4"), Some("red"));
        assert_eq!(common_name("LT05", "sr_b4"), Some("nir"));
        assert_eq!(common_name("LE07", "b3"), Some("red"));
        assert_eq!(common_name("LC09", "sr_b5"), Some("nir"));
        assert_eq!(common_name("LC08", "st_b10"), None);
        assert_eq!(common_name("LC08", "qa_pixel"), Some("qa"));
    }
}
