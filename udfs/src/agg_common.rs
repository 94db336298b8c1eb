//! Plumbing shared by sceneql's aggregates: [`Aggregate`] / [`Udaf`], the
//! DataFusion `AggregateUDFImpl` scaffolding of all six; and for the
//! per-pixel model aggregates (`harmonic_fit`, `linreg`, `theil_sen`,
//! `mann_kendall`) and `harmonic_predict` (their argument coercion is
//! [`crate::args`]'s, as every function's): the row-validity rule (a row counts only when no argument is NULL, NaN or
//! infinite and the `FILTER` clause, if any, is true), literal arguments, and
//! building the LIST<DOUBLE> arrays the states and results are made of.
//!
//! Kept in one place so the four aggregates skip exactly the same rows and
//! report bad calls in the same words.

use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, LargeListArray, ListArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::scalar::ScalarValue;

/// What one sceneql aggregate defines. [`Udaf`] makes it a DataFusion
/// `AggregateUDFImpl` with the parts every sceneql aggregate shares: a
/// user-defined, immutable signature (the argument checks are
/// `coerce_types`, see [`crate::args`]), a `GroupsAccumulator` for every
/// call, and the documentation.
pub(crate) trait Aggregate:
    std::fmt::Debug + PartialEq + Eq + std::hash::Hash + Send + Sync + 'static
{
    /// The SQL function name.
    const NAME: &'static str;
    fn documentation() -> &'static Documentation;
    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>>;
    fn return_type(arg_types: &[DataType]) -> Result<DataType>;
    fn state_fields(args: StateFieldsArgs) -> Result<Vec<FieldRef>>;
    fn accumulator(args: AccumulatorArgs) -> Result<Box<dyn Accumulator>>;
    fn groups_accumulator(args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>>;
    /// The result over no rows (DataFusion's default: NULL).
    fn default_value(data_type: &DataType) -> Result<ScalarValue> {
        ScalarValue::try_from(data_type)
    }
}

/// The aggregate UDF of an [`Aggregate`].
pub(crate) fn udaf<A: Aggregate>() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::from(Udaf::<A> {
        signature: Signature::user_defined(Volatility::Immutable),
        _aggregate: PhantomData,
    }))
}

/// DataFusion's view of an [`Aggregate`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Udaf<A: Aggregate> {
    signature: Signature,
    _aggregate: PhantomData<A>,
}

impl<A: Aggregate> AggregateUDFImpl for Udaf<A> {
    fn name(&self) -> &str {
        A::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        A::coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        A::return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        A::accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        A::state_fields(args)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        A::groups_accumulator(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        A::default_value(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(A::documentation())
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
/// counts as false, as in SQL). NULLs and the filter are combined into one
/// bitmap first, so the rows they leave out cost nothing per row.
pub(crate) fn for_each_valid_row(
    columns: &[&Float64Array],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize),
) {
    let Some(len) = columns.first().map(|c| c.len()) else {
        return;
    };
    let visit = |row: usize| {
        if columns.iter().all(|c| c.value(row).is_finite()) {
            f(row);
        }
    };
    match rows_passing(
        NullBuffer::union_many(columns.iter().map(|c| c.nulls())),
        filter,
    ) {
        None => (0..len).for_each(visit),
        Some(rows) => rows.set_indices().for_each(visit),
    }
}

/// The rows that are valid in `nulls` and true (not NULL) in `filter`;
/// None means every row.
fn rows_passing(nulls: Option<NullBuffer>, filter: Option<&BooleanArray>) -> Option<BooleanBuffer> {
    let nulls = nulls.map(|n| n.into_inner());
    let filter = filter.map(|f| match f.nulls() {
        Some(n) => f.values() & n.inner(),
        None => f.values().clone(),
    });
    match (nulls, filter) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some(&a & &b),
    }
}

/// For `trend` and the time-series aggregates: the rows of a batch that
/// count, value and time non-NULL and the filter true (a NULL filter value
/// counts as false); NaN / infinity are checked per row by the caller.
/// None means every row.
pub(crate) fn valid_rows(
    values: &Float64Array,
    times: &dyn Array,
    filter: Option<&BooleanArray>,
) -> Option<BooleanBuffer> {
    rows_passing(NullBuffer::union(values.nulls(), times.nulls()), filter)
}

/// Ask the CPU to bring `value` (all its cache lines) into its caches, for
/// a write soon: a hint, with no effect on results (none off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = (value as *const T).cast::<i8>();
        let mut offset = 0;
        while offset < size_of::<T>() {
            // SAFETY: SSE is in every x86-64 CPU, and a prefetch reads
            // nothing: any address is allowed, these are inside `value`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
            offset += 64;
        }
        // The last line, when `value` straddles one more than its size needs.
        // (A count of prefetches fixed by `T`, not by the address: a
        // per-row count measured 1-2% slower in `trend` than the one
        // redundant prefetch this makes when `value` is aligned.)
        // SAFETY: as above.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(size_of::<T>().saturating_sub(1)))
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
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
/// length, as `numpy.median`); the slice is scratch afterwards (reordered,
/// and holding [`total_order_keys`]). NaN sorts last.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    debug_assert!(n > 0);
    let mid = n / 2;
    let keys = total_order_keys(v);
    let (lower, upper, _) = keys.select_nth_unstable(mid);
    let upper = from_total_order_key(*upper);
    if n % 2 == 1 {
        upper
    } else {
        // The largest value of the lower half is the other middle value.
        let lower_max = lower
            .iter()
            .copied()
            .max()
            .map_or(upper, from_total_order_key);
        (lower_max + upper) / 2.0
    }
}

/// `values` turned, in place, into the integers whose order is
/// [`f64::total_cmp`]'s (the same transformation it makes on every
/// comparison), so selections and sorts compare plain integers. Read the
/// values back with [`from_total_order_key`].
pub(crate) fn total_order_keys(values: &mut [f64]) -> &mut [i64] {
    // SAFETY: f64 and i64 have the same size and alignment, every bit
    // pattern is a valid i64, and the f64 borrow is given up for the result.
    let keys =
        unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<i64>(), values.len()) };
    for k in keys.iter_mut() {
        *k ^= (((*k >> 63) as u64) >> 1) as i64;
    }
    keys
}

/// The value of a [`total_order_keys`] key (the transformation undoes itself).
#[inline]
pub(crate) fn from_total_order_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_rows_leave_out_nulls_non_finite_and_filtered_rows() {
        let y = Float64Array::from(vec![
            Some(1.0),
            None,
            Some(f64::NAN),
            Some(4.0),
            Some(5.0),
            Some(6.0),
            Some(7.0),
        ]);
        let x = Float64Array::from(vec![
            Some(1.0),
            Some(2.0),
            Some(3.0),
            Some(f64::INFINITY),
            None,
            Some(6.0),
            Some(7.0),
        ]);
        let visited = |filter: Option<&BooleanArray>| {
            let mut rows = Vec::new();
            for_each_valid_row(&[&y, &x], filter, |r| rows.push(r));
            rows
        };
        assert_eq!(visited(None), vec![0, 5, 6]);
        // A NULL filter value counts as false.
        let filter = BooleanArray::from(vec![
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            None,
            Some(true),
        ]);
        assert_eq!(visited(Some(&filter)), vec![0, 6]);
        let filter = BooleanArray::from(vec![false, true, true, true, true, true, true]);
        assert_eq!(visited(Some(&filter)), vec![5, 6]);
        // No NULLs at all: only the finiteness check and the filter.
        let z = Float64Array::from(vec![1.0, 2.0, f64::NAN]);
        let mut rows = Vec::new();
        for_each_valid_row(&[&z], None, |r| rows.push(r));
        assert_eq!(rows, vec![0, 1]);
        let filter = BooleanArray::from(vec![false, true, true]);
        rows.clear();
        for_each_valid_row(&[&z], Some(&filter), |r| rows.push(r));
        assert_eq!(rows, vec![1]);
    }

    #[test]
    fn total_order_keys_order_as_total_cmp_and_give_the_values_back() {
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1.0 + f64::EPSILON,
            f64::MAX,
            f64::INFINITY,
        ];
        let mut keys_of = values;
        let keys = total_order_keys(&mut keys_of).to_vec();
        for (i, (&a, &ka)) in values.iter().zip(&keys).enumerate() {
            assert_eq!(from_total_order_key(ka).to_bits(), a.to_bits(), "{a}");
            for (&b, &kb) in values.iter().zip(&keys) {
                assert_eq!(ka.cmp(&kb), a.total_cmp(&b), "{a} vs {b} (#{i})");
            }
        }
        // Medians of odd and even counts, with -0.0 and 0.0 distinct in order.
        assert_eq!(median(&mut [3.0, -1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, -1.0, 2.0, 10.0]), 3.0);
        assert_eq!(median(&mut [0.0, -0.0]).to_bits(), 0.0f64.to_bits());
    }
}
