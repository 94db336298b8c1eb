//! Writing a statement's result: pretty table, CSV (struct fields flattened
//! to `t.slope` columns, lists as JSON), NDJSON or Parquet, to stdout or a
//! file; nothing is written when the result cannot be.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;

use super::Format;
use crate::run::Output;

/// A failed write of the result to `path` (or stdout), naming it.
fn io(path: Option<&Path>) -> impl Fn(std::io::Error) -> DataFusionError + '_ {
    move |e| {
        DataFusionError::Execution(match path {
            Some(p) => format!("cannot write the result to '{}': {e}", p.display()),
            None => format!("cannot write the result: {e}"),
        })
    }
}

/// Write the result. The whole text is made before anything is written, so
/// a failure leaves no partial output: nothing on stdout, and no file under
/// `path` (files are written beside it and renamed into place).
pub fn write(out: &Output, format: Format, path: Option<&Path>) -> Result<()> {
    if let (Some(p), Format::Parquet) = (path, format) {
        return write_parquet(out, p);
    }
    let mut text: Vec<u8> = Vec::new();
    match format {
        Format::Table => {
            writeln!(text, "{}", pretty_format_batches(&out.batches)?).map_err(io(path))?
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut text);
            let schema = csv_schema(&out.schema);
            if out.batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in &out.batches {
                w.write(&csv_batch(b, &schema)?)?;
            }
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut text);
            for b in &out.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => unreachable!("handled above"),
    }
    match path {
        Some(p) => {
            let tmp = partial(p);
            std::fs::write(&tmp, &text).map_err(io(path))?;
            std::fs::rename(&tmp, p).map_err(io(path))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&text)
                .and_then(|_| stdout.flush())
                .map_err(io(None))
        }
    }
}

/// The file a result is written to before it is renamed to `path`.
fn partial(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn write_parquet(out: &Output, path: &Path) -> Result<()> {
    let tmp = partial(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(io(Some(path)))?;
        let mut w = ArrowWriter::try_new(file, out.schema.clone(), None)?;
        for b in &out.batches {
            w.write(b)?;
        }
        w.close()?;
        std::fs::rename(&tmp, path).map_err(io(Some(path)))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The schema CSV gets: struct fields flattened, lists as JSON text.
fn csv_schema(schema: &Schema) -> SchemaRef {
    let flat = flat_schema(schema);
    Arc::new(Schema::new(
        flat.fields()
            .iter()
            .map(|f| match is_list(f.data_type()) {
                true => Field::new(f.name(), DataType::Utf8, true),
                false => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Map(..)
    )
}

/// A batch as CSV gets it ([`csv_schema`]): each list a JSON array.
fn csv_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let flat = flatten(batch, &flat_schema(&batch.schema()))?;
    let columns = flat
        .columns()
        .iter()
        .map(|c| match is_list(c.data_type()) {
            true => json_text(c),
            false => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Each value of `array` as JSON text (NULL stays NULL).
fn json_text(array: &ArrayRef) -> Result<ArrayRef> {
    let field = Field::new("v", array.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])?;
    let mut lines = Vec::new();
    {
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut lines);
        w.write(&batch)?;
        w.finish()?;
    }
    let text = String::from_utf8(lines).map_err(|e| DataFusionError::Execution(e.to_string()))?;
    let values: datafusion::arrow::array::StringArray = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("v").map(|x| x.to_string()))
        })
        .collect();
    Ok(Arc::new(values))
}

fn flat_fields(prefix: &str, field: &Field, out: &mut Vec<Field>) {
    let name = if prefix.is_empty() {
        field.name().clone()
    } else {
        format!("{prefix}.{}", field.name())
    };
    match field.data_type() {
        DataType::Struct(children) => children.iter().for_each(|c| flat_fields(&name, c, out)),
        _ => out.push(Field::new(name, field.data_type().clone(), true)),
    }
}

/// The schema with struct fields flattened into `parent.child` columns.
pub fn flat_schema(schema: &Schema) -> SchemaRef {
    let mut fields = Vec::new();
    schema
        .fields()
        .iter()
        .for_each(|f| flat_fields("", f, &mut fields));
    Arc::new(Schema::new(fields))
}

fn flat_columns(array: &ArrayRef, out: &mut Vec<ArrayRef>) {
    match array.data_type() {
        DataType::Struct(_) => {
            let s = array.as_struct();
            for c in s.columns() {
                // A NULL struct makes its fields NULL.
                let c = match s.nulls() {
                    Some(n) if n.null_count() > 0 => datafusion::arrow::compute::nullif(
                        c,
                        &datafusion::arrow::array::BooleanArray::from(!n.inner()),
                    )
                    .unwrap_or_else(|_| c.clone()),
                    _ => c.clone(),
                };
                flat_columns(&c, out);
            }
        }
        _ => out.push(array.clone()),
    }
}

pub fn flatten(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut cols = Vec::new();
    batch
        .columns()
        .iter()
        .for_each(|c| flat_columns(c, &mut cols));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}
