//! Artifacts: the Perses resources inside an OCI image (lint, and later build and diff).

pub mod build;
pub mod diff;
pub mod layout;
pub mod lint;
pub mod read;
pub mod scan;
pub mod source;
pub mod stamp;
