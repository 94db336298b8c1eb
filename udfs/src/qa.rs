//! Quality-assessment masks: `bit_set`, `bits`, `landsat_clear`,
//! `landsat_c1_clear` and `s2_clear`.
//!
//! Why: every time series must drop clouds, shadows and fill before fitting;
//! the bit layouts differ per product and collection and are easy to get
//! wrong in ad-hoc SQL (`(qa >> 3) & 1 = 0 AND ...`). These functions encode
//! the published layouts once, with tests on the documented bit patterns.
//! Integer QA in (any integer type, widened to BIGINT), BOOLEAN (or BIGINT
//! for `bits`) out; NULL QA gives NULL.
//!
//! Layouts:
//! - Landsat Collection 2 `QA_PIXEL` (USGS Landsat 8-9 C2 L2 Science Product
//!   Guide, LSDS-1619, table 6-3): bit 0 fill, 1 dilated cloud, 2 cirrus,
//!   3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water, 8-9 cloud confidence,
//!   10-11 cloud shadow confidence, 12-13 snow/ice confidence, 14-15 cirrus
//!   confidence.
//! - Landsat Collection 1 Level-1 `BQA` (USGS "Landsat Collection 1 Level-1
//!   Quality Assessment Band", Landsat 8 layout): bit 0 designated fill,
//!   1 terrain occlusion, 2-3 radiometric saturation, 4 cloud, 5-6 cloud
//!   confidence, 7-8 cloud shadow confidence, 9-10 snow/ice confidence,
//!   11-12 cirrus confidence (Landsat 8 only; 0 for Landsat 4-7).
//!   Confidence fields: 0 not determined, 1 low, 2 medium, 3 high.
//! - Sentinel-2 L2A scene classification `SCL` (ESA Sen2Cor): 0 no data,
//!   1 saturated or defective, 2 dark area pixels (cast shadows in baseline
//!   04.00), 3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water,
//!   7 unclassified, 8 cloud medium probability, 9 cloud high probability,
//!   10 thin cirrus, 11 snow or ice.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Int64Array, PrimitiveArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::args::{check_arity, type_list};
use crate::bits;
use crate::indices::finish;
use crate::sections::QA_MASKS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Qa {
    BitSet,
    Bits,
    LandsatClear,
    LandsatC1Clear,
    S2Clear,
}

/// One QA function as a scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QaUdf {
    qa: Qa,
    signature: Signature,
    doc: Documentation,
}

/// `bit_set(v, bit)`.
pub fn bit_set() -> Arc<ScalarUDF> {
    QaUdf::udf(Qa::BitSet)
}
/// `bits(v, first, count)`.
pub fn bits() -> Arc<ScalarUDF> {
    QaUdf::udf(Qa::Bits)
}
/// `landsat_clear(qa_pixel [, drop_snow])`.
pub fn landsat_clear() -> Arc<ScalarUDF> {
    QaUdf::udf(Qa::LandsatClear)
}
/// `landsat_c1_clear(bqa)`.
pub fn landsat_c1_clear() -> Arc<ScalarUDF> {
    QaUdf::udf(Qa::LandsatC1Clear)
}
/// `s2_clear(scl)`.
pub fn s2_clear() -> Arc<ScalarUDF> {
    QaUdf::udf(Qa::S2Clear)
}

/// Bits 0-4 of Collection 2 QA_PIXEL: fill, dilated cloud, cirrus, cloud, cloud shadow.
pub const LANDSAT_C2_NOT_CLEAR: i64 = 0b1_1111;
/// Bit 5 of Collection 2 QA_PIXEL: snow.
pub const LANDSAT_C2_SNOW: i64 = 1 << 5;

/// Landsat Collection 2 QA_PIXEL test: fill, dilated cloud, cirrus, cloud
/// and cloud shadow all clear (and snow too when `drop_snow`).
#[inline]
pub fn landsat_c2_clear_value(qa: i64, drop_snow: bool) -> bool {
    let mask = if drop_snow {
        LANDSAT_C2_NOT_CLEAR | LANDSAT_C2_SNOW
    } else {
        LANDSAT_C2_NOT_CLEAR
    };
    qa & mask == 0
}

/// Landsat Collection 1 BQA test: not designated fill (bit 0), cloud bit 4
/// not set, and cloud (bits 5-6), cloud shadow (7-8) and cirrus (11-12)
/// confidence not high (3).
#[inline]
pub fn landsat_c1_clear_value(bqa: i64) -> bool {
    let field = |first: u32| (bqa >> first) & 0b11;
    bqa & 1 == 0 && (bqa >> 4) & 1 == 0 && field(5) != 3 && field(7) != 3 && field(11) != 3
}

/// Sentinel-2 SCL test: Some(true) for 4 vegetation, 5 not vegetated,
/// 6 water, 7 unclassified; Some(false) for the other classes 0-11; None for
/// values that are not SCL classes.
#[inline]
pub fn s2_clear_value(scl: i64) -> Option<bool> {
    match scl {
        4..=7 => Some(true),
        0..=3 | 8..=11 => Some(false),
        _ => None,
    }
}

/// `count` bits of `v` starting at bit `first` (bit 0 is the least significant).
pub fn bits_value(v: i64, first: i64, count: i64) -> Result<i64> {
    if !(0..64).contains(&first) || count < 1 || first + count > 64 {
        return exec_err!(
            "bits(v, first, count): need 0 <= first <= 63 and 1 <= count <= 64 - first, got first = {first}, count = {count}"
        );
    }
    let shifted = (v as u64) >> first;
    let mask = if count == 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    Ok((shifted & mask) as i64)
}

/// Whether bit `bit` of `v` is 1.
pub fn bit_set_value(v: i64, bit: i64) -> Result<bool> {
    if !(0..64).contains(&bit) {
        return exec_err!("bit_set(v, bit): bit must be between 0 and 63, got {bit}");
    }
    Ok((v >> bit) & 1 == 1)
}

impl QaUdf {
    fn udf(qa: Qa) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            qa,
            signature: Signature::user_defined(Volatility::Immutable),
            doc: documentation(qa),
        }))
    }
}

/// Integer arguments (any integer type or NULL) become BIGINT.
fn coerce_integers(signature: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    if let Some(bad) = arg_types
        .iter()
        .find(|t| !(t.is_integer() || **t == DataType::Null))
    {
        return plan_err!(
            "{signature} expects integer arguments, got {bad} in {}",
            type_list(arg_types)
        );
    }
    Ok(vec![DataType::Int64; arg_types.len()])
}

/// Apply `f` to the rows where every BIGINT input is non-NULL; the result is
/// NULL elsewhere and where `f` returns None.
fn map_i64<const N: usize, R: Default + Copy>(
    arrays: [&Int64Array; N],
    mut f: impl FnMut([i64; N]) -> Result<Option<R>>,
) -> Result<(Vec<R>, NullBuffer)> {
    let len = arrays.first().map_or(0, |a| a.len());
    let nulls = NullBuffer::union_many(arrays.iter().map(|a| a.nulls()));
    let mut values = Vec::with_capacity(len);
    let mut valid = Vec::with_capacity(len);
    for i in 0..len {
        let result = if nulls.as_ref().is_none_or(|n| n.is_valid(i)) {
            f(std::array::from_fn(|k| arrays[k].values()[i]))?
        } else {
            None
        };
        values.push(result.unwrap_or_default());
        valid.push(result.is_some());
    }
    Ok((values, NullBuffer::from(valid)))
}

fn i64_arg<'a>(array: &'a ArrayRef, name: &str) -> Result<&'a Int64Array> {
    array.as_primitive_opt::<Int64Type>().ok_or_else(|| {
        exec_datafusion_err!(
            "{name}: expected a BIGINT argument after coercion, got {}",
            array.data_type()
        )
    })
}

/// `f` of every value, NULL where the input is.
fn mask<T>(values: &PrimitiveArray<T>, f: impl Fn(i64) -> bool) -> ArrayRef
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    Arc::new(BooleanArray::new(
        bits::collect_bits(values.values(), |v| f(v.into())),
        values.nulls().cloned(),
    ))
}

/// A one-argument mask over `qa` in its own integer type (raw QA bands are
/// 8- or 16-bit: no widening copy), or as BIGINT after coercion.
fn mask_any(qa: &ArrayRef, name: &str, f: impl Fn(i64) -> bool) -> Result<ArrayRef> {
    Ok(match qa.data_type() {
        DataType::UInt8 => mask(qa.as_primitive::<UInt8Type>(), f),
        DataType::UInt16 => mask(qa.as_primitive::<UInt16Type>(), f),
        DataType::Int16 => mask(qa.as_primitive::<Int16Type>(), f),
        DataType::Int32 => mask(qa.as_primitive::<Int32Type>(), f),
        _ => mask(i64_arg(qa, name)?, f),
    })
}

/// Coercion of a one-argument mask: narrow integer types stay as they are
/// (see [`mask_any`]), the rest become BIGINT.
fn coerce_mask(signature: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    let mut types = coerce_integers(signature, arg_types)?;
    for (t, given) in types.iter_mut().zip(arg_types) {
        if matches!(
            given,
            DataType::UInt8 | DataType::UInt16 | DataType::Int16 | DataType::Int32
        ) {
            *t = given.clone();
        }
    }
    Ok(types)
}

fn bool_result((values, nulls): (Vec<bool>, NullBuffer)) -> ArrayRef {
    Arc::new(BooleanArray::new(
        BooleanBuffer::from_iter(values),
        Some(nulls),
    ))
}

impl ScalarUDFImpl for QaUdf {
    fn name(&self) -> &str {
        match self.qa {
            Qa::BitSet => "bit_set",
            Qa::Bits => "bits",
            Qa::LandsatClear => "landsat_clear",
            Qa::LandsatC1Clear => "landsat_c1_clear",
            Qa::S2Clear => "s2_clear",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let signature = &self.doc.syntax_example;
        match self.qa {
            Qa::BitSet => check_arity(signature, arg_types, 2, 2)?,
            Qa::Bits => check_arity(signature, arg_types, 3, 3)?,
            Qa::S2Clear => check_arity(signature, arg_types, 1, 1)?,
            Qa::LandsatC1Clear => {
                check_arity(signature, arg_types, 1, 1)?;
                return coerce_mask(signature, arg_types);
            }
            Qa::LandsatClear if arg_types.len() == 1 => return coerce_mask(signature, arg_types),
            Qa::LandsatClear => {
                check_arity(signature, arg_types, 1, 2)?;
                let mut types = coerce_integers(signature, &arg_types[..1])?;
                if let Some(drop_snow) = arg_types.get(1) {
                    if !matches!(drop_snow, DataType::Boolean | DataType::Null) {
                        return plan_err!(
                            "{signature} expects an integer QA_PIXEL value and a BOOLEAN drop_snow, got {}",
                            type_list(arg_types)
                        );
                    }
                    types.push(DataType::Boolean);
                }
                return Ok(types);
            }
        }
        coerce_integers(signature, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.qa {
            Qa::Bits => DataType::Int64,
            _ => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let name = self.name();
        let out: ArrayRef = match (self.qa, arrays.as_slice()) {
            (Qa::BitSet, [v, bit]) => bool_result(map_i64(
                [i64_arg(v, name)?, i64_arg(bit, name)?],
                |[v, b]| bit_set_value(v, b).map(Some),
            )?),
            (Qa::Bits, [v, first, count]) => {
                let (values, nulls) = map_i64(
                    [
                        i64_arg(v, name)?,
                        i64_arg(first, name)?,
                        i64_arg(count, name)?,
                    ],
                    |[v, f, c]| bits_value(v, f, c).map(Some),
                )?;
                Arc::new(Int64Array::new(values.into(), Some(nulls)))
            }
            // One-argument masks cannot fail: a bit test per value, the
            // input's NULLs kept as they are.
            (Qa::LandsatClear, [qa]) => mask_any(qa, name, |q| landsat_c2_clear_value(q, false))?,
            (Qa::LandsatClear, [qa, drop_snow]) => {
                let qa = i64_arg(qa, name)?;
                let drop_snow = drop_snow
                    .as_boolean_opt()
                    .ok_or_else(|| exec_datafusion_err!("{name}: drop_snow must be BOOLEAN"))?;
                let nulls = NullBuffer::union(qa.nulls(), drop_snow.nulls());
                let values: BooleanBuffer = qa
                    .values()
                    .iter()
                    .zip(drop_snow.values().iter())
                    .map(|(&q, snow)| landsat_c2_clear_value(q, snow))
                    .collect();
                Arc::new(BooleanArray::new(values, nulls))
            }
            (Qa::LandsatC1Clear, [bqa]) => mask_any(bqa, name, landsat_c1_clear_value)?,
            (Qa::S2Clear, [scl]) => {
                bool_result(map_i64([i64_arg(scl, name)?], |[s]| Ok(s2_clear_value(s)))?)
            }
            _ => {
                return Err(exec_datafusion_err!(
                    "{} called with {} arguments",
                    self.doc.syntax_example,
                    arrays.len()
                ));
            }
        };
        finish(out, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

fn documentation(qa: Qa) -> Documentation {
    match qa {
        Qa::BitSet => Documentation::builder(
            QA_MASKS,
            "True when bit `bit` (0 = least significant) of the integer `v` is 1. NULL when an argument \
             is NULL; an error when bit is outside 0..63.",
            "bit_set(v, bit)",
        )
        .with_argument("v", "Integer value, e.g. a QA band (any integer type).")
        .with_argument("bit", "Bit position, 0 to 63.")
        .with_sql_example("SELECT bit_set(8, 3);\n-- true")
        .with_related_udf("bits")
        .build(),
        Qa::Bits => Documentation::builder(
            QA_MASKS,
            "The unsigned integer made of `count` bits of `v` starting at bit `first` (0 = least \
             significant), e.g. a 2-bit confidence field. Returns BIGINT; NULL when an argument is NULL; \
             an error unless 0 <= first <= 63 and 1 <= count <= 64 - first.",
            "bits(v, first, count)",
        )
        .with_argument("v", "Integer value, e.g. a QA band (any integer type).")
        .with_argument("first", "Lowest bit of the field, 0 to 63.")
        .with_argument("count", "Width of the field in bits.")
        .with_sql_example("SELECT bits(768, 8, 2);\n-- 3")
        .with_related_udf("bit_set")
        .build(),
        Qa::LandsatClear => Documentation::builder(
            QA_MASKS,
            "Landsat Collection 2 clear-pixel test on QA_PIXEL: true when the fill (bit 0), dilated \
             cloud (1), cirrus (2), cloud (3) and cloud shadow (4) bits are all 0. Snow (bit 5) is kept \
             unless drop_snow is true, which also requires bit 5 to be 0. Layout: USGS Landsat 8-9 \
             Collection 2 Level 2 Science Product Guide (LSDS-1619), QA_PIXEL table; the same bits hold \
             for Landsat 4-7 C2 (bit 2 is unused there). NULL when an argument is NULL.",
            "landsat_clear(qa_pixel [, drop_snow])",
        )
        .with_argument("qa_pixel", "QA_PIXEL value (any integer type).")
        .with_argument("drop_snow", "Optional BOOLEAN, default false: also reject snow pixels.")
        .with_sql_example("SELECT landsat_clear(21824);\n-- true")
        .with_related_udf("landsat_c1_clear")
        .with_related_udf("bit_set")
        .build(),
        Qa::LandsatC1Clear => Documentation::builder(
            QA_MASKS,
            "Landsat Collection 1 Level-1 clear-pixel test on the BQA band. True when the pixel is not \
             designated fill (bit 0 = 0), the cloud bit is not set (bit 4 = 0), and none of cloud \
             confidence (bits 5-6), cloud shadow confidence (bits 7-8) and cirrus confidence (bits \
             11-12) is high (3). Medium or low confidence counts as clear; terrain occlusion (bit 1), \
             radiometric saturation (bits 2-3) and snow/ice confidence (bits 9-10) are ignored. Layout: \
             USGS, Landsat Collection 1 Level-1 Quality Assessment Band \
             (https://www.usgs.gov/landsat-missions/landsat-collection-1-level-1-quality-assessment-band), \
             Landsat 8 OLI/TIRS table; on Landsat 4-7 bits 11-12 are 0, so the same test applies. \
             NULL for NULL.",
            "landsat_c1_clear(bqa)",
        )
        .with_argument("bqa", "Collection 1 BQA value (any integer type).")
        .with_sql_example("SELECT landsat_c1_clear(2720);\n-- true")
        .with_related_udf("landsat_clear")
        .with_related_udf("bits")
        .build(),
        Qa::S2Clear => Documentation::builder(
            QA_MASKS,
            "Sentinel-2 L2A clear-pixel test on the scene classification (SCL): true for classes 4 \
             vegetation, 5 not vegetated, 6 water and 7 unclassified; false for 0 no data, 1 saturated \
             or defective, 2 dark area / cast shadow, 3 cloud shadow, 8 cloud medium probability, \
             9 cloud high probability, 10 thin cirrus and 11 snow or ice. NULL for NULL and for values \
             outside 0-11 (not SCL classes).",
            "s2_clear(scl)",
        )
        .with_argument("scl", "SCL value, 0 to 11 (any integer type).")
        .with_sql_example("SELECT s2_clear(4);\n-- true")
        .with_related_udf("s2_sr")
        .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indices::test_util::{cell, check_doc_examples, planning_error, run};

    #[test]
    fn bit_functions() {
        assert!(bit_set_value(8, 3).unwrap());
        assert!(!bit_set_value(8, 2).unwrap());
        assert!(bit_set_value(-1, 63).unwrap());
        assert!(bit_set_value(1, 64).is_err() && bit_set_value(1, -1).is_err());
        assert_eq!(bits_value(0b1101_0000, 4, 4).unwrap(), 0b1101);
        assert_eq!(bits_value(-1, 0, 64).unwrap(), -1);
        assert_eq!(bits_value(-1, 60, 4).unwrap(), 15);
        assert!(
            bits_value(1, 0, 0).is_err()
                && bits_value(1, 62, 3).is_err()
                && bits_value(1, -1, 1).is_err()
        );
        assert_eq!(cell("SELECT bits(CAST(21824 AS SMALLINT), 8, 2)"), "1");
        assert_eq!(cell("SELECT bit_set(NULL, 3)"), "NULL");
        assert_eq!(cell("SELECT bits(5, NULL, 1)"), "NULL");
        let e = run("SELECT bit_set(1, 70)").unwrap_err().to_string();
        assert!(
            e.contains("bit_set(v, bit): bit must be between 0 and 63, got 70"),
            "{e}"
        );
        let e = run("SELECT bits(v, 62, 3) FROM (VALUES (1), (2)) AS t(v)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bits(v, first, count): need"), "{e}");
    }

    #[test]
    fn landsat_c2_documented_values() {
        // Common QA_PIXEL values of Landsat 8-9 C2 (bits set in brackets):
        // 21824 clear [6, 8, 10, 12, 14: low confidences]; 21952 clear water
        // [+7]; 22280 cloud [3, 8-9 high cloud confidence]; 23888 cloud shadow
        // [4, 10-11]; 30048 snow [5, 12-13]; 1 fill [0]; 54596 cirrus [2,
        // 14-15]; 21762 dilated cloud [1].
        let cases = [
            (21824, Some(true), Some(true)),
            (21952, Some(true), Some(true)),
            (22280, Some(false), Some(false)),
            (23888, Some(false), Some(false)),
            (30048, Some(true), Some(false)),
            (1, Some(false), Some(false)),
            (54596, Some(false), Some(false)),
            (21762, Some(false), Some(false)),
        ];
        for (qa, keep_snow, drop_snow) in cases {
            assert_eq!(Some(landsat_c2_clear_value(qa, false)), keep_snow, "{qa}");
            assert_eq!(
                Some(landsat_c2_clear_value(qa, true)),
                drop_snow,
                "{qa} drop snow"
            );
        }
        assert_eq!(cell("SELECT landsat_clear(30048, true)"), "false");
        assert_eq!(cell("SELECT landsat_clear(30048, false)"), "true");
        assert_eq!(cell("SELECT landsat_clear(30048, NULL)"), "NULL");
        assert_eq!(cell("SELECT landsat_clear(NULL)"), "NULL");
        let out = run(
            "SELECT landsat_clear(q, s) FROM (VALUES (30048, true), (30048, false), (CAST(NULL AS INT), true), \
             (21824, true)) AS t(q, s)",
        )
        .unwrap();
        let got: Vec<Option<bool>> = out[0].column(0).as_boolean().iter().collect();
        assert_eq!(got, vec![Some(false), Some(true), None, Some(true)]);
        // A uint16 band (as read from QA_PIXEL) is tested as it is, with the
        // same answers and NULLs; EXPLAIN shows no widening cast.
        let values = cases
            .iter()
            .map(|(qa, _, _)| format!("(CAST({qa} AS SMALLINT UNSIGNED))"))
            .collect::<Vec<_>>()
            .join(", ");
        let query = format!(
            "SELECT landsat_clear(q) FROM (VALUES {values}, (CAST(NULL AS SMALLINT UNSIGNED))) AS t(q)"
        );
        let out = run(&query).unwrap();
        let got: Vec<Option<bool>> = out[0].column(0).as_boolean().iter().collect();
        let mut want: Vec<Option<bool>> = cases.iter().map(|c| c.1).collect();
        want.push(None);
        assert_eq!(got, want);
        let plan = run(&format!("EXPLAIN {query}")).unwrap();
        let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(!plan.contains("CAST(t.q AS Int64)"), "{plan}");
    }

    #[test]
    fn landsat_c1_documented_values() {
        // Landsat 8 C1 BQA values listed by USGS, with (cloud, shadow, snow,
        // cirrus) confidences: 2720 clear (1, 1, 1, 1); 2724 / 2728 / 2732 the
        // same with radiometric saturation bits 2-3; 2752 medium cloud
        // confidence (2, ...): still clear; 3744 high snow/ice confidence: kept;
        // 2976 high cloud shadow confidence; 2800 cloud bit 4 with high cloud
        // confidence; 6816 high cirrus confidence; 2784 high cloud confidence
        // without the cloud bit; 1 designated fill.
        let cases = [
            (2720, true),
            (2724, true),
            (2728, true),
            (2732, true),
            (2752, true),
            (3744, true),
            (2976, false),
            (2800, false),
            (6816, false),
            (2784, false),
            (1, false),
        ];
        for (bqa, clear) in cases {
            assert_eq!(landsat_c1_clear_value(bqa), clear, "{bqa}");
        }
    }

    #[test]
    fn s2_classes() {
        let want = [
            false, false, false, false, true, true, true, true, false, false, false, false,
        ];
        for (scl, clear) in want.iter().enumerate() {
            assert_eq!(s2_clear_value(scl as i64), Some(*clear), "SCL {scl}");
        }
        assert_eq!(s2_clear_value(12), None);
        assert_eq!(s2_clear_value(-1), None);
        assert_eq!(cell("SELECT s2_clear(CAST(6 AS TINYINT))"), "true");
        assert_eq!(cell("SELECT s2_clear(255)"), "NULL");
        assert_eq!(cell("SELECT s2_clear(NULL)"), "NULL");
    }

    #[test]
    fn documented_examples_hold() {
        check_doc_examples(&[
            bit_set(),
            bits(),
            landsat_clear(),
            landsat_c1_clear(),
            s2_clear(),
        ]);
    }

    #[test]
    fn wrong_arguments_are_planning_errors_naming_the_signature() {
        let e = planning_error("SELECT bit_set(1.5, 2)");
        assert!(
            e.contains("bit_set(v, bit) expects integer arguments"),
            "{e}"
        );
        let e = planning_error("SELECT bits(1, 2)");
        assert!(
            e.contains("bits(v, first, count) expects 3 arguments, got 2"),
            "{e}"
        );
        let e = planning_error("SELECT landsat_clear(21824, 1)");
        assert!(e.contains("landsat_clear(qa_pixel [, drop_snow]) expects an integer QA_PIXEL value and a BOOLEAN"), "{e}");
        let e = planning_error("SELECT s2_clear('4')");
        assert!(e.contains("s2_clear(scl) expects integer arguments"), "{e}");
    }
}
