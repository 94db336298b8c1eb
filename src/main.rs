use clap::Parser;

// mimalloc: scan blocks and batches are many short-lived, equally sized
// buffers freed on other threads than they were allocated on; glibc's
// per-thread arenas kept that memory (peak RSS grew with the pixel count).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = sceneql::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = runtime.block_on(sceneql::cli::main(cli));
    std::process::exit(code);
}
