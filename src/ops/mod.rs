//! Orchestration: each operation wires config, cluster, registry, plan and render together.
//! Commands (`crate::cli`) only turn flags into the options structs defined here.

pub mod apply;
pub mod drift;
pub mod import;
pub mod inspect;
pub mod plan;
pub mod planfile;
pub mod push;

/// Exit codes, one meaning each (docs/exit-codes.md).
pub mod exit {
    /// Success; with `--detailed-exitcode`, success and no changes.
    pub const OK: i32 = 0;
    /// An error: bad input, unreachable cluster or registry, refused write, failed check.
    pub const ERROR: i32 = 1;
    /// Success with changes present (only with `--detailed-exitcode`; `diff` and `drift` always).
    pub const CHANGES: i32 = 2;
}
