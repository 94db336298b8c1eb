//! STAC sources (placeholder until the module is written).

/// Why a STAC location could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StacError {
    #[error("{0}")]
    Other(String),
}
