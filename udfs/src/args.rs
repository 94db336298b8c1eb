//! Argument checking and coercion shared by every sceneql function: one
//! arity check and one coercion of value and time arguments, with planning
//! errors that name the function's SQL signature (e.g. `ndvi(nir, red)
//! expects 2 arguments, got 1: (Float64)`, `trend(value, time): argument
//! `time` must be a TIMESTAMP, a DATE or a number, got Utf8`).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result};

/// True for the types a time argument may have.
pub fn is_time_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) || t.is_numeric()
}

/// A short name for an argument type in error messages.
pub(crate) fn type_list(arg_types: &[DataType]) -> String {
    let names: Vec<String> = arg_types.iter().map(|t| t.to_string()).collect();
    format!("({})", names.join(", "))
}

/// A planning error that names the function's SQL signature, e.g.
/// `harmonic_fit(value, time, k): k must be ...`.
pub(crate) fn call_error(signature: &str, detail: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("{signature}: {detail}"))
}

/// Check the argument count of a call to `signature` (e.g. "ndvi(nir, red)"):
/// `min..=max` arguments.
pub(crate) fn check_arity(
    signature: &str,
    arg_types: &[DataType],
    min: usize,
    max: usize,
) -> Result<()> {
    let n = arg_types.len();
    if n < min || n > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return plan_err!(
            "{signature} expects {expected} argument{}, got {n}: {}",
            if max == 1 { "" } else { "s" },
            type_list(arg_types)
        );
    }
    Ok(())
}

/// Coerce a numeric argument (a modelled value, a regressor) to DOUBLE.
pub(crate) fn coerce_number(signature: &str, name: &str, t: &DataType) -> Result<DataType> {
    if t.is_numeric() || t == &DataType::Null {
        Ok(DataType::Float64)
    } else {
        Err(call_error(
            signature,
            format!("argument `{name}` must be a number, got {t}"),
        ))
    }
}

/// Coerce a time argument: TIMESTAMP / DATE keep their type (converted to
/// decimal years by [`time::to_years`] or [`time::years_scale`] at run
/// time), numbers (and NULL) become DOUBLE.
pub(crate) fn coerce_time(signature: &str, name: &str, t: &DataType) -> Result<DataType> {
    if matches!(
        t,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) {
        Ok(t.clone())
    } else if is_time_type(t) || t == &DataType::Null {
        Ok(DataType::Float64)
    } else {
        Err(call_error(
            signature,
            format!("argument `{name}` must be a TIMESTAMP, a DATE or a number, got {t}"),
        ))
    }
}

/// [`coerce_time`] for aggregates that return the times themselves (`trend`'s
/// first / last, `series`' times): integers become BIGINT instead of DOUBLE,
/// so they come back exactly.
pub(crate) fn coerce_exact_time(signature: &str, name: &str, t: &DataType) -> Result<DataType> {
    let coerced = coerce_time(signature, name, t)?;
    Ok(if t.is_integer() {
        DataType::Int64
    } else {
        coerced
    })
}

/// Coercion of the `(value, time)` aggregates: two arguments, the value
/// DOUBLE ([`coerce_number`]) and the time by `coerce_time` ([`coerce_time`]
/// or [`coerce_exact_time`]).
pub(crate) fn coerce_value_and_time(
    signature: &str,
    arg_types: &[DataType],
    coerce_time: fn(&str, &str, &DataType) -> Result<DataType>,
) -> Result<Vec<DataType>> {
    check_arity(signature, arg_types, 2, 2)?;
    Ok(vec![
        coerce_number(signature, "value", &arg_types[0])?,
        coerce_time(signature, "time", &arg_types[1])?,
    ])
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn aggregate_time_coercion() {
        let sig = "trend(value, time)";
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        for coerce in [coerce_time, coerce_exact_time] {
            assert_eq!(coerce(sig, "time", &ts).unwrap(), ts);
            assert_eq!(
                coerce(sig, "time", &DataType::Date32).unwrap(),
                DataType::Date32
            );
            assert_eq!(
                coerce(sig, "time", &DataType::Float32).unwrap(),
                DataType::Float64
            );
            assert_eq!(
                coerce(sig, "time", &DataType::Null).unwrap(),
                DataType::Float64
            );
            let e = coerce(sig, "time", &DataType::Utf8).unwrap_err();
            assert!(matches!(e, DataFusionError::Plan(_)), "{e}");
            assert!(
                e.to_string().contains(
                    "trend(value, time): argument `time` must be a TIMESTAMP, a DATE or a number, got Utf8"
                ),
                "{e}"
            );
        }
        assert_eq!(
            coerce_time(sig, "time", &DataType::UInt16).unwrap(),
            DataType::Float64
        );
        assert_eq!(
            coerce_exact_time(sig, "time", &DataType::UInt16).unwrap(),
            DataType::Int64
        );
    }
}
