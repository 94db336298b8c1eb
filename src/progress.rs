//! Process-wide scan progress (blocks done / total), read by the CLI's
//! progress bar. Scans add their blocks when a partition starts and count
//! each block read.

use std::sync::atomic::{AtomicUsize, Ordering};

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);

pub fn add_total(n: usize) {
    TOTAL.fetch_add(n, Ordering::Relaxed);
}

pub fn add_done(n: usize) {
    DONE.fetch_add(n, Ordering::Relaxed);
}

/// (done, total) since the last reset.
pub fn get() -> (usize, usize) {
    (DONE.load(Ordering::Relaxed), TOTAL.load(Ordering::Relaxed))
}

pub fn reset() {
    TOTAL.store(0, Ordering::Relaxed);
    DONE.store(0, Ordering::Relaxed);
}
