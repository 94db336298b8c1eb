//! Running sceneql's plans on an Apache Ballista cluster: the codecs that
//! carry scene tables, scans and SQL functions between processes
//! ([`codec`]), the scheduler and executor processes (`sceneql scheduler`,
//! `sceneql executor`: [`scheduler`], [`executor`]) and the client sessions
//! (`--remote df://HOST:PORT`, `--standalone`).
//!
//! The client plans SQL (so `CREATE EXTERNAL TABLE ... STORED AS SCENES`
//! reads the archive once, on the client) and sends the logical plan; the
//! scheduler calls the scene table's `scan` and splits the physical plan into
//! stages; executors run the scan partitions as tasks. Every process must
//! reach the archive and the COPY target at the same paths.

pub mod codec;
pub mod executor;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::config::{
    BALLISTA_ADAPTIVE_PLANNER_ENABLED, BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK,
};
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::provider::factory::SceneTableFactory;
use crate::scan::SceneScanExec;
use crate::session;
use crate::tile_aggregate::with_tile_aggregates;
use codec::{SceneLogicalCodec, ScenePhysicalCodec};

/// How long the client waits for a scheduler to answer before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The session configuration of every process of a cluster: sceneql's
/// settings, Ballista's, and sceneql's codecs.
pub fn config() -> SessionConfig {
    let mut config = session::apply_settings(SessionConfig::new_with_ballista());
    // A task per scan partition, so a job's partitions spread over executors.
    config = config.set_usize(BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK, 1);
    // The static planner plans with the session's physical optimizer rules,
    // [`ShardSceneScans`] included; the adaptive one uses a fixed list.
    config = config.set_bool(BALLISTA_ADAPTIVE_PLANNER_ENABLED, false);
    config
        .with_ballista_logical_extension_codec(Arc::new(SceneLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(ScenePhysicalCodec::default()))
}

/// Ballista's codec pair with sceneql's extensions.
pub fn ballista_codec() -> BallistaCodec {
    BallistaCodec::new(
        Arc::new(SceneLogicalCodec::default()),
        Arc::new(ScenePhysicalCodec::default()),
    )
}

/// The session state a scheduler plans jobs in (from the client's settings):
/// Ballista's default state plus sceneql's SQL functions.
pub fn server_state(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    // Per-block aggregation first: it re-plans scans, which sharding fixes.
    let rules = with_tile_aggregates(state.physical_optimizers());
    let mut state = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(session::runtime_env()?)
        .with_physical_optimizer_rules(rules)
        .with_physical_optimizer_rule(Arc::new(ShardSceneScans))
        .with_physical_optimizer_rule(Arc::new(crate::sinks::KeepSinkMetadata))
        .build();
    sceneql_udfs::register_all(&mut state as &mut dyn FunctionRegistry)?;
    Ok(state)
}

/// The functions an executor resolves plans with: Ballista's and sceneql's.
pub fn function_registry() -> Result<BallistaFunctionRegistry> {
    Ok(BallistaFunctionRegistry::from(&server_state(config())?))
}

fn client_state() -> SessionState {
    let runtime = session::runtime_env().unwrap_or_default();
    SessionStateBuilder::new()
        .with_config(config())
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_factory("SCENES".to_string(), Arc::new(SceneTableFactory))
        .build()
}

/// Parse `df://HOST:PORT` (the scheme may be omitted) into `(host, port)`.
pub fn parse_remote(url: &str) -> Result<(String, u16)> {
    parse_address(
        url,
        "--remote expects df://HOST:PORT (the scheduler's address, e.g. df://127.0.0.1:50050)",
    )
}

/// Parse `HOST:PORT`, with an optional `df://` or `http://` scheme; `usage`
/// says what was expected when it is not that.
pub(crate) fn parse_address(address: &str, usage: &str) -> Result<(String, u16)> {
    let bad = || DataFusionError::Configuration(format!("{usage}; got '{address}'"));
    let rest = address
        .strip_prefix("df://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Check that a scheduler answers at `host:port`, within [`CONNECT_TIMEOUT`].
async fn check_scheduler(host: &str, port: u16) -> Result<()> {
    let url = format!("http://{host}:{port}");
    let unreachable = |why: String| {
        DataFusionError::Execution(format!(
            "cannot reach a sceneql scheduler at df://{host}:{port} ({why}); \
             start one with `sceneql scheduler --bind {host}:{port}` or fix --remote"
        ))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, SchedulerGrpcClient::connect(url)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(error_chain(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Tell whoever started this server where it listens: one line,
/// `listening on ADDR`, written to stderr in one piece (`eprintln!` writes
/// its pieces one by one, so a reader could see half the line).
pub(crate) fn announce_listening(addr: impl std::fmt::Display) {
    use std::io::Write;
    let line = format!("listening on {addr}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// An error and its sources on one line (tonic's top-level messages are
/// just "transport error").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The task slots (vcores) of the executors registered with the scheduler
/// at `host:port`, from its REST API; `None` if it cannot be read.
pub async fn cluster_slots(host: &str, port: u16) -> Option<usize> {
    let executors = rest_get(host, port, "/api/executors").await?;
    let slots = executors
        .as_array()?
        .iter()
        .filter_map(|e| e["specification"]["vcores"].as_u64())
        .sum::<u64>();
    (slots > 0).then_some(slots as usize)
}

/// GET a JSON document from the scheduler's REST API (plain HTTP/1.0).
pub async fn rest_get(host: &str, port: u16, path: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then_some(())?;
        head.split_whitespace().nth(1).filter(|c| *c == "200")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fetch)
        .await
        .ok()
        .flatten()
}

/// A job the scheduler is running, as its REST API reports it.
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub id: String,
    pub stages: u64,
    pub completed_stages: u64,
    pub percent: u64,
}

/// The most recently started running job on the scheduler at `host:port`.
pub async fn running_job(host: &str, port: u16) -> Option<JobProgress> {
    let jobs = rest_get(host, port, "/api/jobs").await?;
    jobs.as_array()?
        .iter()
        .filter(|j| j["status"] == "Running")
        .max_by_key(|j| j["start_time"].as_u64().unwrap_or(0))
        .map(|j| JobProgress {
            id: j["job_id"].as_str().unwrap_or("?").to_string(),
            stages: j["num_stages"].as_u64().unwrap_or(0),
            completed_stages: j["completed_stages"].as_u64().unwrap_or(0),
            percent: j["percent_complete"].as_u64().unwrap_or(0),
        })
}

/// A client session whose queries run on the cluster at `url` (df://HOST:PORT).
pub async fn remote_context(url: &str) -> Result<SessionContext> {
    let (host, port) = parse_remote(url)?;
    check_scheduler(&host, port).await?;
    let mut state = client_state();
    // Enough scan partitions for every executor slot the cluster has now.
    if let Some(slots) = cluster_slots(&host, port).await {
        let options = state.config_mut().options_mut();
        options.execution.target_partitions = options.execution.target_partitions.max(slots);
    }
    let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await?;
    // Ballista replaces the state's function lists: register after.
    session::register(&ctx)?;
    Ok(ctx)
}

/// A client session on an in-process cluster: a scheduler and one executor
/// with `concurrency` task slots, talking gRPC on loopback, so plans go
/// through the same codecs as on a real cluster.
pub async fn standalone_context(concurrency: usize) -> Result<SessionContext> {
    let cfg = config();
    let concurrency = match concurrency {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let config_producer: ballista_core::ConfigProducer = Arc::new(config);
    let addr = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        Arc::new(server_state),
        config_producer.clone(),
        ballista_codec(),
    )
    .await
    .map_err(|e| {
        DataFusionError::Execution(format!("cannot start the in-process scheduler: {e}"))
    })?;
    let url = format!("http://localhost:{}", addr.port());
    let client = loop {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let runtime = session::runtime_env()?;
    ballista_executor::new_standalone_executor_from_builder(
        client,
        concurrency,
        config_producer,
        Arc::new(move |_| Ok(runtime.clone())),
        ballista_codec(),
        function_registry()?,
    )
    .await
    .map_err(|e| {
        DataFusionError::Execution(format!("cannot start the in-process executor: {e}"))
    })?;
    let state = SessionStateBuilder::new_from_existing(client_state())
        .with_config(cfg)
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://localhost:{}", addr.port()), state)
        .await?;
    session::register(&ctx)?;
    Ok(ctx)
}

/// Physical optimizer rule of a scheduler's sessions: give every scene scan
/// its partition tokens (see [`crate::scan::shard`]), so each task runs
/// only the scan partitions it was given.
#[derive(Debug, Default)]
pub struct ShardSceneScans;

impl PhysicalOptimizerRule for ShardSceneScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match node.downcast_ref::<SceneScanExec>() {
            Some(scan) if !scan.is_sharded() => Ok(Transformed::yes(
                Arc::new(scan.sharded()?) as Arc<dyn ExecutionPlan>
            )),
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "shard_scene_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
