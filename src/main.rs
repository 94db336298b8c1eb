use clap::Parser;

// mimalloc: scan blocks and batches are many short-lived, equally sized
// buffers freed on other threads than they were allocated on; glibc's
// per-thread arenas kept that memory (peak RSS grew with the pixel count).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process: the scan's and the
/// aggregation's buffers are freed and reallocated block after block, and
/// with THP every fresh 2 MB region was zeroed whole by the kernel (15% of
/// the CPU time of a run; without: less system time and about 35-50 MB less
/// peak memory, see BENCHMARKS.md). Only this process is affected.
#[cfg(target_os = "linux")]
extern "C" fn disable_transparent_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and
    // changes a flag of this process; its result is ignored (THP then just
    // stays as the system has it).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Runs [`disable_transparent_huge_pages`] as the program is loaded, before
/// the Rust runtime's first allocation: mimalloc reserves its first arena
/// there, and with THP still on the kernel zeroed a whole 2 MB huge page for
/// it (about 5 ms of every run's start, on one core while the other waits).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static DISABLE_THP_AT_LOAD: extern "C" fn() = disable_transparent_huge_pages;

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
