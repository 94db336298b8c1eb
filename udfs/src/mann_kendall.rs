//! `mann_kendall(value, time)`: the Mann-Kendall monotonic trend test per
//! group, returning `STRUCT<s BIGINT, tau DOUBLE, var_s DOUBLE, z DOUBLE,
//! p_value DOUBLE, n BIGINT>`.
//!
//! The non-parametric trend test of hydrology and remote sensing, usually
//! reported next to the Theil-Sen slope. It follows Hipel & McLeod (1994) /
//! pymannkendall's `original_test`:
//!
//! * rows are ordered by time; `S = sum over i < j of sign(v_j - v_i)`;
//! * `var(S) = [n(n-1)(2n+5) - sum_v t(t-1)(2t+5)] / 18`, the sum running over
//!   groups of `t` tied values;
//! * `z = (S - 1)/sqrt(var S)` for `S > 0`, `(S + 1)/sqrt(var S)` for `S < 0`,
//!   0 for `S = 0` (continuity correction);
//! * `p_value = 2 (1 - Phi(|z|)) = erfc(|z| / sqrt 2)` (two-sided), computed
//!   with `libm::erfc` (FreeBSD msun, < 1 ulp), which keeps full relative
//!   accuracy for tiny p-values where `1 - Phi` would cancel;
//! * `tau = S / (n(n-1)/2)` (pymannkendall's definition).
//!
//! # Ties in time
//! pymannkendall assumes an ordered series without duplicate times. Here a
//! pair of rows at the **same time** contributes 0 to `S` (neither is before
//! the other), which makes `S` Kendall's statistic between time and value, and
//! `var(S)` gets Kendall's full tie correction for ties in both variables
//! (Kendall 1975, as in `scipy.stats.kendalltau`'s asymptotic variance):
//!
//! ```text
//! var S = [n(n-1)(2n+5) - sum_v t(t-1)(2t+5) - sum_u u(u-1)(2u+5)] / 18
//!       + [sum_v t(t-1)(t-2)] [sum_u u(u-1)(u-2)] / (9 n(n-1)(n-2))
//!       + [sum_v t(t-1)] [sum_u u(u-1)] / (2 n(n-1))
//! ```
//!
//! with `u` the sizes of groups of tied times. Without time ties this is
//! exactly pymannkendall's variance. The result never depends on the input
//! order (rows are sorted by time, then value).
//!
//! # Cost
//! O(n) memory per group (the rows are kept, [`crate::pairs`]) and O(n^2)
//! time for `S` (every pair is compared; per-pixel series are short).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, Documentation};

use crate::agg_common;
use crate::pairs::{PairStatistic, Pairs};
use crate::sections::TIME_SERIES_AGGREGATES;

const SIGNATURE: &str = "mann_kendall(value DOUBLE, time TIMESTAMP|DATE|DOUBLE)";

/// The `mann_kendall` aggregate.
pub fn mann_kendall_udaf() -> Arc<AggregateUDF> {
    agg_common::udaf::<Pairs<MannKendallStatistic>>()
}

/// One group's test result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Test {
    pub s: i64,
    pub tau: Option<f64>,
    pub var_s: f64,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    pub n: i64,
}

/// The statistic plugged into the pair accumulators.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MannKendallStatistic;

fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("s", DataType::Int64, true),
        Field::new("tau", DataType::Float64, true),
        Field::new("var_s", DataType::Float64, true),
        Field::new("z", DataType::Float64, true),
        Field::new("p_value", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ])
}

impl PairStatistic for MannKendallStatistic {
    type Output = Test;
    const NAME: &'static str = "mann_kendall";
    const SIGNATURE: &'static str = SIGNATURE;

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn output_type() -> DataType {
        DataType::Struct(output_fields())
    }

    fn compute(pairs: &mut [(f64, f64)], _scratch: &mut Vec<f64>) -> Test {
        mann_kendall(pairs)
    }

    fn output(results: Vec<Test>) -> Result<ArrayRef> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(results.iter().map(|r| Some(r.s)).collect::<Int64Array>()),
            Arc::new(results.iter().map(|r| r.tau).collect::<Float64Array>()),
            Arc::new(
                results
                    .iter()
                    .map(|r| Some(r.var_s))
                    .collect::<Float64Array>(),
            ),
            Arc::new(results.iter().map(|r| r.z).collect::<Float64Array>()),
            Arc::new(results.iter().map(|r| r.p_value).collect::<Float64Array>()),
            Arc::new(results.iter().map(|r| Some(r.n)).collect::<Int64Array>()),
        ];
        Ok(Arc::new(StructArray::try_new(
            output_fields(),
            columns,
            None,
        )?))
    }
}

/// `(sum t(t-1)(2t+5), sum t(t-1)(t-2), sum t(t-1))` over groups of ties.
type TieSums = (f64, f64, f64);

/// Tie sums of sorted values: (sum t(t-1)(2t+5), sum t(t-1)(t-2), sum t(t-1))
/// over runs of `t` equal values.
fn tie_sums(sorted: impl Iterator<Item = f64>) -> TieSums {
    let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
    let mut add = |t: f64| {
        a += t * (t - 1.0) * (2.0 * t + 5.0);
        b += t * (t - 1.0) * (t - 2.0);
        c += t * (t - 1.0);
    };
    let mut current: Option<(f64, f64)> = None; // (value, run length)
    for v in sorted {
        match &mut current {
            Some((value, len)) if *value == v => *len += 1.0,
            _ => {
                if let Some((_, len)) = current {
                    add(len);
                }
                current = Some((v, 1.0));
            }
        }
    }
    if let Some((_, len)) = current {
        add(len);
    }
    (a, b, c)
}

/// `var(S)` of `n` rows with the [`tie_sums`] of their values and of their
/// times (the module docs' formula).
fn variance_of_s(n: usize, (va, vb, vc): TieSums, (ua, ub, uc): TieSums) -> f64 {
    let nf = n as f64;
    let mut var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - va - ua) / 18.0;
    if n > 2 {
        var_s += vb * ub / (9.0 * nf * (nf - 1.0) * (nf - 2.0));
    }
    if n > 1 {
        var_s += vc * uc / (2.0 * nf * (nf - 1.0));
    }
    var_s
}

/// The Mann-Kendall test of `(time, value)` pairs (reordered: sorted).
///
/// The value ties come from the same pass over the pairs as `S`: with
/// `f_i` the number of values after the `i`-th equal to it, a group of `t`
/// tied values has `f` = t-1, ..., 1, 0, so `sum f = t(t-1)/2` and
/// `sum f(f-1) = t(t-1)(t-2)/3`, and over all groups `sum t(t-1) = 2 F1`,
/// `sum t(t-1)(t-2) = 3 F2`, `sum t(t-1)(2t+5) = 6 F2 + 18 F1` with
/// `F1 = sum f`, `F2 = sum f(f-1)`: integers, so exactly what summing the
/// runs of the sorted values gives, without sorting them.
pub(crate) fn mann_kendall(pairs: &mut [(f64, f64)]) -> Test {
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let n = pairs.len();
    let mut s: i64 = 0;
    let (mut f1, mut f2) = (0u64, 0u64);
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && pairs[end].0 == pairs[start].0 {
            end += 1;
        }
        for i in start..end {
            let vi = pairs[i].1;
            // Rows of the same time: ties only; later times: S and ties.
            let mut f: u64 = 0;
            for &(_, vj) in &pairs[i + 1..end] {
                f += (vj == vi) as u64;
            }
            for &(_, vj) in &pairs[end..] {
                s += (vj > vi) as i64 - (vj < vi) as i64;
                f += (vj == vi) as u64;
            }
            f1 += f;
            f2 += f * f.saturating_sub(1);
        }
        start = end;
    }
    let (f1, f2) = (f1 as f64, f2 as f64);
    let value_ties = (6.0 * f2 + 18.0 * f1, 3.0 * f2, 2.0 * f1);
    let var_s = variance_of_s(n, value_ties, tie_sums(pairs.iter().map(|p| p.0)));
    let nf = n as f64;
    let mut test = Test {
        s,
        tau: None,
        var_s,
        z: None,
        p_value: None,
        n: n as i64,
    };
    if n < 2 {
        return test;
    }
    test.tau = Some(s as f64 / (0.5 * nf * (nf - 1.0)));
    let z = if s == 0 || var_s <= 0.0 {
        0.0
    } else {
        (s as f64 - (s.signum() as f64)) / var_s.sqrt()
    };
    test.z = Some(z);
    test.p_value = Some(libm::erfc(z.abs() / std::f64::consts::SQRT_2));
    test
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "Mann-Kendall monotonic trend test per group (Hipel & McLeod; pymannkendall `original_test`). Rows are \
         ordered by time; `s` = sum over pairs i < j of sign(v_j - v_i); `var_s` has the correction for tied \
         values; `z` = (s - sign(s)) / sqrt(var_s) (continuity correction, 0 when s = 0); `p_value` is the two-sided \
         normal p-value erfc(|z| / sqrt(2)); `tau` = s / (n(n-1)/2).\n\n\
         Ties in time: pymannkendall assumes one row per time. Here two rows at the same time contribute 0 to `s` \
         and `var_s` also gets Kendall's correction for tied times (as scipy's `kendalltau` asymptotic variance); \
         without duplicate times the result is pymannkendall's.\n\n\
         Returns `STRUCT<s BIGINT, tau DOUBLE, var_s DOUBLE, z DOUBLE, p_value DOUBLE, n BIGINT>`. NULLs: rows where \
         either argument is NULL (or NaN / infinite) are skipped; `tau`, `z` and `p_value` are NULL when n < 2 \
         (`s` and `var_s` are then 0). When every value (or every time) is tied, `z` = 0 and `p_value` = 1. The \
         struct itself is never NULL.\n\n\
         Cost: O(n) memory per group (the rows are kept until the end) and O(n^2) time (every pair is compared); \
         meant for per-pixel series (hundreds to a few thousand rows).",
        "mann_kendall(value, time)",
    )
    .with_argument("value", "The series' values (any number).")
    .with_argument(
        "time",
        "TIMESTAMP or DATE (decimal years since 1970) or a number; only the order matters.",
    )
    .with_sql_example(
        "SELECT pixel,\n\
         \x20      mann_kendall(ndvi(nir, red), time)['p_value'] AS p,\n\
         \x20      theil_sen(ndvi(nir, red), time)['slope'] AS ndvi_per_year\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel\n\
         HAVING mann_kendall(ndvi(nir, red), time)['p_value'] < 0.05;",
    )
    .with_related_udf("theil_sen")
    .build()
});

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use super::*;
    use crate::test_support::*;

    const FIXTURES: &str = include_str!("../fixtures/models_mann_kendall.json");

    fn call(v: ArrayRef, t: ArrayRef) -> Call {
        Call {
            udaf: mann_kendall_udaf(),
            args: vec![v, t],
            literals: vec![None, None],
        }
    }

    fn rel_close(got: f64, want: f64, rtol: f64, what: &str) {
        assert!(
            (got - want).abs() <= rtol * want.abs(),
            "{what}: {got} vs {want}"
        );
    }

    /// Compare a flattened result `[s, tau, var_s, z, p_value, n]` with a fixture.
    fn check(got: &[Option<f64>], e: &Value, what: &str) {
        let n = e["n"].as_f64().unwrap();
        let s = e["s"].as_f64().unwrap();
        assert_eq!(got[5], Some(n), "{what}: n");
        assert_eq!(got[0], Some(s), "{what}: s");
        let var_s = got[2].unwrap();
        rel_close(
            var_s,
            e["var_s"].as_f64().unwrap(),
            1e-12,
            &format!("{what}: var_s"),
        );
        let z = got[3].unwrap();
        let p = got[4].unwrap();
        assert_eq!(got[1], Some(s / (n * (n - 1.0) / 2.0)), "{what}: tau");
        if let Some(tau) = e["tau"].as_f64() {
            // no duplicate times: pymannkendall original_test
            assert!((got[1].unwrap() - tau).abs() <= 1e-15, "{what}: tau");
            assert!(
                (z - e["z"].as_f64().unwrap()).abs() <= 1e-12 * z.abs().max(1.0),
                "{what}: z"
            );
            rel_close(
                p,
                e["p_value"].as_f64().unwrap(),
                1e-12,
                &format!("{what}: p vs scipy norm.sf"),
            );
            assert!(
                (p - e["p_pymannkendall"].as_f64().unwrap()).abs() <= 1e-14,
                "{what}: p vs pymannkendall"
            );
        } else {
            // duplicate times: var_s checked through scipy's kendalltau p-value,
            // which uses S / sqrt(var S) without continuity correction
            let p_nocc = libm::erfc(s.abs() / var_s.sqrt() / std::f64::consts::SQRT_2);
            rel_close(
                p_nocc,
                e["kendalltau_pvalue"].as_f64().unwrap(),
                1e-10,
                &format!("{what}: kendalltau p"),
            );
            rel_close(
                z,
                (s - s.signum()) / var_s.sqrt(),
                1e-15,
                &format!("{what}: z"),
            );
            rel_close(
                p,
                libm::erfc(z.abs() / std::f64::consts::SQRT_2),
                1e-15,
                &format!("{what}: p"),
            );
        }
    }

    #[test]
    fn fixtures_match_pymannkendall_and_scipy() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let cases = f["cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        for case in cases {
            let v: ArrayRef = Arc::new(Float64Array::from(json_f64s(&case["v"])));
            let t = json_time(&case["t"], case["time_kind"].as_str().unwrap());
            for (route, got) in eval_routes(&call(v.clone(), t), true) {
                check(
                    &got,
                    &case["expected"],
                    &format!("{} ({route})", case["name"]),
                );
            }
        }
    }

    #[test]
    fn five_thousand_rows_match_pymannkendall_and_scipy() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        for case in f["large"].as_array().unwrap() {
            let (t, v) = gen_series(
                case["n"].as_u64().unwrap() as usize,
                case["seed"].as_u64().unwrap(),
                case["tied_times"].as_bool().unwrap(),
            );
            let c = call(
                Arc::new(Float64Array::from(v)),
                Arc::new(Float64Array::from(t)),
            );
            for (route, got) in eval_routes(&c, false).into_iter().take(2) {
                check(
                    &got,
                    &case["expected"],
                    &format!("{} ({route})", case["name"]),
                );
            }
        }
    }

    #[test]
    fn value_ties_from_counts_equal_the_runs_of_the_sorted_values() {
        // Series with many ties (values on a coarse grid, some -0.0 next
        // to 0.0, some times repeated): the variance from the tie counts
        // of the S pass against `tie_sums` over the sorted values.
        for seed in 0..50u64 {
            let n = (seed % 40 + 2) as usize;
            let mut x = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut pairs: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let v = match (x >> 33) % 7 {
                        0 => -0.0,
                        k => (k % 4) as f64 * 0.5,
                    };
                    let t = if (x >> 40) % 5 == 0 { 0.0 } else { i as f64 };
                    (t, v)
                })
                .collect();
            let sorted = |column: fn(&(f64, f64)) -> f64| {
                let mut v: Vec<f64> = pairs.iter().map(column).collect();
                v.sort_unstable_by(f64::total_cmp);
                tie_sums(v.into_iter())
            };
            let want = variance_of_s(n, sorted(|p| p.1), sorted(|p| p.0));
            let r = mann_kendall(&mut pairs);
            assert_eq!(
                r.var_s.to_bits(),
                want.to_bits(),
                "seed {seed}: {} vs {want}",
                r.var_s
            );
        }
    }

    #[test]
    fn closed_forms() {
        for n in 0..2 {
            let mut pairs: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, 1.0)).collect();
            let r = mann_kendall(&mut pairs);
            assert_eq!(
                r,
                Test {
                    s: 0,
                    tau: None,
                    var_s: 0.0,
                    z: None,
                    p_value: None,
                    n: n as i64
                }
            );
        }
        // strictly increasing n = 4: S = 6, var = 4*3*13/18, z = 5/sqrt(var)
        let mut pairs: Vec<(f64, f64)> = (0..4).rev().map(|i| (i as f64, i as f64 * 2.0)).collect();
        let r = mann_kendall(&mut pairs);
        let var = 4.0 * 3.0 * 13.0 / 18.0;
        assert_eq!((r.s, r.tau, r.var_s), (6, Some(1.0), var));
        assert_eq!(r.z, Some(5.0 / f64::sqrt(var)));
        // all values tied: z = 0, p = 1; all times tied: S = 0, var = 0
        let r = mann_kendall(&mut [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)]);
        assert_eq!(
            (r.s, r.var_s, r.z, r.p_value),
            (0, 0.0, Some(0.0), Some(1.0))
        );
        let r = mann_kendall(&mut [(1.0, 3.0), (1.0, 4.0), (1.0, 1.0)]);
        assert_eq!(
            (r.s, r.var_s, r.z, r.p_value),
            (0, 0.0, Some(0.0), Some(1.0))
        );
        // the 97.5% normal quantile gives p = 0.05
        let p = libm::erfc(1.959963984540054 / std::f64::consts::SQRT_2);
        assert!((p - 0.05).abs() < 1e-15, "{p}");
    }

    #[test]
    fn groups_accumulator_matches_plain_accumulator() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(300 + seed);
            let n = 260;
            let v: Float64Array = (0..n)
                .map(|_| match rng.random_range(0..30) {
                    0..3 => None,
                    3 => Some(f64::NEG_INFINITY),
                    _ => Some(rng.random_range(0..20) as f64),
                })
                .collect();
            let t: ArrayRef = if seed % 2 == 0 {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..15) > 0).then(|| rng.random_range(0..100) as f64)
                        })
                        .collect::<Float64Array>(),
                )
            } else {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..15) > 0).then(|| 15000 + rng.random_range(0..400))
                        })
                        .collect::<Date32Array>(),
                )
            };
            check_groups_vs_plain(&call(Arc::new(v), t), seed, &close(1e-12));
        }
    }

    #[tokio::test]
    async fn sql_group_by_on_dates() {
        // pixel 0 increases (S = n(n-1)/2), pixel 1 decreases; rows given out of time order.
        let n = 12;
        let mut rows = Vec::new();
        for g in 0..2 {
            for i in (0..n).rev() {
                let v = if g == 0 { i as f64 } else { -(i as f64) };
                rows.push(format!("({g}, {v:?}, CAST({} AS DATE))", 17000 + 16 * i));
            }
        }
        rows.push("(1, NULL, CAST(17000 AS DATE))".to_string());
        let obs = format!("(VALUES {}) AS obs(g, v, d)", rows.join(", "));
        let q = format!(
            "SELECT g, mann_kendall(v, d)['s'] AS s, mann_kendall(v, d)['tau'] AS tau, \
             mann_kendall(v, d)['p_value'] AS p, mann_kendall(v, d)['n'] AS n FROM {obs} GROUP BY g ORDER BY g"
        );
        let b = &sql(&q).await.unwrap()[0];
        let full = (n * (n - 1) / 2) as i64;
        for (row, sign) in [(0, 1), (1, -1)] {
            assert_eq!(
                b.column(1).as_primitive::<Int64Type>().value(row),
                sign * full
            );
            assert_eq!(
                b.column(2).as_primitive::<Float64Type>().value(row),
                sign as f64
            );
            let var = (n * (n - 1) * (2 * n + 5)) as f64 / 18.0;
            let want = libm::erfc(((full - 1) as f64 / var.sqrt()) / std::f64::consts::SQRT_2);
            assert!((b.column(3).as_primitive::<Float64Type>().value(row) - want).abs() < 1e-15);
            assert_eq!(b.column(4).as_primitive::<Int64Type>().value(row), n as i64);
        }
        let b = &sql(&format!("SELECT mann_kendall(v, d)['p_value'] AS p, mann_kendall(v, d)['n'] AS n FROM {obs} WHERE g = 7"))
            .await
            .unwrap()[0];
        assert!(b.column(0).is_null(0));
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 0);
    }

    #[tokio::test]
    async fn bad_calls_are_errors_naming_the_function_and_signature() {
        let from = "FROM (VALUES (1.0, 2.0, 'a')) AS s(v, t, s)";
        for (q, needle) in [
            (
                format!("SELECT mann_kendall(v) {from}"),
                "expects 2 arguments, got 1",
            ),
            (
                format!("SELECT mann_kendall(s, t) {from}"),
                "argument `value` must be a number",
            ),
            (
                format!("SELECT mann_kendall(v, s) {from}"),
                "argument `time` must be a TIMESTAMP, a DATE or a number",
            ),
        ] {
            let e = sql_error(&q).await;
            assert!(e.contains(SIGNATURE) && e.contains(needle), "{q}\n{e}");
        }
    }
}
