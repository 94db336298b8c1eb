//! The one list of every sceneql SQL function.
//!
//! Local sessions, the Ballista scheduler and executors, the docs generator and
//! the codecs that encode functions by name all read these two lists, so a
//! function added here is available everywhere.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// Every scalar function (band math, scaling, QA masks, time helpers).
pub fn scalar_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        // indices.rs, scaling.rs, qa.rs, time.rs ... (one line per function)
        crate::indices::ndvi(),
        crate::indices::nbr(),
        crate::indices::ndwi(),
        crate::indices::ndmi(),
        crate::indices::savi(),
        crate::indices::evi(),
        crate::indices::normalized_difference(),
        crate::scaling::landsat_sr(),
        crate::scaling::landsat_st(),
        crate::scaling::s2_sr(),
        crate::scaling::scale_offset(),
        crate::qa::bit_set(),
        crate::qa::bits(),
        crate::qa::landsat_clear(),
        crate::qa::landsat_c1_clear(),
        crate::qa::s2_clear(),
        crate::time::decimal_year(),
        crate::time::doy(),
        crate::harmonic::harmonic_predict_udf(),
    ]
}

/// Every aggregate function (per-pixel regressions and time-series statistics).
pub fn aggregate_udfs() -> Vec<Arc<AggregateUDF>> {
    vec![
        // trend.rs, harmonic.rs, linreg.rs, theil_sen.rs, mann_kendall.rs, series.rs
        crate::trend::trend(),
        crate::harmonic::harmonic_fit_udaf(),
        crate::linreg::linreg_udaf(),
        crate::theil_sen::theil_sen_udaf(),
        crate::mann_kendall::mann_kendall_udaf(),
        crate::series::series(),
    ]
}

/// Register every sceneql function on a registry (a `SessionContext`, a
/// `SessionState` or Ballista's function registry).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in scalar_udfs() {
        registry.register_udf(f)?;
    }
    for f in aggregate_udfs() {
        registry.register_udaf(f)?;
    }
    Ok(())
}
