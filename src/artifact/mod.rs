//! Artifacts: the Perses resources inside an OCI image (lint, and later build and diff).

pub mod lint;
pub mod build;
pub mod layout;
pub mod read;
pub mod diff;
