//! Spectral indices ("band math"): `ndvi`, `nbr`, `ndwi`, `ndmi`, `savi`,
//! `evi` and the generic `normalized_difference`.
//!
//! Why: these are the expressions every per-pixel time-series query starts
//! from; as functions they read like the literature, accept any numeric band
//! type (reflectance DOUBLE, scaled INT16, ...), and agree on the edge cases:
//! NULL when any input is NULL or the denominator is 0 (a 0/0 pixel is "no
//! data", not NaN or infinity that would poison aggregates downstream).
//!
//! The bottom of this file holds the small plumbing shared by the scalar
//! families (`indices`, `scaling`, `qa`, `time`): all-numeric argument
//! coercion (on [`crate::args`]' checks, whose errors name the function's SQL
//! signature), row-wise evaluation with NULL propagation, and returning a
//! scalar for all-scalar calls.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::args::{check_arity, type_list};
use crate::bits;
use crate::sections::BAND_MATH;

/// Which index a [`IndexUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Index {
    Ndvi,
    Nbr,
    Ndwi,
    Ndmi,
    Savi,
    Evi,
    NormalizedDifference,
}

/// One spectral index as a scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IndexUdf {
    index: Index,
    signature: Signature,
    doc: Documentation,
}

/// `ndvi(nir, red)`: normalized difference vegetation index.
pub fn ndvi() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Ndvi)
}
/// `nbr(nir, swir2)`: normalized burn ratio.
pub fn nbr() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Nbr)
}
/// `ndwi(green, nir)`: normalized difference water index (McFeeters).
pub fn ndwi() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Ndwi)
}
/// `ndmi(nir, swir1)`: normalized difference moisture index.
pub fn ndmi() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Ndmi)
}
/// `savi(nir, red [, l])`: soil-adjusted vegetation index.
pub fn savi() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Savi)
}
/// `evi(nir, red, blue)`: enhanced vegetation index.
pub fn evi() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::Evi)
}
/// `normalized_difference(a, b)`: (a - b) / (a + b).
pub fn normalized_difference() -> Arc<ScalarUDF> {
    IndexUdf::udf(Index::NormalizedDifference)
}

/// (a - b) / (a + b), None when a + b = 0.
#[inline]
pub fn nd(a: f64, b: f64) -> Option<f64> {
    let den = a + b;
    (den != 0.0).then(|| (a - b) / den)
}

/// (1 + L)(nir - red) / (nir + red + L), None when the denominator is 0.
#[inline]
pub fn savi_value(nir: f64, red: f64, l: f64) -> Option<f64> {
    let den = nir + red + l;
    (den != 0.0).then(|| (1.0 + l) * (nir - red) / den)
}

/// 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1), None when the
/// denominator is 0.
#[inline]
pub fn evi_value(nir: f64, red: f64, blue: f64) -> Option<f64> {
    let den = nir + 6.0 * red - 7.5 * blue + 1.0;
    (den != 0.0).then(|| 2.5 * (nir - red) / den)
}

impl IndexUdf {
    fn udf(index: Index) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            index,
            signature: Signature::user_defined(Volatility::Immutable),
            doc: documentation(index),
        }))
    }

    fn arity(&self) -> (usize, usize) {
        match self.index {
            Index::Savi => (2, 3),
            Index::Evi => (3, 3),
            _ => (2, 2),
        }
    }
}

impl ScalarUDFImpl for IndexUdf {
    fn name(&self) -> &str {
        match self.index {
            Index::Ndvi => "ndvi",
            Index::Nbr => "nbr",
            Index::Ndwi => "ndwi",
            Index::Ndmi => "ndmi",
            Index::Savi => "savi",
            Index::Evi => "evi",
            Index::NormalizedDifference => "normalized_difference",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (min, max) = self.arity();
        coerce_numeric(&self.doc.syntax_example, arg_types, min, max)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let name = self.name();
        let out = match (self.index, arrays.as_slice()) {
            (Index::Savi, [nir, red]) => {
                map_f64([f64_arg(nir, name)?, f64_arg(red, name)?], |[n, r]| {
                    savi_value(n, r, 0.5)
                })
            }
            (Index::Savi, [nir, red, l]) => map_f64(
                [f64_arg(nir, name)?, f64_arg(red, name)?, f64_arg(l, name)?],
                |[n, r, l]| savi_value(n, r, l),
            ),
            (Index::Evi, [nir, red, blue]) => map_f64(
                [
                    f64_arg(nir, name)?,
                    f64_arg(red, name)?,
                    f64_arg(blue, name)?,
                ],
                |[n, r, b]| evi_value(n, r, b),
            ),
            (_, [a, b]) => map_f64([f64_arg(a, name)?, f64_arg(b, name)?], |[a, b]| nd(a, b)),
            _ => {
                return Err(exec_datafusion_err!(
                    "{} called with {} arguments",
                    self.doc.syntax_example,
                    arrays.len()
                ));
            }
        };
        finish(Arc::new(out), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

fn documentation(index: Index) -> Documentation {
    let reflectance = |band: &str| {
        format!("{band} reflectance (any numeric type; scale factors cancel out, offsets do not).")
    };
    match index {
        Index::Ndvi => Documentation::builder(
            BAND_MATH,
            "Normalized difference vegetation index: (nir - red) / (nir + red). \
             Returns DOUBLE in [-1, 1] for non-negative reflectances; NULL when an input is NULL or \
             nir + red = 0.",
            "ndvi(nir, red)",
        )
        .with_argument("nir", reflectance("Near-infrared"))
        .with_argument("red", reflectance("Red"))
        .with_sql_example("SELECT ndvi(0.45, 0.05);\n-- 0.8")
        .with_related_udf("normalized_difference")
        .with_related_udf("savi")
        .with_related_udf("evi")
        .build(),
        Index::Nbr => Documentation::builder(
            BAND_MATH,
            "Normalized burn ratio: (nir - swir2) / (nir + swir2), e.g. Landsat 8/9 bands 5 and 7, \
             Sentinel-2 bands 8 and 12. NULL when an input is NULL or nir + swir2 = 0.",
            "nbr(nir, swir2)",
        )
        .with_argument("nir", reflectance("Near-infrared"))
        .with_argument("swir2", reflectance("Shortwave infrared 2 (about 2.2 µm)"))
        .with_sql_example("SELECT nbr(0.75, 0.25);\n-- 0.5")
        .with_related_udf("normalized_difference")
        .build(),
        Index::Ndwi => Documentation::builder(
            BAND_MATH,
            "Normalized difference water index (McFeeters 1996): (green - nir) / (green + nir); \
             positive over open water. NULL when an input is NULL or green + nir = 0.",
            "ndwi(green, nir)",
        )
        .with_argument("green", reflectance("Green"))
        .with_argument("nir", reflectance("Near-infrared"))
        .with_sql_example("SELECT ndwi(0.375, 0.125);\n-- 0.5")
        .with_related_udf("ndmi")
        .with_related_udf("normalized_difference")
        .build(),
        Index::Ndmi => Documentation::builder(
            BAND_MATH,
            "Normalized difference moisture index (Gao's NDWI): (nir - swir1) / (nir + swir1), e.g. \
             Landsat 8/9 bands 5 and 6, Sentinel-2 bands 8 and 11. NULL when an input is NULL or \
             nir + swir1 = 0.",
            "ndmi(nir, swir1)",
        )
        .with_argument("nir", reflectance("Near-infrared"))
        .with_argument("swir1", reflectance("Shortwave infrared 1 (about 1.6 µm)"))
        .with_sql_example("SELECT ndmi(0.25, 0.125);\n-- 0.3333333333333333")
        .with_related_udf("ndwi")
        .with_related_udf("normalized_difference")
        .build(),
        Index::Savi => Documentation::builder(
            BAND_MATH,
            "Soil-adjusted vegetation index (Huete 1988): (1 + L)(nir - red) / (nir + red + L), with \
             soil brightness factor L = 0.5 unless given. Expects reflectances in [0, 1] (L is in \
             reflectance units). NULL when an input (including L) is NULL or the denominator is 0.",
            "savi(nir, red [, l])",
        )
        .with_argument("nir", "Near-infrared reflectance in [0, 1] (any numeric type).")
        .with_argument("red", "Red reflectance in [0, 1] (any numeric type).")
        .with_argument("l", "Soil brightness correction factor; optional, default 0.5.")
        .with_sql_example("SELECT savi(0.5, 0.25, 0.25);\n-- 0.3125")
        .with_related_udf("ndvi")
        .with_related_udf("evi")
        .build(),
        Index::Evi => Documentation::builder(
            BAND_MATH,
            "Enhanced vegetation index (MODIS / Landsat): 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1). \
             Expects reflectances in [0, 1]. NULL when an input is NULL or the denominator is 0.",
            "evi(nir, red, blue)",
        )
        .with_argument("nir", "Near-infrared reflectance in [0, 1] (any numeric type).")
        .with_argument("red", "Red reflectance in [0, 1] (any numeric type).")
        .with_argument("blue", "Blue reflectance in [0, 1] (any numeric type).")
        .with_sql_example("SELECT evi(0.75, 0.25, 0.1);\n-- 0.5")
        .with_related_udf("ndvi")
        .with_related_udf("savi")
        .build(),
        Index::NormalizedDifference => Documentation::builder(
            BAND_MATH,
            "Normalized difference of any two bands: (a - b) / (a + b). NULL when an input is NULL \
             or a + b = 0.",
            "normalized_difference(a, b)",
        )
        .with_argument("a", "First band (any numeric type).")
        .with_argument("b", "Second band (any numeric type).")
        .with_sql_example("SELECT normalized_difference(3, 1);\n-- 0.5")
        .with_related_udf("ndvi")
        .build(),
    }
}

// ---------------------------------------------------------------------------
// Shared plumbing of the scalar families (also used by scaling.rs, qa.rs,
// time.rs).
// ---------------------------------------------------------------------------

/// Coercion of functions whose arguments are all numbers: every argument
/// becomes DOUBLE; strings, timestamps etc. are a planning error naming the
/// function's signature.
pub(crate) fn coerce_numeric(
    signature: &str,
    arg_types: &[DataType],
    min: usize,
    max: usize,
) -> Result<Vec<DataType>> {
    check_arity(signature, arg_types, min, max)?;
    if let Some(bad) = arg_types
        .iter()
        .find(|t| !(t.is_numeric() || **t == DataType::Null))
    {
        return plan_err!(
            "{signature} expects numeric arguments, got {bad} in {}",
            type_list(arg_types)
        );
    }
    Ok(vec![DataType::Float64; arg_types.len()])
}

/// An argument that coercion made DOUBLE.
pub(crate) fn f64_arg<'a>(array: &'a ArrayRef, name: &str) -> Result<&'a Float64Array> {
    array.as_primitive_opt::<Float64Type>().ok_or_else(|| {
        exec_datafusion_err!(
            "{name}: expected a DOUBLE argument after coercion, got {}",
            array.data_type()
        )
    })
}

/// Apply `f` row by row to DOUBLE columns: the result is NULL where any
/// input is NULL or `f` returns None. `f` is pure arithmetic, so it runs on
/// every slot (NULL slots hold plain numbers) and the validity is the AND of
/// the inputs' and `f`'s. Rows go 64 at a time through fixed-size arrays
/// (values, and `f`'s answers as bytes packed by [`bits::pack64`]), so the
/// loop has no bounds checks or per-row branch and vectorises.
pub(crate) fn map_f64<const N: usize>(
    arrays: [&Float64Array; N],
    f: impl Fn([f64; N]) -> Option<f64>,
) -> Float64Array {
    let len = arrays.first().map_or(0, |a| a.len());
    let nulls = NullBuffer::union_many(arrays.iter().map(|a| a.nulls()));
    let slices: [&[f64]; N] = std::array::from_fn(|k| arrays[k].values().as_ref());
    let mut values: Vec<f64> = Vec::with_capacity(len);
    let mut words: Vec<u64> = Vec::with_capacity(len.div_ceil(64));
    let mut start = 0;
    while start < len {
        let n = 64.min(len - start);
        let inputs: [&[f64]; N] = std::array::from_fn(|k| &slices[k][start..start + n]);
        let mut out = [0.0f64; 64];
        let mut ok = [0u8; 64];
        if n == 64 {
            // Inputs of a known 64 values: the loop's bounds are constant.
            let full: [&[f64; 64]; N] =
                std::array::from_fn(|k| inputs[k].try_into().expect("a chunk of 64 values"));
            map_chunk(full.map(|a| &a[..]), &f, &mut out, &mut ok);
        } else {
            map_chunk(inputs, &f, &mut out[..n], &mut ok[..n]);
        }
        values.extend_from_slice(&out[..n]);
        words.push(bits::pack64(&ok));
        start += n;
    }
    let computed = bits::bits_buffer(words, len);
    let valid = match &nulls {
        Some(n) => &computed & n.inner(),
        None => computed,
    };
    Float64Array::new(values.into(), Some(NullBuffer::new(valid)))
}

/// `f` of row `j` of `inputs` into `out[j]` (0 where None) and `ok[j]` (1
/// where Some), for the `out.len()` rows of one [`map_f64`] chunk.
#[inline(always)]
fn map_chunk<const N: usize>(
    inputs: [&[f64]; N],
    f: &impl Fn([f64; N]) -> Option<f64>,
    out: &mut [f64],
    ok: &mut [u8],
) {
    for (j, (o, b)) in out.iter_mut().zip(ok.iter_mut()).enumerate() {
        let r = f(std::array::from_fn(|k| inputs[k][j]));
        *o = r.unwrap_or(0.0);
        *b = r.is_some() as u8;
    }
}

/// Wrap a result column: a scalar when every argument was a scalar (so
/// constant folding gets a scalar back), else the array.
pub(crate) fn finish(out: ArrayRef, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if !args.is_empty() && args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers for the scalar-function tests of all families.

    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::prelude::SessionContext;

    /// A session with every sceneql function registered.
    pub fn ctx() -> SessionContext {
        let mut ctx = SessionContext::new();
        crate::register_all(&mut ctx).expect("register sceneql functions");
        ctx
    }

    /// Run a query and collect the batches.
    pub fn run(sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let rt = tokio_runtime();
        rt.block_on(async { ctx().sql(sql).await?.collect().await })
    }

    /// The planning error of a query (fails the test if it plans, or if
    /// the error is not a planning error).
    pub fn planning_error(sql: &str) -> String {
        let rt = tokio_runtime();
        rt.block_on(async {
            match ctx().sql(sql).await {
                Ok(_) => panic!("expected a planning error for {sql}"),
                Err(e) => {
                    let text = e.to_string();
                    assert!(
                        matches!(e.find_root(), datafusion::error::DataFusionError::Plan(_)),
                        "not a planning error: {text}"
                    );
                    text
                }
            }
        })
    }

    /// The single cell of a one-row, one-column query, as displayed.
    pub fn cell(sql: &str) -> String {
        let batches = run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let batch = batches.iter().find(|b| b.num_rows() > 0).expect("one row");
        let formatter = ArrayFormatter::try_new(
            batch.column(0).as_ref(),
            &FormatOptions::default().with_null("NULL"),
        )
        .expect("formatter");
        formatter.value(0).to_string()
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    /// Check every documented example of the given functions: the SQL is
    /// the lines before the first `-- ` line, which holds the expected cell.
    pub fn check_doc_examples(udfs: &[std::sync::Arc<datafusion::logical_expr::ScalarUDF>]) {
        for udf in udfs {
            let doc = udf.documentation().expect("documented");
            let example = doc.sql_example.as_deref().expect("example");
            let (sql, expected) = example
                .split_once("\n-- ")
                .expect("example has '-- result'");
            assert_eq!(
                cell(sql),
                expected.trim(),
                "documented example of {}",
                udf.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[derive(serde::Deserialize)]
    struct Fixture {
        nir: Vec<Option<f64>>,
        red: Vec<Option<f64>>,
        blue: Vec<Option<f64>>,
        l: Vec<Option<f64>>,
        ndvi: Vec<Option<f64>>,
        savi: Vec<Option<f64>>,
        savi_default: Vec<Option<f64>>,
        evi: Vec<Option<f64>>,
    }

    fn call(udf: &ScalarUDF, args: Vec<ArrayRef>) -> Float64Array {
        let n = args[0].len();
        let arg_fields = args
            .iter()
            .map(|a| {
                Arc::new(datafusion::arrow::datatypes::Field::new(
                    "a",
                    a.data_type().clone(),
                    true,
                ))
            })
            .collect();
        let out = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: args.into_iter().map(ColumnarValue::Array).collect(),
                arg_fields,
                number_rows: n,
                return_field: Arc::new(datafusion::arrow::datatypes::Field::new(
                    "r",
                    DataType::Float64,
                    true,
                )),
                config_options: Arc::new(Default::default()),
            })
            .expect("invoke");
        match out {
            ColumnarValue::Array(a) => a.as_primitive::<Float64Type>().clone(),
            ColumnarValue::Scalar(_) => panic!("array in, array out"),
        }
    }

    fn assert_matches(got: &Float64Array, want: &[Option<f64>], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, w) in want.iter().enumerate() {
            match w {
                None => assert!(
                    got.is_null(i),
                    "{what}[{i}]: want NULL, got {}",
                    got.value(i)
                ),
                Some(w) => {
                    assert!(got.is_valid(i), "{what}[{i}]: want {w}, got NULL");
                    let g = got.value(i);
                    assert!(
                        (g - w).abs() <= 1e-15 * w.abs().max(1.0),
                        "{what}[{i}]: want {w}, got {g}"
                    );
                }
            }
        }
    }

    #[test]
    fn indices_match_numpy() {
        let fx: Fixture =
            serde_json::from_str(include_str!("../fixtures/indices.json")).expect("fixture");
        let col = |v: &Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(v.clone())) };
        assert_matches(
            &call(&ndvi(), vec![col(&fx.nir), col(&fx.red)]),
            &fx.ndvi,
            "ndvi",
        );
        assert_matches(
            &call(&savi(), vec![col(&fx.nir), col(&fx.red), col(&fx.l)]),
            &fx.savi,
            "savi",
        );
        assert_matches(
            &call(&savi(), vec![col(&fx.nir), col(&fx.red)]),
            &fx.savi_default,
            "savi default L",
        );
        assert_matches(
            &call(&evi(), vec![col(&fx.nir), col(&fx.red), col(&fx.blue)]),
            &fx.evi,
            "evi",
        );
        // The other normalized differences share ndvi's kernel with other band roles.
        for f in [nbr(), ndmi(), ndwi(), normalized_difference()] {
            assert_matches(
                &call(&f, vec![col(&fx.nir), col(&fx.red)]),
                &fx.ndvi,
                f.name(),
            );
        }
    }

    #[test]
    fn hand_checked_values_and_nulls() {
        assert_eq!(nd(3.0, 1.0), Some(0.5));
        assert_eq!(nd(0.0, 0.0), None);
        assert_eq!(nd(1.0, -1.0), None);
        assert_eq!(savi_value(0.5, 0.25, 0.25), Some(0.3125));
        assert_eq!(savi_value(0.5, 0.25, 0.5), Some(1.5 * 0.25 / 1.25));
        assert_eq!(savi_value(0.25, -0.5, 0.25), None);
        assert_eq!(evi_value(0.75, 0.25, 0.1), Some(0.5));
        assert_eq!(evi_value(0.5, 0.25, 0.4), None);
        assert_eq!(cell("SELECT ndvi(NULL, 0.1)"), "NULL");
        assert_eq!(cell("SELECT ndvi(CAST(NULL AS DOUBLE), 0.1)"), "NULL");
        assert_eq!(cell("SELECT ndvi(0, 0)"), "NULL");
        assert_eq!(cell("SELECT savi(0.4, 0.1, NULL)"), "NULL");
        assert_eq!(cell("SELECT evi(1, 1, 8.0 / 7.5)"), "NULL");
        // Integer bands (scaled DN): scale factors cancel.
        assert_eq!(
            cell("SELECT ndvi(CAST(4500 AS SMALLINT), CAST(500 AS INT))"),
            "0.8"
        );
        assert_eq!(
            cell("SELECT arrow_typeof(ndvi(CAST(1 AS TINYINT), 2))"),
            "Float64"
        );
    }

    #[test]
    fn documented_examples_hold() {
        check_doc_examples(&[
            ndvi(),
            nbr(),
            ndwi(),
            ndmi(),
            savi(),
            evi(),
            normalized_difference(),
        ]);
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT ndvi('a', 0.1)");
        assert!(
            e.contains("ndvi(nir, red) expects numeric arguments"),
            "{e}"
        );
        let e = planning_error("SELECT ndvi(0.1)");
        assert!(
            e.contains("ndvi(nir, red) expects 2 arguments, got 1"),
            "{e}"
        );
        let e = planning_error("SELECT savi(1, 2, 3, 4)");
        assert!(
            e.contains("savi(nir, red [, l]) expects 2 to 3 arguments, got 4"),
            "{e}"
        );
        let e = planning_error("SELECT evi(1, 2, now())");
        assert!(
            e.contains("evi(nir, red, blue) expects numeric arguments"),
            "{e}"
        );
    }
}
