//! `harmonic_fit(value, time, k)`: per-group OLS fit of the harmonic model
//! used by CCDC and Earth Engine's `ee.Reducer.linearRegression` recipes,
//!
//! ```text
//! value ~ b0 + b1 t + sum_{h=1..k} (a_h cos(2 pi h t) + c_h sin(2 pi h t))
//! ```
//!
//! with `t` in decimal years since 1970 (so the harmonic terms have a
//! one-year period and `b1` is a slope per year), and the scalar
//! `harmonic_predict(coefficients, time)` that evaluates a fitted model.
//!
//! Per-pixel seasonality plus trend is the workhorse of change detection
//! (fit, predict, compare residuals). The aggregate accumulates normal
//! equations per group (see [`crate::normal_equations`] for the centring that
//! keeps precision with t ~ 50 years, merging and solving).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

use crate::agg_common::{self, f64_list_type, literal_value};
use crate::args::{call_error, check_arity, coerce_number, coerce_time};
use crate::normal_equations::{Design, Ols, OlsModel, harmonic};
use crate::sections::TIME_SERIES_AGGREGATES;
use crate::time;

const FIT_SIGNATURE: &str =
    "harmonic_fit(value DOUBLE, time TIMESTAMP|DATE|DOUBLE, k INTEGER literal 1..3)";
const PREDICT_SIGNATURE: &str =
    "harmonic_predict(coefficients LIST<DOUBLE>, time TIMESTAMP|DATE|DOUBLE)";

/// Largest number of harmonics `harmonic_fit` accepts.
pub const MAX_HARMONICS: i64 = 3;

/// The `harmonic_fit` aggregate.
pub fn harmonic_fit_udaf() -> Arc<AggregateUDF> {
    agg_common::udaf::<Ols<HarmonicFit>>()
}

/// The `harmonic_predict` scalar function.
pub fn harmonic_predict_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(HarmonicPredict::new()))
}

/// `harmonic_fit`, fitted by [`crate::normal_equations`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct HarmonicFit;

impl HarmonicFit {
    /// The number of harmonics: the third argument, an integer literal 1..=3.
    fn harmonics(args: &AccumulatorArgs) -> Result<usize> {
        let bad = |got: String| {
            call_error(
                FIT_SIGNATURE,
                format!(
                    "k (the number of harmonics) must be an integer literal from 1 to {MAX_HARMONICS}, got {got}"
                ),
            )
        };
        let expr = args
            .exprs
            .get(2)
            .ok_or_else(|| call_error(FIT_SIGNATURE, "expected 3 arguments"))?;
        let value =
            literal_value(expr).ok_or_else(|| bad(format!("the non-literal expression {expr}")))?;
        match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(k))) if (1..=MAX_HARMONICS).contains(&k) => Ok(k as usize),
            _ => Err(bad(value.to_string())),
        }
    }
}

static FIT_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "Fits the harmonic (seasonal + trend) model of CCDC / Earth Engine by ordinary least squares, per group:\n\
         `value ~ b0 + b1*t + sum over h = 1..k of (a_h*cos(2*pi*h*t) + c_h*sin(2*pi*h*t))` with `t` in decimal years since 1970-01-01 \
         (365.25-day years, so the harmonics have a one-year period and `b1` is a change per year).\n\n\
         Returns `STRUCT<coefficients LIST<DOUBLE>, rmse DOUBLE, r2 DOUBLE, n BIGINT>`: `coefficients` is \
         `[b0, b1, a_1, c_1, ..., a_k, c_k]` (2 + 2k values, the input of `harmonic_predict`), `rmse` is \
         `sqrt(SSE / (n - p))` with `p = 2 + 2k` coefficients (the unbiased residual standard error), `r2` is `1 - SSE/SST`, \
         `n` the number of rows used.\n\n\
         NULLs: rows where any argument is NULL (or NaN / infinite) are skipped. `coefficients`, `rmse` and `r2` are NULL when \
         `n < p` or the system is singular (e.g. all rows at one time, or harmonics indistinguishable from the trend: a column \
         whose part not explained by the others holds less than 1e-9 of its sum of squares); `rmse` is NULL when `n = p` \
         (no residual degrees of freedom) and `r2` when the values are constant. The struct itself is never NULL (`n = 0` for an \
         empty group).\n\n\
         Method: one pass accumulating the normal equations X'X, X'y, y'y (O(p^2) per row, O(p^2) memory per group; partial \
         states from partitions merge by addition), with `t` and the value centred on the first row of each group to keep \
         precision at t ~ 50 years; solved by equilibrated Cholesky with a rank check and one refinement step.",
        "harmonic_fit(value, time, k)",
    )
    .with_argument("value", "The modelled value (any number; DOUBLE internally).")
    .with_argument(
        "time",
        "TIMESTAMP or DATE (converted to decimal years since 1970) or a number (used as years as is).",
    )
    .with_argument(
        "k",
        "Number of harmonics: an integer literal 1, 2 or 3 (3 is CCDC's choice). Anything else is a planning error.",
    )
    .with_sql_example(
        "SELECT pixel,\n\
         \x20      harmonic_fit(ndvi(nir, red), time, 2)['coefficients'] AS coefficients,\n\
         \x20      harmonic_fit(ndvi(nir, red), time, 2)['rmse'] AS rmse\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel;",
    )
    .with_related_udf("harmonic_predict")
    .build()
});

impl OlsModel for HarmonicFit {
    const NAME: &'static str = "harmonic_fit";
    const SIGNATURE: &'static str = FIT_SIGNATURE;

    fn documentation() -> &'static Documentation {
        &FIT_DOC
    }

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(FIT_SIGNATURE, arg_types, 3, 3)?;
        let k = &arg_types[2];
        if !k.is_integer() {
            return Err(call_error(
                FIT_SIGNATURE,
                format!(
                    "k (the number of harmonics) must be an integer literal from 1 to {MAX_HARMONICS}, got type {k}"
                ),
            ));
        }
        Ok(vec![
            coerce_number(FIT_SIGNATURE, "value", &arg_types[0])?,
            coerce_time(FIT_SIGNATURE, "time", &arg_types[1])?,
            DataType::Int64,
        ])
    }

    fn design(args: &AccumulatorArgs) -> Result<Design> {
        Ok(Design::Harmonic {
            k: Self::harmonics(args)?,
        })
    }

    fn output_type() -> DataType {
        Design::Harmonic { k: 1 }.output_type()
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HarmonicPredict {
    signature: Signature,
}

impl Default for HarmonicPredict {
    fn default() -> Self {
        Self::new()
    }
}

impl HarmonicPredict {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Evaluate a harmonic model `[b0, b1, a_1, c_1, ..., a_k, c_k]` at `t`
/// (years); the phase is computed as in `harmonic_fit` (fractional part of `t`).
/// `coefficients` must hold 2 + 2k values.
pub fn predict(coefficients: &[f64], t: f64) -> f64 {
    let k = coefficients.len().saturating_sub(2) / 2;
    let mut terms = [0.0; 2];
    let mut value = coefficients[0] + coefficients[1] * t;
    for h in 1..=k {
        harmonic(t, h, &mut terms);
        value += coefficients[2 * h] * terms[0] + coefficients[2 * h + 1] * terms[1];
    }
    value
}

static PREDICT_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "Evaluates a harmonic model fitted by `harmonic_fit` at a time: \
         `b0 + b1*t + sum over h = 1..k of (a_h*cos(2*pi*h*t) + c_h*sin(2*pi*h*t))`, with `t` in decimal years since 1970 \
         and `k` inferred from the number of coefficients (2 + 2k; 2 is a plain line).\n\n\
         NULLs: NULL when the coefficient list, any coefficient or the time is NULL. A list whose length is not 2 + 2k \
         (odd or shorter than 2) is an execution error. Complexity: O(k) per row.",
        "harmonic_predict(coefficients, time)",
    )
    .with_argument(
        "coefficients",
        "LIST<DOUBLE> `[b0, b1, a_1, c_1, ..., a_k, c_k]`, as in `harmonic_fit(...)['coefficients']`.",
    )
    .with_argument(
        "time",
        "TIMESTAMP or DATE (converted to decimal years since 1970) or a number (years as is).",
    )
    .with_sql_example(
        "WITH m AS (SELECT pixel, harmonic_fit(ndvi(nir, red), time, 3)['coefficients'] AS c\n\
         \x20          FROM obs WHERE landsat_clear(qa) AND time < DATE '2018-01-01'\n\
         \x20          GROUP BY pixel)\n\
         SELECT o.pixel, o.time, ndvi(o.nir, o.red) - harmonic_predict(m.c, o.time) AS residual\n\
         FROM obs o JOIN m USING (pixel)\n\
         WHERE landsat_clear(o.qa) AND o.time >= DATE '2018-01-01';",
    )
    .with_related_udf("harmonic_fit")
    .build()
});

impl ScalarUDFImpl for HarmonicPredict {
    fn name(&self) -> &str {
        "harmonic_predict"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(PREDICT_SIGNATURE, arg_types, 2, 2)?;
        let list_ok = match &arg_types[0] {
            DataType::Null => true,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type().is_numeric() || f.data_type() == &DataType::Null
            }
            _ => false,
        };
        if !list_ok {
            return Err(call_error(
                PREDICT_SIGNATURE,
                format!(
                    "argument `coefficients` must be a list of numbers, got {}",
                    arg_types[0]
                ),
            ));
        }
        Ok(vec![
            f64_list_type(),
            coerce_time(PREDICT_SIGNATURE, "time", &arg_types[1])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let [coefficients, times] = arrays.as_slice() else {
            return Err(call_error(PREDICT_SIGNATURE, "expected 2 arguments"));
        };
        let lists = coefficients.as_list_opt::<i32>().ok_or_else(|| {
            DataFusionError::Internal(format!("{PREDICT_SIGNATURE}: coefficients are not a LIST"))
        })?;
        let items = lists
            .values()
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "{PREDICT_SIGNATURE}: coefficients are not DOUBLE"
                ))
            })?;
        let offsets = lists.value_offsets();
        let t = time::to_years(times)?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if lists.is_null(row) || t.is_null(row) {
                out.push(None);
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let len = end - start;
            if len < 2 || len % 2 != 0 {
                return Err(DataFusionError::Execution(format!(
                    "{PREDICT_SIGNATURE}: coefficients must hold 2 + 2k values [b0, b1, a_1, c_1, ..., a_k, c_k], got {len}"
                )));
            }
            if items.null_count() > 0 && (start..end).any(|i| items.is_null(i)) {
                out.push(None);
                continue;
            }
            out.push(Some(predict(&items.values()[start..end], t.value(row))));
        }
        let out: ArrayRef = Arc::new(Float64Array::from(out));
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&PREDICT_DOC)
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::TAU;

    use datafusion::arrow::array::{
        Array, AsArray, Float64Array, Int64Array, TimestampSecondArray,
    };
    use datafusion::arrow::datatypes::Float64Type;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use super::*;
    use crate::test_support::*;
    use crate::time::SECONDS_PER_YEAR;

    const FIXTURES: &str = include_str!("../fixtures/models_harmonic.json");
    const FIELDS: [&str; 4] = ["coefficients", "rmse", "r2", "n"];

    fn call(v: ArrayRef, t: ArrayRef, k: i64) -> Call {
        let n = v.len();
        Call {
            udaf: harmonic_fit_udaf(),
            args: vec![v, t, Arc::new(Int64Array::from(vec![k; n]))],
            literals: vec![None, None, Some(ScalarValue::Int64(Some(k)))],
        }
    }

    #[test]
    fn fixtures_match_numpy_lstsq_in_every_merge_order() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let cases = f["cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        for case in cases {
            let v: ArrayRef = Arc::new(Float64Array::from(json_f64s(&case["v"])));
            let t = json_time(&case["t"], case["time_kind"].as_str().unwrap());
            let c = call(v, t, case["k"].as_i64().unwrap());
            let expected = json_expected(&case["expected"], &FIELDS);
            for (route, got) in eval_routes(&c, true) {
                assert_close(
                    &got,
                    &expected,
                    1e-8,
                    &format!("{} ({route})", case["name"]),
                );
            }
        }
    }

    /// The generator of `make_fixtures_models.py::gen_harmonic`.
    fn gen_harmonic(n: usize, seed: u64) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let mut g = Lcg(seed);
        let (mut t, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let u1 = g.uniform();
            let u2 = g.uniform();
            let ti = 45.0 + 10.0 * u1;
            let vi = 1000.0 + 3.0 * (ti - 50.0) + 200.0 * (TAU * ti).cos()
                - 80.0 * (TAU * ti).sin()
                + 30.0 * (2.0 * TAU * ti).cos()
                + 10.0 * (3.0 * TAU * ti).sin()
                + 50.0 * (u2 - 0.5);
            t.push(Some(ti));
            v.push(if i % 97 == 0 { None } else { Some(vi) });
        }
        (t, v)
    }

    #[test]
    fn one_million_rows_at_t_50_match_numpy() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let case = &f["large"][0];
        let (n, seed) = (
            case["n"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        let (t, v) = gen_harmonic(n, seed);
        let c = call(
            Arc::new(Float64Array::from(v)),
            Arc::new(Float64Array::from(t)),
            case["k"].as_i64().unwrap(),
        );
        let expected = json_expected(&case["expected"], &FIELDS);
        for (route, got) in eval_routes(&c, false) {
            assert_close(&got, &expected, 1e-8, &format!("1e6 rows ({route})"));
        }
    }

    #[test]
    fn groups_accumulator_matches_plain_accumulator() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let n = 240;
            let v: Float64Array = (0..n)
                .map(|_| match rng.random_range(0..50) {
                    0..4 => None,
                    4 => Some(f64::NAN),
                    _ => Some(rng.random_range(-50.0..400.0)),
                })
                .collect();
            let t: ArrayRef = if seed % 2 == 0 {
                // years on a 1/100 grid: ties in time
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..20) > 0)
                                .then(|| 45.0 + rng.random_range(0..600) as f64 / 100.0)
                        })
                        .collect::<Float64Array>(),
                )
            } else {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..20) > 0)
                                .then(|| 1_400_000_000 + rng.random_range(0..200_000_000i64))
                        })
                        .collect::<TimestampSecondArray>(),
                )
            };
            let c = call(Arc::new(v), t, 1 + (seed % 3) as i64);
            check_groups_vs_plain(&c, seed, &close(1e-7));
        }
    }

    #[test]
    fn predict_closed_form() {
        // 1 + 2t + 3 cos(2 pi t) + 4 sin(2 pi t) at t = 50.25: cos = 0, sin = 1
        let got = predict(&[1.0, 2.0, 3.0, 4.0], 50.25);
        assert!((got - 105.5).abs() < 1e-12, "{got}");
        // k = 0 is a line; k = 2 adds cos(4 pi t) = -1 at t = .25
        assert_eq!(predict(&[1.0, 2.0], 3.0), 7.0);
        let got = predict(&[0.0, 0.0, 0.0, 0.0, 5.0, 0.0], 70.25);
        assert!((got + 5.0).abs() < 1e-12, "{got}");
    }

    fn ts_literal(years: f64) -> String {
        let secs = (years * SECONDS_PER_YEAR).round() as i64;
        let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        format!("TIMESTAMP '{}'", dt.format("%Y-%m-%dT%H:%M:%S"))
    }

    #[tokio::test]
    async fn sql_fit_per_pixel_and_predict() {
        // Two pixels on exact models, timestamps every ~23 days over 3 years.
        let model = |g: i64, t: f64| {
            0.3 + 0.1 * g as f64 + 0.01 * t + 0.1 * (TAU * t).cos() + 0.05 * (TAU * t).sin()
                - 0.02 * (2.0 * TAU * t).sin()
        };
        let mut rows = Vec::new();
        for g in 1..=2 {
            for i in 0..48 {
                let secs = ((49.0 + i as f64 * 0.0625) * SECONDS_PER_YEAR).round() as i64;
                let t = secs as f64 / SECONDS_PER_YEAR;
                rows.push(format!("({g}, {:?}, {})", model(g, t), ts_literal(t)));
            }
        }
        rows.push("(2, NULL, TIMESTAMP '2020-01-01T00:00:00')".to_string());
        rows.push("(2, 1.0, NULL)".to_string());
        let obs = format!("(VALUES {}) AS obs(g, v, t)", rows.join(", "));
        let q = format!(
            "SELECT g, harmonic_fit(v, t, 2)['coefficients'] AS c, harmonic_fit(v, t, 2)['n'] AS n, \
             harmonic_fit(v, t, 2)['rmse'] AS rmse, \
             harmonic_predict(harmonic_fit(v, t, 2)['coefficients'], {}) AS p \
             FROM {obs} GROUP BY g ORDER BY g",
            ts_literal(53.5)
        );
        let batches = sql(&q).await.unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        for row in 0..2 {
            let g = row as i64 + 1;
            let c = b.column(1).as_list::<i32>().value(row);
            let c = c.as_primitive::<Float64Type>();
            let want = [0.3 + 0.1 * g as f64, 0.01, 0.1, 0.05, 0.0, -0.02];
            for (got, want) in c.values().iter().zip(want) {
                assert!((got - want).abs() < 1e-9, "pixel {g}: {c:?}");
            }
            assert_eq!(
                b.column(2)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(row),
                48
            );
            assert!(b.column(3).as_primitive::<Float64Type>().value(row) < 1e-9);
            let p = b.column(4).as_primitive::<Float64Type>().value(row);
            let t = (53.5 * SECONDS_PER_YEAR).round() / SECONDS_PER_YEAR;
            assert!((p - model(g, t)).abs() < 1e-9, "{p}");
        }
        // No GROUP BY (plain accumulator), an empty input and NULL handling of predict.
        let q = format!(
            "SELECT harmonic_fit(v, t, 1)['n'] AS n, harmonic_fit(v, t, 1)['coefficients'] IS NULL AS no_fit \
             FROM {obs} WHERE g = 3"
        );
        let b = &sql(&q).await.unwrap()[0];
        assert_eq!(
            b.column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
            0
        );
        assert!(b.column(1).as_boolean().value(0));
        let b = &sql(
            "SELECT harmonic_predict([1.0, 2.0, 3.0, 4.0], 50.25) AS a, harmonic_predict(NULL, 50.0) AS b, \
             harmonic_predict([1.0, NULL], 1.0) AS c, harmonic_predict([1, 2], CAST(NULL AS DOUBLE)) AS d",
        )
        .await
        .unwrap()[0];
        assert!((b.column(0).as_primitive::<Float64Type>().value(0) - 105.5).abs() < 1e-12);
        for col in 1..4 {
            assert!(b.column(col).is_null(0), "column {col}");
        }
    }

    #[tokio::test]
    async fn bad_calls_are_errors_naming_the_function_and_signature() {
        let from = "FROM (VALUES (1.0, 50.0, 2, 'a')) AS s(v, t, k, s)";
        let cases = [
            (
                format!("SELECT harmonic_fit(v, t, 4) {from}"),
                FIT_SIGNATURE,
                "k (the number of harmonics) must be an integer literal from 1 to 3, got 4",
            ),
            (
                format!("SELECT s, harmonic_fit(v, t, 0) {from} GROUP BY s"),
                FIT_SIGNATURE,
                "got 0",
            ),
            (
                format!("SELECT harmonic_fit(v, t, k) {from}"),
                FIT_SIGNATURE,
                "non-literal",
            ),
            (
                format!("SELECT harmonic_fit(v, t) {from}"),
                FIT_SIGNATURE,
                "expects 3 arguments, got 2",
            ),
            (
                format!("SELECT harmonic_fit(v, t, 1, 2) {from}"),
                FIT_SIGNATURE,
                "expects 3 arguments, got 4",
            ),
            (
                format!("SELECT harmonic_fit(v, t, 1.5) {from}"),
                FIT_SIGNATURE,
                "got type Float64",
            ),
            (
                format!("SELECT harmonic_fit(s, t, 1) {from}"),
                FIT_SIGNATURE,
                "argument `value` must be a number",
            ),
            (
                format!("SELECT harmonic_fit(v, s, 1) {from}"),
                FIT_SIGNATURE,
                "argument `time` must be a TIMESTAMP, a DATE or a number",
            ),
            (
                format!("SELECT harmonic_predict(v, t) {from}"),
                PREDICT_SIGNATURE,
                "must be a list of numbers",
            ),
            (
                format!("SELECT harmonic_predict([1.0, 2.0]) {from}"),
                PREDICT_SIGNATURE,
                "expects 2 arguments, got 1",
            ),
            (
                format!("SELECT harmonic_predict([1.0, 2.0, 3.0], t) {from}"),
                PREDICT_SIGNATURE,
                "2 + 2k values",
            ),
            (
                format!("SELECT harmonic_predict([1.0, 2.0], s) {from}"),
                PREDICT_SIGNATURE,
                "argument `time`",
            ),
        ];
        for (q, signature, needle) in cases {
            let e = sql_error(&q).await;
            assert!(e.contains(signature) && e.contains(needle), "{q}\n{e}");
        }
    }
}
