//! `trend(value, time)`: per-group ordinary least-squares trend of a value
//! over time, with the statistics needed to judge it, in one pass.
//!
//! Why: "is this pixel greening / browning, how fast, and is it
//! significant?" is the basic per-pixel time-series question. DataFusion's
//! `regr_slope` & co. give one number per call and run through the
//! row-at-a-time `GroupsAccumulatorAdapter`; `trend` gives slope, intercept,
//! r², the slope's standard error, t statistic, two-sided p-value, RMSE, n
//! and the first / last time in one STRUCT from one vectorised pass.
//!
//! Design:
//! - Time: TIMESTAMP / DATE become decimal years since 1970-01-01 with
//!   365.25-day years ([`crate::time::years_scale`]), so slopes are per year
//!   and the intercept is the value at 1970; numbers are used as they are
//!   (integers widened to BIGINT, others DOUBLE). `first` / `last` keep the
//!   raw time (i64 nanoseconds, days, ...) so they are exact.
//! - State: centred co-moments ([`crate::ols::Moments`], Welford updates and
//!   Chan et al.'s merge), stable for t ≈ 50 years.
//! - The `GroupsAccumulator` keeps one vector per field (struct of arrays),
//!   is generic over the time column's Arrow type (no per-row conversion
//!   or allocation), and has a fast path for batches without NULLs or
//!   filter. The plain `Accumulator` runs the same arithmetic in the same
//!   row order, so both give identical results.
//! - Rows whose value or time is NULL (or NaN / infinite) are skipped, as in the other
//!   time-series aggregates of this crate.

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int64Array,
    PrimitiveArray, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Fields, Float64Type, UInt64Type,
};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, Documentation, EmitTo, GroupsAccumulator,
};

use crate::agg_common::{self, Aggregate};
use crate::args::{coerce_exact_time, coerce_value_and_time};
use crate::ols::{Fit, Moments};
use crate::sections::TIME_SERIES_AGGREGATES;
use crate::time::{TimeNative, years_scale};
use crate::with_time_type;

const SIGNATURE: &str = "trend(value, time)";

/// The `trend` aggregate UDF.
pub fn trend() -> Arc<AggregateUDF> {
    agg_common::udaf::<Trend>()
}

/// `trend(value, time)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Trend;

static DOC: LazyLock<Documentation> = LazyLock::new(documentation);

/// The result STRUCT's fields for a (coerced) time type.
pub fn result_fields(time_type: &DataType) -> Fields {
    let f64_field = |name: &str| Field::new(name, DataType::Float64, true);
    Fields::from(vec![
        f64_field("slope"),
        f64_field("intercept"),
        f64_field("r2"),
        f64_field("stderr"),
        f64_field("t_stat"),
        f64_field("p_value"),
        f64_field("rmse"),
        Field::new("n", DataType::Int64, false),
        Field::new("first", time_type.clone(), true),
        Field::new("last", time_type.clone(), true),
    ])
}

fn time_type_of_return(return_type: &DataType) -> Result<DataType> {
    match return_type {
        DataType::Struct(fields) => match fields.find("first") {
            Some((_, f)) => Ok(f.data_type().clone()),
            None => internal_err!("{SIGNATURE}: result struct without a `first` field"),
        },
        t => internal_err!("{SIGNATURE}: unexpected return type {t}"),
    }
}

impl Aggregate for Trend {
    const NAME: &'static str = "trend";

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
        with_time_type!(&time_type, T => Ok(Box::new(TrendAccumulator::<T>::new(time_type.clone()))),
            _ => internal_err!("{SIGNATURE}: unsupported time type {time_type}"))
    }

    fn state_fields(args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let time_type = time_type_of_return(args.return_field.data_type())?;
        let name = |s: &str| format_state_name(args.name, s);
        Ok(vec![
            Field::new(name("n"), DataType::UInt64, true),
            Field::new(name("mean_t"), DataType::Float64, true),
            Field::new(name("mean_v"), DataType::Float64, true),
            Field::new(name("s_tt"), DataType::Float64, true),
            Field::new(name("s_vv"), DataType::Float64, true),
            Field::new(name("s_tv"), DataType::Float64, true),
            Field::new(name("first"), time_type.clone(), true),
            Field::new(name("last"), time_type, true),
        ]
        .into_iter()
        .map(Arc::new)
        .collect())
    }

    fn groups_accumulator(args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let time_type = time_type_of_return(args.return_field.data_type())?;
        with_time_type!(&time_type, T => Ok(Box::new(TrendGroups::<T>::new(time_type.clone()))),
            _ => internal_err!("{SIGNATURE}: unsupported time type {time_type}"))
    }

    fn default_value(data_type: &DataType) -> Result<ScalarValue> {
        // No rows: n = 0 and NULL statistics, never a NULL struct.
        let time_type = time_type_of_return(data_type)?;
        let array = with_time_type!(&time_type, T => result_array::<T>(&time_type, 1, |_| (Moments::default(), None))?,
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
        "Ordinary least-squares trend of `value` over `time` per group, with its statistics, as \
         STRUCT<slope, intercept, r2, stderr, t_stat, p_value, rmse, n, first, last>. TIMESTAMP / DATE \
         times are decimal years since 1970-01-01 (365.25-day years): slope is per year and intercept \
         is the value at 1970-01-01; numeric times are used as they are (intercept at time 0). \
         Rows where value or time is NULL, NaN or infinite are skipped.\n\n\
         Fields: `slope`, `intercept` (DOUBLE; NULL when n < 2 or all times are equal); `r2` \
         (coefficient of determination; NULL when n < 3, times are constant or values are constant); \
         `stderr` (standard error of the slope, sqrt(SSE / (n - 2) / Σ(t - t̄)²), as \
         scipy.stats.linregress); `t_stat` = slope / stderr; `p_value` (two-sided, Student's t with \
         n - 2 degrees of freedom); `rmse` = sqrt(SSE / (n - 2)). These five are NULL when n < 3 or the \
         times are constant. An exact fit (SSE = 0, or below 1e-12 of Σ(v - v̄)²) gives stderr = rmse = 0, \
         t_stat NULL and p_value 0; constant values give slope 0, stderr = rmse = 0, t_stat NULL and \
         p_value 1. `n` (BIGINT) counts the rows used; `first` / `last` are the earliest and latest \
         time used, in the time's type (integers as BIGINT, other numbers as DOUBLE). The struct \
         itself is never NULL: no rows give n = 0 and NULL fields.\n\n\
         Read fields with a subscript, `trend(v, t)['slope']`, or with a dot on an aliased result \
         (`tr.slope` where `tr` is `trend(v, t)` in a subquery). `trend(v, t).slope` needs the \
         statement rewritten by `sceneql_udfs::trend::rewrite_struct_field_access` before planning \
         (plain DataFusion 55 rejects a dot after a function call).",
        "trend(value, time)",
    )
    .with_argument("value", "Observed value (any numeric type), e.g. NDVI.")
    .with_argument("time", "Observation time: TIMESTAMP (any unit), DATE, or a number.")
    .with_sql_example(
        "SELECT pixel, trend(ndvi(nir, red), time)['slope'] AS ndvi_per_year,\n\
         \x20      trend(ndvi(nir, red), time)['p_value'] AS p\n\
         FROM obs\n\
         WHERE landsat_clear(qa)\n\
         GROUP BY pixel;",
    )
    .with_related_udf("series")
    .build()
}

/// Let SQL read fields of any STRUCT-valued expression with a dot, e.g.
/// `trend(v, t).slope`.
///
/// DataFusion 55's SQL planner resolves `.field` only after column names
/// (`tr.slope` where `tr` is a column works) and otherwise fails with "Dot
/// access not supported for non-string expr". This rewrites, in a parsed
/// statement, every `<expr>.name` whose `<expr>` is not a plain (compound)
/// identifier into the equivalent subscript `<expr>['name']`, which DataFusion
/// plans as a struct field access. Sessions that want the dot syntax call it
/// between parsing and planning:
///
/// ```text
/// let mut stmt = state.sql_to_statement(sql, &dialect)?;
/// sceneql_udfs::trend::rewrite_struct_field_access(&mut stmt);
/// let plan = state.statement_to_plan(stmt).await?;
/// ```
pub fn rewrite_struct_field_access(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::parser::{CopyToSource, Statement};
    use datafusion::sql::sqlparser::ast::{
        AccessExpr, Expr, Subscript, Value, visit_expressions_mut,
    };
    use std::ops::ControlFlow;

    fn rewrite<V: datafusion::sql::sqlparser::ast::VisitMut>(node: &mut V) {
        let _ = visit_expressions_mut(node, |expr| {
            if let Expr::CompoundFieldAccess { root, access_chain } = expr
                && !matches!(**root, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
            {
                for access in access_chain.iter_mut() {
                    if let AccessExpr::Dot(Expr::Identifier(ident)) = access {
                        let name = Value::SingleQuotedString(ident.value.clone()).into();
                        *access = AccessExpr::Subscript(Subscript::Index {
                            index: Expr::Value(name),
                        });
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    match statement {
        Statement::Statement(s) => rewrite(s.as_mut()),
        Statement::Explain(e) => rewrite_struct_field_access(e.statement.as_mut()),
        Statement::CopyTo(c) => {
            if let CopyToSource::Query(q) = &mut c.source {
                rewrite(q.as_mut());
            }
        }
        Statement::CreateExternalTable(_) | Statement::Reset(_) => {}
    }
}

/// Build the result STRUCT for `len` groups; `group(i)` gives the moments
/// and (first, last) raw times of group i.
fn result_array<T: ArrowPrimitiveType>(
    time_type: &DataType,
    len: usize,
    group: impl Fn(usize) -> (Moments, Option<(T::Native, T::Native)>),
) -> Result<StructArray>
where
    T::Native: TimeNative,
{
    // One pass over the groups, straight into the columns' buffers.
    struct Column {
        values: Vec<f64>,
        valid: BooleanBufferBuilder,
    }
    impl Column {
        #[inline(always)]
        fn push(&mut self, v: Option<f64>) {
            self.values.push(v.unwrap_or(0.0));
            self.valid.append(v.is_some());
        }
        fn finish(mut self) -> ArrayRef {
            Arc::new(Float64Array::new(
                self.values.into(),
                Some(NullBuffer::new(self.valid.finish())),
            ))
        }
    }
    let mut cols: [Column; 7] = std::array::from_fn(|_| Column {
        values: Vec::with_capacity(len),
        valid: BooleanBufferBuilder::new(len),
    });
    let mut n = Vec::with_capacity(len);
    let mut first = Vec::with_capacity(len);
    let mut last = Vec::with_capacity(len);
    let mut ranged = BooleanBufferBuilder::new(len);
    for i in 0..len {
        let (m, range) = group(i);
        let Fit {
            slope,
            intercept,
            r2,
            stderr,
            t_stat,
            p_value,
            rmse,
        } = m.fit();
        for (col, v) in cols
            .iter_mut()
            .zip([slope, intercept, r2, stderr, t_stat, p_value, rmse])
        {
            col.push(v);
        }
        n.push(m.n as i64);
        let (a, b) = range.unwrap_or_default();
        first.push(a);
        last.push(b);
        ranged.append(range.is_some());
    }
    let mut arrays: Vec<ArrayRef> = cols.into_iter().map(Column::finish).collect();
    arrays.push(Arc::new(Int64Array::from(n)));
    let ranged = NullBuffer::new(ranged.finish());
    for times in [first, last] {
        arrays.push(Arc::new(
            PrimitiveArray::<T>::new(times.into(), Some(ranged.clone()))
                .with_data_type(time_type.clone()),
        ));
    }
    Ok(StructArray::try_new(
        result_fields(time_type),
        arrays,
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

/// One group's state: co-moments of (time in years, value) *shifted by the
/// group's first observation* (`shift_t`, `shift_v`), and the first / last
/// raw times.
///
/// The shift keeps Welford's running means small compared with the spread
/// of the data: without it, 10⁶ sorted times around the year 2010 lose ~1e-9
/// of the slope's precision to the rounding of a mean ~300 times larger than
/// the deviations; with it the loss is below 1e-12. Integer times are
/// shifted in their raw units before conversion, so the shift is exact.
/// States exchanged with other accumulators carry absolute means.
#[derive(Debug, Clone, Copy, Default)]
struct GroupState<N> {
    m: Moments,
    shift_t: N,
    shift_v: f64,
    first: N,
    last: N,
}

impl<N: TimeNative + Default> GroupState<N> {
    /// Add one row (the caller has checked it counts: non-NULL, finite).
    #[inline(always)]
    fn update(&mut self, t: N, v: f64, scale: f64) {
        if self.m.n == 0 {
            self.shift_t = t;
            self.shift_v = v;
            self.first = t;
            self.last = t;
        } else {
            self.extend_range(t, t);
        }
        self.m
            .update(t.offset_from(self.shift_t) * scale, v - self.shift_v);
    }

    #[inline(always)]
    fn extend_range(&mut self, lo: N, hi: N) {
        if lo < self.first {
            self.first = lo;
        }
        if hi > self.last {
            self.last = hi;
        }
    }

    /// Merge another state given with absolute means.
    #[inline]
    fn merge_absolute(&mut self, other: &Moments, lo: N, hi: N, scale: f64) {
        if other.n == 0 {
            return;
        }
        if self.m.n == 0 {
            self.shift_t = lo;
            self.shift_v = other.mean_y;
            self.first = lo;
            self.last = hi;
        } else {
            self.extend_range(lo, hi);
        }
        let shifted = Moments {
            mean_x: other.mean_x - self.shift_t.to_f64() * scale,
            mean_y: other.mean_y - self.shift_v,
            ..*other
        };
        self.m.merge(&shifted);
    }

    /// The co-moments with absolute means (years since 1970 for times).
    #[inline]
    fn absolute(&self, scale: f64) -> Moments {
        if self.m.n == 0 {
            return Moments::default();
        }
        Moments {
            mean_x: self.m.mean_x + self.shift_t.to_f64() * scale,
            mean_y: self.m.mean_y + self.shift_v,
            ..self.m
        }
    }

    fn range(&self) -> Option<(N, N)> {
        (self.m.n > 0).then_some((self.first, self.last))
    }
}

/// The state arrays of `trend` (as listed in `state_fields`; absolute means).
struct StateArrays<'a, T: ArrowPrimitiveType> {
    n: &'a UInt64Array,
    mean_t: &'a [f64],
    mean_v: &'a [f64],
    s_tt: &'a [f64],
    s_vv: &'a [f64],
    s_tv: &'a [f64],
    first: &'a [T::Native],
    last: &'a [T::Native],
}

impl<'a, T: ArrowPrimitiveType> StateArrays<'a, T> {
    fn new(states: &'a [ArrayRef]) -> Result<Self> {
        let [n, mean_t, mean_v, s_tt, s_vv, s_tv, first, last] = states else {
            return internal_err!("{SIGNATURE}: expected 8 state arrays, got {}", states.len());
        };
        let bad =
            |a: &ArrayRef| exec_datafusion_err!("{SIGNATURE}: bad state column {}", a.data_type());
        let f64s = |a: &'a ArrayRef| -> Result<&'a [f64]> {
            Ok(a.as_primitive_opt::<Float64Type>()
                .ok_or_else(|| bad(a))?
                .values())
        };
        let times = |a: &'a ArrayRef| -> Result<&'a [T::Native]> {
            Ok(a.as_primitive_opt::<T>().ok_or_else(|| bad(a))?.values())
        };
        let lens = states.iter().map(|a| a.len());
        if lens.clone().any(|l| l != n.len()) {
            return internal_err!("{SIGNATURE}: state arrays of different lengths");
        }
        Ok(Self {
            n: n.as_primitive_opt::<UInt64Type>().ok_or_else(|| bad(n))?,
            mean_t: f64s(mean_t)?,
            mean_v: f64s(mean_v)?,
            s_tt: f64s(s_tt)?,
            s_vv: f64s(s_vv)?,
            s_tv: f64s(s_tv)?,
            first: times(first)?,
            last: times(last)?,
        })
    }

    /// Row i as (absolute moments, first, last); None for empty states.
    #[inline]
    fn row(&self, i: usize) -> Option<(Moments, T::Native, T::Native)> {
        let n = if self.n.is_valid(i) {
            self.n.values()[i]
        } else {
            0
        };
        (n > 0).then(|| {
            let m = Moments {
                n,
                mean_x: self.mean_t[i],
                mean_y: self.mean_v[i],
                sxx: self.s_tt[i],
                syy: self.s_vv[i],
                sxy: self.s_tv[i],
            };
            (m, self.first[i], self.last[i])
        })
    }
}

/// State arrays (absolute means; NULL first/last for empty groups) from
/// per-group states.
fn state_arrays<T: ArrowPrimitiveType>(
    time_type: &DataType,
    scale: f64,
    len: usize,
    group: impl Fn(usize) -> GroupState<T::Native>,
) -> Vec<ArrayRef>
where
    T::Native: TimeNative,
{
    let mut n = Vec::with_capacity(len);
    let mut cols: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(len));
    let mut first = Vec::with_capacity(len);
    let mut last = Vec::with_capacity(len);
    for i in 0..len {
        let s = group(i);
        let m = s.absolute(scale);
        n.push(m.n);
        for (c, v) in cols
            .iter_mut()
            .zip([m.mean_x, m.mean_y, m.sxx, m.syy, m.sxy])
        {
            c.push(v);
        }
        first.push(s.range().map(|r| r.0));
        last.push(s.range().map(|r| r.1));
    }
    let mut out: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(n))];
    out.extend(
        cols.into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
    );
    out.push(Arc::new(
        first
            .into_iter()
            .collect::<PrimitiveArray<T>>()
            .with_data_type(time_type.clone()),
    ));
    out.push(Arc::new(
        last.into_iter()
            .collect::<PrimitiveArray<T>>()
            .with_data_type(time_type.clone()),
    ));
    out
}

// ---------------------------------------------------------------------------
// GroupsAccumulator
// ---------------------------------------------------------------------------

/// Vectorised `trend` state for many groups: one [`GroupState`] per group,
/// side by side (a row's update reads and writes one 80-byte record, with
/// one base pointer for the loop to keep in a register).
pub struct TrendGroups<T: ArrowPrimitiveType> {
    time_type: DataType,
    /// Years per raw time unit (1 for numbers).
    scale: f64,
    groups: Vec<GroupState<T::Native>>,
    _time: PhantomData<fn() -> T>,
}

impl<T: ArrowPrimitiveType> TrendGroups<T>
where
    T::Native: TimeNative,
{
    pub fn new(time_type: DataType) -> Self {
        Self {
            scale: years_scale(&time_type).unwrap_or(1.0),
            time_type,
            groups: Vec::new(),
            _time: PhantomData,
        }
    }

    fn resize(&mut self, total: usize) {
        if total > self.groups.len() {
            self.groups.resize(total, GroupState::default());
        }
    }

    /// Add the rows `rows` (indices into `group_indices`, `t` and `v`;
    /// NaN / infinite value or time: skipped) with [`GroupState::update`];
    /// an error if a group is out of range.
    ///
    /// The states a batch touches are usually beyond the core's caches (a
    /// block's pixels, 80 bytes each); each row asks for the state of the
    /// row [`PREFETCH_ROWS`] ahead, so it is there when that row comes.
    #[inline(always)]
    fn update_rows(
        &mut self,
        group_indices: &[usize],
        t: &[T::Native],
        v: &[f64],
        rows: impl Iterator<Item = usize>,
    ) -> Result<()> {
        let scale = self.scale;
        let groups = &mut self.groups[..];
        let len = groups.len();
        for i in rows {
            if let Some(ahead) = group_indices
                .get(i + PREFETCH_ROWS)
                .and_then(|&g| groups.get(g))
            {
                agg_common::prefetch(ahead);
            }
            let (g, t, v) = (group_indices[i], t[i], v[i]);
            if g >= len {
                return internal_err!("{SIGNATURE}: group index {g} out of range ({len} groups)");
            }
            if !v.is_finite() || !t.is_finite() {
                continue;
            }
            groups[g].update(t, v, scale);
        }
        Ok(())
    }
}

/// How far ahead (in rows) [`TrendGroups::update_rows`] prefetches states.
const PREFETCH_ROWS: usize = 16;

impl<T: ArrowPrimitiveType> GroupsAccumulator for TrendGroups<T>
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
        self.resize(total_num_groups);
        let v = values.values();
        let t = times.values();
        if v.len() != group_indices.len() || t.len() != group_indices.len() {
            return internal_err!("{SIGNATURE}: argument and group index lengths differ");
        }
        match agg_common::valid_rows(values, times, opt_filter) {
            // Fast path: no NULLs, no filter.
            None => self.update_rows(group_indices, t, v, 0..v.len()),
            Some(valid) => self.update_rows(group_indices, t, v, valid.set_indices()),
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let scale = self.scale;
        let array = result_array::<T>(&self.time_type, groups.len(), |g| {
            (groups[g].absolute(scale), groups[g].range())
        })?;
        Ok(Arc::new(array))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(state_arrays::<T>(
            &self.time_type,
            self.scale,
            groups.len(),
            |g| groups[g],
        ))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let states = StateArrays::<T>::new(values)?;
        if states.n.len() != group_indices.len() {
            return internal_err!("{SIGNATURE}: state and group index lengths differ");
        }
        self.resize(total_num_groups);
        for (i, &g) in group_indices.iter().enumerate() {
            if let Some((other, lo, hi)) = states.row(i) {
                self.groups[g].merge_absolute(&other, lo, hi, self.scale);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let (values, times) = typed_args::<T>(values)?;
        let valid = agg_common::valid_rows(values, times, opt_filter);
        let (v, t) = (values.values(), times.values());
        let scale = self.scale;
        Ok(state_arrays::<T>(&self.time_type, scale, v.len(), |i| {
            // Each row is its own group, updated exactly as in update_batch.
            let mut s = GroupState::default();
            if valid.as_ref().is_none_or(|b| b.value(i)) && v[i].is_finite() && t[i].is_finite() {
                s.update(t[i], v[i], scale);
            }
            s
        }))
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<GroupState<T::Native>>()
    }
}

// ---------------------------------------------------------------------------
// Accumulator
// ---------------------------------------------------------------------------

/// `trend` state for one group (used when DataFusion does not use groups,
/// e.g. no GROUP BY or window frames). Same [`GroupState`] arithmetic as
/// [`TrendGroups`], so the results are identical.
pub struct TrendAccumulator<T: ArrowPrimitiveType> {
    time_type: DataType,
    scale: f64,
    state: GroupState<T::Native>,
}

impl<T: ArrowPrimitiveType> std::fmt::Debug for TrendAccumulator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrendAccumulator")
            .field("time_type", &self.time_type)
            .field("state", &self.state)
            .finish()
    }
}

impl<T: ArrowPrimitiveType> TrendAccumulator<T>
where
    T::Native: TimeNative,
{
    pub fn new(time_type: DataType) -> Self {
        Self {
            scale: years_scale(&time_type).unwrap_or(1.0),
            time_type,
            state: GroupState::default(),
        }
    }
}

impl<T: ArrowPrimitiveType> Accumulator for TrendAccumulator<T>
where
    T::Native: TimeNative,
{
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (values, times) = typed_args::<T>(values)?;
        let valid = agg_common::valid_rows(values, times, None);
        let (v, t) = (values.values(), times.values());
        for i in 0..v.len() {
            if valid.as_ref().is_none_or(|b| b.value(i)) && v[i].is_finite() && t[i].is_finite() {
                self.state.update(t[i], v[i], self.scale);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (m, range) = (self.state.absolute(self.scale), self.state.range());
        let array = result_array::<T>(&self.time_type, 1, |_| (m, range))?;
        Ok(ScalarValue::Struct(Arc::new(array)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.time_type.size() - size_of_val(&self.time_type)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let s = self.state;
        state_arrays::<T>(&self.time_type, self.scale, 1, |_| s)
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = StateArrays::<T>::new(states)?;
        for i in 0..states.n.len() {
            if let Some((other, lo, hi)) = states.row(i) {
                self.state.merge_absolute(&other, lo, hi, self.scale);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::test_util::{planning_error, run};
    use crate::test_support::{Call, Lcg, check_groups_vs_plain};
    use datafusion::arrow::array::{
        Date32Array, Int64Array, RecordBatch, TimestampNanosecondArray, TimestampSecondArray,
    };
    use datafusion::arrow::datatypes::{
        Date32Type, Int64Type, Schema, TimeUnit, TimestampNanosecondType,
    };
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    #[derive(serde::Deserialize)]
    struct Fixtures {
        cases: Vec<Case>,
        t_distribution: Vec<TPoint>,
        big: Big,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        time_type: String,
        times: Vec<Value>,
        values: Vec<Option<f64>>,
        nan_rows: Vec<usize>,
        expected: Value,
    }
    #[derive(serde::Deserialize)]
    struct TPoint {
        t: f64,
        df: f64,
        p: f64,
    }
    #[derive(serde::Deserialize)]
    struct Big {
        n: usize,
        seed: u64,
        expected: Value,
    }

    fn fixtures() -> Fixtures {
        serde_json::from_str(include_str!("../fixtures/trend.json")).expect("trend.json")
    }

    impl Case {
        fn time_array(&self) -> ArrayRef {
            let ints = || self.times.iter().map(|v| v.as_i64()).collect::<Vec<_>>();
            match self.time_type.as_str() {
                "float64" => Arc::new(Float64Array::from(
                    self.times.iter().map(|v| v.as_f64()).collect::<Vec<_>>(),
                )),
                "int64" => Arc::new(Int64Array::from(ints())),
                "timestamp_ns" => Arc::new(TimestampNanosecondArray::from(ints())),
                "timestamp_s" => Arc::new(TimestampSecondArray::from(ints())),
                "date32" => Arc::new(Date32Array::from(
                    self.times
                        .iter()
                        .map(|v| v.as_i64().map(|d| d as i32))
                        .collect::<Vec<_>>(),
                )),
                t => panic!("unknown time type {t}"),
            }
        }
        fn value_array(&self) -> ArrayRef {
            let mut v = self.values.clone();
            for &i in &self.nan_rows {
                v[i] = Some(f64::NAN);
            }
            Arc::new(Float64Array::from(v))
        }
    }

    /// Result struct fields as f64 (first/last raw), NULL as None.
    fn fields_of(v: &ScalarValue) -> Vec<(String, Option<f64>)> {
        let ScalarValue::Struct(s) = v else {
            panic!("struct expected, got {v:?}")
        };
        s.fields()
            .iter()
            .zip(s.columns())
            .map(|(f, c)| {
                let x = if c.is_null(0) {
                    None
                } else {
                    Some(match c.data_type() {
                        DataType::Float64 => c.as_primitive::<Float64Type>().value(0),
                        DataType::Int64 => c.as_primitive::<Int64Type>().value(0) as f64,
                        DataType::Date32 => c.as_primitive::<Date32Type>().value(0) as f64,
                        DataType::Timestamp(_, _) => {
                            datafusion::arrow::compute::cast(c, &DataType::Int64)
                                .unwrap()
                                .as_primitive::<Int64Type>()
                                .value(0) as f64
                        }
                        t => panic!("unexpected field type {t}"),
                    })
                };
                (f.name().clone(), x)
            })
            .collect()
    }

    fn assert_fit(got: &ScalarValue, expected: &Value, rtol: f64, what: &str) {
        let got = fields_of(got);
        for (name, g) in &got {
            let want = &expected[name.as_str()];
            match (g, want) {
                (None, Value::Null) => {}
                (Some(g), w) if w.is_number() => {
                    let w = w.as_f64().unwrap();
                    // p-values are compared relative to themselves (they can be tiny).
                    let scale = if name == "p_value" {
                        w.abs()
                    } else {
                        w.abs().max(1e-3)
                    };
                    assert!(
                        (g - w).abs() <= rtol * scale,
                        "{what}.{name}: got {g}, want {w}"
                    );
                }
                _ => panic!("{what}.{name}: got {g:?}, want {want}"),
            }
        }
    }

    fn call(args: &[ArrayRef]) -> Call {
        Call::new(trend(), args)
    }

    #[test]
    fn fixture_cases_match_scipy() {
        for case in fixtures().cases {
            let args = vec![case.value_array(), case.time_array()];
            let c = call(&args);
            // Plain accumulator, one batch.
            let mut acc = c.plain();
            acc.update_batch(&args).unwrap();
            let plain = acc.evaluate().unwrap();
            assert_fit(&plain, &case.expected, 1e-9, &case.name);
            // Groups accumulator, one group, and identical to the plain result.
            let mut g = c.groups();
            g.update_batch(&args, &vec![0; args[0].len()], None, 1)
                .unwrap();
            let grouped =
                ScalarValue::try_from_array(&g.evaluate(EmitTo::All).unwrap(), 0).unwrap();
            assert_eq!(grouped, plain, "{}: groups vs plain", case.name);
            // Partial states over thirds, merged in several orders.
            let n = args[0].len();
            let cuts = [0, n / 3, 2 * n / 3, n];
            let mut states = Vec::new();
            for w in cuts.windows(2) {
                let mut part = c.plain();
                part.update_batch(
                    &args
                        .iter()
                        .map(|a| a.slice(w[0], w[1] - w[0]))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                states.push(
                    part.state()
                        .unwrap()
                        .iter()
                        .map(|s| s.to_array().unwrap())
                        .collect::<Vec<_>>(),
                );
            }
            for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
                let mut m = c.plain();
                for i in order {
                    m.merge_batch(&states[i]).unwrap();
                }
                assert_fit(
                    &m.evaluate().unwrap(),
                    &case.expected,
                    1e-9,
                    &format!("{} merged {order:?}", case.name),
                );
            }
        }
    }

    #[test]
    fn p_values_match_scipy() {
        let mut bad = Vec::new();
        for p in fixtures().t_distribution {
            let got = crate::ols::student_t_two_sided_p(p.t, p.df);
            if (got - p.p).abs() > 1e-10 * p.p {
                bad.push(format!(
                    "t={} df={}: got {got:e}, want {:e}",
                    p.t, p.df, p.p
                ));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn million_row_group_matches_numpy() {
        let big = fixtures().big;
        let mut lcg = Lcg(big.seed);
        let n = big.n;
        let mut t = Vec::with_capacity(n);
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let ti = 2000.0 + 20.0 * i as f64 / n as f64;
            t.push(ti);
            v.push(0.25 + 0.01 * (ti - 2000.0) + 0.05 * (lcg.uniform() - 0.5));
        }
        let args: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(v)),
            Arc::new(Float64Array::from(t)),
        ];
        let c = call(&args);
        let mut g = c.groups();
        let groups = vec![0usize; 8192];
        let mut start = 0;
        while start < n {
            let len = 8192.min(n - start);
            let batch: Vec<ArrayRef> = args.iter().map(|a| a.slice(start, len)).collect();
            g.update_batch(&batch, &groups[..len], None, 1).unwrap();
            start += len;
        }
        let got = ScalarValue::try_from_array(&g.evaluate(EmitTo::All).unwrap(), 0).unwrap();
        assert_fit(&got, &big.expected, 1e-9, "1e6 rows");
    }

    #[test]
    fn groups_accumulator_equals_plain_accumulator() {
        let mut rng = StdRng::seed_from_u64(11);
        for round in 0..24u64 {
            let n = rng.random_range(0..300usize);
            let null = |rng: &mut StdRng| rng.random_range(0..8) == 0;
            let values: Float64Array = (0..n)
                .map(|_| {
                    if null(&mut rng) {
                        None
                    } else {
                        Some(rng.random_range(-1.0..1.0))
                    }
                })
                .collect();
            // Timestamps around 2020 (ns), with NULLs; every third round a
            // numeric or DATE time, some rounds with constant values.
            let time: ArrayRef = match round % 3 {
                0 => Arc::new(
                    (0..n)
                        .map(|_| {
                            (!null(&mut rng)).then(|| {
                                rng.random_range(1_500_000_000i64..1_700_000_000) * 1_000_000_000
                            })
                        })
                        .collect::<TimestampNanosecondArray>()
                        .with_timezone("UTC"),
                ),
                1 => Arc::new(
                    (0..n)
                        .map(|_| (!null(&mut rng)).then(|| rng.random_range(17_000..20_000)))
                        .collect::<Date32Array>(),
                ),
                _ => Arc::new(
                    (0..n)
                        .map(|_| (!null(&mut rng)).then(|| rng.random_range(0..12) as f64))
                        .collect::<Float64Array>(),
                ),
            };
            let values: ArrayRef = if round % 5 == 4 {
                Arc::new(Float64Array::from(vec![0.5; n]))
            } else {
                Arc::new(values)
            };
            let args = vec![values, time];
            let c = call(&args);
            let exact_or_close = |got: &ScalarValue, want: &ScalarValue, what: &str| {
                let (g, w) = (fields_of(got), fields_of(want));
                for ((name, g), (_, w)) in g.iter().zip(&w) {
                    match (g, w) {
                        (None, None) => {}
                        (Some(g), Some(w)) => {
                            let tol = if name == "p_value" {
                                1e-9 * w.abs() + 1e-300
                            } else {
                                1e-9 * w.abs().max(1.0)
                            };
                            assert!((g - w).abs() <= tol, "{what}.{name}: {g} vs {w}");
                        }
                        _ => panic!("{what}.{name}: {g:?} vs {w:?}"),
                    }
                }
            };
            check_groups_vs_plain(&c, round, &exact_or_close);
        }
    }

    #[test]
    fn non_finite_rows_are_skipped() {
        let with: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                1.0,
                f64::INFINITY,
                3.0,
                4.5,
                2.0,
                f64::NAN,
            ])),
            Arc::new(Float64Array::from(vec![
                1.0,
                2.0,
                3.0,
                4.0,
                f64::NEG_INFINITY,
                6.0,
            ])),
        ];
        let without: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![1.0, 3.0, 4.5])),
            Arc::new(Float64Array::from(vec![1.0, 3.0, 4.0])),
        ];
        let c = call(&with);
        let mut want = c.plain();
        want.update_batch(&without).unwrap();
        let want = want.evaluate().unwrap();
        let mut plain = c.plain();
        plain.update_batch(&with).unwrap();
        assert_eq!(plain.evaluate().unwrap(), want);
        let mut groups = c.groups();
        groups.update_batch(&with, &[0; 6], None, 1).unwrap();
        let got = ScalarValue::try_from_array(&groups.evaluate(EmitTo::All).unwrap(), 0).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn first_last_keep_the_time_type_exactly() {
        let ts = TimestampNanosecondArray::from(vec![
            Some(1_600_000_000_123_456_789),
            None,
            Some(1_500_000_000_000_000_001),
        ])
        .with_timezone("+02:00");
        let args: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
            Arc::new(ts),
        ];
        let c = call(&args);
        let mut acc = c.plain();
        acc.update_batch(&args).unwrap();
        let ScalarValue::Struct(s) = acc.evaluate().unwrap() else {
            panic!()
        };
        let first = s.column_by_name("first").unwrap();
        assert_eq!(
            first.data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()))
        );
        assert_eq!(
            first.as_primitive::<TimestampNanosecondType>().value(0),
            1_500_000_000_000_000_001
        );
        assert_eq!(
            s.column_by_name("last")
                .unwrap()
                .as_primitive::<TimestampNanosecondType>()
                .value(0),
            1_600_000_000_123_456_789
        );
        assert_eq!(
            s.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            2
        );
        // An empty accumulator: n = 0, NULL fields, but not a NULL struct.
        let ScalarValue::Struct(empty) = c.plain().evaluate().unwrap() else {
            panic!()
        };
        assert!(empty.is_valid(0));
        assert_eq!(
            empty
                .column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            0
        );
        assert!(empty.column_by_name("slope").unwrap().is_null(0));
        let default = trend()
            .default_value(
                &trend()
                    .return_type(&[DataType::Float64, DataType::Date32])
                    .unwrap(),
            )
            .unwrap();
        assert!(!default.is_null());
    }

    fn observations() -> datafusion::prelude::SessionContext {
        // 3 pixels x 30 observations, one every ~12 days from 2020-01-01,
        // value = 0.3 + rate * years + small noise, rate = 0.01 * pixel.
        let mut pixel = Vec::new();
        let mut t = Vec::new();
        let mut v = Vec::new();
        let mut lcg = Lcg(5);
        for p in 0..3i64 {
            for k in 0..30i64 {
                let secs = 1_577_836_800 + k * 12 * 86_400 + p * 3600;
                pixel.push(p);
                t.push(secs * 1_000_000_000);
                let years = secs as f64 / crate::time::SECONDS_PER_YEAR;
                v.push(0.3 + 0.01 * p as f64 * (years - 50.0) + 0.001 * (lcg.uniform() - 0.5));
            }
        }
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("pixel", DataType::Int64, false),
                Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
                Field::new("v", DataType::Float64, true),
            ])),
            vec![
                Arc::new(Int64Array::from(pixel)),
                Arc::new(TimestampNanosecondArray::from(t)),
                Arc::new(Float64Array::from(v)),
            ],
        )
        .unwrap();
        let ctx = crate::indices::test_util::ctx();
        ctx.register_batch("obs", batch).unwrap();
        ctx
    }

    /// Plan and run SQL with the dot-access rewrite, as a session would.
    fn run_with_dot_access(
        ctx: &datafusion::prelude::SessionContext,
        sql: &str,
    ) -> Result<Vec<RecordBatch>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let state = ctx.state();
            let mut statement =
                state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
            rewrite_struct_field_access(&mut statement);
            let plan = state.statement_to_plan(statement).await?;
            ctx.execute_logical_plan(plan).await?.collect().await
        })
    }

    #[test]
    fn sql_group_by_with_field_access() {
        let ctx = observations();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Plain DataFusion: subscripts on the call, dots on an aliased column.
        let batches = rt
            .block_on(async {
                ctx.sql(
                    "SELECT pixel, trend(v, t)['slope'] AS slope, trend(v, t)['p_value'] AS p, trend(v, t)['n'] AS n \
                     FROM obs GROUP BY pixel ORDER BY pixel",
                )
                .await?
                .collect()
                .await
            })
            .unwrap();
        let b = &batches[0];
        let slope = b.column(1).as_primitive::<Float64Type>().clone();
        let p = b.column(2).as_primitive::<Float64Type>();
        let n = b.column(3).as_primitive::<Int64Type>();
        for pixel in 0..3 {
            assert!(
                (slope.value(pixel) - 0.01 * pixel as f64).abs() < 2e-3,
                "pixel {pixel}: {}",
                slope.value(pixel)
            );
            assert_eq!(n.value(pixel), 30);
        }
        assert!(p.value(0) > 0.01, "flat pixel: p = {}", p.value(0));
        assert!(p.value(2) < 1e-10, "trending pixel: p = {}", p.value(2));

        let batches = rt
            .block_on(async {
                ctx.sql(
                    "SELECT pixel, tr.slope, tr['rmse'], tr.first FROM \
                     (SELECT pixel, trend(v, t) AS tr FROM obs GROUP BY pixel) AS s ORDER BY pixel",
                )
                .await?
                .collect()
                .await
            })
            .unwrap();
        assert_eq!(batches[0].column(1).as_primitive::<Float64Type>(), &slope);
        assert_eq!(
            batches[0].column(3).data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, None)
        );

        // `trend(v, t).slope` needs the rewrite (DataFusion 55 rejects it).
        let dotted = "SELECT pixel, trend(v, t).slope AS slope, trend(v, t)['p_value'] AS p FROM obs \
                      GROUP BY pixel ORDER BY pixel";
        let e = rt
            .block_on(async { ctx.sql(dotted).await.map(|_| ()) })
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dot access not supported"), "{e}");
        let batches = run_with_dot_access(&ctx, dotted).unwrap();
        assert_eq!(batches[0].column(1).as_primitive::<Float64Type>(), &slope);

        // No GROUP BY (the plain Accumulator) gives the same slope as the groups.
        let batches =
            run_with_dot_access(&ctx, "SELECT trend(v, t).slope FROM obs WHERE pixel = 2").unwrap();
        let s2 = batches[0].column(0).as_primitive::<Float64Type>().value(0);
        assert!(
            (s2 - slope.value(2)).abs() <= 1e-12 * s2.abs(),
            "{s2} vs {}",
            slope.value(2)
        );

        // Empty input without GROUP BY: a struct with n = 0.
        let out = run("SELECT trend(v, t)['n'], trend(v, t)['slope'] FROM (VALUES (1.0, 2.0)) AS s(v, t) WHERE v > 5")
            .unwrap();
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 0);
        assert!(out[0].column(1).is_null(0));
    }

    /// Timing against DataFusion's `regr_slope` on the same GROUP BY (run
    /// with `cargo test -p sceneql-udfs --release -- --ignored --nocapture
    /// trend_vs_regr_slope`; debug timings mostly measure unoptimised code).
    #[test]
    #[ignore]
    fn trend_vs_regr_slope() {
        let rows: usize = std::env::var("BENCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        let groups: i64 = std::env::var("BENCH_GROUPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000);
        let mut lcg = Lcg(1);
        let mut g = Vec::with_capacity(rows);
        let mut t = Vec::with_capacity(rows);
        let mut v = Vec::with_capacity(rows);
        for i in 0..rows {
            g.push(((lcg.next_u64() >> 33) % groups as u64) as i64);
            t.push(1_500_000_000_000_000_000i64 + (i as i64) * 1_000_000_000_000);
            v.push(lcg.uniform());
        }
        let distinct = g.iter().collect::<std::collections::HashSet<_>>().len();
        let years: Vec<f64> = t
            .iter()
            .map(|&x| x as f64 * 1e-9 / crate::time::SECONDS_PER_YEAR)
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("y", DataType::Float64, false),
            Field::new("v", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(g)),
                Arc::new(TimestampNanosecondArray::from(t)),
                Arc::new(Float64Array::from(years)),
                Arc::new(Float64Array::from(v)),
            ],
        )
        .unwrap();
        let batches: Vec<RecordBatch> = (0..batch.num_rows())
            .step_by(8192)
            .map(|s| batch.slice(s, 8192.min(rows - s)))
            .collect();
        let ctx = crate::indices::test_util::ctx();
        let table =
            datafusion::datasource::MemTable::try_new(batch.schema(), vec![batches]).unwrap();
        ctx.register_table("obs", Arc::new(table)).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let time = |sql: &str| {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                let out = rt
                    .block_on(async { ctx.sql(sql).await?.collect().await })
                    .unwrap();
                assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), distinct);
                best = best.min(start.elapsed().as_secs_f64());
            }
            best
        };
        let regr = time("SELECT g, regr_slope(v, y) FROM obs GROUP BY g");
        let trend_f64 = time("SELECT g, trend(v, y) FROM obs GROUP BY g");
        let trend_ts = time("SELECT g, trend(v, t) FROM obs GROUP BY g");
        println!(
            "{rows} rows, {groups} groups: regr_slope {regr:.3} s, trend(DOUBLE time) {trend_f64:.3} s, \
             trend(TIMESTAMP) {trend_ts:.3} s"
        );
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT trend('a', 1)");
        assert!(
            e.contains("trend(value, time): argument `value` must be a number, got Utf8"),
            "{e}"
        );
        let e = planning_error("SELECT trend(1.0, 'x')");
        assert!(
            e.contains(
                "trend(value, time): argument `time` must be a TIMESTAMP, a DATE or a number, got Utf8"
            ),
            "{e}"
        );
        let e = planning_error("SELECT trend(1.0)");
        assert!(
            e.contains("trend(value, time) expects 2 arguments, got 1"),
            "{e}"
        );
    }
}
