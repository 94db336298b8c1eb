//! `sceneql executor`: Ballista's executor with sceneql's codecs and SQL
//! functions. It waits for its scheduler (retrying, one log line per try,
//! until `--scheduler-timeout`), serves task results over Arrow Flight on
//! `--bind`, and stops cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::error::{DataFusionError, Result};

use super::codec::{SceneLogicalCodec, ScenePhysicalCodec};
use super::{config, error_chain, function_registry, parse_address};

/// Seconds between heartbeats to the scheduler; a scheduler's
/// `--executor-timeout` must be well above it.
pub const HEARTBEAT_SECS: u64 = 3;

/// Options of `sceneql executor`.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// The Arrow Flight address (port 0: any free port).
    pub bind: SocketAddr,
    /// The gRPC address; default: any free port on the `--bind` host.
    pub grpc_bind: Option<SocketAddr>,
    /// The host name the scheduler and other executors reach this one by.
    pub external_host: Option<String>,
    /// Task slots (0: one per core).
    pub concurrency: usize,
    /// Where shuffle files go; default: a fresh folder under the temp dir,
    /// removed on exit.
    pub work_dir: Option<PathBuf>,
    /// Seconds to keep retrying an unreachable scheduler.
    pub scheduler_timeout: u64,
}

/// Resolves when the process gets SIGINT or SIGTERM; says which.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// A free TCP port on `ip`.
fn free_port(ip: std::net::IpAddr) -> Result<u16> {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DataFusionError::Execution(format!("cannot find a free port on {ip}: {e}")))
}

/// Wait until a scheduler answers at `host:port`, logging each failed try.
async fn wait_for_scheduler(host: &str, port: u16, timeout: Duration) -> Result<()> {
    let url = format!("http://{host}:{port}");
    let start = Instant::now();
    let mut attempt = 1u32;
    loop {
        let try_once = tokio::time::timeout(
            Duration::from_secs(2),
            SchedulerGrpcClient::connect(url.clone()),
        )
        .await;
        let why = match try_once {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => error_chain(&e),
            Err(_) => "no answer within 2s".to_string(),
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(DataFusionError::Execution(format!(
                "no scheduler at {host}:{port} after {}s ({why}); start `sceneql scheduler` \
                 there or fix --scheduler (--scheduler-timeout sets how long to wait)",
                timeout.as_secs()
            )));
        }
        tracing::warn!(
            "scheduler at {host}:{port} is not reachable ({why}); retrying (try {attempt}, \
             {}s left)",
            (timeout - waited).as_secs()
        );
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The host to advertise: explicit, else the bind address, else (binding
/// every interface) this machine's host name.
fn advertised_host(opts: &ExecutorOptions) -> String {
    if let Some(h) = &opts.external_host {
        return h.clone();
    }
    if !opts.bind.ip().is_unspecified() {
        return opts.bind.ip().to_string();
    }
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Run an executor until SIGINT/SIGTERM (or until its scheduler stays
/// unreachable for `scheduler_timeout` seconds).
pub async fn run(opts: ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = parse_address(
        &opts.scheduler,
        "--scheduler expects HOST:PORT (e.g. 127.0.0.1:50050)",
    )?;
    let ip = opts.bind.ip();
    let port = match opts.bind.port() {
        0 => free_port(ip)?,
        p => p,
    };
    let grpc = match opts.grpc_bind {
        Some(a) if a.port() != 0 => a,
        Some(a) => SocketAddr::new(a.ip(), free_port(a.ip())?),
        None => SocketAddr::new(ip, free_port(ip)?),
    };
    // A fresh work dir unless one was given; removed when we return.
    let (work_dir, _owned) = match &opts.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| {
                DataFusionError::Execution(format!("cannot create --work-dir {}: {e}", d.display()))
            })?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("sceneql-executor-")
                .tempdir()
                .map_err(|e| DataFusionError::Execution(format!("cannot make a work dir: {e}")))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    wait_for_scheduler(
        &scheduler_host,
        scheduler_port,
        Duration::from_secs(opts.scheduler_timeout),
    )
    .await?;
    let work_dir_for_spills = work_dir.clone();
    let process = ExecutorProcessConfig {
        bind_host: ip.to_string(),
        external_host: Some(advertised_host(&opts)),
        port,
        grpc_port: grpc.port(),
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 0,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECS,
        vcores: opts.concurrency,
        work_dir: Some(work_dir.to_string_lossy().to_string()),
        override_config_producer: Some(Arc::new(config)),
        override_logical_codec: Some(Arc::new(SceneLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(ScenePhysicalCodec::default())),
        override_function_registry: Some(Arc::new(function_registry()?)),
        override_runtime_producer: Some(Arc::new(move |_| {
            Ok(Arc::new(
                datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                    .with_temp_file_path(work_dir_for_spills.clone())
                    .with_object_store_registry(Arc::new(crate::session::Stores::default()))
                    .build()?,
            ))
        })),
        ..ExecutorProcessConfig::default()
    };
    let flight = SocketAddr::new(ip, port);
    let ready = tokio::spawn(async move {
        let probe = if flight.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), flight.port())
        } else {
            flight
        };
        while tokio::net::TcpStream::connect(probe).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        super::announce_listening(flight);
    });
    let result = start_executor_process(Arc::new(process)).await;
    ready.abort();
    result.map_err(|e| DataFusionError::Execution(format!("the executor stopped: {e}")))
}
