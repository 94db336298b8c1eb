//! Accumulators that keep a group's `(time, value)` pairs and compute a
//! statistic over all of them at the end: the engine of `theil_sen` and
//! `mann_kendall`, whose rank statistics have no small mergeable state.
//!
//! Arguments are `(value, time)`; `time` goes through [`time::to_years`].
//! Rows with a NULL or non-finite argument, or not passing the `FILTER`
//! clause, are skipped. The state exchanged between partitions is two
//! `LARGE LIST<DOUBLE>` columns (`time`, `value`), one row per group; merging
//! concatenates. Memory is O(n) per group: 16 bytes per pair, in chunks of
//! 16 pairs ([`crate::pair_store`]); the statistic decides the cost of the
//! final computation.
//!
//! [`Pairs`] is the [`Aggregate`] of any [`PairStatistic`]: the statistic
//! brings its name, documentation, result type and computation.

use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, Documentation, EmitTo, GroupsAccumulator};
use datafusion::scalar::ScalarValue;

use crate::agg_common::{
    Aggregate, as_f64, f64_large_list, f64_large_list_type, for_each_valid_row,
};
use crate::args::{coerce_time, coerce_value_and_time};
use crate::pair_store::PairStore;
use crate::time;

/// A statistic over a group's `(time, value)` pairs, called as
/// `name(value, time)`.
pub(crate) trait PairStatistic:
    Send + Sync + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + 'static
{
    /// One group's result.
    type Output;
    /// The SQL function name.
    const NAME: &'static str;
    /// The SQL signature, for error messages.
    const SIGNATURE: &'static str;
    /// The function's documentation.
    fn documentation() -> &'static Documentation;
    /// The result type.
    fn output_type() -> DataType;
    /// Compute a group's result; may reorder `pairs` and use `scratch`.
    fn compute(pairs: &mut [(f64, f64)], scratch: &mut Vec<f64>) -> Self::Output;
    /// Build the result array.
    fn output(results: Vec<Self::Output>) -> Result<ArrayRef>;
}

/// The aggregate of a pair statistic: `S::NAME(value, time)`, value DOUBLE,
/// time a TIMESTAMP, DATE or number (decimal years via [`time::to_years`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pairs<S: PairStatistic>(PhantomData<S>);

impl<S: PairStatistic> Aggregate for Pairs<S> {
    const NAME: &'static str = S::NAME;

    fn documentation() -> &'static Documentation {
        S::documentation()
    }

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_value_and_time(S::SIGNATURE, arg_types, coerce_time)
    }

    fn return_type(_arg_types: &[DataType]) -> Result<DataType> {
        Ok(S::output_type())
    }

    fn state_fields(args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairsAccumulator::<S>::default()))
    }

    fn groups_accumulator(_args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PairsGroupsAccumulator::<S>::default()))
    }
}

/// State fields: `time` and `value`, LARGE LIST<DOUBLE>.
fn state_fields(name: &str) -> Vec<FieldRef> {
    vec![
        Arc::new(Field::new(
            format_state_name(name, "time"),
            f64_large_list_type(),
            true,
        )),
        Arc::new(Field::new(
            format_state_name(name, "value"),
            f64_large_list_type(),
            true,
        )),
    ]
}

/// Feed the valid `(time, value)` rows of an argument batch to `f(row, t, v)`.
fn for_each_pair(
    signature: &str,
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, f64, f64),
) -> Result<()> {
    let [value, t, ..] = values else {
        return Err(DataFusionError::Internal(format!(
            "{signature}: expected 2 argument arrays, got {}",
            values.len()
        )));
    };
    let value = as_f64(signature, value)?;
    let t = time::to_years(t)?;
    for_each_valid_row(&[value, t.as_ref()], filter, |row| {
        f(row, t.value(row), value.value(row))
    });
    Ok(())
}

/// Call `f(row, times, values)` for each state row (NULL rows are empty),
/// stopping at the first error `f` returns.
fn for_each_state(
    signature: &str,
    states: &[ArrayRef],
    mut f: impl FnMut(usize, &[f64], &[f64]) -> Result<()>,
) -> Result<()> {
    let bad = |what: &str| {
        DataFusionError::Internal(format!("{signature}: malformed partial state ({what})"))
    };
    let [times, values] = states else {
        return Err(bad("expected 2 columns"));
    };
    let (Some(times), Some(values)) = (times.as_list_opt::<i64>(), values.as_list_opt::<i64>())
    else {
        return Err(bad("expected LARGE LIST columns"));
    };
    let (Some(tv), Some(vv)) = (
        times.values().as_primitive_opt::<Float64Type>(),
        values.values().as_primitive_opt::<Float64Type>(),
    ) else {
        return Err(bad("expected DOUBLE items"));
    };
    let (to, vo) = (times.value_offsets(), values.value_offsets());
    for row in 0..times.len() {
        if times.is_null(row) || values.is_null(row) {
            continue;
        }
        let (ts, te) = (to[row] as usize, to[row + 1] as usize);
        let (vs, ve) = (vo[row] as usize, vo[row + 1] as usize);
        if te - ts != ve - vs {
            return Err(bad("time and value lists differ in length"));
        }
        f(row, &tv.values()[ts..te], &vv.values()[vs..ve])?;
    }
    Ok(())
}

/// The state columns from each group's pair count and the pairs' times
/// and values, group after group.
fn encode_lists(lengths: &[usize], times: Vec<f64>, values: Vec<f64>) -> Vec<ArrayRef> {
    vec![
        Arc::new(f64_large_list(lengths, times)),
        Arc::new(f64_large_list(lengths, values)),
    ]
}

/// Plain (single group) accumulator.
#[derive(Debug)]
pub(crate) struct PairsAccumulator<S: PairStatistic> {
    pairs: Vec<(f64, f64)>,
    _statistic: PhantomData<S>,
}

impl<S: PairStatistic> Default for PairsAccumulator<S> {
    fn default() -> Self {
        Self {
            pairs: Vec::new(),
            _statistic: PhantomData,
        }
    }
}

impl<S: PairStatistic> Accumulator for PairsAccumulator<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let pairs = &mut self.pairs;
        for_each_pair(S::SIGNATURE, values, None, |_, t, v| pairs.push((t, v)))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let pairs = &mut self.pairs;
        for_each_state(S::SIGNATURE, states, |_, t, v| {
            pairs.extend(t.iter().copied().zip(v.iter().copied()));
            Ok(())
        })
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        encode_lists(
            &[self.pairs.len()],
            self.pairs.iter().map(|p| p.0).collect(),
            self.pairs.iter().map(|p| p.1).collect(),
        )
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0))
        .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = S::compute(&mut self.pairs, &mut Vec::new());
        ScalarValue::try_from_array(&S::output(vec![result])?, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.pairs.capacity() * size_of::<(f64, f64)>()
    }
}

/// Vectorised accumulator: every group's pairs in one [`PairStore`].
#[derive(Debug)]
pub(crate) struct PairsGroupsAccumulator<S: PairStatistic> {
    pairs: PairStore,
    _statistic: PhantomData<S>,
}

impl<S: PairStatistic> Default for PairsGroupsAccumulator<S> {
    fn default() -> Self {
        Self {
            pairs: PairStore::default(),
            _statistic: PhantomData,
        }
    }
}

impl<S: PairStatistic> GroupsAccumulator for PairsGroupsAccumulator<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.pairs.check_room(group_indices.len(), S::SIGNATURE)?;
        self.pairs.resize(total_num_groups);
        let pairs = &mut self.pairs;
        for_each_pair(S::SIGNATURE, values, opt_filter, |row, t, v| {
            pairs.push(group_indices[row], (t, v))
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.pairs.resize(total_num_groups);
        let pairs = &mut self.pairs;
        for_each_state(S::SIGNATURE, values, |row, t, v| {
            pairs.check_room(t.len(), S::SIGNATURE)?;
            for p in t.iter().copied().zip(v.iter().copied()) {
                pairs.push(group_indices[row], p);
            }
            Ok(())
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut scratch = Vec::new();
        let mut results = Vec::new();
        self.pairs
            .drain(emit_to, |g| results.push(S::compute(g, &mut scratch)));
        S::output(results)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut lengths = Vec::new();
        let mut times = Vec::new();
        let mut values = Vec::new();
        self.pairs.drain(emit_to, |g| {
            lengths.push(g.len());
            times.extend(g.iter().map(|p| p.0));
            values.extend(g.iter().map(|p| p.1));
        });
        Ok(encode_lists(&lengths, times, values))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut lengths = vec![0usize; rows];
        let mut times = Vec::with_capacity(rows);
        let mut vals = Vec::with_capacity(rows);
        for_each_pair(S::SIGNATURE, values, opt_filter, |row, t, v| {
            lengths[row] = 1;
            times.push(t);
            vals.push(v);
        })?;
        Ok(encode_lists(&lengths, times, vals))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.pairs.size()
    }
}
