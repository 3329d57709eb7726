//! perses-oci: a declarative reconciler for Perses resources shipped as OCI image volumes.
//!
//! Layers, as in OpenTofu and ripgrep: a plain data model (`model`), code that computes it
//! (`config`, `plan`) or talks to the outside (`cluster`, `registry`), renderers that only draw
//! (`render`), and orchestration (`ops`) that the command line (`cli`) calls.

pub mod artifact;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod manifest;
pub mod model;
pub mod ops;
pub mod perses;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod render;
pub mod retry;
