//! `linreg(y, x1 [, x2, ...])`: per-group multiple ordinary least squares with
//! an intercept, returning `STRUCT<coefficients LIST<DOUBLE>, r2 DOUBLE, n BIGINT>`
//! with `coefficients = [b0, b1, ..., bm]`.
//!
//! DataFusion's `regr_*` functions cover one regressor; per-pixel models often
//! need several (time plus a climate covariate, a band against two others).
//! Regressors may be TIMESTAMP / DATE (decimal years since 1970) so that
//! `linreg(ndvi, acquired)` is a trend per year. The engine, shared with
//! `harmonic_fit`, is [`crate::normal_equations`] (one pass, normal equations
//! centred on each group's first row, equilibrated Cholesky with a rank check).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDF, Documentation};

use crate::agg_common;
use crate::args::{call_error, check_arity, coerce_number, coerce_time};
use crate::normal_equations::{Design, Ols, OlsModel};
use crate::sections::TIME_SERIES_AGGREGATES;

const SIGNATURE: &str = "linreg(y DOUBLE, x1 DOUBLE|TIMESTAMP|DATE [, x2, ...])";

/// Most regressors `linreg` accepts (the state grows with their square).
pub const MAX_REGRESSORS: usize = 32;

/// The `linreg` aggregate.
pub fn linreg_udaf() -> Arc<AggregateUDF> {
    agg_common::udaf::<Ols<Linreg>>()
}

/// `linreg`, fitted by [`crate::normal_equations`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Linreg;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "Multiple linear regression by ordinary least squares, per group: `y ~ b0 + b1*x1 + ... + bm*xm`.\n\n\
         Returns `STRUCT<coefficients LIST<DOUBLE>, r2 DOUBLE, n BIGINT>`: `coefficients` is `[b0, b1, ..., bm]` \
         (intercept first), `r2` is `1 - SSE/SST`, `n` the number of rows used. TIMESTAMP / DATE regressors are \
         decimal years since 1970-01-01 (365.25-day years), so their coefficient is a change per year.\n\n\
         NULLs: rows where any argument is NULL (or NaN / infinite) are skipped. `coefficients` and `r2` are NULL \
         when `n` is smaller than the number of coefficients `m + 1` or the regressors are collinear / constant \
         (a regressor whose part not explained by the others holds less than 1e-9 of its sum of squares); `r2` is \
         NULL when `y` is constant. The struct itself is never NULL (`n = 0` for an empty group).\n\n\
         Method: one pass accumulating the normal equations X'X, X'y, y'y (O(m^2) per row and memory per group; \
         partial states merge by addition), centred on the first row of each group for precision, solved by \
         equilibrated Cholesky with a rank check and one refinement step. At most 32 regressors.",
        "linreg(y, x1 [, x2, ...])",
    )
    .with_argument("y", "The dependent value (any number).")
    .with_argument(
        "x1, x2, ...",
        "Regressors: numbers, or TIMESTAMP / DATE (decimal years since 1970).",
    )
    .with_sql_example(
        "SELECT pixel,\n\
         \x20      linreg(ndvi(nir, red), time)['coefficients'][2] AS ndvi_per_year,\n\
         \x20      linreg(ndvi(nir, red), time, date_part('month', time))['r2'] AS r2\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel;",
    )
    .with_related_udf("harmonic_fit")
    .build()
});

impl OlsModel for Linreg {
    const NAME: &'static str = "linreg";
    const SIGNATURE: &'static str = SIGNATURE;

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(SIGNATURE, arg_types, 2, MAX_REGRESSORS + 1)?;
        let mut out = vec![coerce_number(SIGNATURE, "y", &arg_types[0])?];
        for (i, t) in arg_types[1..].iter().enumerate() {
            out.push(coerce_time(SIGNATURE, &format!("x{}", i + 1), t)?);
        }
        Ok(out)
    }

    fn design(args: &AccumulatorArgs) -> Result<Design> {
        let m = args.exprs.len().saturating_sub(1);
        if !(1..=MAX_REGRESSORS).contains(&m) {
            return Err(call_error(
                SIGNATURE,
                format!("expected 1 to {MAX_REGRESSORS} regressors, got {m}"),
            ));
        }
        Ok(Design::Linear { m })
    }

    fn output_type() -> DataType {
        Design::Linear { m: 1 }.output_type()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int32Array};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use super::*;
    use crate::test_support::*;

    const FIXTURES: &str = include_str!("../fixtures/models_linreg.json");
    const FIELDS: [&str; 3] = ["coefficients", "r2", "n"];

    fn call(y: ArrayRef, xs: Vec<ArrayRef>) -> Call {
        let mut args = vec![y];
        args.extend(xs);
        Call {
            udaf: linreg_udaf(),
            literals: vec![None; args.len()],
            args,
        }
    }

    #[test]
    fn fixtures_match_numpy_lstsq_in_every_merge_order() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let cases = f["cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        for case in cases {
            let kind = case["time_kind"].as_str().unwrap();
            let y: ArrayRef = Arc::new(Float64Array::from(json_f64s(&case["y"])));
            let xs = case["x"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| json_time(x, kind))
                .collect();
            let c = call(y, xs);
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

    #[test]
    fn one_million_rows_match_numpy() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let case = &f["large"][0];
        let (n, seed) = (
            case["n"].as_u64().unwrap() as usize,
            case["seed"].as_u64().unwrap(),
        );
        // The generator of make_fixtures_models.py::gen_linreg.
        let mut g = Lcg(seed);
        let (mut y, mut x1, mut x2) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for i in 0..n {
            let u1 = g.uniform();
            let u2 = g.uniform();
            let u3 = g.uniform();
            let a = 45.0 + 10.0 * u1;
            let b = 280.0 + 40.0 * u2;
            let c = 0.2 + 0.01 * a - 0.003 * b + 0.05 * (u3 - 0.5);
            x1.push(Some(a));
            x2.push(if i % 103 == 0 { None } else { Some(b) });
            y.push(if i % 101 == 0 { None } else { Some(c) });
        }
        let c = call(
            Arc::new(Float64Array::from(y)),
            vec![
                Arc::new(Float64Array::from(x1)),
                Arc::new(Float64Array::from(x2)),
            ],
        );
        let expected = json_expected(&case["expected"], &FIELDS);
        for (route, got) in eval_routes(&c, false) {
            assert_close(&got, &expected, 1e-8, &format!("1e6 rows ({route})"));
        }
    }

    #[test]
    fn groups_accumulator_matches_plain_accumulator() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let n = 240;
            let m = 1 + (seed % 3) as usize;
            let y: Float64Array = (0..n)
                .map(|_| match rng.random_range(0..40) {
                    0..3 => None,
                    3 => Some(f64::INFINITY),
                    _ => Some(rng.random_range(-5.0..5.0)),
                })
                .collect();
            let mut xs: Vec<ArrayRef> = Vec::new();
            for j in 0..m {
                if j == 1 {
                    // integer regressor with many ties (coerced to DOUBLE)
                    xs.push(Arc::new(
                        (0..n)
                            .map(|_| {
                                (rng.random_range(0..25) > 0).then(|| rng.random_range(-3..30))
                            })
                            .collect::<Int32Array>(),
                    ));
                } else {
                    xs.push(Arc::new(
                        (0..n)
                            .map(|_| {
                                (rng.random_range(0..25) > 0)
                                    .then(|| 1e3 * j as f64 + rng.random_range(0.0..10.0))
                            })
                            .collect::<Float64Array>(),
                    ));
                }
            }
            check_groups_vs_plain(&call(Arc::new(y), xs), seed, &close(1e-7));
        }
    }

    #[tokio::test]
    async fn sql_group_by_with_dates_and_two_regressors() {
        // y = 1 + 0.5 * years(d) - 2 * x exactly, per pixel g with an offset g.
        let mut rows = Vec::new();
        for g in 0..3 {
            for i in 0..20 {
                let days = 18000 + 37 * i;
                let x = ((i * 7) % 11) as f64;
                let y = 1.0 + g as f64 + 0.5 * (days as f64 / 365.25) - 2.0 * x;
                rows.push(format!("({g}, {y:?}, CAST({days} AS DATE), {x:?})"));
            }
        }
        rows.push("(0, NULL, CAST(18000 AS DATE), 1.0)".to_string());
        let obs = format!("(VALUES {}) AS obs(g, y, d, x)", rows.join(", "));
        let q = format!(
            "SELECT g, linreg(y, d, x)['coefficients'] AS c, linreg(y, d, x)['r2'] AS r2, linreg(y, d, x)['n'] AS n, \
             linreg(y, x)['n'] AS n1 FROM {obs} GROUP BY g ORDER BY g"
        );
        let batches = sql(&q).await.unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        for row in 0..3 {
            let c = b.column(1).as_list::<i32>().value(row);
            let c = c.as_primitive::<Float64Type>();
            for (got, want) in c.values().iter().zip([1.0 + row as f64, 0.5, -2.0]) {
                assert!((got - want).abs() < 1e-9, "{c:?}");
            }
            assert!((b.column(2).as_primitive::<Float64Type>().value(row) - 1.0).abs() < 1e-12);
            assert_eq!(b.column(3).as_primitive::<Int64Type>().value(row), 20);
        }
        // The plain accumulator (no GROUP BY) on a singular design: x is
        // constant on these 2 rows.
        let b = &sql(&format!(
            "SELECT linreg(y, d, x)['coefficients'] IS NULL AS singular, linreg(y, d, x)['n'] AS n \
             FROM {obs} WHERE g = 1 AND x = 0"
        ))
        .await
        .unwrap()[0];
        assert!(b.column(0).as_boolean().value(0));
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 2);
    }

    #[tokio::test]
    async fn bad_calls_are_errors_naming_the_function_and_signature() {
        let from = "FROM (VALUES (1.0, 2.0, 'a')) AS s(y, x, s)";
        let cases = [
            (
                format!("SELECT linreg(y) {from}"),
                "expects 2 to 33 arguments, got 1",
            ),
            (
                format!("SELECT linreg(s, x) {from}"),
                "argument `y` must be a number",
            ),
            (
                format!("SELECT linreg(y, x, s) {from}"),
                "argument `x2` must be a TIMESTAMP, a DATE or a number",
            ),
        ];
        for (q, needle) in cases {
            let e = sql_error(&q).await;
            assert!(e.contains(SIGNATURE) && e.contains(needle), "{q}\n{e}");
        }
    }
}
