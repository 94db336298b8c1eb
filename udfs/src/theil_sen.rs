//! `theil_sen(value, time)`: the Theil-Sen robust trend per group, returning
//! `STRUCT<slope DOUBLE, intercept DOUBLE, n BIGINT>`.
//!
//! The slope is the median of the pairwise slopes `(v_j - v_i) / (t_j - t_i)`
//! over all pairs with different times (pairs at equal times are left out);
//! the intercept is the median of `v - slope * t` over all rows (scipy's
//! `theilslopes(method='joint')`). Robust to outliers (breakdown point 29%),
//! it is the usual companion of the Mann-Kendall test on per-pixel series.
//!
//! # Cost
//! The group's `(time, value)` pairs are kept ([`crate::pairs`]), O(n)
//! memory. The median of the `N ~ n^2/2` slopes takes O(n^2) time: slopes are
//! enumerated (never stored all at once beyond [`SELECTION`]'s limit) in
//! passes; a pass counts the slopes below a bracket `[lo, hi]` and either
//! collects the slopes inside it (when few enough) or keeps a uniform
//! reservoir sample of them, from which a narrower bracket around the two
//! median ranks is chosen (Floyd-Rivest style selection). Each sampling pass
//! shrinks the bracket about 16-fold, so a 5,000-row group (12.5 million
//! slopes) takes two passes and a few MB instead of 100 MB. The result is
//! exact: the selected values are the same floating-point slopes scipy sorts.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, Documentation};

use crate::agg_common::{self, median};
use crate::pairs::{PairStatistic, Pairs};
use crate::sections::TIME_SERIES_AGGREGATES;

const SIGNATURE: &str = "theil_sen(value DOUBLE, time TIMESTAMP|DATE|DOUBLE)";

/// Tuning of the median-of-slopes selection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selection {
    /// Slopes inside the current bracket are collected (not sampled) when at
    /// most this many are expected.
    pub collect_limit: u64,
    /// Reservoir sample size of a sampling pass.
    pub sample_size: usize,
    /// Half-width of the next bracket around the median ranks, in units of
    /// `sqrt(sample size)` sample positions (2 is 4 standard deviations of a
    /// sample rank: a miss, which costs one more pass, is very rare).
    pub spread: f64,
}

/// The selection used by `theil_sen`: at most 8 MiB of collected slopes and
/// a 16,384-slope sample (the bracket shrinks ~16-fold per sampling pass).
pub(crate) const SELECTION: Selection = Selection {
    collect_limit: 1 << 20,
    sample_size: 1 << 14,
    spread: 2.0,
};

/// The `theil_sen` aggregate.
pub fn theil_sen_udaf() -> Arc<AggregateUDF> {
    agg_common::udaf::<Pairs<TheilSenStatistic>>()
}

/// One group's Theil-Sen estimate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Estimate {
    pub slope: Option<f64>,
    pub intercept: Option<f64>,
    pub n: i64,
}

/// The statistic plugged into the pair accumulators.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TheilSenStatistic;

fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("slope", DataType::Float64, true),
        Field::new("intercept", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ])
}

impl PairStatistic for TheilSenStatistic {
    type Output = Estimate;
    const NAME: &'static str = "theil_sen";
    const SIGNATURE: &'static str = SIGNATURE;

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn output_type() -> DataType {
        DataType::Struct(output_fields())
    }

    fn compute(pairs: &mut [(f64, f64)], scratch: &mut Vec<f64>) -> Estimate {
        theil_sen(pairs, scratch, SELECTION)
    }

    fn output(results: Vec<Estimate>) -> Result<ArrayRef> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(results.iter().map(|r| r.slope).collect::<Float64Array>()),
            Arc::new(
                results
                    .iter()
                    .map(|r| r.intercept)
                    .collect::<Float64Array>(),
            ),
            Arc::new(results.iter().map(|r| Some(r.n)).collect::<Int64Array>()),
        ];
        Ok(Arc::new(StructArray::try_new(
            output_fields(),
            columns,
            None,
        )?))
    }
}

/// Theil-Sen estimate of `(time, value)` pairs (reordered: sorted by time).
pub(crate) fn theil_sen(
    pairs: &mut [(f64, f64)],
    scratch: &mut Vec<f64>,
    selection: Selection,
) -> Estimate {
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let slope = median_slope(pairs, scratch, selection);
    let intercept = slope.map(|s| {
        scratch.clear();
        scratch.extend(pairs.iter().map(|&(t, v)| v - s * t));
        median(scratch)
    });
    Estimate {
        slope,
        intercept,
        n: pairs.len() as i64,
    }
}

/// Call `f(slope)` for every pair of rows with different times; `pairs` is
/// sorted by time and `next[i]` is the first index with a larger time than `i`.
#[inline]
fn for_each_slope(pairs: &[(f64, f64)], next: &[usize], mut f: impl FnMut(f64)) {
    for (i, &(ti, vi)) in pairs.iter().enumerate() {
        for &(tj, vj) in &pairs[next[i]..] {
            f((vj - vi) / (tj - ti));
        }
    }
}

/// A small deterministic generator for the reservoir (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % bound
    }
}

/// Median of the pairwise slopes (pairs sorted by time), `None` without any
/// pair of distinct times. See the module docs for the selection method.
fn median_slope(pairs: &[(f64, f64)], buffer: &mut Vec<f64>, selection: Selection) -> Option<f64> {
    let Selection {
        collect_limit,
        sample_size,
        spread,
    } = selection;
    let n = pairs.len();
    let mut next = vec![n; n];
    let mut run_start = 0;
    for i in 1..=n {
        if i == n || pairs[i].0 != pairs[run_start].0 {
            next[run_start..i].fill(i);
            run_start = i;
        }
    }
    let total: u64 = next.iter().map(|&e| (n - e) as u64).sum();
    if total == 0 {
        return None;
    }
    let (lo_rank, hi_rank) = ((total - 1) / 2, total / 2);
    let mut rng = Rng((0x9E37_79B9_7F4A_7C15 ^ total) | 1);
    let mut reservoir: Vec<f64> = Vec::new();
    // Current bracket and the last bracket known to hold both median ranks.
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut valid_lo, mut valid_hi, mut valid_inside) = (lo, hi, total);
    let mut expected = total;
    let mut force_collect = false;
    loop {
        let collect = force_collect || expected <= collect_limit;
        buffer.clear();
        reservoir.clear();
        let (mut below, mut inside) = (0u64, 0u64);
        for_each_slope(pairs, &next, |s| {
            if s < lo {
                below += 1;
            } else if s <= hi {
                inside += 1;
                if collect {
                    buffer.push(s);
                } else if reservoir.len() < sample_size {
                    reservoir.push(s);
                } else {
                    let j = rng.below(inside) as usize;
                    if j < sample_size {
                        reservoir[j] = s;
                    }
                }
            }
        });
        if below > lo_rank || below + inside <= hi_rank {
            // The bracket missed a median rank (rare): widen the failing side
            // back to the last valid bound and sample again.
            if below > lo_rank {
                lo = valid_lo;
            }
            if below + inside <= hi_rank {
                hi = valid_hi;
            }
            expected = valid_inside;
            force_collect = false;
            continue;
        }
        (valid_lo, valid_hi, valid_inside) = (lo, hi, inside);
        let (kl, kh) = ((lo_rank - below) as usize, (hi_rank - below) as usize);
        if lo == hi {
            return Some(lo);
        }
        if collect {
            let keys = agg_common::total_order_keys(buffer);
            let (_, &mut a, upper) = keys.select_nth_unstable(kl);
            let b = if kh == kl {
                a
            } else {
                // kh = kl + 1: the smallest slope above rank kl
                upper.iter().copied().min().unwrap_or(a)
            };
            let (a, b) = (
                agg_common::from_total_order_key(a),
                agg_common::from_total_order_key(b),
            );
            return Some(if kh == kl { a } else { (a + b) / 2.0 });
        }
        // Narrow the bracket from the sorted sample.
        reservoir.sort_unstable_by(f64::total_cmp);
        let r = reservoir.len();
        let spread = (spread * (r as f64).sqrt()).ceil() as usize;
        let pl = (kl as u128 * r as u128 / inside as u128) as usize;
        let ph = (kh as u128 * r as u128 / inside as u128) as usize;
        let lo_index = pl.saturating_sub(spread);
        let hi_index = (ph + spread).min(r - 1);
        let new_lo = if pl >= spread {
            reservoir[lo_index]
        } else {
            lo
        };
        let new_hi = if ph + spread < r {
            reservoir[hi_index]
        } else {
            hi
        };
        force_collect = new_lo == lo && new_hi == hi;
        (lo, hi) = (new_lo, new_hi);
        expected = (inside as u128 * (hi_index - lo_index + 1) as u128 / r as u128) as u64;
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "Theil-Sen robust linear trend per group. `slope` is the median of the slopes `(v_j - v_i) / (t_j - t_i)` \
         over all pairs of rows with different times (pairs at equal times are left out); `intercept` is the median \
         of `value - slope * t` over all rows (scipy's `theilslopes(method='joint')`), i.e. the value at t = 0 \
         (1970-01-01 for TIMESTAMP / DATE times). Times are decimal years since 1970 for TIMESTAMP / DATE \
         (365.25-day years: slope per year), numbers as is.\n\n\
         Returns `STRUCT<slope DOUBLE, intercept DOUBLE, n BIGINT>`. NULLs: rows where either argument is NULL \
         (or NaN / infinite) are skipped; `slope` and `intercept` are NULL when no two rows have different times \
         (n < 2 or a constant time). The struct itself is never NULL (`n = 0` for an empty group).\n\n\
         Cost: O(n) memory per group (the rows are kept until the end) and O(n^2) time for the median of the \
         n(n-1)/2 pairwise slopes (exact selection in a few passes with a bounded buffer); meant for per-pixel \
         series (hundreds to a few thousand rows), not for one huge group.",
        "theil_sen(value, time)",
    )
    .with_argument("value", "The series' values (any number).")
    .with_argument(
        "time",
        "TIMESTAMP or DATE (decimal years since 1970) or a number (used as is).",
    )
    .with_sql_example(
        "SELECT pixel, theil_sen(ndvi(nir, red), time)['slope'] AS ndvi_per_year\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel;",
    )
    .with_related_udf("mann_kendall")
    .build()
});

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    use super::*;
    use crate::test_support::*;

    const FIXTURES: &str = include_str!("../fixtures/models_theil_sen.json");
    const FIELDS: [&str; 3] = ["slope", "intercept", "n"];

    fn call(v: ArrayRef, t: ArrayRef) -> Call {
        Call {
            udaf: theil_sen_udaf(),
            args: vec![v, t],
            literals: vec![None, None],
        }
    }

    #[test]
    fn fixtures_match_scipy_theilslopes() {
        let f: Value = serde_json::from_str(FIXTURES).unwrap();
        let cases = f["cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        for case in cases {
            let v: ArrayRef = Arc::new(Float64Array::from(json_f64s(&case["v"])));
            let t = json_time(&case["t"], case["time_kind"].as_str().unwrap());
            let expected = json_expected(&case["expected"], &FIELDS);
            for (route, got) in eval_routes(&call(v.clone(), t), true) {
                assert_close(
                    &got,
                    &expected,
                    1e-12,
                    &format!("{} ({route})", case["name"]),
                );
            }
        }
    }

    #[test]
    fn five_thousand_rows_match_scipy() {
        // 12 million pairwise slopes: exercises the sampled bracket selection.
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
            let expected = json_expected(&case["expected"], &FIELDS);
            for (route, got) in eval_routes(&c, false).into_iter().take(2) {
                assert_close(
                    &got,
                    &expected,
                    1e-12,
                    &format!("{} ({route})", case["name"]),
                );
            }
        }
    }

    #[test]
    fn bracket_selection_equals_full_sort() {
        // Tiny collect limits and samples force several sampling passes,
        // bracket failures and the no-progress path on tie-heavy data.
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..60 {
            let n = rng.random_range(2..120);
            let grid = [0, 3, 1000][round % 3]; // 0: continuous values
            let pairs: Vec<(f64, f64)> = (0..n)
                .map(|_| {
                    let t = rng.random_range(0..40) as f64 / 4.0;
                    let v = if grid == 0 {
                        rng.random_range(-1.0..1.0)
                    } else {
                        rng.random_range(0..grid) as f64
                    };
                    (t, v)
                })
                .collect();
            let mut scratch = Vec::new();
            let all = Selection {
                collect_limit: u64::MAX,
                sample_size: 1,
                spread: 2.0,
            };
            let want = theil_sen(&mut pairs.clone(), &mut scratch, all);
            // spread 0 makes brackets miss a median rank often (the retry path)
            for (collect_limit, sample_size, spread) in [
                (1, 2, 2.0),
                (8, 4, 1.0),
                (50, 16, 2.0),
                (200, 64, 2.0),
                (20, 64, 0.0),
            ] {
                let s = Selection {
                    collect_limit,
                    sample_size,
                    spread,
                };
                let got = theil_sen(&mut pairs.clone(), &mut scratch, s);
                assert_eq!(got, want, "round {round}, {s:?}");
            }
        }
    }

    #[test]
    fn closed_forms() {
        let mut scratch = Vec::new();
        // A constant series of 2,000 rows: 2 million slopes, all 0 (sampling
        // then the lo == hi exit).
        let mut pairs: Vec<(f64, f64)> =
            (0..2000).map(|i| (50.0 + i as f64 / 100.0, 0.25)).collect();
        let e = theil_sen(&mut pairs, &mut scratch, SELECTION);
        assert_eq!((e.slope, e.intercept, e.n), (Some(0.0), Some(0.25), 2000));
        // An exact line with one wild outlier keeps its slope and intercept.
        let mut pairs: Vec<(f64, f64)> =
            (0..11).map(|i| (i as f64, 3.0 - 2.0 * i as f64)).collect();
        pairs[4].1 = 1e6;
        let e = theil_sen(&mut pairs, &mut scratch, SELECTION);
        assert_eq!((e.slope, e.intercept), (Some(-2.0), Some(3.0)));
        // n = 0 and all rows at one time
        let e = theil_sen(&mut [], &mut scratch, SELECTION);
        assert_eq!((e.slope, e.intercept, e.n), (None, None, 0));
        let e = theil_sen(&mut [(1.0, 2.0), (1.0, 5.0)], &mut scratch, SELECTION);
        assert_eq!((e.slope, e.n), (None, 2));
    }

    #[test]
    fn groups_accumulator_matches_plain_accumulator() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(200 + seed);
            let n = 260;
            let v: Float64Array = (0..n)
                .map(|_| match rng.random_range(0..30) {
                    0..3 => None,
                    3 => Some(f64::NAN),
                    _ => Some(rng.random_range(0..50) as f64 / 10.0),
                })
                .collect();
            let t: ArrayRef = if seed % 2 == 0 {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..15) > 0)
                                .then(|| rng.random_range(0..80) as f64 / 4.0)
                        })
                        .collect::<Float64Array>(),
                )
            } else {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..15) > 0).then(|| {
                                1_500_000_000_000 + rng.random_range(0..40i64) * 86_400_000
                            })
                        })
                        .collect::<TimestampMillisecondArray>(),
                )
            };
            check_groups_vs_plain(&call(Arc::new(v), t), seed, &close(1e-12));
        }
    }

    #[tokio::test]
    async fn sql_group_by_on_timestamps() {
        // v = 10 + 0.5 * years with an outlier per pixel: the slope stays 0.5.
        let mut rows = Vec::new();
        for g in 0..2 {
            for i in 0..15 {
                let day = 18000 + 30 * i;
                let years = day as f64 / 365.25;
                let v = if i == 3 {
                    1e4
                } else {
                    10.0 + g as f64 + 0.5 * years
                };
                rows.push(format!(
                    "({g}, {v:?}, CAST(CAST({day} AS DATE) AS TIMESTAMP))"
                ));
            }
        }
        let obs = format!("(VALUES {}) AS obs(g, v, t)", rows.join(", "));
        let q = format!(
            "SELECT g, theil_sen(v, t)['slope'] AS s, theil_sen(v, t)['intercept'] AS i, theil_sen(v, t)['n'] AS n \
             FROM {obs} GROUP BY g ORDER BY g"
        );
        let b = &sql(&q).await.unwrap()[0];
        for row in 0..2 {
            assert!((b.column(1).as_primitive::<Float64Type>().value(row) - 0.5).abs() < 1e-9);
            assert!(
                (b.column(2).as_primitive::<Float64Type>().value(row) - (10.0 + row as f64)).abs()
                    < 1e-6
            );
            assert_eq!(b.column(3).as_primitive::<Int64Type>().value(row), 15);
        }
        let b = &sql(&format!(
            "SELECT theil_sen(v, t)['slope'] AS s FROM {obs} WHERE g = 5"
        ))
        .await
        .unwrap()[0];
        assert!(b.column(0).is_null(0));
    }

    #[tokio::test]
    async fn bad_calls_are_errors_naming_the_function_and_signature() {
        let from = "FROM (VALUES (1.0, 2.0, 'a')) AS s(v, t, s)";
        for (q, needle) in [
            (
                format!("SELECT theil_sen(v) {from}"),
                "expects 2 arguments, got 1",
            ),
            (
                format!("SELECT theil_sen(v, t, t) {from}"),
                "expects 2 arguments, got 3",
            ),
            (
                format!("SELECT theil_sen(s, t) {from}"),
                "argument `value` must be a number",
            ),
            (
                format!("SELECT theil_sen(v, s) {from}"),
                "argument `time` must be a TIMESTAMP, a DATE or a number",
            ),
        ] {
            let e = sql_error(&q).await;
            assert!(e.contains(SIGNATURE) && e.contains(needle), "{q}\n{e}");
        }
    }
}
