//! The sections of the function reference: each family file names its
//! section from here, so the families group the same way in the CLI
//! listing and `docs/functions.md` ([`crate::docs`]), in a fixed order.

use datafusion::logical_expr::DocSection;

/// Band math: spectral indices from reflectances.
pub const BAND_MATH: DocSection = DocSection {
    include: true,
    label: "sceneql: band math",
    description: Some(
        "Spectral indices computed from surface reflectances. Any numeric type in, DOUBLE out; \
         the result is NULL when any input is NULL or the denominator is 0.",
    ),
};

/// Scaling: digital numbers to physical units.
pub const SCALING: DocSection = DocSection {
    include: true,
    label: "sceneql: scaling",
    description: Some(
        "Convert stored digital numbers (DN) to physical units with the product's scale and offset. \
         NULL in, NULL out.",
    ),
};

/// QA masks: bit fields and per-product clear-sky tests.
pub const QA_MASKS: DocSection = DocSection {
    include: true,
    label: "sceneql: QA masks",
    description: Some(
        "Decode quality-assessment bands: single bits, bit fields and clear-sky tests for Landsat \
         Collection 2 / Collection 1 and Sentinel-2 scene classification. NULL QA gives NULL.",
    ),
};

/// Time helpers.
pub const TIME: DocSection = DocSection {
    include: true,
    label: "sceneql: time",
    description: Some("Calendar helpers for acquisition times (TIMESTAMP or DATE)."),
};

/// Per-pixel time-series aggregates.
pub const TIME_SERIES_AGGREGATES: DocSection = DocSection {
    include: true,
    label: "sceneql: time-series aggregates",
    description: Some(
        "Aggregates over the observations of one pixel (use with `GROUP BY pixel`). Rows whose value \
         or time is NULL, NaN or infinite are skipped. TIMESTAMP and DATE times are converted to decimal years since \
         1970-01-01 with 365.25-day years, so rates are per year; numeric times are used as they are.",
    ),
};
