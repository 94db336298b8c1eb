//! `series(value, time)`: collect a group's observations into a time-sorted
//! STRUCT<times LIST<time's type>, values LIST<DOUBLE>>.
//!
//! Why: to export or plot a pixel's time series, or feed it to tools outside
//! SQL, in one row per pixel, sorted, without a separate ORDER BY + array_agg
//! pair per column (which would need two sorts and could disagree on ties).
//!
//! Semantics: rows whose value or time is NULL, NaN or infinite are skipped, like in
//! every sceneql time-series aggregate, so both lists have the same length
//! and hold no NULLs. Sorted by time; equal times are ordered by value, so
//! the output does not depend on how partitions were merged. Times keep
//! their type (TIMESTAMP / DATE as they are, integers as BIGINT, other
//! numbers as DOUBLE). A group without rows gives two empty lists (the
//! struct is never NULL).
//!
//! The `GroupsAccumulator` keeps one growable vector of (time, value) pairs
//! per group, typed by the time column's Arrow type.

use std::cmp::Ordering;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, PrimitiveArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Fields, Float64Type,
};
use datafusion::common::{
    Result, ScalarValue, exec_datafusion_err, exec_err, internal_err, plan_err,
};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, Documentation, EmitTo, GroupsAccumulator,
};

use crate::agg_common::{self, Aggregate};
use crate::args::{coerce_exact_time, coerce_value_and_time};
use crate::sections::TIME_SERIES_AGGREGATES;
use crate::time::TimeNative;
use crate::with_time_type;

const SIGNATURE: &str = "series(value, time)";

/// The `series` aggregate UDF.
pub fn series() -> Arc<AggregateUDF> {
    agg_common::udaf::<Series>()
}

/// `series(value, time)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Series;

static DOC: LazyLock<Documentation> = LazyLock::new(documentation);

fn list_field(item: &DataType) -> FieldRef {
    Arc::new(Field::new_list_field(item.clone(), true))
}

/// The result STRUCT's fields for a (coerced) time type.
pub fn result_fields(time_type: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("times", DataType::List(list_field(time_type)), false),
        Field::new(
            "values",
            DataType::List(list_field(&DataType::Float64)),
            false,
        ),
    ])
}

fn time_type_of_return(return_type: &DataType) -> Result<DataType> {
    if let DataType::Struct(fields) = return_type
        && let Some((_, f)) = fields.find("times")
        && let DataType::List(item) = f.data_type()
    {
        return Ok(item.data_type().clone());
    }
    internal_err!("{SIGNATURE}: unexpected return type {return_type}")
}

impl Aggregate for Series {
    const NAME: &'static str = "series";

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_value_and_time(SIGNATURE, arg_types, coerce_exact_time)
    }

    fn return_type(arg_types: &[DataType]) -> Result<DataType> {
        let [_, time] = arg_types else {
            return plan_err!("{SIGNATURE} expects 2 arguments, got {}", arg_types.len());
        };
        Ok(DataType::Struct(result_fields(time)))
    }

    fn accumulator(args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let time_type = time_type_of_return(args.return_field.data_type())?;
        with_time_type!(&time_type, T => Ok(Box::new(SeriesAccumulator::<T>::new(time_type.clone()))),
            _ => internal_err!("{SIGNATURE}: unsupported time type {time_type}"))
    }

    fn state_fields(args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let time_type = time_type_of_return(args.return_field.data_type())?;
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "times"),
                DataType::List(list_field(&time_type)),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "values"),
                DataType::List(list_field(&DataType::Float64)),
                true,
            )),
        ])
    }

    fn groups_accumulator(args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let time_type = time_type_of_return(args.return_field.data_type())?;
        with_time_type!(&time_type, T => Ok(Box::new(SeriesGroups::<T>::new(time_type.clone()))),
            _ => internal_err!("{SIGNATURE}: unsupported time type {time_type}"))
    }

    fn default_value(data_type: &DataType) -> Result<ScalarValue> {
        let time_type = time_type_of_return(data_type)?;
        let array = with_time_type!(&time_type, T => result_array::<T>(&time_type, &mut [Vec::new()])?,
            _ => return internal_err!("{SIGNATURE}: unsupported time type {time_type}"));
        Ok(ScalarValue::Struct(Arc::new(array)))
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }
}

fn documentation() -> Documentation {
    Documentation::builder(
        TIME_SERIES_AGGREGATES,
        "A group's observations as STRUCT<times LIST, values LIST<DOUBLE>>, sorted by time. Rows where \
         value or time is NULL, NaN or infinite are skipped, so both lists have the same length and no NULLs; \
         equal times are ordered by value, so the result does not depend on the input order. `times` \
         keeps the time's type (TIMESTAMP / DATE as given, integers as BIGINT, other numbers as \
         DOUBLE). A group without rows gives two empty lists; the struct is never NULL.",
        "series(value, time)",
    )
    .with_argument("value", "Observed value (any numeric type).")
    .with_argument("time", "Observation time: TIMESTAMP (any unit), DATE, or a number.")
    .with_sql_example(
        "SELECT pixel, series(ndvi(nir, red), time)['times'] AS t,\n\
         \x20      series(ndvi(nir, red), time)['values'] AS v\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel;",
    )
    .with_related_udf("trend")
    .build()
}

type Pair<T> = (<T as ArrowPrimitiveType>::Native, f64);

/// Sort by time, then value (total order on values; NaN rows never get here).
fn sort_pairs<T: ArrowPrimitiveType>(pairs: &mut [Pair<T>]) {
    pairs.sort_unstable_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(Ordering::Equal)
            .then(a.1.total_cmp(&b.1))
    });
}

/// Two LIST arrays (times, values) from per-group pairs.
fn lists<T: ArrowPrimitiveType>(
    time_type: &DataType,
    groups: &[Vec<Pair<T>>],
) -> Result<(ListArray, ListArray)> {
    let total: usize = groups.iter().map(Vec::len).sum();
    if total > i32::MAX as usize {
        return exec_err!("{SIGNATURE}: {total} observations do not fit in one LIST batch");
    }
    let offsets = OffsetBuffer::<i32>::from_lengths(groups.iter().map(Vec::len));
    let mut times = Vec::with_capacity(total);
    let mut values = Vec::with_capacity(total);
    for g in groups {
        for &(t, v) in g {
            times.push(t);
            values.push(v);
        }
    }
    let times = PrimitiveArray::<T>::new(times.into(), None).with_data_type(time_type.clone());
    Ok((
        ListArray::try_new(
            list_field(time_type),
            offsets.clone(),
            Arc::new(times),
            None,
        )?,
        ListArray::try_new(
            list_field(&DataType::Float64),
            offsets,
            Arc::new(Float64Array::from(values)),
            None,
        )?,
    ))
}

/// The result STRUCT: each group's pairs sorted.
fn result_array<T: ArrowPrimitiveType>(
    time_type: &DataType,
    groups: &mut [Vec<Pair<T>>],
) -> Result<StructArray> {
    for g in groups.iter_mut() {
        sort_pairs::<T>(g);
    }
    let (times, values) = lists::<T>(time_type, groups)?;
    Ok(StructArray::try_new(
        result_fields(time_type),
        vec![Arc::new(times), Arc::new(values)],
        None,
    )?)
}

fn typed_args<T: ArrowPrimitiveType>(
    args: &[ArrayRef],
) -> Result<(&Float64Array, &PrimitiveArray<T>)> {
    let [values, times] = args else {
        return internal_err!(
            "{SIGNATURE}: expected 2 argument arrays, got {}",
            args.len()
        );
    };
    let values = values.as_primitive_opt::<Float64Type>().ok_or_else(|| {
        exec_datafusion_err!(
            "{SIGNATURE}: value must be DOUBLE, got {}",
            values.data_type()
        )
    })?;
    let times = times.as_primitive_opt::<T>().ok_or_else(|| {
        exec_datafusion_err!("{SIGNATURE}: unexpected time type {}", times.data_type())
    })?;
    Ok((values, times))
}

/// Call `f(row, time, value)` for every row that counts.
fn for_each_row<T: ArrowPrimitiveType>(
    values: &Float64Array,
    times: &PrimitiveArray<T>,
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, T::Native, f64),
) where
    T::Native: TimeNative,
{
    let v = values.values();
    let t = times.values();
    let mut row = |i: usize| {
        if v[i].is_finite() && t[i].is_finite() {
            f(i, t[i], v[i]);
        }
    };
    match agg_common::valid_rows(values, times, filter) {
        None => (0..v.len()).for_each(&mut row),
        Some(valid) => valid.set_indices().for_each(&mut row),
    }
}

/// The two state LIST arrays, typed.
struct StateLists<'a, T: ArrowPrimitiveType> {
    times: &'a ListArray,
    time_values: &'a [T::Native],
    values: &'a [f64],
}

impl<'a, T: ArrowPrimitiveType> StateLists<'a, T> {
    fn new(states: &'a [ArrayRef]) -> Result<Self> {
        let [times, values] = states else {
            return internal_err!("{SIGNATURE}: expected 2 state arrays, got {}", states.len());
        };
        let bad =
            |a: &ArrayRef| exec_datafusion_err!("{SIGNATURE}: bad state column {}", a.data_type());
        let times_list = times.as_list_opt::<i32>().ok_or_else(|| bad(times))?;
        let values_list = values.as_list_opt::<i32>().ok_or_else(|| bad(values))?;
        if times_list.offsets() != values_list.offsets() {
            return internal_err!("{SIGNATURE}: state lists of different lengths");
        }
        let time_values = times_list
            .values()
            .as_primitive_opt::<T>()
            .ok_or_else(|| bad(times))?
            .values();
        let values = values_list
            .values()
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad(values))?
            .values();
        Ok(Self {
            times: times_list,
            time_values,
            values,
        })
    }

    /// The pairs of state row i (empty for NULL rows).
    fn row(&self, i: usize) -> impl Iterator<Item = Pair<T>> + '_ {
        let range = if self.times.is_valid(i) {
            let o = self.times.value_offsets();
            o[i] as usize..o[i + 1] as usize
        } else {
            0..0
        };
        self.time_values[range.clone()]
            .iter()
            .copied()
            .zip(self.values[range].iter().copied())
    }
}

// ---------------------------------------------------------------------------
// GroupsAccumulator
// ---------------------------------------------------------------------------

/// `series` state for many groups.
pub struct SeriesGroups<T: ArrowPrimitiveType> {
    time_type: DataType,
    groups: Vec<Vec<Pair<T>>>,
    /// Number of pairs held (for `size`).
    items: usize,
    _time: PhantomData<fn() -> T>,
}

impl<T: ArrowPrimitiveType> SeriesGroups<T>
where
    T::Native: TimeNative,
{
    pub fn new(time_type: DataType) -> Self {
        Self {
            time_type,
            groups: Vec::new(),
            items: 0,
            _time: PhantomData,
        }
    }

    fn resize(&mut self, total: usize) {
        if total > self.groups.len() {
            self.groups.resize_with(total, Vec::new);
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<Pair<T>>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.items -= taken.iter().map(Vec::len).sum::<usize>();
        taken
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for SeriesGroups<T>
where
    T::Native: TimeNative,
{
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (values, times) = typed_args::<T>(values)?;
        if values.len() != group_indices.len() {
            return internal_err!("{SIGNATURE}: argument and group index lengths differ");
        }
        self.resize(total_num_groups);
        let groups = &mut self.groups;
        let mut added = 0;
        for_each_row(values, times, opt_filter, |i, t, v| {
            groups[group_indices[i]].push((t, v));
            added += 1;
        });
        self.items += added;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut taken = self.take(emit_to);
        Ok(Arc::new(result_array::<T>(&self.time_type, &mut taken)?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        let (times, values) = lists::<T>(&self.time_type, &taken)?;
        Ok(vec![Arc::new(times), Arc::new(values)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let states = StateLists::<T>::new(values)?;
        self.resize(total_num_groups);
        for (i, &g) in group_indices.iter().enumerate() {
            let before = self.groups[g].len();
            self.groups[g].extend(states.row(i));
            self.items += self.groups[g].len() - before;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let (values, times) = typed_args::<T>(values)?;
        let mut rows: Vec<Vec<Pair<T>>> = vec![Vec::new(); values.len()];
        for_each_row(values, times, opt_filter, |i, t, v| rows[i].push((t, v)));
        let (times, values) = lists::<T>(&self.time_type, &rows)?;
        Ok(vec![Arc::new(times), Arc::new(values)])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<Vec<Pair<T>>>() + self.items * size_of::<Pair<T>>()
    }
}

// ---------------------------------------------------------------------------
// Accumulator
// ---------------------------------------------------------------------------

/// `series` state for one group.
pub struct SeriesAccumulator<T: ArrowPrimitiveType> {
    time_type: DataType,
    pairs: Vec<Pair<T>>,
}

impl<T: ArrowPrimitiveType> std::fmt::Debug for SeriesAccumulator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesAccumulator")
            .field("time_type", &self.time_type)
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

impl<T: ArrowPrimitiveType> SeriesAccumulator<T>
where
    T::Native: TimeNative,
{
    pub fn new(time_type: DataType) -> Self {
        Self {
            time_type,
            pairs: Vec::new(),
        }
    }
}

impl<T: ArrowPrimitiveType> Accumulator for SeriesAccumulator<T>
where
    T::Native: TimeNative,
{
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (values, times) = typed_args::<T>(values)?;
        let pairs = &mut self.pairs;
        for_each_row(values, times, None, |_, t, v| pairs.push((t, v)));
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut groups = [self.pairs.clone()];
        Ok(ScalarValue::Struct(Arc::new(result_array::<T>(
            &self.time_type,
            &mut groups,
        )?)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.pairs.capacity() * size_of::<Pair<T>>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (times, values) = lists::<T>(&self.time_type, std::slice::from_ref(&self.pairs))?;
        Ok(vec![
            ScalarValue::List(Arc::new(times)),
            ScalarValue::List(Arc::new(values)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = StateLists::<T>::new(states)?;
        for i in 0..states.times.len() {
            self.pairs.extend(states.row(i));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::test_util::{planning_error, run};
    use crate::test_support::{Call, check_groups_vs_plain};
    use datafusion::arrow::array::{Date32Array, Int64Array, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Date32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn lists_of(v: &ScalarValue) -> (ArrayRef, Vec<f64>) {
        let ScalarValue::Struct(s) = v else {
            panic!("struct expected")
        };
        let times = s.column(0).as_list::<i32>().value(0);
        let values = s.column(1).as_list::<i32>().value(0);
        (
            times,
            values.as_primitive::<Float64Type>().values().to_vec(),
        )
    }

    #[test]
    fn sorted_with_nulls_skipped_and_ties_by_value() {
        let args: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                Some(0.3),
                None,
                Some(0.1),
                Some(f64::NAN),
                Some(0.2),
                Some(0.05),
            ])),
            Arc::new(Date32Array::from(vec![
                Some(18_000),
                Some(17_000),
                Some(17_500),
                Some(17_600),
                None,
                Some(18_000),
            ])),
        ];
        let c = Call::new(series(), &args);
        let mut acc = c.plain();
        acc.update_batch(&args).unwrap();
        let (times, values) = lists_of(&acc.evaluate().unwrap());
        assert_eq!(times.data_type(), &DataType::Date32);
        assert_eq!(
            times.as_primitive::<Date32Type>().values().to_vec(),
            vec![17_500, 18_000, 18_000]
        );
        assert_eq!(values, vec![0.1, 0.05, 0.3]);
        // Empty: two empty lists, not NULL.
        let (times, values) = lists_of(&c.plain().evaluate().unwrap());
        assert_eq!((times.len(), values.len()), (0, 0));
    }

    #[test]
    fn groups_accumulator_equals_plain_accumulator() {
        let mut rng = StdRng::seed_from_u64(3);
        for round in 0..16u64 {
            let n = rng.random_range(0..200usize);
            let values: Float64Array = (0..n)
                .map(|_| {
                    (rng.random_range(0..8) != 0).then(|| (rng.random_range(0..5) as f64) / 4.0)
                })
                .collect();
            // Few distinct times so that ties happen.
            let time: ArrayRef = if round % 2 == 0 {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..8) != 0)
                                .then(|| rng.random_range(0..6i64) * 86_400_000_000)
                        })
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("UTC"),
                )
            } else {
                Arc::new(
                    (0..n)
                        .map(|_| {
                            (rng.random_range(0..8) != 0).then(|| rng.random_range(2000..2006i64))
                        })
                        .collect::<Int64Array>(),
                )
            };
            let args: Vec<ArrayRef> = vec![Arc::new(values), time];
            let c = Call::new(series(), &args);
            let exact =
                |got: &ScalarValue, want: &ScalarValue, what: &str| assert_eq!(got, want, "{what}");
            check_groups_vs_plain(&c, round, &exact);
        }
    }

    #[test]
    fn sql_group_by() {
        let out = run(
            "SELECT g, series(v, t)['times'] AS times, series(v, t)['values'] AS vals FROM (VALUES \
             (1, 0.5, TIMESTAMP '2020-03-01 00:00:00'), (1, 0.4, TIMESTAMP '2020-01-01 00:00:00'), \
             (2, NULL, TIMESTAMP '2020-01-01 00:00:00'), (1, 0.6, NULL), (2, 0.7, TIMESTAMP '2021-01-01 00:00:00')) \
             AS s(g, v, t) GROUP BY g ORDER BY g",
        )
        .unwrap();
        let b = &out[0];
        let times = b.column(1).as_list::<i32>();
        let vals = b.column(2).as_list::<i32>();
        assert_eq!(
            times.value_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        );
        assert_eq!(
            vals.value(0)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
            vec![0.4, 0.5]
        );
        assert_eq!(
            vals.value(1)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
            vec![0.7]
        );
        // Integer times become BIGINT.
        let out = run("SELECT series(v, y)['times'] FROM (VALUES (1.0, CAST(2001 AS SMALLINT)), (2.0, 2000)) AS s(v, y)").unwrap();
        let times = out[0].column(0).as_list::<i32>().value(0);
        assert_eq!(
            times.as_primitive::<Int64Type>().values().to_vec(),
            vec![2000, 2001]
        );
        let _ = TimestampMicrosecondType::DATA_TYPE;
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT series(1.0, 'x')");
        assert!(
            e.contains(
                "series(value, time): argument `time` must be a TIMESTAMP, a DATE or a number, got Utf8"
            ),
            "{e}"
        );
        let e = planning_error("SELECT series(1.0, 2, 3)");
        assert!(
            e.contains("series(value, time) expects 2 arguments, got 3"),
            "{e}"
        );
    }
}
