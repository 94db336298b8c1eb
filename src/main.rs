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
    let cli = sceneql::cli::Cli::parse_args();
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
    exit_now(code)
}

/// End the process once the run is over, without the exit-time teardown:
/// the C libraries' destructors (GDAL's and PROJ's caches, SQLite
/// connections to PROJ's database), the allocator's own final clean-up
/// (which hands every page back with `madvise` before the kernel frees them
/// all again) and the worker threads' unwinding. They only free memory the
/// kernel reclaims anyway; skipping them shortens the time from the last
/// output to the process's end from 18-26 ms to 13-21 ms, on one core at
/// the end of every run (BENCHMARKS.md). By now everything the run writes
/// is complete: COPY outputs are closed and renamed into place, and the
/// trace file and progress display were finished when `cli::main`
/// returned; what is still buffered for standard output and error is
/// flushed here.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: fflush(NULL) flushes every C stdio stream (GDAL may print
    // through them); _exit then ends the process with `code`. Neither
    // touches Rust state, and nothing runs after _exit.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(code)
    }
}
