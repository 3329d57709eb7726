//! Artifacts: building OCI images of Perses resources, reading them safely from registries and
//! layouts, and diffing their content (the Perses side, decoding and lint, is `crate::perses`).

pub mod build;
pub mod diff;
pub mod layout;
pub mod read;
pub mod scan;
pub mod source;
pub mod stamp;
