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
pub mod plan;
pub mod registry;
pub mod render;
pub mod retry;

/// Lint and content diffs build and drop millions of small JSON values; glibc's malloc spent
/// about a third of lint's time in allocation and free (perf, 20,000 dashboards), mimalloc a
/// fraction of that.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
