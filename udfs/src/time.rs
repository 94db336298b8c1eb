//! Time arguments of the aggregates: TIMESTAMP (any unit, zone ignored) and
//! DATE become decimal years since 1970-01-01 with 365.25-day years (so slopes
//! are per year); any numeric type is used as is (cast to DOUBLE).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::{DataFusionError, Result};

/// Seconds in a 365.25-day year.
pub const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;

/// True for the types a time argument may have.
pub fn is_time_type(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) || t.is_numeric()
}

/// Convert a time argument to years since 1970 (TIMESTAMP / DATE) or to f64 (numbers).
/// NULLs stay NULL.
pub fn to_years(array: &ArrayRef) -> Result<Arc<Float64Array>> {
    let f = |v: i64, per_second: f64| v as f64 / per_second / SECONDS_PER_YEAR;
    let out: Float64Array = match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let per_second = match unit {
                TimeUnit::Second => 1.0,
                TimeUnit::Millisecond => 1e3,
                TimeUnit::Microsecond => 1e6,
                TimeUnit::Nanosecond => 1e9,
            };
            let ints = cast(array, &DataType::Int64)?;
            ints.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .unary(|v| f(v, per_second))
        }
        DataType::Date32 => array
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
            .unary(|d| d as f64 * 86_400.0 / SECONDS_PER_YEAR),
        DataType::Date64 => array
            .as_primitive::<datafusion::arrow::datatypes::Date64Type>()
            .unary(|ms| f(ms, 1e3)),
        t if t.is_numeric() => cast(array, &DataType::Float64)?.as_primitive().clone(),
        t => {
            return Err(DataFusionError::Plan(format!(
                "a time argument must be TIMESTAMP, DATE or a number, got {t}"
            )));
        }
    };
    Ok(Arc::new(out))
}

/// Convert decimal years since 1970 back to a time value of `data_type`
/// (used for the `first` / `last` fields, which keep the input's type).
pub fn from_years(years: f64, data_type: &DataType) -> datafusion::scalar::ScalarValue {
    use datafusion::scalar::ScalarValue as S;
    let secs = years * SECONDS_PER_YEAR;
    match data_type {
        DataType::Timestamp(TimeUnit::Second, tz) => S::TimestampSecond(Some(secs.round() as i64), tz.clone()),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => S::TimestampMillisecond(Some((secs * 1e3).round() as i64), tz.clone()),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => S::TimestampMicrosecond(Some((secs * 1e6).round() as i64), tz.clone()),
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => S::TimestampNanosecond(Some((secs * 1e9).round() as i64), tz.clone()),
        DataType::Date32 => S::Date32(Some((secs / 86_400.0).round() as i32)),
        DataType::Date64 => S::Date64(Some((secs * 1e3).round() as i64)),
        _ => S::Float64(Some(years)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, TimestampNanosecondArray};

    #[test]
    fn timestamps_and_dates_become_years_since_1970() {
        // 1971-01-01 is 365 days after the epoch: 365 / 365.25 years.
        let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(365 * 86_400 * 1_000_000_000), None]));
        let y = to_years(&ts).unwrap();
        assert!((y.value(0) - 365.0 / 365.25).abs() < 1e-12);
        assert!(y.is_null(1));
        let d: ArrayRef = Arc::new(Date32Array::from(vec![730]));
        assert!((to_years(&d).unwrap().value(0) - 730.0 / 365.25).abs() < 1e-12);
    }
}
