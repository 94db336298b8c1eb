//! Plumbing shared by sceneql's per-pixel model aggregates (`harmonic_fit`,
//! `linreg`, `theil_sen`, `mann_kendall`) and `harmonic_predict`: argument
//! coercion with errors that name the function and its SQL signature, the
//! row-validity rule (a row counts only when no argument is NULL, NaN or
//! infinite and the `FILTER` clause, if any, is true), literal arguments, and
//! building the LIST<DOUBLE> arrays the states and results are made of.
//!
//! Kept in one place so the four aggregates skip exactly the same rows and
//! report bad calls in the same words.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, LargeListArray, ListArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::DocSection;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::scalar::ScalarValue;

use crate::time;

/// Documentation section of the time-series aggregates (and `harmonic_predict`).
pub(crate) const TIME_SERIES_SECTION: DocSection = DocSection {
    include: true,
    label: "sceneql: time-series aggregates",
    description: None,
};

/// A planning error that names the function's SQL signature, e.g.
/// `harmonic_fit(value, time, k): k must be ...`.
pub(crate) fn call_error(signature: &str, detail: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("{signature}: {detail}"))
}

/// Check the argument count of a call (`min..=max` arguments).
pub(crate) fn check_arg_count(
    signature: &str,
    arg_types: &[DataType],
    min: usize,
    max: usize,
) -> Result<()> {
    let n = arg_types.len();
    if n < min || n > max {
        let expected = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(call_error(
            signature,
            format!("expected {expected} arguments, got {n}"),
        ));
    }
    Ok(())
}

/// Coerce a numeric argument (the modelled value, a regressor) to DOUBLE.
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

/// Coerce a time argument: TIMESTAMP / DATE stay as they are (converted to
/// decimal years by [`time::to_years`] at run time), numbers become DOUBLE.
pub(crate) fn coerce_time(signature: &str, name: &str, t: &DataType) -> Result<DataType> {
    if matches!(
        t,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) {
        Ok(t.clone())
    } else if time::is_time_type(t) || t == &DataType::Null {
        Ok(DataType::Float64)
    } else {
        Err(call_error(
            signature,
            format!("argument `{name}` must be a TIMESTAMP, a DATE or a number, got {t}"),
        ))
    }
}

/// The value of a literal argument (`None` when the argument is not a literal).
pub(crate) fn literal_value(expr: &Arc<dyn PhysicalExpr>) -> Option<&ScalarValue> {
    expr.downcast_ref::<Literal>().map(|l| l.value())
}

/// A DOUBLE argument array (the aggregates coerce their numeric arguments to DOUBLE).
pub(crate) fn as_f64<'a>(signature: &str, array: &'a ArrayRef) -> Result<&'a Float64Array> {
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{signature}: expected a DOUBLE argument array, got {}",
                array.data_type()
            ))
        })
}

/// Call `f(row)` for every row where no column is NULL or non-finite (NaN,
/// +-Inf: raster nodata) and the filter, if any, is true (a NULL filter value
/// counts as false, as in SQL).
pub(crate) fn for_each_valid_row(
    columns: &[&Float64Array],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize),
) {
    let Some(len) = columns.first().map(|c| c.len()) else {
        return;
    };
    let nulls = NullBuffer::union_many(columns.iter().map(|c| c.nulls()));
    for row in 0..len {
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            continue;
        }
        if let Some(fl) = filter
            && !(fl.is_valid(row) && fl.value(row))
        {
            continue;
        }
        if columns.iter().any(|c| !c.value(row).is_finite()) {
            continue;
        }
        f(row);
    }
}

/// The item field of every LIST<DOUBLE> this crate produces.
pub(crate) fn f64_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Float64, true))
}

/// `LIST<DOUBLE>` (nullable items).
pub(crate) fn f64_list_type() -> DataType {
    DataType::List(f64_item())
}

/// `LARGE LIST<DOUBLE>` (nullable items).
pub(crate) fn f64_large_list_type() -> DataType {
    DataType::LargeList(f64_item())
}

/// Build a LIST<DOUBLE> from per-row lengths and the concatenated values
/// (`valid[i] == false` makes row i NULL).
pub(crate) fn f64_list(
    lengths: &[usize],
    values: Vec<f64>,
    valid: Option<Vec<bool>>,
) -> Result<ListArray> {
    let total: usize = lengths.iter().sum();
    if total > i32::MAX as usize {
        return Err(DataFusionError::Execution(format!(
            "a LIST<DOUBLE> of {total} values is too large (limit {})",
            i32::MAX
        )));
    }
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths.iter().copied());
    let nulls = valid.map(NullBuffer::from);
    Ok(ListArray::new(
        f64_item(),
        offsets,
        Arc::new(Float64Array::new(ScalarBuffer::from(values), None)),
        nulls,
    ))
}

/// Build a LARGE LIST<DOUBLE> (no NULL rows) from per-row lengths and values.
pub(crate) fn f64_large_list(lengths: &[usize], values: Vec<f64>) -> LargeListArray {
    let offsets = OffsetBuffer::<i64>::from_lengths(lengths.iter().copied());
    LargeListArray::new(
        f64_item(),
        offsets,
        Arc::new(Float64Array::new(ScalarBuffer::from(values), None)),
        None,
    )
}

/// Median of a non-empty slice (mean of the two middle values for an even
/// length, as `numpy.median`); reorders the slice. NaN sorts last.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    debug_assert!(n > 0);
    let mid = n / 2;
    let (lower, upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        // The largest value of the lower half is the other middle value.
        let lower_max = lower
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        (lower_max + upper) / 2.0
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the aggregates' tests: running an aggregate through its
    //! plain `Accumulator` and its `GroupsAccumulator` the ways DataFusion does,
    //! flattening results for comparison, and a deterministic LCG shared with
    //! `fixtures/make_fixtures_models.py`.

    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StructArray, UInt32Array,
    };
    use datafusion::arrow::compute::{concat, take};
    use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
    use datafusion::error::Result;
    use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
    use datafusion::logical_expr::{Accumulator, AggregateUDF, EmitTo, GroupsAccumulator};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{Column, Literal};
    use datafusion::prelude::SessionContext;
    use datafusion::scalar::ScalarValue;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The LCG of the fixtures (Knuth's MMIX constants), identical in Python.
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0
        }
        /// Uniform in [0, 1) with 53 random bits (exact in both languages).
        pub fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / 9007199254740992.0
        }
    }

    /// The series of `make_fixtures_models.py::gen_series` (times, values):
    /// 40 years from 1984, values rounded to 3 decimals, times i/125 years
    /// apart or (`tied_times`) on a random 1/23-year grid; value NULL on
    /// every 89th row.
    pub fn gen_series(
        n: usize,
        seed: u64,
        tied_times: bool,
    ) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let mut g = Lcg(seed);
        let (mut t, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let u1 = g.uniform();
            let u2 = g.uniform();
            let ti = if tied_times {
                1984.0 + (u1 * 920.0).floor() / 23.0
            } else {
                1984.0 + i as f64 / 125.0
            };
            let x = 0.3
                + 0.002 * (ti - 1984.0)
                + 0.05 * (std::f64::consts::TAU * ti).sin()
                + 0.1 * (u2 - 0.5);
            t.push(Some(ti));
            v.push(if i % 89 == 0 {
                None
            } else {
                Some((x * 1000.0 + 0.5).floor() / 1000.0)
            });
        }
        (t, v)
    }

    /// An aggregate call: argument arrays plus literal arguments (e.g. `k`).
    pub struct Call {
        pub udaf: Arc<AggregateUDF>,
        /// Argument arrays; `None` entries are literal arguments taken from `literals`.
        pub args: Vec<ArrayRef>,
        /// For each argument, `Some(literal)` when it is a literal.
        pub literals: Vec<Option<ScalarValue>>,
    }

    impl Call {
        fn coerced_fields(&self) -> Vec<FieldRef> {
            let types: Vec<DataType> = self.args.iter().map(|a| a.data_type().clone()).collect();
            let coerced = self.udaf.coerce_types(&types).unwrap();
            coerced
                .iter()
                .enumerate()
                .map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true)))
                .collect()
        }

        /// The arguments cast to the coerced types (as DataFusion would).
        pub fn coerced_args(&self, args: &[ArrayRef]) -> Vec<ArrayRef> {
            let fields = self.coerced_fields();
            args.iter()
                .zip(fields)
                .map(|(a, f)| datafusion::arrow::compute::cast(a, f.data_type()).unwrap())
                .collect()
        }

        fn with_args<T>(&self, f: impl FnOnce(AccumulatorArgs) -> T) -> T {
            let fields = self.coerced_fields();
            let schema = Schema::new(fields.clone());
            let exprs: Vec<Arc<dyn PhysicalExpr>> = fields
                .iter()
                .enumerate()
                .map(|(i, fl)| match &self.literals[i] {
                    Some(v) => Arc::new(Literal::new(v.clone())) as Arc<dyn PhysicalExpr>,
                    None => Arc::new(Column::new(fl.name(), i)) as Arc<dyn PhysicalExpr>,
                })
                .collect();
            let return_field = self.udaf.return_field(&fields).unwrap();
            f(AccumulatorArgs {
                return_field,
                schema: &schema,
                ignore_nulls: false,
                order_bys: &[],
                is_reversed: false,
                name: "agg",
                is_distinct: false,
                exprs: &exprs,
                expr_fields: &fields,
            })
        }

        pub fn accumulator(&self) -> Result<Box<dyn Accumulator>> {
            self.with_args(|a| self.udaf.accumulator(a))
        }

        pub fn groups_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
            self.with_args(|a| {
                assert!(self.udaf.groups_accumulator_supported(a.clone()));
                self.udaf.create_groups_accumulator(a)
            })
        }

        pub fn state_fields(&self) -> Vec<FieldRef> {
            let fields = self.coerced_fields();
            let return_field = self.udaf.return_field(&fields).unwrap();
            self.udaf
                .state_fields(StateFieldsArgs {
                    name: "agg",
                    input_fields: &fields,
                    return_field,
                    ordering_fields: &[],
                    is_distinct: false,
                })
                .unwrap()
        }
    }

    /// A result row flattened to numbers for comparison: each field in order,
    /// lists as their length followed by their items, NULL as `None`.
    pub fn flatten_row(array: &StructArray, row: usize) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        for col in array.columns() {
            if col.is_null(row) {
                out.push(None);
                continue;
            }
            match col.data_type() {
                DataType::Float64 => out.push(Some(
                    col.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .value(row),
                )),
                DataType::Int64 => out.push(Some(
                    col.as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .value(row) as f64,
                )),
                DataType::List(_) => {
                    let l = col.as_list::<i32>().value(row);
                    let l = l.as_any().downcast_ref::<Float64Array>().unwrap();
                    out.push(Some(l.len() as f64));
                    out.extend(l.iter());
                }
                t => panic!("unexpected result type {t}"),
            }
        }
        out
    }

    pub fn flatten_scalar(v: &ScalarValue) -> Vec<Option<f64>> {
        let a = v.to_array().unwrap();
        flatten_row(a.as_struct(), 0)
    }

    /// `a` and `b` agree: same NULLs, numbers within `rtol` (relative to
    /// max(1, |b|)).
    pub fn assert_close(a: &[Option<f64>], b: &[Option<f64>], rtol: f64, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            match (x, y) {
                (None, None) => {}
                (Some(x), Some(y)) => {
                    let ok = (x - y).abs() <= rtol * y.abs().max(1.0) || (x.is_nan() && y.is_nan());
                    assert!(ok, "{what}: {x} vs {y}\n{a:?}\n{b:?}");
                }
                _ => panic!("{what}: NULLs differ\n{a:?}\n{b:?}"),
            }
        }
    }

    fn take_rows(args: &[ArrayRef], rows: &[u32]) -> Vec<ArrayRef> {
        let idx = UInt32Array::from(rows.to_vec());
        args.iter()
            .map(|a| take(a.as_ref(), &idx, None).unwrap())
            .collect()
    }

    /// Property check: the GroupsAccumulator agrees with the plain Accumulator
    /// (run per group on the filtered rows) on random groups, filters,
    /// batches, partial emission, state round trips and `convert_to_state`.
    /// `args` are the raw argument arrays (with NULLs) of `call`.
    pub fn check_groups_vs_plain(call: &Call, seed: u64, rtol: f64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let args = call.coerced_args(&call.args);
        let n = args[0].len();
        let num_groups = rng.random_range(1..=7usize);
        let groups: Vec<usize> = (0..n).map(|_| rng.random_range(0..num_groups)).collect();
        let filter: BooleanArray = (0..n)
            .map(|_| match rng.random_range(0..10) {
                0 => None,
                1 | 2 => Some(false),
                _ => Some(true),
            })
            .collect();

        // Reference: one plain accumulator per group, rows in input order, in
        // two batches; also a state()/merge_batch() round trip.
        let mut expected = Vec::new();
        let mut expected_merged = Vec::new();
        for g in 0..num_groups {
            let rows: Vec<u32> = (0..n as u32)
                .filter(|&i| {
                    groups[i as usize] == g
                        && filter.is_valid(i as usize)
                        && filter.value(i as usize)
                })
                .collect();
            let sub = take_rows(&args, &rows);
            let cut = rows.len() / 3;
            let mut acc = call.accumulator().unwrap();
            let first: Vec<ArrayRef> = sub.iter().map(|a| a.slice(0, cut)).collect();
            let rest: Vec<ArrayRef> = sub.iter().map(|a| a.slice(cut, rows.len() - cut)).collect();
            acc.update_batch(&first).unwrap();
            acc.update_batch(&rest).unwrap();
            expected.push(flatten_scalar(&acc.evaluate().unwrap()));

            // state + merge in the opposite order
            let mut a1 = call.accumulator().unwrap();
            let mut a2 = call.accumulator().unwrap();
            a1.update_batch(&first).unwrap();
            a2.update_batch(&rest).unwrap();
            let s1: Vec<ArrayRef> = a1
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            let s2: Vec<ArrayRef> = a2
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            let mut m = call.accumulator().unwrap();
            m.merge_batch(&s2).unwrap();
            m.merge_batch(&s1).unwrap();
            // merging an empty accumulator's state changes nothing
            let mut empty = call.accumulator().unwrap();
            let s0: Vec<ArrayRef> = empty
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            m.merge_batch(&s0).unwrap();
            expected_merged.push(flatten_scalar(&m.evaluate().unwrap()));
        }
        for g in 0..num_groups {
            assert_close(
                &expected_merged[g],
                &expected[g],
                rtol,
                &format!("plain merge, group {g}"),
            );
        }
        let collect_rows = |out: &[ArrayRef]| -> Vec<Vec<Option<f64>>> {
            let mut rows = Vec::new();
            for a in out {
                let s = a.as_struct();
                for r in 0..s.len() {
                    rows.push(flatten_row(s, r));
                }
            }
            rows
        };
        let check = |got: Vec<Vec<Option<f64>>>, what: &str| {
            assert_eq!(got.len(), num_groups, "{what}: group count");
            for g in 0..num_groups {
                assert_close(&got[g], &expected[g], rtol, &format!("{what}, group {g}"));
            }
        };

        // 1. Update in random batches, with the filter; emit First(k) then All.
        let mut acc = call.groups_accumulator().unwrap();
        let mut start = 0;
        while start < n {
            let len = rng.random_range(1..=n - start);
            let batch: Vec<ArrayRef> = args.iter().map(|a| a.slice(start, len)).collect();
            let f = filter.slice(start, len);
            acc.update_batch(&batch, &groups[start..start + len], Some(&f), num_groups)
                .unwrap();
            start += len;
        }
        let k = rng.random_range(0..=num_groups);
        let mut out = vec![acc.evaluate(EmitTo::First(k)).unwrap()];
        if k < num_groups {
            out.push(acc.evaluate(EmitTo::All).unwrap());
        }
        check(collect_rows(&out), "update + First(k)/All");

        // 2. Sorted streaming: rows ordered by group, First(n) of the finished
        //    groups after each batch, indices shifted as DataFusion does.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| groups[i as usize]);
        let sorted = take_rows(&args, &order);
        let sorted_filter = take(&filter, &UInt32Array::from(order.clone()), None).unwrap();
        let sorted_filter = sorted_filter.as_boolean();
        let sorted_groups: Vec<usize> = order.iter().map(|&i| groups[i as usize]).collect();
        let mut acc = call.groups_accumulator().unwrap();
        let mut emitted = 0;
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = rng.random_range(1..=(n - start).min(40));
            let batch: Vec<ArrayRef> = sorted.iter().map(|a| a.slice(start, len)).collect();
            let f = sorted_filter.slice(start, len);
            let gi: Vec<usize> = sorted_groups[start..start + len]
                .iter()
                .map(|g| g - emitted)
                .collect();
            let total = sorted_groups[start + len - 1] + 1 - emitted;
            acc.update_batch(&batch, &gi, Some(&f), total).unwrap();
            start += len;
            let done = sorted_groups[start - 1] - emitted; // groups before the last are complete
            if done > 0 {
                out.push(acc.evaluate(EmitTo::First(done)).unwrap());
                emitted += done;
            }
        }
        // The stream only knows the groups it saw (a group id without rows never
        // reaches the accumulator in a sorted aggregation).
        out.push(acc.evaluate(EmitTo::All).unwrap());
        let got = collect_rows(&out);
        let seen: Vec<usize> = {
            let mut s = sorted_groups.clone();
            s.dedup();
            s
        };
        assert_eq!(got.len(), seen.len(), "sorted streaming: group count");
        for (row, g) in got.iter().zip(&seen) {
            assert_close(
                row,
                &expected[*g],
                rtol,
                &format!("sorted streaming, group {g}"),
            );
        }

        // 3. Two partial accumulators over a random split, state() emitted in
        //    two pieces (First(k) then All), merged in both orders.
        let part: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
        let mut states = Vec::new();
        for side in [false, true] {
            let rows: Vec<u32> = (0..n as u32)
                .filter(|&i| part[i as usize] == side)
                .collect();
            let sub = take_rows(&args, &rows);
            let f = take(&filter, &UInt32Array::from(rows.clone()), None).unwrap();
            let gi: Vec<usize> = rows.iter().map(|&i| groups[i as usize]).collect();
            let mut acc = call.groups_accumulator().unwrap();
            acc.update_batch(&sub, &gi, Some(f.as_boolean()), num_groups)
                .unwrap();
            let k = rng.random_range(0..=num_groups);
            let s1 = acc.state(EmitTo::First(k)).unwrap();
            let s2 = acc.state(EmitTo::All).unwrap();
            let s: Vec<ArrayRef> = s1
                .iter()
                .zip(&s2)
                .map(|(a, b)| concat(&[a.as_ref(), b.as_ref()]).unwrap())
                .collect();
            for (a, f) in s.iter().zip(call.state_fields()) {
                assert_eq!(a.data_type(), f.data_type(), "state field {}", f.name());
            }
            states.push(s);
        }
        let all_groups: Vec<usize> = (0..num_groups).collect();
        for order in [[0, 1], [1, 0]] {
            let mut acc = call.groups_accumulator().unwrap();
            for i in order {
                acc.merge_batch(&states[i], &all_groups, num_groups)
                    .unwrap();
            }
            check(
                collect_rows(&[acc.evaluate(EmitTo::All).unwrap()]),
                "state + merge_batch",
            );
        }

        // 4. convert_to_state (every row its own state) then merge_batch.
        let acc = call.groups_accumulator().unwrap();
        let state = acc.convert_to_state(&args, Some(&filter)).unwrap();
        for (a, f) in state.iter().zip(call.state_fields()) {
            assert_eq!(
                a.data_type(),
                f.data_type(),
                "convert_to_state field {}",
                f.name()
            );
            assert_eq!(a.len(), n);
        }
        let mut acc = call.groups_accumulator().unwrap();
        // merge in two batches to exercise growing total_num_groups
        let cut = n / 2;
        let s1: Vec<ArrayRef> = state.iter().map(|a| a.slice(0, cut)).collect();
        let s2: Vec<ArrayRef> = state.iter().map(|a| a.slice(cut, n - cut)).collect();
        acc.merge_batch(&s1, &groups[..cut], num_groups).unwrap();
        acc.merge_batch(&s2, &groups[cut..], num_groups).unwrap();
        check(
            collect_rows(&[acc.evaluate(EmitTo::All).unwrap()]),
            "convert_to_state + merge",
        );
    }

    /// Evaluate a call the ways a query can: the plain accumulator over all
    /// rows; and three partial `GroupsAccumulator`s over thirds of the rows
    /// whose states are merged in the orders 0-1-2, 2-0-1 and 1-2-0. With
    /// `all_routes`, also the `GroupsAccumulator` in one pass and plain
    /// accumulators' states merged in reverse order.
    pub fn eval_routes(call: &Call, all_routes: bool) -> Vec<(String, Vec<Option<f64>>)> {
        let args = call.coerced_args(&call.args);
        let n = args[0].len();
        let mut out = Vec::new();
        let mut acc = call.accumulator().unwrap();
        acc.update_batch(&args).unwrap();
        out.push((
            "plain".to_string(),
            flatten_scalar(&acc.evaluate().unwrap()),
        ));

        let cuts = [0, n / 3, 2 * n / 3, n];
        let part = |i: usize| -> Vec<ArrayRef> {
            args.iter()
                .map(|a| a.slice(cuts[i], cuts[i + 1] - cuts[i]))
                .collect()
        };
        let states: Vec<Vec<ArrayRef>> = (0..3)
            .map(|i| {
                let mut g = call.groups_accumulator().unwrap();
                let p = part(i);
                g.update_batch(&p, &vec![0; p[0].len()], None, 1).unwrap();
                g.state(EmitTo::All).unwrap()
            })
            .collect();
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut g = call.groups_accumulator().unwrap();
            for i in order {
                g.merge_batch(&states[i], &[0], 1).unwrap();
            }
            let r = g.evaluate(EmitTo::All).unwrap();
            out.push((
                format!("groups merge {order:?}"),
                flatten_row(r.as_struct(), 0),
            ));
        }
        if all_routes {
            let mut g = call.groups_accumulator().unwrap();
            g.update_batch(&args, &vec![0; n], None, 1).unwrap();
            let r = g.evaluate(EmitTo::All).unwrap();
            out.push(("groups".to_string(), flatten_row(r.as_struct(), 0)));

            let plain_states: Vec<Vec<ArrayRef>> = (0..3)
                .map(|i| {
                    let mut a = call.accumulator().unwrap();
                    a.update_batch(&part(i)).unwrap();
                    a.state()
                        .unwrap()
                        .iter()
                        .map(|s| s.to_array().unwrap())
                        .collect()
                })
                .collect();
            let mut a = call.accumulator().unwrap();
            for s in plain_states.iter().rev() {
                a.merge_batch(s).unwrap();
            }
            out.push((
                "plain merge reversed".to_string(),
                flatten_scalar(&a.evaluate().unwrap()),
            ));
        }
        out
    }

    /// Optional numbers of a JSON array (`null` -> `None`).
    pub fn json_f64s(v: &serde_json::Value) -> Vec<Option<f64>> {
        v.as_array().unwrap().iter().map(|x| x.as_f64()).collect()
    }

    /// A time column from a fixture: decimal years (DOUBLE) or, for
    /// `time_kind = "days"`, days since 1970 as a DATE column.
    pub fn json_time(v: &serde_json::Value, kind: &str) -> ArrayRef {
        if kind == "days" {
            let days: Vec<Option<i32>> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().map(|d| d as i32))
                .collect();
            Arc::new(datafusion::arrow::array::Date32Array::from(days))
        } else {
            Arc::new(Float64Array::from(json_f64s(v)))
        }
    }

    /// An expected result flattened like [`flatten_row`]: the named fields of
    /// a fixture's `expected` object, lists as length + items.
    pub fn json_expected(expected: &serde_json::Value, fields: &[&str]) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        for f in fields {
            match &expected[*f] {
                serde_json::Value::Array(items) => {
                    out.push(Some(items.len() as f64));
                    out.extend(items.iter().map(|x| x.as_f64()));
                }
                x => out.push(x.as_f64()),
            }
        }
        out
    }

    /// Run SQL on a context with every sceneql function registered.
    pub async fn sql(query: &str) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx)?;
        ctx.sql(query).await?.collect().await
    }

    /// The error text of a SQL statement that must fail.
    pub async fn sql_error(query: &str) -> String {
        match sql(query).await {
            Ok(_) => panic!("expected an error from {query}"),
            Err(e) => e.to_string(),
        }
    }
}
