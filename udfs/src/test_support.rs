//! Helpers for the aggregates' tests: running an aggregate through its
//! plain `Accumulator` and its `GroupsAccumulator` the ways DataFusion does
//! (one property harness, [`check_groups_vs_plain`], for every aggregate),
//! flattening results for comparison, and a deterministic LCG shared with
//! the fixture generators (`fixtures/make_fixtures_*.py`).

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
pub fn gen_series(n: usize, seed: u64, tied_times: bool) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
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
    /// Argument arrays, of any type the function accepts (they are cast to
    /// the coerced types as DataFusion would); a literal argument's array
    /// repeats the literal.
    pub args: Vec<ArrayRef>,
    /// For each argument, `Some(literal)` when it is a literal.
    pub literals: Vec<Option<ScalarValue>>,
}

impl Call {
    /// A call whose arguments are all columns.
    pub fn new(udaf: Arc<AggregateUDF>, args: &[ArrayRef]) -> Self {
        Self {
            udaf,
            args: args.to_vec(),
            literals: vec![None; args.len()],
        }
    }

    fn coerced_fields(&self) -> Vec<FieldRef> {
        let types: Vec<DataType> = self.args.iter().map(|a| a.data_type().clone()).collect();
        let coerced = self.udaf.coerce_types(&types).expect("coerce");
        coerced
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true)))
            .collect()
    }

    /// The arguments cast to the coerced types (as DataFusion would).
    pub fn coerced_args(&self) -> Vec<ArrayRef> {
        let fields = self.coerced_fields();
        self.args
            .iter()
            .zip(fields)
            .map(|(a, f)| datafusion::arrow::compute::cast(a, f.data_type()).expect("cast"))
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
        let return_field = self.udaf.return_field(&fields).expect("return field");
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

    /// A plain `Accumulator` (fed with arrays of the coerced types).
    pub fn plain(&self) -> Box<dyn Accumulator> {
        self.with_args(|a| self.udaf.accumulator(a))
            .expect("accumulator")
    }

    /// A `GroupsAccumulator` (fed with arrays of the coerced types).
    pub fn groups(&self) -> Box<dyn GroupsAccumulator> {
        self.with_args(|a| {
            assert!(self.udaf.groups_accumulator_supported(a.clone()));
            self.udaf.create_groups_accumulator(a)
        })
        .expect("groups accumulator")
    }

    pub fn state_fields(&self) -> Vec<FieldRef> {
        let fields = self.coerced_fields();
        let return_field = self.udaf.return_field(&fields).expect("return field");
        self.udaf
            .state_fields(StateFieldsArgs {
                name: "agg",
                input_fields: &fields,
                return_field,
                ordering_fields: &[],
                is_distinct: false,
            })
            .expect("state fields")
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
        .map(|a| take(a.as_ref(), &idx, None).expect("take"))
        .collect()
}

/// The rows of result arrays, one `ScalarValue` each.
fn rows_of(out: &[ArrayRef]) -> Vec<ScalarValue> {
    out.iter()
        .flat_map(|a| (0..a.len()).map(|i| ScalarValue::try_from_array(a, i).expect("scalar")))
        .collect()
}

/// A comparison for [`check_groups_vs_plain`]: the results flattened by
/// [`flatten_scalar`] agree within `rtol` ([`assert_close`]).
pub fn close(rtol: f64) -> impl Fn(&ScalarValue, &ScalarValue, &str) {
    move |got, want, what| assert_close(&flatten_scalar(got), &flatten_scalar(want), rtol, what)
}

/// Property check: the GroupsAccumulator agrees with plain Accumulators
/// (one per group, over the group's filtered rows) on random groups, NULLs
/// and filters: updates in random batches with partial emission
/// (`EmitTo::First`), sorted streaming, state()/merge_batch() round trips
/// (plain and grouped, in both orders, with an empty state) and
/// `convert_to_state`. `same(got, want, what)` compares two results
/// (exactly, or e.g. with [`close`]).
pub fn check_groups_vs_plain(
    call: &Call,
    seed: u64,
    same: &dyn Fn(&ScalarValue, &ScalarValue, &str),
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let args = call.coerced_args();
    let n = args[0].len();
    let num_groups = rng.random_range(1..=9usize);
    let groups: Vec<usize> = (0..n).map(|_| rng.random_range(0..num_groups)).collect();
    let filter: BooleanArray = (0..n)
        .map(|_| match rng.random_range(0..10) {
            0 => None,
            1 | 2 => Some(false),
            _ => Some(true),
        })
        .collect();
    let counted = |i: usize| filter.is_valid(i) && filter.value(i);
    let to_arrays = |s: Vec<ScalarValue>| -> Vec<ArrayRef> {
        s.iter().map(|v| v.to_array().expect("array")).collect()
    };

    // Reference: a plain accumulator per group over its filtered rows, in
    // input order, fed in two batches.
    let mut expected = Vec::new();
    for g in 0..num_groups {
        let rows: Vec<u32> = (0..n as u32)
            .filter(|&i| groups[i as usize] == g && counted(i as usize))
            .collect();
        let sub = take_rows(&args, &rows);
        let cut = rows.len() / 3;
        let first: Vec<ArrayRef> = sub.iter().map(|a| a.slice(0, cut)).collect();
        let rest: Vec<ArrayRef> = sub.iter().map(|a| a.slice(cut, rows.len() - cut)).collect();
        let mut acc = call.plain();
        acc.update_batch(&first).expect("update");
        acc.update_batch(&rest).expect("update");
        let want = acc.evaluate().expect("evaluate");

        // Plain state()/merge_batch() in reverse order, with an empty
        // accumulator's state merged first and last (it changes nothing).
        let mut a1 = call.plain();
        let mut a2 = call.plain();
        a1.update_batch(&first).expect("update");
        a2.update_batch(&rest).expect("update");
        let mut merged = call.plain();
        merged
            .merge_batch(&to_arrays(call.plain().state().expect("state")))
            .expect("merge");
        merged
            .merge_batch(&to_arrays(a2.state().expect("state")))
            .expect("merge");
        merged
            .merge_batch(&to_arrays(a1.state().expect("state")))
            .expect("merge");
        merged
            .merge_batch(&to_arrays(call.plain().state().expect("state")))
            .expect("merge");
        same(
            &merged.evaluate().expect("evaluate"),
            &want,
            &format!("plain state/merge, group {g}"),
        );
        expected.push(want);
    }
    let check_all = |got: Vec<ScalarValue>, what: &str| {
        assert_eq!(got.len(), num_groups, "{what}: number of groups");
        for (g, (got, want)) in got.iter().zip(&expected).enumerate() {
            same(got, want, &format!("{what}, group {g}"));
        }
    };

    // 1. Random batches with the filter, then First(k) and All (All emits
    //    nothing when k took every group).
    let mut acc = call.groups();
    let mut start = 0;
    while start < n {
        let len = rng.random_range(1..=n - start);
        let batch: Vec<ArrayRef> = args.iter().map(|a| a.slice(start, len)).collect();
        acc.update_batch(
            &batch,
            &groups[start..start + len],
            Some(&filter.slice(start, len)),
            num_groups,
        )
        .expect("update");
        start += len;
    }
    let k = rng.random_range(0..=num_groups);
    let mut out = vec![acc.evaluate(EmitTo::First(k)).expect("evaluate")];
    out.push(acc.evaluate(EmitTo::All).expect("evaluate"));
    check_all(rows_of(&out), "update + First(k) + All");

    // 2. Sorted streaming: rows ordered by group; after each batch the
    //    finished groups are emitted with First(d) and the remaining
    //    group indices shift down, as in a sorted aggregation.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&i| groups[i as usize]);
    let sorted = take_rows(&args, &order);
    let sorted_filter = take(&filter, &UInt32Array::from(order.clone()), None).expect("take");
    let sorted_filter = sorted_filter.as_boolean();
    let sorted_groups: Vec<usize> = order.iter().map(|&i| groups[i as usize]).collect();
    let mut acc = call.groups();
    let (mut emitted, mut start) = (0, 0);
    let mut out = Vec::new();
    while start < n {
        let len = rng.random_range(1..=(n - start).min(40));
        let batch: Vec<ArrayRef> = sorted.iter().map(|a| a.slice(start, len)).collect();
        let gi: Vec<usize> = sorted_groups[start..start + len]
            .iter()
            .map(|g| g - emitted)
            .collect();
        let total = sorted_groups[start + len - 1] + 1 - emitted;
        acc.update_batch(&batch, &gi, Some(&sorted_filter.slice(start, len)), total)
            .expect("update");
        start += len;
        let done = sorted_groups[start - 1] - emitted; // groups before the last are complete
        if done > 0 {
            out.push(acc.evaluate(EmitTo::First(done)).expect("evaluate"));
            emitted += done;
        }
    }
    // The stream only knows the groups it saw (a group id without rows never
    // reaches the accumulator in a sorted aggregation).
    out.push(acc.evaluate(EmitTo::All).expect("evaluate"));
    let mut seen = sorted_groups.clone();
    seen.dedup();
    let got = rows_of(&out);
    assert_eq!(got.len(), seen.len(), "sorted streaming: number of groups");
    for (got, &g) in got.iter().zip(&seen) {
        same(got, &expected[g], &format!("sorted streaming, group {g}"));
    }

    // 3. Two partial accumulators over a random split; state() in two
    //    pieces (First(k) then All); merged in both orders.
    let side: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
    let mut states = Vec::new();
    for s in [false, true] {
        let rows: Vec<u32> = (0..n as u32).filter(|&i| side[i as usize] == s).collect();
        let sub = take_rows(&args, &rows);
        let f = take(&filter, &UInt32Array::from(rows.clone()), None).expect("take");
        let gi: Vec<usize> = rows.iter().map(|&i| groups[i as usize]).collect();
        let mut acc = call.groups();
        acc.update_batch(&sub, &gi, Some(f.as_boolean()), num_groups)
            .expect("update");
        let k = rng.random_range(0..=num_groups);
        let s1 = acc.state(EmitTo::First(k)).expect("state");
        let s2 = acc.state(EmitTo::All).expect("state");
        let state: Vec<ArrayRef> = s1
            .iter()
            .zip(&s2)
            .map(|(a, b)| concat(&[a.as_ref(), b.as_ref()]).expect("concat"))
            .collect();
        for (a, f) in state.iter().zip(call.state_fields()) {
            assert_eq!(a.data_type(), f.data_type(), "state field {}", f.name());
            assert_eq!(a.len(), num_groups);
        }
        states.push(state);
    }
    let all_groups: Vec<usize> = (0..num_groups).collect();
    for order in [[0, 1], [1, 0]] {
        let mut acc = call.groups();
        for i in order {
            acc.merge_batch(&states[i], &all_groups, num_groups)
                .expect("merge");
        }
        check_all(
            rows_of(&[acc.evaluate(EmitTo::All).expect("evaluate")]),
            "state + merge_batch",
        );
    }

    // 4. convert_to_state (each row its own state), merged in two batches
    //    (exercising a growing total_num_groups).
    let state = call
        .groups()
        .convert_to_state(&args, Some(&filter))
        .expect("convert_to_state");
    for (a, f) in state.iter().zip(call.state_fields()) {
        assert_eq!(
            a.data_type(),
            f.data_type(),
            "convert_to_state field {}",
            f.name()
        );
        assert_eq!(a.len(), n);
    }
    let mut acc = call.groups();
    let cut = n / 2;
    let s1: Vec<ArrayRef> = state.iter().map(|a| a.slice(0, cut)).collect();
    let s2: Vec<ArrayRef> = state.iter().map(|a| a.slice(cut, n - cut)).collect();
    acc.merge_batch(&s1, &groups[..cut], num_groups)
        .expect("merge");
    acc.merge_batch(&s2, &groups[cut..], num_groups)
        .expect("merge");
    check_all(
        rows_of(&[acc.evaluate(EmitTo::All).expect("evaluate")]),
        "convert_to_state + merge_batch",
    );
}

/// Evaluate a call the ways a query can: the plain accumulator over all
/// rows; and three partial `GroupsAccumulator`s over thirds of the rows
/// whose states are merged in the orders 0-1-2, 2-0-1 and 1-2-0. With
/// `all_routes`, also the `GroupsAccumulator` in one pass and plain
/// accumulators' states merged in reverse order.
pub fn eval_routes(call: &Call, all_routes: bool) -> Vec<(String, Vec<Option<f64>>)> {
    let args = call.coerced_args();
    let n = args[0].len();
    let mut out = Vec::new();
    let mut acc = call.plain();
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
            let mut g = call.groups();
            let p = part(i);
            g.update_batch(&p, &vec![0; p[0].len()], None, 1).unwrap();
            g.state(EmitTo::All).unwrap()
        })
        .collect();
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let mut g = call.groups();
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
        let mut g = call.groups();
        g.update_batch(&args, &vec![0; n], None, 1).unwrap();
        let r = g.evaluate(EmitTo::All).unwrap();
        out.push(("groups".to_string(), flatten_row(r.as_struct(), 0)));

        let plain_states: Vec<Vec<ArrayRef>> = (0..3)
            .map(|i| {
                let mut a = call.plain();
                a.update_batch(&part(i)).unwrap();
                a.state()
                    .unwrap()
                    .iter()
                    .map(|s| s.to_array().unwrap())
                    .collect()
            })
            .collect();
        let mut a = call.plain();
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
    crate::indices::test_util::ctx()
        .sql(query)
        .await?
        .collect()
        .await
}

/// The error text of a SQL statement that must fail (planning or running).
pub async fn sql_error(query: &str) -> String {
    match sql(query).await {
        Ok(_) => panic!("expected an error from {query}"),
        Err(e) => e.to_string(),
    }
}
