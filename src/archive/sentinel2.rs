//! Sentinel-2 L2A COG layout (as on AWS / Element 84): one folder per scene
//! named `S2A_10SEG_20200105_0_L2A` holding `B04.tif`, `SCL.tif`, ... The band
//! column is the lower-cased file stem (`b04`, `scl`).

use std::sync::LazyLock;

use regex::Regex;

use super::{BandSpec, FileMatch};

static FOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<sensor>S2[ABCD])_\d{1,2}[A-Z]{3}_(?P<date>\d{8})_\d+_L2A$")
        .expect("static regex")
});
static FILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<band>B\d{2}|B8A|SCL|AOT|WVP)\.tiff?$").expect("static regex")
});

/// Recognise a Sentinel-2 L2A band file by its name and folder.
pub fn match_file(parent: &str, file_name: &str) -> Option<FileMatch> {
    let folder = FOLDER.captures(parent)?;
    let file = FILE.captures(file_name)?;
    Some(FileMatch {
        scene_id: parent.to_string(),
        date_text: folder["date"].to_string(),
        date_format: Some("%Y%m%d".to_string()),
        sensor: folder["sensor"].to_uppercase(),
        band: BandSpec::Single {
            name: file["band"].to_lowercase(),
            index: 1,
        },
    })
}

/// Common name of a Sentinel-2 band.
pub fn common_name(band: &str) -> Option<&'static str> {
    Some(match band {
        "b02" => "blue",
        "b03" => "green",
        "b04" => "red",
        "b08" => "nir",
        "b11" => "swir1",
        "b12" => "swir2",
        "scl" => "qa",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_cog_layout() {
        let m = match_file("S2A_10SEG_20200105_0_L2A", "B04.tif").unwrap();
        assert_eq!(
            (m.sensor.as_str(), m.date_text.as_str()),
            ("S2A", "20200105")
        );
        assert!(matches!(m.band, BandSpec::Single { ref name, .. } if name == "b04"));
        assert!(match_file("S2A_10SEG_20200105_0_L2A", "TCI.tif").is_none());
        assert!(match_file("other", "B04.tif").is_none());
        assert_eq!(common_name("b08"), Some("nir"));
    }
}
