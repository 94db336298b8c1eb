//! Writing a statement's result: pretty table, CSV (struct fields flattened
//! to `t.slope` columns), NDJSON or Parquet, to stdout or a file.

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

fn io(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("cannot write the result: {e}"))
}

pub fn write(out: &Output, format: Format, path: Option<&Path>) -> Result<()> {
    let mut sink: Box<dyn Write> = match (path, format) {
        (Some(p), Format::Parquet) => return write_parquet(out, p),
        (Some(p), _) => Box::new(File::create(p).map_err(io)?),
        (None, _) => Box::new(std::io::stdout().lock()),
    };
    match format {
        Format::Table => writeln!(sink, "{}", pretty_format_batches(&out.batches)?).map_err(io)?,
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut sink);
            let schema = flat_schema(&out.schema);
            if out.batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in &out.batches {
                w.write(&flatten(b, &schema)?)?;
            }
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut sink);
            for b in &out.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => unreachable!("handled above"),
    }
    sink.flush().map_err(io)
}

fn write_parquet(out: &Output, path: &Path) -> Result<()> {
    let tmp = path.with_extension("parquet.partial");
    let file = File::create(&tmp).map_err(io)?;
    let mut w = ArrowWriter::try_new(file, out.schema.clone(), None)?;
    for b in &out.batches {
        w.write(b)?;
    }
    w.close()?;
    std::fs::rename(&tmp, path).map_err(io)
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
