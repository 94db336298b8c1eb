//! Time arguments and calendar helpers.
//!
//! Aggregates: TIMESTAMP (any unit, zone ignored: the stored UTC instant is
//! used) and DATE become decimal years since 1970-01-01 with 365.25-day years
//! (so slopes are per year); any numeric type is used as is (cast to DOUBLE).
//! [`to_years`] converts a whole column; [`years_scale`] and [`TimeNative`]
//! let typed accumulators convert row by row while keeping the raw value
//! (e.g. `trend`'s exact `first` / `last`).
//!
//! Scalar functions (family "sceneql: time"): `decimal_year(time)` and
//! `doy(time)`, calendar-exact (leap years count 366 days), on the UTC
//! instant of TIMESTAMPs and on DATEs.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, PrimitiveArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Float64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{exec_datafusion_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::args::{check_arity, type_list};
use crate::indices::finish;
use crate::sections::TIME;

/// Seconds in a 365.25-day year.
pub const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;

/// Years per raw unit of a TIMESTAMP / DATE type (e.g. 1 / (10⁹ · 365.25 ·
/// 86400) for nanosecond timestamps); None for other types (numbers are
/// used as they are).
pub fn years_scale(t: &DataType) -> Option<f64> {
    let seconds_per_unit = match t {
        DataType::Timestamp(TimeUnit::Second, _) => 1.0,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => 1e-3,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1e-6,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1e-9,
        DataType::Date32 => 86_400.0,
        _ => return None,
    };
    Some(seconds_per_unit / SECONDS_PER_YEAR)
}

/// A raw time value (the native type of a TIMESTAMP, DATE or number column)
/// that can be converted to f64 and compared.
pub trait TimeNative: Copy + PartialOrd + Send + Sync + std::fmt::Debug + 'static {
    fn to_f64(self) -> f64;
    /// `self - base` as f64, exact for integer times whose difference fits
    /// in 53 bits (no rounding of the large absolute values first).
    fn offset_from(self, base: Self) -> f64;
    /// False for NaN and ±infinity (only possible for DOUBLE times; such
    /// rows are skipped by the aggregates).
    #[inline(always)]
    fn is_finite(self) -> bool {
        true
    }
}
impl TimeNative for i32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn offset_from(self, base: Self) -> f64 {
        (self as i64 - base as i64) as f64
    }
}
impl TimeNative for i64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn offset_from(self, base: Self) -> f64 {
        match self.checked_sub(base) {
            Some(d) => d as f64,
            None => self as f64 - base as f64,
        }
    }
}
impl TimeNative for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn offset_from(self, base: Self) -> f64 {
        self - base
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// Dispatch on a coerced time type (see `args::coerce_exact_time`): binds
/// `$T` to the Arrow primitive type and evaluates `$body`; `$other` for any
/// other type.
#[macro_export]
#[doc(hidden)]
macro_rules! with_time_type {
    ($dt:expr, $T:ident => $body:expr, _ => $other:expr) => {{
        use datafusion::arrow::datatypes as __dt;
        match $dt {
            __dt::DataType::Timestamp(__dt::TimeUnit::Second, _) => {
                type $T = __dt::TimestampSecondType;
                $body
            }
            __dt::DataType::Timestamp(__dt::TimeUnit::Millisecond, _) => {
                type $T = __dt::TimestampMillisecondType;
                $body
            }
            __dt::DataType::Timestamp(__dt::TimeUnit::Microsecond, _) => {
                type $T = __dt::TimestampMicrosecondType;
                $body
            }
            __dt::DataType::Timestamp(__dt::TimeUnit::Nanosecond, _) => {
                type $T = __dt::TimestampNanosecondType;
                $body
            }
            __dt::DataType::Date32 => {
                type $T = __dt::Date32Type;
                $body
            }
            __dt::DataType::Date64 => {
                type $T = __dt::Date64Type;
                $body
            }
            __dt::DataType::Int64 => {
                type $T = __dt::Int64Type;
                $body
            }
            __dt::DataType::Float64 => {
                type $T = __dt::Float64Type;
                $body
            }
            _ => $other,
        }
    }};
}

/// Convert a time argument to years since 1970 (TIMESTAMP / DATE) or to f64
/// (numbers). NULLs stay NULL.
pub fn to_years(array: &ArrayRef) -> Result<Arc<Float64Array>> {
    fn scaled<T: ArrowPrimitiveType>(array: &ArrayRef, scale: f64) -> Float64Array
    where
        T::Native: TimeNative,
    {
        array.as_primitive::<T>().unary(|v| v.to_f64() * scale)
    }
    let t = array.data_type();
    let out = match (t, years_scale(t)) {
        (DataType::Timestamp(TimeUnit::Second, _), Some(s)) => {
            scaled::<TimestampSecondType>(array, s)
        }
        (DataType::Timestamp(TimeUnit::Millisecond, _), Some(s)) => {
            scaled::<TimestampMillisecondType>(array, s)
        }
        (DataType::Timestamp(TimeUnit::Microsecond, _), Some(s)) => {
            scaled::<TimestampMicrosecondType>(array, s)
        }
        (DataType::Timestamp(TimeUnit::Nanosecond, _), Some(s)) => {
            scaled::<TimestampNanosecondType>(array, s)
        }
        (DataType::Date32, Some(s)) => scaled::<Date32Type>(array, s),
        (DataType::Date64, Some(s)) => scaled::<Date64Type>(array, s),
        (DataType::Float64, _) => array.as_primitive::<Float64Type>().clone(),
        (DataType::Int64, _) => scaled::<Int64Type>(array, 1.0),
        (t, _) if t.is_numeric() || *t == DataType::Null => {
            datafusion::arrow::compute::cast(array, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone()
        }
        (t, _) => {
            return Err(DataFusionError::Plan(format!(
                "a time argument must be TIMESTAMP, DATE or a number, got {t}"
            )));
        }
    };
    Ok(Arc::new(out))
}

/// Convert decimal years since 1970 back to a time value of `data_type`
/// (rounded to the type's unit; numbers are returned as DOUBLE).
pub fn from_years(years: f64, data_type: &DataType) -> datafusion::scalar::ScalarValue {
    use datafusion::scalar::ScalarValue as S;
    let secs = years * SECONDS_PER_YEAR;
    match data_type {
        DataType::Timestamp(TimeUnit::Second, tz) => {
            S::TimestampSecond(Some(secs.round() as i64), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            S::TimestampMillisecond(Some((secs * 1e3).round() as i64), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            S::TimestampMicrosecond(Some((secs * 1e6).round() as i64), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            S::TimestampNanosecond(Some((secs * 1e9).round() as i64), tz.clone())
        }
        DataType::Date32 => S::Date32(Some((secs / 86_400.0).round() as i32)),
        DataType::Date64 => S::Date64(Some((secs * 1e3).round() as i64)),
        _ => S::Float64(Some(years)),
    }
}

/// (seconds since the epoch, nanoseconds within that second) per row, and
/// the column's NULLs.
pub(crate) type Instants = (Vec<(i64, u32)>, Option<NullBuffer>);

/// Seconds since the epoch (floored) and the nanoseconds within that second
/// of every row of a TIMESTAMP / DATE column (the UTC instant; the zone is
/// ignored), with the column's NULLs.
pub(crate) fn epoch_instants(array: &ArrayRef) -> Result<Instants> {
    fn split<T: ArrowPrimitiveType<Native = i64>>(
        array: &ArrayRef,
        per_second: i64,
    ) -> Vec<(i64, u32)> {
        let nanos_per_unit = 1_000_000_000 / per_second;
        array
            .as_primitive::<T>()
            .values()
            .iter()
            .map(|&v| {
                (
                    v.div_euclid(per_second),
                    (v.rem_euclid(per_second) * nanos_per_unit) as u32,
                )
            })
            .collect()
    }
    let values = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => split::<TimestampSecondType>(array, 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            split::<TimestampMillisecondType>(array, 1_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            split::<TimestampMicrosecondType>(array, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            split::<TimestampNanosecondType>(array, 1_000_000_000)
        }
        DataType::Date64 => split::<Date64Type>(array, 1_000),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .values()
            .iter()
            .map(|&d| (d as i64 * 86_400, 0))
            .collect(),
        DataType::Null => vec![(0, 0); array.len()],
        t => {
            return Err(exec_datafusion_err!(
                "expected a TIMESTAMP or DATE column, got {t}"
            ));
        }
    };
    let nulls = if *array.data_type() == DataType::Null {
        Some(NullBuffer::new_null(array.len()))
    } else {
        array.nulls().cloned()
    };
    Ok((values, nulls))
}

/// The UTC calendar date of an instant in seconds since the epoch.
fn civil_date(secs: i64) -> Option<NaiveDate> {
    let days = secs.div_euclid(86_400);
    // 719_163 = days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
    let days_ce = i32::try_from(days.checked_add(719_163)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(days_ce)
}

/// Decimal year of an instant: year + (instant - Jan 1 00:00) / (length of
/// that year), e.g. 2020-07-02 00:00 UTC → 2020.5.
pub fn decimal_year_of(secs: i64, nanos: u32) -> Option<f64> {
    let date = civil_date(secs)?;
    let year_days = if date.leap_year() { 366.0 } else { 365.0 };
    let seconds_into_year =
        date.ordinal0() as f64 * 86_400.0 + secs.rem_euclid(86_400) as f64 + nanos as f64 * 1e-9;
    Some(date.year() as f64 + seconds_into_year / (year_days * 86_400.0))
}

/// 1-based day of the year of an instant (UTC).
pub fn doy_of(secs: i64) -> Option<i32> {
    civil_date(secs).map(|d| d.ordinal() as i32)
}

/// Which calendar helper a [`TimeUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TimeFn {
    DecimalYear,
    Doy,
}

/// `decimal_year(time)` / `doy(time)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeUdf {
    function: TimeFn,
    signature: Signature,
    doc: Documentation,
}

/// `decimal_year(time)`: e.g. 2020-07-02 → 2020.5.
pub fn decimal_year() -> Arc<ScalarUDF> {
    TimeUdf::udf(TimeFn::DecimalYear)
}

/// `doy(time)`: 1-based day of year.
pub fn doy() -> Arc<ScalarUDF> {
    TimeUdf::udf(TimeFn::Doy)
}

impl TimeUdf {
    fn udf(function: TimeFn) -> Arc<ScalarUDF> {
        let doc = match function {
            TimeFn::DecimalYear => Documentation::builder(
                TIME,
                "Calendar decimal year of a TIMESTAMP or DATE: year + (time - Jan 1 00:00 of that year) / \
                 (length of that year), so leap years count 366 days and 2020-07-02 00:00 is 2020.5. \
                 TIMESTAMPs with a time zone use their UTC instant. Returns DOUBLE; NULL for NULL. \
                 (The time-series aggregates use a different, linear scale: years of 365.25 days \
                 since 1970-01-01.)",
                "decimal_year(time)",
            )
            .with_argument("time", "Acquisition time: TIMESTAMP (any unit) or DATE.")
            .with_sql_example("SELECT decimal_year(DATE '2020-07-02');\n-- 2020.5")
            .with_related_udf("doy")
            .build(),
            TimeFn::Doy => Documentation::builder(
                TIME,
                "Day of the year of a TIMESTAMP or DATE, 1-based (January 1 is 1, December 31 is 365 or \
                 366). TIMESTAMPs with a time zone use their UTC instant. Returns INT; NULL for NULL.",
                "doy(time)",
            )
            .with_argument("time", "Acquisition time: TIMESTAMP (any unit) or DATE.")
            .with_sql_example("SELECT doy(TIMESTAMP '2020-12-31 23:59:59');\n-- 366")
            .with_related_udf("decimal_year")
            .build(),
        };
        Arc::new(ScalarUDF::new_from_impl(Self {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
            doc,
        }))
    }
}

impl ScalarUDFImpl for TimeUdf {
    fn name(&self) -> &str {
        match self.function {
            TimeFn::DecimalYear => "decimal_year",
            TimeFn::Doy => "doy",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let signature = &self.doc.syntax_example;
        check_arity(signature, arg_types, 1, 1)?;
        match &arg_types[0] {
            t @ (DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) => {
                Ok(vec![t.clone()])
            }
            DataType::Null => Ok(vec![DataType::Date32]),
            _ => plan_err!(
                "{signature} expects a TIMESTAMP or DATE argument, got {}",
                type_list(arg_types)
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            TimeFn::DecimalYear => DataType::Float64,
            TimeFn::Doy => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [time] = arrays.as_slice() else {
            return Err(exec_datafusion_err!(
                "{} expects 1 argument",
                self.doc.syntax_example
            ));
        };
        let (instants, nulls) = epoch_instants(time)?;
        let name = self.name();
        let out_of_range = |secs: i64| {
            exec_datafusion_err!(
                "{name}: time {secs} s since 1970 is outside the supported calendar"
            )
        };
        let is_valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
        let out: ArrayRef = match self.function {
            TimeFn::DecimalYear => {
                let values = instants
                    .iter()
                    .enumerate()
                    .map(|(i, &(s, ns))| {
                        if is_valid(i) {
                            decimal_year_of(s, ns).ok_or_else(|| out_of_range(s))
                        } else {
                            Ok(0.0)
                        }
                    })
                    .collect::<Result<Vec<f64>>>()?;
                Arc::new(PrimitiveArray::<Float64Type>::new(
                    values.into(),
                    nulls.clone(),
                ))
            }
            TimeFn::Doy => {
                let values = instants
                    .iter()
                    .enumerate()
                    .map(|(i, &(s, _))| {
                        if is_valid(i) {
                            doy_of(s).ok_or_else(|| out_of_range(s))
                        } else {
                            Ok(0)
                        }
                    })
                    .collect::<Result<Vec<i32>>>()?;
                Arc::new(Int32Array::new(values.into(), nulls.clone()))
            }
        };
        finish(out, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::test_util::{cell, check_doc_examples, planning_error};
    use datafusion::arrow::array::{Date32Array, TimestampNanosecondArray};

    #[test]
    fn timestamps_and_dates_become_years_since_1970() {
        // 1971-01-01 is 365 days after the epoch: 365 / 365.25 years.
        let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            Some(365 * 86_400 * 1_000_000_000),
            None,
        ]));
        let y = to_years(&ts).unwrap();
        assert!((y.value(0) - 365.0 / 365.25).abs() < 1e-12);
        assert!(y.is_null(1));
        let d: ArrayRef = Arc::new(Date32Array::from(vec![730]));
        assert!((to_years(&d).unwrap().value(0) - 730.0 / 365.25).abs() < 1e-12);
        let i: ArrayRef = Arc::new(datafusion::arrow::array::Int16Array::from(vec![
            Some(2020),
            None,
        ]));
        let y = to_years(&i).unwrap();
        assert_eq!(y.value(0), 2020.0);
        assert!(y.is_null(1));
        let s: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["2020"]));
        assert!(to_years(&s).is_err());
    }

    #[test]
    fn decimal_year_and_doy_hand_checked() {
        let day = 86_400i64;
        // 2020-07-02 00:00: day 183 of a 366-day year.
        let jul2 = 18_445 * day;
        assert_eq!(decimal_year_of(jul2, 0), Some(2020.5));
        assert_eq!(doy_of(jul2), Some(184));
        // 1970-01-01 and the last nanosecond of 1969.
        assert_eq!(decimal_year_of(0, 0), Some(1970.0));
        assert_eq!(doy_of(0), Some(1));
        assert_eq!(doy_of(-1), Some(365));
        let y = decimal_year_of(-1, 0).unwrap();
        assert!(y < 1970.0 && y > 1_969.999_999, "{y}");
        // 2021-07-02 12:00 in a 365-day year: (182 + 0.5) / 365.
        let t = 18_810 * day + day / 2;
        assert_eq!(decimal_year_of(t, 0), Some(2021.0 + 182.5 / 365.0));
        assert_eq!(doy_of(t), Some(183));
        assert_eq!(doy_of(i64::MAX), None);

        assert_eq!(
            cell("SELECT decimal_year(TIMESTAMP '2020-07-02 00:00:00')"),
            "2020.5"
        );
        assert_eq!(
            cell("SELECT decimal_year(CAST('2020-07-02T00:00:00' AS TIMESTAMP(0)))"),
            "2020.5"
        );
        assert_eq!(
            cell("SELECT decimal_year(TIMESTAMP '2020-07-02 02:00:00+02:00')"),
            "2020.5"
        );
        assert_eq!(
            cell("SELECT decimal_year(arrow_cast(DATE '2020-07-02', 'Date64'))"),
            "2020.5"
        );
        assert_eq!(cell("SELECT doy(DATE '2021-12-31')"), "365");
        assert_eq!(cell("SELECT doy(DATE '1900-03-01')"), "60");
        assert_eq!(cell("SELECT doy(NULL)"), "NULL");
        assert_eq!(cell("SELECT decimal_year(CAST(NULL AS TIMESTAMP))"), "NULL");
        assert_eq!(cell("SELECT arrow_typeof(doy(DATE '2021-12-31'))"), "Int32");
    }

    #[test]
    fn documented_examples_hold() {
        check_doc_examples(&[decimal_year(), doy()]);
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT decimal_year('2020-01-01')");
        assert!(
            e.contains("decimal_year(time) expects a TIMESTAMP or DATE argument, got (Utf8)"),
            "{e}"
        );
        let e = planning_error("SELECT doy(2020)");
        assert!(
            e.contains("doy(time) expects a TIMESTAMP or DATE argument"),
            "{e}"
        );
        let e = planning_error("SELECT doy(DATE '2020-01-01', 1)");
        assert!(e.contains("doy(time) expects 1 argument, got 2"), "{e}");
    }
}
