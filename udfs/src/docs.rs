//! Function reference generated from each function's `documentation()`:
//! the CLI listing (`sceneql functions`) and `docs/functions.md` both come
//! from here, so docs cannot drift from the code.
