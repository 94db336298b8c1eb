//! User-defined layouts: a regex matched against each file's whole name,
//! with named groups `date` (required), `band` (optional: without it each
//! file is a multi-band file whose bands are `b1..bN` or named by
//! `'band_names'`), `scene` (optional scene id; default: the date text, so
//! files sharing a date form one scene) and `sensor` (optional).

use regex::Regex;

use super::{BandSpec, FileMatch};
use crate::error::{Result, SceneError};

#[derive(Debug)]
pub struct Pattern {
    re: Regex,
    date_format: String,
}

impl Pattern {
    /// The OPTIONS `'pattern'` `text` (checked by [`crate::options`]),
    /// matched against whole file names: anchored at both ends.
    pub fn parse(text: &str, date_format: Option<&str>) -> Result<Self> {
        let re = Regex::new(&format!("^(?:{text})$")).map_err(|e| SceneError::BadOption {
            key: "pattern".into(),
            value: text.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(re, date_format))
    }

    pub fn new(re: Regex, date_format: Option<&str>) -> Self {
        Pattern {
            re,
            date_format: date_format.unwrap_or("%Y%m%d").to_string(),
        }
    }

    pub fn match_file(&self, file_name: &str) -> Option<FileMatch> {
        let c = self.re.captures(file_name)?;
        let date_text = c.name("date")?.as_str().to_string();
        let scene_id = c
            .name("scene")
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| date_text.clone());
        let band = match c.name("band") {
            Some(b) => BandSpec::Single {
                name: b.as_str().to_lowercase(),
                index: 1,
            },
            None => BandSpec::Multi,
        };
        Some(FileMatch {
            scene_id,
            date_text,
            date_format: Some(self.date_format.clone()),
            sensor: c
                .name("sensor")
                .map_or_else(|| "unknown".to_string(), |m| m.as_str().to_string()),
            band,
        })
    }
}
