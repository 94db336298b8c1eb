//! The `sceneql` command line: run SQL (`-c`, `-f`, or an interactive REPL),
//! write the last result as a table, CSV, NDJSON or Parquet, and the helper
//! subcommands (`gen-sample`, `functions`). Progress, timings and logs go to
//! stderr; results go to stdout or `--output`.

pub mod output;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};

use crate::run::{self, Output};
use crate::{distributed, progress, sample, session};

/// The scheduler (host, port) when running with `--remote`, for progress.
static REMOTE: std::sync::OnceLock<(String, u16)> = std::sync::OnceLock::new();

#[derive(Parser, Debug)]
#[command(
    name = "sceneql",
    version,
    about = "SQL over satellite scene archives",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// SQL to run (one or more `;`-separated statements); may repeat.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// SQL file to run; may repeat.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set `${key}` in the SQL text.
    #[arg(short = 'D', long = "define", value_name = "KEY=VALUE", value_parser = parse_define)]
    pub defines: Vec<(String, String)>,
    /// Format of the last statement's result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the last statement's result here instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// No timings or progress on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// More logging on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write a Chrome trace (chrome://tracing, Perfetto) of statements, scan
    /// blocks, band decodes and batch building to PATH.
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Run on a Ballista cluster: the scheduler's address, df://HOST:PORT.
    /// Archives and COPY targets must be at the same paths on every node.
    #[arg(long, value_name = "URL", conflicts_with = "standalone")]
    pub remote: Option<String>,
    /// Run on an in-process Ballista cluster (a scheduler and one executor).
    #[arg(long)]
    pub standalone: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The `-c` and `-f` arguments in the order given ([`Cli::parse_args`]);
    /// when empty, `commands` then `files`.
    #[arg(skip)]
    pub scripts: Vec<Script>,
}

/// One `-c` or `-f` argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    Command(String),
    File(PathBuf),
}

impl Cli {
    /// The process's arguments, with the `-c` and `-f` arguments kept in
    /// the order given (they run in that order).
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let mut cli = match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
        let indexed = |id: &str| -> Vec<usize> {
            matches
                .indices_of(id)
                .map(|i| i.collect())
                .unwrap_or_default()
        };
        let mut scripts: Vec<(usize, Script)> = indexed("commands")
            .into_iter()
            .zip(cli.commands.iter().cloned().map(Script::Command))
            .chain(
                indexed("files")
                    .into_iter()
                    .zip(cli.files.iter().cloned().map(Script::File)),
            )
            .collect();
        scripts.sort_by_key(|(i, _)| *i);
        cli.scripts = scripts.into_iter().map(|(_, s)| s).collect();
        cli
    }

    /// The `-c` and `-f` arguments in the order they run.
    fn scripts_in_order(&self) -> Vec<Script> {
        if !self.scripts.is_empty() {
            return self.scripts.clone();
        }
        self.commands
            .iter()
            .cloned()
            .map(Script::Command)
            .chain(self.files.iter().cloned().map(Script::File))
            .collect()
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a synthetic Landsat-C2-style archive with a planted trend.
    GenSample {
        /// Folder to write (created if missing).
        dir: PathBuf,
        #[arg(long, default_value_t = 512)]
        size: usize,
        #[arg(long, default_value_t = 24)]
        dates: usize,
        #[arg(long, default_value_t = 256)]
        tile: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write into a folder that is not empty (files of the same names
        /// are replaced).
        #[arg(long)]
        force: bool,
    },
    /// List sceneql's SQL functions with their one-line docs.
    Functions,
    /// Run a Ballista scheduler with sceneql's functions and scene tables
    /// (REST API on the same port: /api/state, /api/jobs).
    Scheduler {
        /// Address to listen on (gRPC and REST).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
        /// Seconds without a heartbeat before an executor counts as dead.
        #[arg(long, value_name = "SECS", default_value_t = 180)]
        executor_timeout: u64,
    },
    /// Run a Ballista executor for a sceneql scheduler.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Arrow Flight address (results and shuffle data); port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: SocketAddr,
        /// gRPC address; default: a free port on the --bind host.
        #[arg(long, value_name = "HOST:PORT")]
        grpc_bind: Option<SocketAddr>,
        /// Host name others reach this executor by (default: the --bind host,
        /// or this machine's name when binding 0.0.0.0).
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Concurrent tasks (default: one per core).
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
        /// Folder for shuffle files (default: a temporary one, removed on exit).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Seconds to keep retrying a scheduler that is not up.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        scheduler_timeout: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Ndjson,
    Parquet,
}

fn parse_define(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// Run the CLI; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    // The trace file is complete when the guard drops, after the run.
    let _trace = init_logging(cli.verbose, cli.trace.as_deref());
    crate::raster::log_gdal_messages();
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", run::user_message(&e));
            1
        }
    }
}

fn init_logging(
    verbose: u8,
    trace: Option<&std::path::Path>,
) -> Option<tracing_chrome::FlushGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let default = match verbose {
        0 => "warn",
        1 => "warn,sceneql=info",
        _ => "info,sceneql=debug",
    };
    let filter = EnvFilter::try_from_env("SCENEQL_LOG").unwrap_or_else(|_| default.into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    let (chrome, guard) = match trace {
        Some(path) => {
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .file(path)
                .include_args(true)
                .build();
            let spans =
                tracing_subscriber::filter::filter_fn(|m| m.target().starts_with("sceneql"));
            (Some(layer.with_filter(spans)), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(chrome)
        .try_init();
    guard
}

async fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Some(Command::GenSample {
            dir,
            size,
            dates,
            tile,
            seed,
            force,
        }) => {
            let spec = sample::SampleSpec {
                size: *size,
                dates: *dates,
                tile: *tile,
                seed: *seed,
            };
            sample::check(dir, &spec, *force)?;
            let target = dir.clone();
            let scenes = tokio::task::spawn_blocking(move || sample::generate(&target, &spec))
                .await
                .map_err(|e| DataFusionError::Execution(e.to_string()))??;
            eprintln!(
                "wrote {} scenes ({size}x{size} px, {dates} dates) to {}",
                scenes.len(),
                dir.display()
            );
            return Ok(());
        }
        Some(Command::Functions) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for (name, doc) in sceneql_udfs::docs::listing() {
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(out, "{name:<24} {doc}").is_err() {
                    break;
                }
            }
            return Ok(());
        }
        Some(Command::Scheduler {
            bind,
            executor_timeout,
        }) => {
            return distributed::scheduler::run(distributed::scheduler::SchedulerOptions {
                bind: *bind,
                executor_timeout: *executor_timeout,
            })
            .await;
        }
        Some(Command::Executor {
            scheduler,
            bind,
            grpc_bind,
            external_host,
            concurrency,
            work_dir,
            scheduler_timeout,
        }) => {
            return distributed::executor::run(distributed::executor::ExecutorOptions {
                scheduler: scheduler.clone(),
                bind: *bind,
                grpc_bind: *grpc_bind,
                external_host: external_host.clone(),
                concurrency: *concurrency,
                work_dir: work_dir.clone(),
                scheduler_timeout: *scheduler_timeout,
            })
            .await;
        }
        None => {}
    }
    if cli.format == Format::Parquet && cli.output.is_none() {
        return Err(DataFusionError::Plan(
            "--format parquet needs --output PATH".into(),
        ));
    }
    let vars: HashMap<String, String> = cli.defines.iter().cloned().collect();
    let ctx = match (&cli.remote, cli.standalone) {
        (Some(url), _) => {
            let ctx = distributed::remote_context(url).await?;
            let _ = REMOTE.set(distributed::parse_remote(url)?);
            ctx
        }
        (None, true) => distributed::standalone_context(0).await?,
        (None, false) => session::local_context()?,
    };
    let mut scripts: Vec<String> = Vec::new();
    for script in cli.scripts_in_order() {
        scripts.push(match script {
            Script::Command(sql) => sql,
            Script::File(f) => std::fs::read_to_string(&f).map_err(|e| {
                DataFusionError::Execution(format!("cannot read {}: {e}", f.display()))
            })?,
        });
    }
    if scripts.is_empty() {
        return repl(&ctx, &vars, &cli).await;
    }
    // All statements of all scripts, run in order in one session.
    let mut statements = Vec::new();
    for s in &scripts {
        statements.extend(run::parse(&run::expand_variables(s, &vars)?)?);
    }
    let n = statements.len();
    for (i, st) in statements.into_iter().enumerate() {
        let out = run_with_progress(&ctx, st, cli.quiet).await?;
        let last = i + 1 == n;
        emit(
            &out,
            if last { cli.format } else { Format::Table },
            if last { cli.output.as_deref() } else { None },
        )?;
    }
    Ok(())
}

async fn run_with_progress(
    ctx: &SessionContext,
    st: datafusion::sql::parser::Statement,
    quiet: bool,
) -> Result<Output> {
    progress::reset();
    let start = Instant::now();
    let remote = REMOTE.get().cloned();
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(0);
        let template = match remote {
            // On a cluster the blocks are counted on the executors: show the
            // scheduler's view of the running job instead.
            Some(_) => "{spinner} {msg} [{bar:30}] {pos}% {elapsed}",
            None => "{spinner} blocks {pos}/{len} [{bar:30}] {elapsed}",
        };
        b.set_style(ProgressStyle::with_template(template).expect("valid template"));
        b
    });
    let ticker = bar.clone().map(|b| {
        tokio::spawn(async move {
            loop {
                match &remote {
                    Some((host, port)) => {
                        if let Some(job) = distributed::running_job(host, *port).await {
                            b.set_length(100);
                            b.set_message(format!(
                                "job {} stages {}/{}",
                                job.id, job.completed_stages, job.stages
                            ));
                            b.set_position(job.percent);
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => {
                        // Nothing is drawn until there are blocks to count.
                        let (done, total) = progress::get();
                        if total > 0 {
                            b.set_length(total as u64);
                            b.set_position(done as u64);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    });
    let span = tracing::info_span!("statement", sql = %st);
    let result = tracing::Instrument::instrument(run::run_statement(ctx, st), span).await;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let out = result?;
    if !quiet {
        match &out.written {
            Some(path) => eprintln!(
                "wrote {} to {path} in {:.2}s",
                count_written(&out),
                start.elapsed().as_secs_f64()
            ),
            // Statements without a result (CREATE, SET, DROP) say nothing.
            None if out.schema.fields().is_empty() => {}
            None => eprintln!(
                "{} rows in {:.2}s",
                out.rows(),
                start.elapsed().as_secs_f64()
            ),
        }
    }
    Ok(out)
}

fn count_written(out: &Output) -> String {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    let n: u64 = out
        .batches
        .iter()
        .filter_map(|b| {
            b.columns().first().and_then(|c| {
                c.as_primitive_opt::<UInt64Type>()
                    .map(|a| a.iter().flatten().sum::<u64>())
            })
        })
        .sum();
    format!("{n} rows")
}

fn emit(out: &Output, format: Format, path: Option<&std::path::Path>) -> Result<()> {
    if out.written.is_some() && path.is_none() {
        return Ok(());
    }
    if format == Format::Table
        && path.is_none()
        && out.batches.iter().all(|b| b.num_rows() == 0)
        && out.schema.fields().is_empty()
    {
        return Ok(());
    }
    output::write(out, format, path)
}

async fn repl(ctx: &SessionContext, vars: &HashMap<String, String>, cli: &Cli) -> Result<()> {
    use rustyline::error::ReadlineError;
    if !std::io::stdin().is_terminal() {
        // Piped input: run it as a script.
        let mut sql = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut sql)
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        for st in run::parse(&run::expand_variables(&sql, vars)?)? {
            let out = run_with_progress(ctx, st, cli.quiet).await?;
            emit(&out, Format::Table, None)?;
        }
        return Ok(());
    }
    let mut rl =
        rustyline::DefaultEditor::new().map_err(|e| DataFusionError::Execution(e.to_string()))?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".sceneql_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    eprintln!(
        "sceneql {} — end statements with ';', \\q to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "sceneql> "
        } else {
            "      -> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let command = line.trim();
                if command == "\\q" || (buffer.is_empty() && matches!(command, "quit" | "exit")) {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = rl.add_history_entry(buffer.trim());
                let sql = std::mem::take(&mut buffer);
                let result = async {
                    for st in run::parse(&run::expand_variables(&sql, vars)?)? {
                        let out = run_with_progress(ctx, st, cli.quiet).await?;
                        emit(&out, Format::Table, None)?;
                    }
                    Ok::<_, DataFusionError>(())
                }
                .await;
                if let Err(e) = result {
                    eprintln!("error: {}", run::user_message(&e));
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(DataFusionError::Execution(e.to_string())),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}
