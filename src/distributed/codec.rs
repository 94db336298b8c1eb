//! Plan codecs for Ballista: Ballista's own codecs, plus what sceneql adds to
//! a plan. A scene table (logical plans, client -> scheduler) and a planned
//! scene scan (physical plans, scheduler -> executors) travel as JSON behind
//! a magic prefix, so the scheduler never re-reads the archive and executors
//! read exactly the blocks the scheduler planned; a per-block aggregation
//! travels as DataFusion's protobuf of the equivalent `AggregateExec`.
//! sceneql's SQL functions travel by name and are resolved from
//! `sceneql-udfs` on the other side.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::FileSink;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::physical_plan::empty::EmptyExec;

use crate::model::{Column, SceneArchive};
use crate::provider::SceneTable;
use crate::scan::filter::ScanFilter;
use crate::scan::{ScanParts, SceneScanExec};
use crate::sinks::MetadataParquetSink;
use crate::tile_aggregate::TileAggregateExec;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::protobuf::PhysicalExprNode;
use datafusion_proto::protobuf::PhysicalPlanNode;
use prost::Message;

/// Prefix of every payload sceneql encodes; anything else is Ballista's.
const MAGIC: &[u8] = b"sceneql\x01";
const TABLE: u8 = b'T';
const SCAN: u8 = b'S';
const TILE_AGGREGATE: u8 = b'A';
const PARQUET_SINK: u8 = b'W';

fn encode_json<T: serde::Serialize>(kind: u8, value: &T, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(MAGIC);
    buf.push(kind);
    serde_json::to_writer(buf, value)
        .map_err(|e| DataFusionError::Internal(format!("cannot encode a sceneql plan node: {e}")))
}

/// The payload of a sceneql node of `kind`, or `None` for Ballista's bytes.
fn ours(buf: &[u8], kind: u8) -> Option<&[u8]> {
    match buf.strip_prefix(MAGIC) {
        Some([k, rest @ ..]) if *k == kind => Some(rest),
        _ => None,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(payload).map_err(|e| {
        DataFusionError::Internal(format!(
            "cannot decode a {what} sent by another sceneql process ({e}); \
             are the client, scheduler and executors the same sceneql version?"
        ))
    })
}

fn udf_by_name(name: &str) -> Option<Arc<ScalarUDF>> {
    sceneql_udfs::scalar_udfs()
        .into_iter()
        .find(|f| f.name() == name || f.aliases().iter().any(|a| a == name))
}

fn udaf_by_name(name: &str) -> Option<Arc<AggregateUDF>> {
    sceneql_udfs::aggregate_udfs()
        .into_iter()
        .find(|f| f.name() == name || f.aliases().iter().any(|a| a == name))
}

/// Logical codec: Ballista's, plus scene tables and sceneql's functions.
#[derive(Debug, Default)]
pub struct SceneLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for SceneLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match ours(buf, TABLE) {
            Some(payload) => {
                let archive: SceneArchive = decode_json(payload, "scene table")?;
                Ok(Arc::new(SceneTable::new(Arc::new(archive))))
            }
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match (node.as_ref() as &dyn TableProvider).downcast_ref::<SceneTable>() {
            Some(table) => encode_json(TABLE, table.archive().as_ref(), buf),
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        udf_by_name(name).map_or_else(|| self.inner.try_decode_udf(name, buf), Ok)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        udaf_by_name(name).map_or_else(|| self.inner.try_decode_udaf(name, buf), Ok)
    }
}

/// A scan filter on the wire: the columns it reads and its physical
/// expression as DataFusion protobuf.
type EncodedFilter = (Vec<Column>, Vec<u8>);

/// Physical codec: Ballista's, plus the scene scan and sceneql's functions.
#[derive(Debug, Default)]
pub struct ScenePhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for ScenePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match ours(buf, SCAN) {
            Some(payload) => {
                let (mut parts, filter): (ScanParts, Option<EncodedFilter>) =
                    decode_json(payload, "scene scan")?;
                if let Some((columns, bytes)) = filter {
                    let node = PhysicalExprNode::decode(bytes.as_slice()).map_err(|e| {
                        DataFusionError::Internal(format!("cannot decode a scan filter: {e}"))
                    })?;
                    let schema = ScanFilter::schema_for(&parts.archive, &columns);
                    let expr = parse_physical_expr(&node, ctx, &schema, self)?;
                    parts.filter = Some(Arc::new(ScanFilter {
                        columns,
                        schema,
                        expr,
                    }));
                }
                // With its partition tokens (if sharded), as the scheduler sliced them.
                Arc::new(SceneScanExec::from_parts(parts)?).rebuild(inputs.to_vec())
            }
            None => match ours(buf, TILE_AGGREGATE) {
                Some(payload) => {
                    // DataFusion's protobuf of the equivalent AggregateExec.
                    let node = PhysicalPlanNode::decode(payload).map_err(|e| {
                        DataFusionError::Internal(format!(
                            "cannot decode a per-block aggregation: {e}"
                        ))
                    })?;
                    let plan = node.try_into_physical_plan(ctx, self)?;
                    let agg = plan.downcast_ref::<AggregateExec>().ok_or_else(|| {
                        DataFusionError::Internal(
                            "a per-block aggregation decoded to another plan".into(),
                        )
                    })?;
                    let [input] = inputs else {
                        return Err(DataFusionError::Internal(
                            "a per-block aggregation has one input".into(),
                        ));
                    };
                    Ok(Arc::new(TileAggregateExec::from_template(
                        agg,
                        input.clone(),
                    )?))
                }
                None => match ours(buf, PARQUET_SINK) {
                    Some(payload) => decode_parquet_sink(payload, inputs, ctx, self),
                    None => self.inner.try_decode(buf, inputs, ctx, proto_converter),
                },
            },
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        match (node.as_ref() as &dyn ExecutionPlan).downcast_ref::<SceneScanExec>() {
            Some(scan) => {
                let parts = scan.parts();
                // The scan filter as DataFusion's protobuf (functions by name).
                let filter = match &parts.filter {
                    Some(f) => Some((
                        f.columns.clone(),
                        serialize_physical_expr(&f.expr, self)?.encode_to_vec(),
                    )),
                    None => None,
                };
                encode_json(SCAN, &(parts, filter), buf)
            }
            None => match node.downcast_ref::<TileAggregateExec>() {
                Some(tile) => {
                    let template: Arc<dyn ExecutionPlan> = Arc::new(tile.template()?);
                    let bytes = PhysicalPlanNode::try_from_physical_plan(template, self)?;
                    buf.extend_from_slice(MAGIC);
                    buf.push(TILE_AGGREGATE);
                    buf.extend_from_slice(&bytes.encode_to_vec());
                    Ok(())
                }
                None => match node.downcast_ref::<DataSinkExec>() {
                    Some(exec) => match exec.sink().downcast_ref::<MetadataParquetSink>() {
                        Some(sink) => encode_parquet_sink(exec, sink, self, buf),
                        None => self.inner.try_encode(node, buf, proto_converter),
                    },
                    None => self.inner.try_encode(node, buf, proto_converter),
                },
            },
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        udf_by_name(name).map_or_else(|| self.inner.try_decode_udf(name, buf), Ok)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        udaf_by_name(name).map_or_else(|| self.inner.try_decode_udaf(name, buf), Ok)
    }
}

/// A [`MetadataParquetSink`]'s node: its key-value metadata (JSON, after its
/// length) and DataFusion's protobuf of the same sink over an empty input
/// (the real input travels as the node's child).
fn encode_parquet_sink(
    exec: &DataSinkExec,
    sink: &MetadataParquetSink,
    codec: &dyn PhysicalExtensionCodec,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let options = sink.0.parquet_options();
    let template: Arc<dyn ExecutionPlan> = Arc::new(DataSinkExec::new(
        Arc::new(EmptyExec::new(exec.input().schema())),
        Arc::new(ParquetSink::new(sink.0.config().clone(), options.clone())),
        exec.sort_order().clone(),
    ));
    let plan = PhysicalPlanNode::try_from_physical_plan(template, codec)?.encode_to_vec();
    let metadata = serde_json::to_vec(&options.key_value_metadata)
        .map_err(|e| DataFusionError::Internal(format!("cannot encode a sink's metadata: {e}")))?;
    buf.extend_from_slice(MAGIC);
    buf.push(PARQUET_SINK);
    buf.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
    buf.extend_from_slice(&metadata);
    buf.extend_from_slice(&plan);
    Ok(())
}

/// The sink [`encode_parquet_sink`] encoded, over `inputs`, with its
/// key-value metadata back in its options.
fn decode_parquet_sink(
    payload: &[u8],
    inputs: &[Arc<dyn ExecutionPlan>],
    ctx: &TaskContext,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Arc<dyn ExecutionPlan>> {
    let bad = |m: &str| DataFusionError::Internal(format!("cannot decode a Parquet sink: {m}"));
    let (len, rest) = payload
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("no length"))?;
    let len = u32::from_le_bytes(*len) as usize;
    let (metadata, plan) = (rest.get(..len), rest.get(len..));
    let (Some(metadata), Some(plan)) = (metadata, plan) else {
        return Err(bad("truncated"));
    };
    let metadata: std::collections::HashMap<String, Option<String>> =
        serde_json::from_slice(metadata).map_err(|e| bad(&e.to_string()))?;
    let node = PhysicalPlanNode::decode(plan).map_err(|e| bad(&e.to_string()))?;
    let template = node.try_into_physical_plan(ctx, codec)?;
    let exec = template
        .downcast_ref::<DataSinkExec>()
        .ok_or_else(|| bad("not a sink"))?;
    let sink = exec
        .sink()
        .downcast_ref::<ParquetSink>()
        .ok_or_else(|| bad("not a Parquet sink"))?;
    let mut options = sink.parquet_options().clone();
    options.key_value_metadata = metadata;
    let [input] = inputs else {
        return Err(bad("a sink has one input"));
    };
    Ok(Arc::new(DataSinkExec::new(
        input.clone(),
        Arc::new(ParquetSink::new(sink.config().clone(), options)),
        exec.sort_order().clone(),
    )))
}
