//! `sceneql scheduler`: Ballista's scheduler with sceneql's codecs and SQL
//! functions, its REST API (`/api/state`, `/api/jobs`, ...) on the same port.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::error::{DataFusionError, Result};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::codec::{SceneLogicalCodec, ScenePhysicalCodec};
use super::executor::HEARTBEAT_SECS;
use super::{config, server_state};

/// The shortest executor timeout that survives a late heartbeat or two.
pub const MIN_EXECUTOR_TIMEOUT: u64 = 3 * HEARTBEAT_SECS;

/// Options of `sceneql scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor is considered dead.
    pub executor_timeout: u64,
}

fn ballista_err(
    what: &str,
) -> impl Fn(ballista_core::error::BallistaError) -> DataFusionError + '_ {
    move |e| DataFusionError::Execution(format!("{what}: {e}"))
}

/// Run a scheduler until SIGINT/SIGTERM.
pub async fn run(opts: SchedulerOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot listen on {}: {e}; choose another --bind address or port",
                opts.bind
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| DataFusionError::Execution(e.to_string()))?;
    let timeout = opts.executor_timeout;
    if timeout < MIN_EXECUTOR_TIMEOUT {
        return Err(DataFusionError::Configuration(format!(
            "--executor-timeout must be at least {MIN_EXECUTOR_TIMEOUT} s (executors send a \
             heartbeat every {HEARTBEAT_SECS} s); got {timeout}"
        )));
    }
    let scheduler_config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        executor_timeout_seconds: timeout,
        expire_dead_executor_interval_seconds: (timeout / 2).clamp(1, 15),
        no_executors_grace_period_seconds: timeout,
        // One scan partition per task, spread over the executors.
        task_distribution: TaskDistributionPolicy::RoundRobin,
        override_config_producer: Some(Arc::new(config)),
        override_session_builder: Some(Arc::new(server_state)),
        override_logical_codec: Some(Arc::new(SceneLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(ScenePhysicalCodec::default())),
        ..SchedulerConfig::default()
    };
    scheduler_config
        .validate()
        .map_err(ballista_err("invalid scheduler settings"))?;
    let config_producer = scheduler_config
        .override_config_producer
        .clone()
        .unwrap_or_else(|| Arc::new(config));
    let cluster =
        BallistaCluster::new_memory(addr.to_string(), Arc::new(server_state), config_producer);
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(scheduler_config))
            .await
            .map_err(ballista_err("cannot start the scheduler"))?;
    super::announce_listening(addr);
    tokio::select! {
        r = start_grpc_service_with_listener(listener, scheduler) => {
            r.map_err(ballista_err("the scheduler stopped"))
        }
        s = super::executor::shutdown_signal() => {
            tracing::info!("scheduler stopping on {s}");
            Ok(())
        }
    }
}
