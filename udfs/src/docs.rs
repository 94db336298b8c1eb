//! Function reference generated from each function's `documentation()`.

/// (name, one-line description) of every function.
pub fn listing() -> Vec<(String, String)> {
    Vec::new()
}
