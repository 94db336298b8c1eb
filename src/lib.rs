//! sceneql
