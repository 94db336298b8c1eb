//! Ordinary least squares from per-group normal equations: the engine of
//! `harmonic_fit` and `linreg`.
//!
//! # Why normal equations
//! A regression per pixel over millions of pixels must aggregate in one pass,
//! in bounded memory per group, and merge partial results from partitions. The
//! sufficient statistics of OLS are the normal equations: `S = X'X` (sum of
//! outer products of the feature vectors), `b = X'y`, `y'y` and `n`. They add
//! up row by row and partial states merge by addition.
//!
//! # Centring (precision)
//! Times are decimal years since 1970 (t ~ 50 today), and band values are
//! often large with small variations. Summing raw `t^2` and `y^2` over a
//! million rows and subtracting later would lose many digits, so each group
//! accumulates in shifted coordinates: the regressors that carry an offset
//! (every `linreg` regressor, the trend column `t` of `harmonic_fit`) and the
//! value `y` are taken relative to the **first row the group sees**
//! (`x_j - c_j`, `y - y0`). The harmonic columns `cos(2 pi h t)`,
//! `sin(2 pi h t)` are bounded and use the absolute `t` (phase computed from
//! the fractional part of `t`, so large years lose no phase accuracy).
//!
//! Two partial states usually have different references. Shifting the
//! references is linear: with `d_j = c2_j - c1_j` for the shifted columns
//! (`d_0 = 0` for the intercept) and `delta = y0_2 - y0_1`, the features of
//! state 2 in state 1's coordinates are `phi + d * phi_0` and the value is
//! `y' + delta`, so
//!
//! ```text
//! S_ij += S2_ij + d_i S2_0j + S2_i0 d_j + n2 d_i d_j
//! b_i  += b2_i + delta S2_i0 + d_i (b2_0 + delta n2)
//! yy   += yy2 + 2 delta b2_0 + delta^2 n2
//! ```
//!
//! # Solving
//! At evaluation the symmetric system is equilibrated (`D^-1 S D^-1` with
//! `D = sqrt(diag S)`, so every diagonal entry is 1) and factored by Cholesky.
//! A pivot below [`RANK_TOLERANCE`] means that column is (numerically) a
//! linear combination of the previous ones: its residual holds less than
//! 1e-9 of its sum of squares, i.e. a variance inflation factor above 1e9.
//! The fit is then declared singular and its coefficients (and the other
//! statistics) are NULL, as are fits with fewer rows than parameters. One step
//! of iterative refinement follows the solve. Coefficients are finally mapped
//! back to the absolute coordinates: only the intercept changes,
//! `b0 = b0' + y0 - sum_j bj' c_j`.
//!
//! # Statistics
//! `SSE = y'y - 2 beta.b + beta.S beta` (shifted coordinates, clamped at 0),
//! `SST = y'y - (sum y')^2 / n`; `r2 = 1 - SSE/SST` (NULL when SST = 0, i.e.
//! a constant value); `rmse = sqrt(SSE / (n - p))` with `p` the number of
//! coefficients (the unbiased residual standard error, NULL when `n <= p`).
//!
//! # State
//! Per group a flat run of `3 + m + p + p(p+1)/2` doubles ([`Design::state_len`]):
//! `n, y0, c_1..c_m, y'y, b (p), S (upper triangle, row-major)`. Exchanged
//! between partitions as two columns, `n` (UINT64) and `moments`
//! (LIST<DOUBLE>, the rest; empty when `n = 0`).
//!
//! [`Ols`] is the [`Aggregate`] of any [`OlsModel`]: the model brings its
//! name, documentation, argument coercion and [`Design`].

use std::f64::consts::TAU;
use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StructArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, UInt64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, Documentation, EmitTo, GroupsAccumulator};
use datafusion::scalar::ScalarValue;

use crate::agg_common::{Aggregate, as_f64, f64_list, f64_list_type, for_each_valid_row};
use crate::time;

/// Smallest accepted Cholesky pivot of the equilibrated normal equations
/// (fraction of a column's sum of squares not explained by the previous columns).
pub(crate) const RANK_TOLERANCE: f64 = 1e-9;

const N: usize = 0;
const Y0: usize = 1;
const REFS: usize = 2;

/// The model: which features a row of raw regressors produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Design {
    /// `[1, x_1, ..., x_m]` (`linreg`).
    Linear { m: usize },
    /// `[1, t, cos(2 pi t), sin(2 pi t), ..., cos(2 pi k t), sin(2 pi k t)]` (`harmonic_fit`).
    Harmonic { k: usize },
}

/// The `h`-th harmonic of `t` (years): `out = [cos(2 pi h t), sin(2 pi h t)]`.
/// The phase uses the fractional part of `t` (exact in floating point), so
/// large years lose no phase accuracy.
#[inline]
pub(crate) fn harmonic(t: f64, h: usize, out: &mut [f64]) {
    let (s, c) = (TAU * h as f64 * (t - t.floor())).sin_cos();
    out[0] = c;
    out[1] = s;
}

/// `b += yc phi` and `S += phi phi'` (`S` the packed upper triangle,
/// row-major) over the first `b.len()` features.
#[inline(always)]
fn add_outer(b: &mut [f64], s: &mut [f64], phi: &[f64], yc: f64) {
    let p = b.len();
    for (bi, &fi) in b.iter_mut().zip(phi.iter()) {
        *bi += fi * yc;
    }
    let mut idx = 0;
    for i in 0..p {
        let fi = phi[i];
        for &fj in &phi[i..p] {
            s[idx] += fi * fj;
            idx += 1;
        }
    }
}

/// [`add_outer`] on `P` features and a triangle of `T = P (P + 1) / 2`:
/// with the lengths known at compile time its loops unroll.
#[inline(always)]
fn add_outer_fixed<const P: usize, const T: usize>(
    b: &mut [f64],
    s: &mut [f64],
    phi: &[f64],
    yc: f64,
) {
    match (
        b.first_chunk_mut::<P>(),
        s.first_chunk_mut::<T>(),
        phi.first_chunk::<P>(),
    ) {
        (Some(b), Some(s), Some(phi)) => add_outer(b, s, phi, yc),
        _ => add_outer(b, s, phi, yc),
    }
}

/// Scratch space for [`Design::add_row`]: one row's features (`p` of
/// them) and the time (bits) its harmonic columns were computed for.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    phi: Vec<f64>,
    harmonics_of: Option<u64>,
}

impl Features {
    pub(crate) fn new(design: &Design) -> Self {
        Features {
            phi: vec![0.0; design.params()],
            harmonics_of: None,
        }
    }

    fn capacity(&self) -> usize {
        self.phi.capacity()
    }
}

impl Design {
    /// Number of raw regressor columns (`m`): the shifted features `1..=m`.
    pub(crate) fn regressors(&self) -> usize {
        match self {
            Design::Linear { m } => *m,
            Design::Harmonic { .. } => 1,
        }
    }

    /// Number of coefficients (`p`).
    pub(crate) fn params(&self) -> usize {
        match self {
            Design::Linear { m } => 1 + m,
            Design::Harmonic { k } => 2 + 2 * k,
        }
    }

    fn yy(&self) -> usize {
        REFS + self.regressors()
    }

    fn b(&self) -> usize {
        self.yy() + 1
    }

    fn s(&self) -> usize {
        self.b() + self.params()
    }

    /// Doubles per group state.
    pub(crate) fn state_len(&self) -> usize {
        let p = self.params();
        self.s() + p * (p + 1) / 2
    }

    /// Whether the result has an `rmse` field.
    fn with_rmse(&self) -> bool {
        matches!(self, Design::Harmonic { .. })
    }

    /// Features of one row in the group's shifted coordinates, in
    /// `f.phi`. The harmonic columns depend on the time alone and are kept
    /// from the previous row when its time is the same (a scan's dense
    /// batch is one scene: all its rows share a time).
    #[inline]
    fn features(&self, xs: &[f64], refs: &[f64], f: &mut Features) {
        let phi = &mut f.phi;
        phi[0] = 1.0;
        for j in 0..xs.len() {
            phi[1 + j] = xs[j] - refs[j];
        }
        if let Design::Harmonic { k } = self {
            let t = xs[0].to_bits();
            if f.harmonics_of != Some(t) {
                for h in 1..=*k {
                    harmonic(xs[0], h, &mut phi[2 * h..2 * h + 2]);
                }
                f.harmonics_of = Some(t);
            }
        }
    }

    /// Add one row (raw regressors `xs`, value `y`) to a group state.
    #[inline]
    pub(crate) fn add_row(&self, st: &mut [f64], xs: &[f64], y: f64, f: &mut Features) {
        let m = self.regressors();
        let p = self.params();
        if st[N] == 0.0 {
            st[Y0] = y;
            st[REFS..REFS + m].copy_from_slice(xs);
        }
        self.features(xs, &st[REFS..REFS + m], f);
        let phi = &f.phi;
        let yc = y - st[Y0];
        st[N] += 1.0;
        st[self.yy()] += yc * yc;
        let (b, s) = st[self.b()..].split_at_mut(p);
        // The common designs with their sizes known at compile time, so
        // the loops unroll (the same operations in the same order).
        match p {
            2 => add_outer_fixed::<2, 3>(b, s, phi, yc),
            3 => add_outer_fixed::<3, 6>(b, s, phi, yc),
            4 => add_outer_fixed::<4, 10>(b, s, phi, yc),
            6 => add_outer_fixed::<6, 21>(b, s, phi, yc),
            _ => add_outer(b, s, phi, yc),
        }
    }

    /// Merge the group state `src` into `dst` (see the module docs for the
    /// change of reference). `d` is scratch space of length `p`.
    pub(crate) fn merge(&self, dst: &mut [f64], src: &[f64], d: &mut [f64]) {
        if src[N] == 0.0 {
            return;
        }
        if dst[N] == 0.0 {
            dst.copy_from_slice(src);
            return;
        }
        let m = self.regressors();
        let p = self.params();
        let n2 = src[N];
        let delta = src[Y0] - dst[Y0];
        d.fill(0.0);
        for j in 0..m {
            d[1 + j] = src[REFS + j] - dst[REFS + j];
        }
        let b2 = &src[self.b()..self.b() + p];
        let s2 = &src[self.s()..];
        // Row 0 of the packed upper triangle holds S_00..S_0(p-1) = sum of phi_j.
        let col0 = &s2[..p];
        dst[self.yy()] += src[self.yy()] + 2.0 * delta * b2[0] + delta * delta * n2;
        let shift_b = b2[0] + delta * n2;
        let b_at = self.b();
        for i in 0..p {
            dst[b_at + i] += b2[i] + delta * col0[i] + d[i] * shift_b;
        }
        let s_at = self.s();
        let mut idx = 0;
        for i in 0..p {
            for j in i..p {
                dst[s_at + idx] += s2[idx] + d[i] * col0[j] + col0[i] * d[j] + n2 * d[i] * d[j];
                idx += 1;
            }
        }
        dst[N] += n2;
    }

    /// Solve a group's normal equations.
    pub(crate) fn fit(&self, st: &[f64]) -> Fit {
        let p = self.params();
        let n = st[N];
        let mut out = Fit {
            coefficients: None,
            rmse: None,
            r2: None,
            n: n as i64,
        };
        if n < p as f64 {
            return out;
        }
        let b = &st[self.b()..self.b() + p];
        let mut a = vec![0.0; p * p];
        let mut idx = 0;
        for i in 0..p {
            for j in i..p {
                let v = st[self.s() + idx];
                a[i * p + j] = v;
                a[j * p + i] = v;
                idx += 1;
            }
        }
        let Some(beta) = solve_spd(&a, b, p) else {
            return out;
        };
        let yy = st[self.yy()];
        let mut quad = 0.0;
        let mut lin = 0.0;
        for i in 0..p {
            let row: f64 = (0..p).map(|j| a[i * p + j] * beta[j]).sum();
            quad += beta[i] * row;
            lin += beta[i] * b[i];
        }
        let sse = (yy - 2.0 * lin + quad).max(0.0);
        let sst = (yy - b[0] * b[0] / n).max(0.0);
        if sst > 0.0 {
            out.r2 = Some(1.0 - sse / sst);
        }
        if n > p as f64 {
            out.rmse = Some((sse / (n - p as f64)).sqrt());
        }
        let m = self.regressors();
        let mut coefficients = beta;
        let shift: f64 = (0..m).map(|j| coefficients[1 + j] * st[REFS + j]).sum();
        coefficients[0] += st[Y0] - shift;
        out.coefficients = Some(coefficients);
        out
    }

    /// The result type: `STRUCT<coefficients LIST<DOUBLE>, [rmse DOUBLE,] r2 DOUBLE, n BIGINT>`.
    pub(crate) fn output_type(&self) -> DataType {
        DataType::Struct(self.output_fields())
    }

    fn output_fields(&self) -> Fields {
        let mut f = vec![Field::new("coefficients", f64_list_type(), true)];
        if self.with_rmse() {
            f.push(Field::new("rmse", DataType::Float64, true));
        }
        f.push(Field::new("r2", DataType::Float64, true));
        f.push(Field::new("n", DataType::Int64, true));
        Fields::from(f)
    }

    /// Build the result array of several fits.
    fn output(&self, fits: &[Fit]) -> Result<ArrayRef> {
        let lengths: Vec<usize> = fits
            .iter()
            .map(|f| f.coefficients.as_ref().map_or(0, |c| c.len()))
            .collect();
        let values: Vec<f64> = fits
            .iter()
            .flat_map(|f| f.coefficients.iter().flatten().copied())
            .collect();
        let valid: Vec<bool> = fits.iter().map(|f| f.coefficients.is_some()).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(f64_list(&lengths, values, Some(valid))?)];
        if self.with_rmse() {
            columns.push(Arc::new(
                fits.iter().map(|f| f.rmse).collect::<Float64Array>(),
            ));
        }
        columns.push(Arc::new(
            fits.iter().map(|f| f.r2).collect::<Float64Array>(),
        ));
        columns.push(Arc::new(
            fits.iter().map(|f| Some(f.n)).collect::<Int64Array>(),
        ));
        Ok(Arc::new(StructArray::try_new(
            self.output_fields(),
            columns,
            None,
        )?))
    }

    /// State fields: `n` UINT64 and `moments` LIST<DOUBLE>.
    pub(crate) fn state_fields(name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(name, "n"),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "moments"),
                f64_list_type(),
                true,
            )),
        ]
    }

    /// Encode group states (a flat run of `state_len` doubles each) as state columns.
    fn encode_states(&self, data: &[f64]) -> Result<Vec<ArrayRef>> {
        let len = self.state_len();
        let groups = data.len() / len;
        let mut ns = Vec::with_capacity(groups);
        let mut lengths = Vec::with_capacity(groups);
        let mut values = Vec::new();
        for st in data.chunks_exact(len) {
            ns.push(st[N] as u64);
            if st[N] > 0.0 {
                lengths.push(len - 1);
                values.extend_from_slice(&st[1..]);
            } else {
                lengths.push(0);
            }
        }
        Ok(vec![
            Arc::new(UInt64Array::from(ns)),
            Arc::new(f64_list(&lengths, values, None)?),
        ])
    }

    /// Decode each state row into `scratch` (a full group state) and call
    /// `f(row, state)`; rows with `n = 0` are skipped.
    fn for_each_state(
        &self,
        states: &[ArrayRef],
        signature: &str,
        scratch: &mut Vec<f64>,
        mut f: impl FnMut(usize, &[f64]),
    ) -> Result<()> {
        let bad = |what: &str| {
            DataFusionError::Internal(format!("{signature}: malformed partial state ({what})"))
        };
        let [ns, moments] = states else {
            return Err(bad("expected 2 columns"));
        };
        let ns = ns
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| bad("n is not UINT64"))?;
        let moments = moments
            .as_list_opt::<i32>()
            .ok_or_else(|| bad("moments is not a LIST"))?;
        let values = moments
            .values()
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad("moments are not DOUBLE"))?
            .values();
        let offsets = moments.value_offsets();
        let len = self.state_len();
        scratch.resize(len, 0.0);
        for row in 0..ns.len() {
            if ns.is_null(row) || ns.value(row) == 0 || moments.is_null(row) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            if end - start != len - 1 {
                return Err(bad(&format!(
                    "{} moments where {} were expected",
                    end - start,
                    len - 1
                )));
            }
            scratch[N] = ns.value(row) as f64;
            scratch[1..].copy_from_slice(&values[start..end]);
            f(row, scratch);
        }
        Ok(())
    }
}

/// One fitted model (`None` fields are SQL NULLs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fit {
    pub coefficients: Option<Vec<f64>>,
    pub rmse: Option<f64>,
    pub r2: Option<f64>,
    pub n: i64,
}

/// Solve `a x = b` for a symmetric positive definite `p x p` matrix `a`
/// (row-major), or `None` when `a` is singular by the rank rule of the
/// module docs. Equilibrated Cholesky plus one step of iterative refinement.
pub(crate) fn solve_spd(a: &[f64], b: &[f64], p: usize) -> Option<Vec<f64>> {
    let d: Vec<f64> = (0..p).map(|i| a[i * p + i].sqrt()).collect();
    if d.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return None;
    }
    // Lower-triangular factor of the equilibrated matrix.
    let mut l = vec![0.0; p * p];
    for j in 0..p {
        let mut pivot = a[j * p + j] / (d[j] * d[j]);
        for k in 0..j {
            pivot -= l[j * p + k] * l[j * p + k];
        }
        // (NaN fails is_finite)
        if !pivot.is_finite() || pivot <= RANK_TOLERANCE {
            return None;
        }
        let ljj = pivot.sqrt();
        l[j * p + j] = ljj;
        for i in j + 1..p {
            let mut s = a[i * p + j] / (d[i] * d[j]);
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = s / ljj;
        }
    }
    let solve = |rhs: &[f64]| -> Vec<f64> {
        // (D^-1 A D^-1) z = D^-1 rhs, x = D^-1 z
        let mut z: Vec<f64> = (0..p).map(|i| rhs[i] / d[i]).collect();
        for i in 0..p {
            let s: f64 = (0..i).map(|k| l[i * p + k] * z[k]).sum();
            z[i] = (z[i] - s) / l[i * p + i];
        }
        for i in (0..p).rev() {
            let s: f64 = (i + 1..p).map(|k| l[k * p + i] * z[k]).sum();
            z[i] = (z[i] - s) / l[i * p + i];
        }
        (0..p).map(|i| z[i] / d[i]).collect()
    };
    let mut x = solve(b);
    let r: Vec<f64> = (0..p)
        .map(|i| b[i] - (0..p).map(|j| a[i * p + j] * x[j]).sum::<f64>())
        .collect();
    let dx = solve(&r);
    for (xi, di) in x.iter_mut().zip(dx) {
        *xi += di;
    }
    if x.iter().all(|v| v.is_finite()) {
        Some(x)
    } else {
        None
    }
}

/// The value and raw-regressor columns of a batch: `values[0]` is the value,
/// `values[1..=m]` the regressors (times converted to decimal years).
fn input_columns(
    design: &Design,
    signature: &str,
    values: &[ArrayRef],
) -> Result<(Float64Array, Vec<Arc<Float64Array>>)> {
    let m = design.regressors();
    if values.len() < 1 + m {
        return Err(DataFusionError::Internal(format!(
            "{signature}: expected {} argument arrays, got {}",
            1 + m,
            values.len()
        )));
    }
    let y = as_f64(signature, &values[0])?.clone();
    let xs = values[1..=m]
        .iter()
        .map(time::to_years)
        .collect::<Result<Vec<_>>>()?;
    Ok((y, xs))
}

/// Feed the valid rows of a batch to `f(row, xs, y)`.
fn for_each_input_row(
    design: &Design,
    signature: &str,
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    xs: &mut [f64],
    mut f: impl FnMut(usize, &[f64], f64),
) -> Result<()> {
    let (y, x_cols) = input_columns(design, signature, values)?;
    let mut cols: Vec<&Float64Array> = vec![&y];
    cols.extend(x_cols.iter().map(|c| c.as_ref()));
    for_each_valid_row(&cols, filter, |row| {
        for (x, c) in xs.iter_mut().zip(&x_cols) {
            *x = c.value(row);
        }
        f(row, xs, y.value(row));
    });
    Ok(())
}

/// A model fitted by this engine (`harmonic_fit`, `linreg`).
pub(crate) trait OlsModel:
    Send + Sync + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + 'static
{
    /// The SQL function name.
    const NAME: &'static str;
    /// The SQL signature, for error messages.
    const SIGNATURE: &'static str;
    /// The function's documentation.
    fn documentation() -> &'static Documentation;
    /// Argument coercion (see [`crate::args`]).
    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>>;
    /// The design of a call (e.g. from its number of arguments or a literal
    /// argument); an error for a bad call.
    fn design(args: &AccumulatorArgs) -> Result<Design>;
    /// The result type (the same for every design of the model).
    fn output_type() -> DataType;
}

/// The aggregate fitting `M` per group.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ols<M: OlsModel>(PhantomData<M>);

impl<M: OlsModel> Aggregate for Ols<M> {
    const NAME: &'static str = M::NAME;

    fn documentation() -> &'static Documentation {
        M::documentation()
    }

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        M::coerce_types(arg_types)
    }

    fn return_type(_arg_types: &[DataType]) -> Result<DataType> {
        Ok(M::output_type())
    }

    fn state_fields(args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(Design::state_fields(args.name))
    }

    fn accumulator(args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OlsAccumulator::new(
            M::design(&args)?,
            M::SIGNATURE,
        )))
    }

    fn groups_accumulator(args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(OlsGroupsAccumulator::new(
            M::design(&args)?,
            M::SIGNATURE,
        )))
    }
}

/// Plain (single group) accumulator.
#[derive(Debug)]
pub(crate) struct OlsAccumulator {
    design: Design,
    signature: &'static str,
    state: Vec<f64>,
    features: Features,
    /// Scratch for [`Design::merge`] (`p` doubles).
    shift: Vec<f64>,
    xs: Vec<f64>,
}

impl OlsAccumulator {
    pub(crate) fn new(design: Design, signature: &'static str) -> Self {
        Self {
            design,
            signature,
            state: vec![0.0; design.state_len()],
            features: Features::new(&design),
            shift: vec![0.0; design.params()],
            xs: vec![0.0; design.regressors()],
        }
    }
}

impl Accumulator for OlsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Self {
            design,
            signature,
            state,
            features,
            xs,
            ..
        } = self;
        for_each_input_row(design, signature, values, None, xs, |_, xs, y| {
            design.add_row(state, xs, y, features)
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Self {
            design,
            signature,
            state,
            shift,
            ..
        } = self;
        let mut scratch = Vec::new();
        design.for_each_state(states, signature, &mut scratch, |_, src| {
            design.merge(state, src, shift)
        })
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let cols = self.design.encode_states(&self.state)?;
        cols.iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let out = self.design.output(&[self.design.fit(&self.state)])?;
        ScalarValue::try_from_array(&out, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + 8 * (self.state.capacity()
                + self.features.capacity()
                + self.shift.capacity()
                + self.xs.capacity())
    }
}

/// Vectorised accumulator: all group states in one flat `Vec<f64>`.
#[derive(Debug)]
pub(crate) struct OlsGroupsAccumulator {
    design: Design,
    signature: &'static str,
    data: Vec<f64>,
    features: Features,
    /// Scratch for [`Design::merge`] (`p` doubles).
    shift: Vec<f64>,
    xs: Vec<f64>,
    scratch: Vec<f64>,
}

impl OlsGroupsAccumulator {
    pub(crate) fn new(design: Design, signature: &'static str) -> Self {
        Self {
            design,
            signature,
            data: Vec::new(),
            features: Features::new(&design),
            shift: vec![0.0; design.params()],
            xs: vec![0.0; design.regressors()],
            scratch: Vec::new(),
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<f64> {
        match emit_to {
            EmitTo::All => std::mem::take(&mut self.data),
            EmitTo::First(n) => {
                let end = (n * self.design.state_len()).min(self.data.len());
                self.data.drain(..end).collect()
            }
        }
    }
}

impl GroupsAccumulator for OlsGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let len = self.design.state_len();
        self.data.resize(total_num_groups * len, 0.0);
        let Self {
            design,
            signature,
            data,
            features,
            xs,
            ..
        } = self;
        for_each_input_row(design, signature, values, opt_filter, xs, |row, xs, y| {
            let g = group_indices[row];
            design.add_row(&mut data[g * len..(g + 1) * len], xs, y, features)
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let len = self.design.state_len();
        self.data.resize(total_num_groups * len, 0.0);
        let Self {
            design,
            signature,
            data,
            shift,
            scratch,
            ..
        } = self;
        design.for_each_state(values, signature, scratch, |row, src| {
            let g = group_indices[row];
            design.merge(&mut data[g * len..(g + 1) * len], src, shift)
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let data = self.take(emit_to);
        let fits: Vec<Fit> = data
            .chunks_exact(self.design.state_len())
            .map(|st| self.design.fit(st))
            .collect();
        self.design.output(&fits)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let data = self.take(emit_to);
        self.design.encode_states(&data)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let len = self.design.state_len();
        let rows = values.first().map_or(0, |v| v.len());
        let mut data = vec![0.0; rows * len];
        let mut features = Features::new(&self.design);
        let mut xs = vec![0.0; self.design.regressors()];
        let design = &self.design;
        for_each_input_row(
            design,
            self.signature,
            values,
            opt_filter,
            &mut xs,
            |row, xs, y| {
                design.add_row(&mut data[row * len..(row + 1) * len], xs, y, &mut features)
            },
        )?;
        design.encode_states(&data)
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + 8 * (self.data.capacity()
                + self.features.capacity()
                + self.shift.capacity()
                + self.xs.capacity()
                + self.scratch.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(design: Design, rows: &[(Vec<f64>, f64)]) -> Vec<f64> {
        let mut st = vec![0.0; design.state_len()];
        let mut features = Features::new(&design);
        for (xs, y) in rows {
            design.add_row(&mut st, xs, *y, &mut features);
        }
        st
    }

    #[test]
    fn exact_line_and_plane() {
        // y = 2 + 3x, n = 2: exactly determined, no residual degrees of freedom.
        let d = Design::Linear { m: 1 };
        let fit = d.fit(&state_of(d, &[(vec![1.0], 5.0), (vec![3.0], 11.0)]));
        let c = fit.coefficients.unwrap();
        assert!(
            (c[0] - 2.0).abs() < 1e-12 && (c[1] - 3.0).abs() < 1e-12,
            "{c:?}"
        );
        assert_eq!(fit.r2, Some(1.0));
        assert_eq!(fit.rmse, None);
        // y = 1 - x1 + 0.5 x2 at large offsets
        let d = Design::Linear { m: 2 };
        let rows: Vec<(Vec<f64>, f64)> =
            [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (2.0, 3.0), (5.0, -1.0)]
                .iter()
                .map(|&(a, b)| {
                    let (x1, x2) = (1e4 + a, -3e3 + b);
                    (vec![x1, x2], 1.0 - x1 + 0.5 * x2)
                })
                .collect();
        let c = d.fit(&state_of(d, &rows)).coefficients.unwrap();
        for (got, want) in c.iter().zip([1.0, -1.0, 0.5]) {
            assert!((got - want).abs() < 1e-8, "{c:?}");
        }
    }

    #[test]
    fn underdetermined_and_singular_are_none() {
        let d = Design::Linear { m: 1 };
        assert_eq!(d.fit(&state_of(d, &[])).coefficients, None);
        assert_eq!(d.fit(&state_of(d, &[(vec![1.0], 1.0)])).coefficients, None);
        // constant x
        let rows = vec![(vec![2.0], 1.0), (vec![2.0], 3.0), (vec![2.0], 4.0)];
        let fit = d.fit(&state_of(d, &rows));
        assert_eq!(fit.coefficients, None);
        assert_eq!(fit.n, 3);
        // collinear regressors x2 = 3 x1 - 7
        let d = Design::Linear { m: 2 };
        let rows: Vec<_> = (0..10)
            .map(|i| {
                let x = 40.0 + i as f64 * 0.37;
                (vec![x, 3.0 * x - 7.0], (i * i) as f64)
            })
            .collect();
        assert_eq!(d.fit(&state_of(d, &rows)).coefficients, None);
        // harmonic with constant time
        let d = Design::Harmonic { k: 1 };
        let rows: Vec<_> = (0..10).map(|i| (vec![51.3], i as f64)).collect();
        assert_eq!(d.fit(&state_of(d, &rows)).coefficients, None);
    }

    #[test]
    fn merge_with_different_references_equals_one_pass() {
        for d in [Design::Linear { m: 2 }, Design::Harmonic { k: 3 }] {
            let rows: Vec<(Vec<f64>, f64)> = (0..40)
                .map(|i| {
                    let t = 45.0 + i as f64 * 0.173;
                    let x = [t, (i as f64 * 1.7).sin() * 10.0 + 300.0];
                    (
                        x[..d.regressors()].to_vec(),
                        1000.0 + (i as f64).cos() * 50.0 + t,
                    )
                })
                .collect();
            let whole = state_of(d, &rows);
            let mut merged = state_of(d, &rows[25..]);
            let mut scratch = vec![0.0; d.params()];
            d.merge(&mut merged, &state_of(d, &rows[..10]), &mut scratch);
            d.merge(&mut merged, &state_of(d, &[]), &mut scratch);
            d.merge(&mut merged, &state_of(d, &rows[10..25]), &mut scratch);
            let (a, b) = (d.fit(&whole), d.fit(&merged));
            for (x, y) in a.coefficients.unwrap().iter().zip(b.coefficients.unwrap()) {
                assert!((x - y).abs() < 1e-8 * y.abs().max(1.0), "{d:?}: {x} vs {y}");
            }
            assert!((a.r2.unwrap() - b.r2.unwrap()).abs() < 1e-10);
            assert_eq!(a.n, b.n);
        }
    }

    #[test]
    fn harmonic_columns_follow_each_rows_time() {
        // Rows of three groups interleaved, as a scan's batches give them:
        // runs of one time (a scene), a time coming back, and a time one
        // year later (same phase, other trend column). One `Features`
        // across all rows, as in the accumulators, must give the states
        // that a fresh one for every row gives.
        let d = Design::Harmonic { k: 2 };
        let times = [45.1, 45.1, 45.1, 45.37, 45.37, 45.1, 46.1, 46.1, 45.9];
        let mut cached = vec![vec![0.0; d.state_len()]; 3];
        let mut fresh = cached.clone();
        let mut features = Features::new(&d);
        for (i, &t) in times.iter().enumerate() {
            let y = 0.3 + 0.01 * i as f64;
            let g = i % 3;
            d.add_row(&mut cached[g], &[t], y, &mut features);
            d.add_row(&mut fresh[g], &[t], y, &mut Features::new(&d));
        }
        for (a, b) in cached.iter().zip(&fresh) {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b));
        }
    }

    #[test]
    fn fixed_size_outer_products_equal_the_general_loop() {
        fn check<const P: usize, const T: usize>() {
            let phi: Vec<f64> = (0..P).map(|i| (i as f64 * 1.3).sin() + 0.1).collect();
            let start_b: Vec<f64> = (0..P).map(|i| i as f64 * 0.7).collect();
            let start_s: Vec<f64> = (0..T).map(|i| 1.0 / (i as f64 + 3.0)).collect();
            let (mut b1, mut s1) = (start_b.clone(), start_s.clone());
            let (mut b2, mut s2) = (start_b, start_s);
            add_outer(&mut b1, &mut s1, &phi, 0.37);
            add_outer_fixed::<P, T>(&mut b2, &mut s2, &phi, 0.37);
            assert_eq!(b1, b2, "p = {P}");
            assert_eq!(s1, s2, "p = {P}");
            // The packed triangle by its definition: S_ij = phi_i phi_j.
            let mut idx = 0;
            for i in 0..P {
                for j in i..P {
                    let want = 1.0 / (idx as f64 + 3.0) + phi[i] * phi[j];
                    assert!((s1[idx] - want).abs() < 1e-15, "p = {P} ({i}, {j})");
                    idx += 1;
                }
            }
        }
        check::<2, 3>();
        check::<3, 6>();
        check::<4, 10>();
        check::<6, 21>();
    }
}
