//! Scaling of stored digital numbers (DN) to physical units:
//! `landsat_sr`, `landsat_st`, `s2_sr` and the generic `scale_offset`.
//!
//! Why: Level-2 products store integers that must be scaled before band
//! math; getting the constants (and Sentinel-2's processing-baseline offset)
//! right once, in named functions, avoids silently wrong indices. NULL in,
//! NULL out; any numeric DN type, DOUBLE out.
//!
//! Constants:
//! - Landsat Collection 2 Level-2 surface reflectance: `DN · 0.0000275 - 0.2`;
//!   surface temperature (band ST_B10): `DN · 0.00341802 + 149.0` kelvin
//!   (USGS Landsat 8-9 Collection 2 Level 2 Science Product Guide, LSDS-1619).
//! - Sentinel-2 L2A surface reflectance: `DN / 10000`, and since processing
//!   baseline 04.00 (operational from 2022-01-25) `(DN - 1000) / 10000`
//!   (`BOA_ADD_OFFSET` = -1000 in the product metadata; ESA Sentinel-2
//!   baseline 04.00 announcement).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, UInt16Type};
use datafusion::common::{Result, exec_datafusion_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::args::{check_arity, type_list};
use crate::indices::{coerce_numeric, f64_arg, finish, map_f64};
use crate::sections::SCALING;
use crate::time::epoch_instants;

/// Landsat Collection 2 Level-2 surface reflectance scale.
pub const LANDSAT_SR_SCALE: f64 = 0.0000275;
/// Landsat Collection 2 Level-2 surface reflectance offset.
pub const LANDSAT_SR_OFFSET: f64 = -0.2;
/// Landsat Collection 2 Level-2 surface temperature scale (K per DN).
pub const LANDSAT_ST_SCALE: f64 = 0.00341802;
/// Landsat Collection 2 Level-2 surface temperature offset (K).
pub const LANDSAT_ST_OFFSET: f64 = 149.0;
/// Sentinel-2 L2A quantification value.
pub const S2_QUANTIFICATION: f64 = 10_000.0;
/// DN offset of Sentinel-2 L2A products from processing baseline 04.00.
pub const S2_BASELINE_04_OFFSET: f64 = 1_000.0;
/// 2022-01-25T00:00:00Z, start of baseline 04.00, in seconds since 1970.
pub const S2_BASELINE_04_START: i64 = 19_017 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scaling {
    LandsatSr,
    LandsatSt,
    S2Sr,
    ScaleOffset,
}

/// One scaling function as a scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ScalingUdf {
    scaling: Scaling,
    signature: Signature,
    doc: Documentation,
}

/// `landsat_sr(dn)`.
pub fn landsat_sr() -> Arc<ScalarUDF> {
    ScalingUdf::udf(Scaling::LandsatSr)
}
/// `landsat_st(dn)`.
pub fn landsat_st() -> Arc<ScalarUDF> {
    ScalingUdf::udf(Scaling::LandsatSt)
}
/// `s2_sr(dn, time)`.
pub fn s2_sr() -> Arc<ScalarUDF> {
    ScalingUdf::udf(Scaling::S2Sr)
}
/// `scale_offset(v, scale, offset)`.
pub fn scale_offset() -> Arc<ScalarUDF> {
    ScalingUdf::udf(Scaling::ScaleOffset)
}

/// Sentinel-2 L2A reflectance of `dn` acquired at `epoch_seconds`.
#[inline]
pub fn s2_reflectance(dn: f64, epoch_seconds: i64) -> f64 {
    if epoch_seconds >= S2_BASELINE_04_START {
        (dn - S2_BASELINE_04_OFFSET) / S2_QUANTIFICATION
    } else {
        dn / S2_QUANTIFICATION
    }
}

impl ScalingUdf {
    fn udf(scaling: Scaling) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            scaling,
            signature: Signature::user_defined(Volatility::Immutable),
            doc: documentation(scaling),
        }))
    }
}

/// `dn * scale + offset` over a uint16 band, NULLs kept (one loop, no
/// widening copy first).
fn scale_u16(dn: &ArrayRef, scale: f64, offset: f64) -> Float64Array {
    let dn = dn.as_primitive::<UInt16Type>();
    let values: Vec<f64> = dn
        .values()
        .iter()
        .map(|&d| d as f64 * scale + offset)
        .collect();
    Float64Array::new(values.into(), dn.nulls().cloned())
}

impl ScalarUDFImpl for ScalingUdf {
    fn name(&self) -> &str {
        match self.scaling {
            Scaling::LandsatSr => "landsat_sr",
            Scaling::LandsatSt => "landsat_st",
            Scaling::S2Sr => "s2_sr",
            Scaling::ScaleOffset => "scale_offset",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let signature = &self.doc.syntax_example;
        match self.scaling {
            Scaling::LandsatSr | Scaling::LandsatSt => {
                let mut types = coerce_numeric(signature, arg_types, 1, 1)?;
                // Collection 2 DNs are uint16: scaled straight from the band.
                if arg_types[0] == DataType::UInt16 {
                    types[0] = DataType::UInt16;
                }
                Ok(types)
            }
            Scaling::ScaleOffset => coerce_numeric(signature, arg_types, 3, 3),
            Scaling::S2Sr => {
                check_arity(signature, arg_types, 2, 2)?;
                let dn = &arg_types[0];
                if !(dn.is_numeric() || *dn == DataType::Null) {
                    return plan_err!(
                        "{signature} expects a numeric dn, got {}",
                        type_list(arg_types)
                    );
                }
                let time = match &arg_types[1] {
                    t @ (DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) => {
                        t.clone()
                    }
                    DataType::Null => DataType::Date32,
                    _ => {
                        return plan_err!(
                            "{signature} expects a TIMESTAMP or DATE acquisition time, got {}",
                            type_list(arg_types)
                        );
                    }
                };
                Ok(vec![DataType::Float64, time])
            }
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let name = self.name();
        let out = match (self.scaling, arrays.as_slice()) {
            (Scaling::LandsatSr, [dn]) if dn.data_type() == &DataType::UInt16 => {
                scale_u16(dn, LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET)
            }
            (Scaling::LandsatSt, [dn]) if dn.data_type() == &DataType::UInt16 => {
                scale_u16(dn, LANDSAT_ST_SCALE, LANDSAT_ST_OFFSET)
            }
            (Scaling::LandsatSr, [dn]) => map_f64([f64_arg(dn, name)?], |[d]| {
                Some(d * LANDSAT_SR_SCALE + LANDSAT_SR_OFFSET)
            }),
            (Scaling::LandsatSt, [dn]) => map_f64([f64_arg(dn, name)?], |[d]| {
                Some(d * LANDSAT_ST_SCALE + LANDSAT_ST_OFFSET)
            }),
            (Scaling::ScaleOffset, [v, scale, offset]) => map_f64(
                [
                    f64_arg(v, name)?,
                    f64_arg(scale, name)?,
                    f64_arg(offset, name)?,
                ],
                |[v, s, o]| Some(v * s + o),
            ),
            (Scaling::S2Sr, [dn, time]) => {
                let dn = f64_arg(dn, name)?;
                let (instants, time_nulls) = epoch_instants(time)?;
                let nulls = NullBuffer::union(dn.nulls(), time_nulls.as_ref());
                let values: Vec<f64> = dn
                    .values()
                    .iter()
                    .zip(&instants)
                    .map(|(&d, &(secs, _))| s2_reflectance(d, secs))
                    .collect();
                Float64Array::new(values.into(), nulls)
            }
            _ => {
                return Err(exec_datafusion_err!(
                    "{} called with {} arguments",
                    self.doc.syntax_example,
                    arrays.len()
                ));
            }
        };
        finish(Arc::new(out) as ArrayRef, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

fn documentation(scaling: Scaling) -> Documentation {
    match scaling {
        Scaling::LandsatSr => Documentation::builder(
            SCALING,
            "Landsat Collection 2 Level-2 surface reflectance from the stored DN: dn * 0.0000275 - 0.2 \
             (USGS Landsat 8-9 C2 L2 Science Product Guide). Valid reflectances lie roughly in \
             [0, 1]; the fill value 0 gives -0.2, so mask fill with the QA band first. NULL in, NULL out.",
            "landsat_sr(dn)",
        )
        .with_argument("dn", "SR_B1 ... SR_B7 digital number (any numeric type, usually UINT16).")
        .with_sql_example("SELECT landsat_sr(10000);\n-- 0.07500000000000001")
        .with_related_udf("landsat_st")
        .with_related_udf("landsat_clear")
        .with_related_udf("scale_offset")
        .build(),
        Scaling::LandsatSt => Documentation::builder(
            SCALING,
            "Landsat Collection 2 Level-2 surface temperature in kelvin from the stored DN of ST_B10: \
             dn * 0.00341802 + 149.0 (USGS Landsat 8-9 C2 L2 Science Product Guide). Subtract 273.15 \
             for °C. NULL in, NULL out.",
            "landsat_st(dn)",
        )
        .with_argument("dn", "ST_B10 digital number (any numeric type, usually UINT16).")
        .with_sql_example("SELECT landsat_st(44000);\n-- 299.39288")
        .with_related_udf("landsat_sr")
        .with_related_udf("scale_offset")
        .build(),
        Scaling::S2Sr => Documentation::builder(
            SCALING,
            "Sentinel-2 Level-2A surface reflectance from the stored DN, by acquisition date: dn / 10000 \
             before 2022-01-25, and (dn - 1000) / 10000 from 2022-01-25 00:00 UTC on, when processing \
             baseline 04.00 introduced the BOA_ADD_OFFSET of -1000 DN. Products of older acquisitions \
             reprocessed with baseline 04.00 or later also carry the offset: use \
             scale_offset(dn, 0.0001, -0.1) for those. NULL when dn or time is NULL.",
            "s2_sr(dn, time)",
        )
        .with_argument("dn", "B01 ... B12 digital number (any numeric type, usually UINT16).")
        .with_argument("time", "Acquisition time: TIMESTAMP (UTC instant) or DATE.")
        .with_sql_example("SELECT s2_sr(2500, DATE '2022-06-01');\n-- 0.15")
        .with_related_udf("s2_clear")
        .with_related_udf("scale_offset")
        .build(),
        Scaling::ScaleOffset => Documentation::builder(
            SCALING,
            "Generic linear scaling v * scale + offset, for products whose metadata gives their own \
             factors. NULL when any argument is NULL.",
            "scale_offset(v, scale, offset)",
        )
        .with_argument("v", "Stored value (any numeric type).")
        .with_argument("scale", "Multiplicative factor.")
        .with_argument("offset", "Additive offset, applied after scaling.")
        .with_sql_example("SELECT scale_offset(2500, 0.0001, -0.1);\n-- 0.15")
        .with_related_udf("landsat_sr")
        .with_related_udf("s2_sr")
        .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::test_util::{cell, check_doc_examples, planning_error};

    #[test]
    fn constants_and_hand_checked_values() {
        // 2022-01-25T00:00:00Z = 1643068800 s.
        assert_eq!(S2_BASELINE_04_START, 1_643_068_800);
        assert_eq!(s2_reflectance(2500.0, S2_BASELINE_04_START - 1), 0.25);
        assert_eq!(s2_reflectance(2500.0, S2_BASELINE_04_START), 0.15);
        assert_eq!(cell("SELECT landsat_sr(0)"), "-0.2");
        assert_eq!(
            cell("SELECT abs(landsat_sr(CAST(20000 AS SMALLINT)) - 0.35) < 1e-12"),
            "true"
        );
        assert_eq!(cell("SELECT landsat_st(0)"), "149.0");
        assert_eq!(cell("SELECT landsat_st(NULL)"), "NULL");
        // uint16 bands are scaled without a widening cast: same values
        // (20000 · 2.75e-5 - 0.2 = 0.35; 40000 · 0.00341802 + 149 = 285.7208).
        assert_eq!(
            cell("SELECT abs(landsat_sr(CAST(20000 AS SMALLINT UNSIGNED)) - 0.35) < 1e-12"),
            "true"
        );
        assert_eq!(
            cell("SELECT abs(landsat_st(CAST(40000 AS SMALLINT UNSIGNED)) - 285.7208) < 1e-9"),
            "true"
        );
        assert_eq!(
            cell("SELECT landsat_sr(CAST(NULL AS SMALLINT UNSIGNED))"),
            "NULL"
        );
        assert_eq!(cell("SELECT scale_offset(2, 3, NULL)"), "NULL");
        assert_eq!(cell("SELECT scale_offset(2, 3, 4)"), "10.0");
    }

    #[test]
    fn s2_offset_switches_at_baseline_04() {
        assert_eq!(cell("SELECT s2_sr(2500, DATE '2022-01-24')"), "0.25");
        assert_eq!(cell("SELECT s2_sr(2500, DATE '2022-01-25')"), "0.15");
        assert_eq!(
            cell("SELECT s2_sr(2500, TIMESTAMP '2022-01-24 23:59:59.999999999')"),
            "0.25"
        );
        assert_eq!(
            cell("SELECT s2_sr(2500, TIMESTAMP '2022-01-25 00:00:00')"),
            "0.15"
        );
        // A zoned timestamp compares its UTC instant: 00:30+01:00 is still the 24th in UTC.
        assert_eq!(
            cell("SELECT s2_sr(2500, TIMESTAMP '2022-01-25 00:30:00+01:00')"),
            "0.25"
        );
        assert_eq!(
            cell("SELECT s2_sr(2500, CAST(TIMESTAMP '2022-01-25 00:00:00' AS TIMESTAMP(0)))"),
            "0.15"
        );
        assert_eq!(
            cell("SELECT s2_sr(2500, arrow_cast(DATE '2022-01-25', 'Date64'))"),
            "0.15"
        );
        assert_eq!(cell("SELECT s2_sr(2500, NULL)"), "NULL");
        assert_eq!(cell("SELECT s2_sr(NULL, DATE '2022-01-25')"), "NULL");
        // Arrays with mixed dates and NULLs.
        let out = crate::indices::test_util::run(
            "SELECT s2_sr(dn, d) FROM (VALUES (2500, DATE '2021-01-01'), (NULL, DATE '2023-01-01'), \
             (3000, DATE '2023-01-01'), (3000, NULL)) AS t(dn, d)",
        )
        .unwrap();
        let col = out[0].column(0);
        let col = datafusion::arrow::array::AsArray::as_primitive::<
            datafusion::arrow::datatypes::Float64Type,
        >(col);
        assert_eq!(
            col.iter().collect::<Vec<_>>(),
            vec![Some(0.25), None, Some(0.2), None]
        );
    }

    #[test]
    fn documented_examples_hold() {
        check_doc_examples(&[landsat_sr(), landsat_st(), s2_sr(), scale_offset()]);
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT landsat_sr('x')");
        assert!(
            e.contains("landsat_sr(dn) expects numeric arguments"),
            "{e}"
        );
        let e = planning_error("SELECT s2_sr(2500, '2022-01-01')");
        assert!(
            e.contains("s2_sr(dn, time) expects a TIMESTAMP or DATE acquisition time"),
            "{e}"
        );
        let e = planning_error("SELECT s2_sr(2500)");
        assert!(
            e.contains("s2_sr(dn, time) expects 2 arguments, got 1"),
            "{e}"
        );
        let e = planning_error("SELECT scale_offset(1, 2)");
        assert!(
            e.contains("scale_offset(v, scale, offset) expects 3 arguments, got 2"),
            "{e}"
        );
    }
}
