//! Artifacts: the Perses resources inside an OCI image (lint, and later build and diff).

pub mod lint;
