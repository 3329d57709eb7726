//! What goes wrong while reading a project: positioned diagnostics for file contents, and the
//! error type every public function of `config` returns.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file, positioned so that editors and humans can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the caller named it (not canonicalised), so messages match what was typed.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, counted in characters.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `artifact[0].mount_path`; empty when the problem
    /// is not tied to a key (TOML syntax, the file name).
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a project or an environment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found in a file, not just the first: fixing them one run at a time is slow.
    #[error("{}", lines(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
    #[error(
        "no environment named {name} in {} (known: {})",
        dir.join("environments").display(),
        known.join(", ")
    )]
    UnknownEnvironment {
        name: String,
        dir: PathBuf,
        known: Vec<String>,
    },
    #[error(
        "no environments in {}: create {} with a [target] and an [artifact] table",
        dir.join("environments").display(),
        dir.join("environments").join("NAME.toml").display()
    )]
    NoEnvironments { dir: PathBuf },
    #[error("name environments with --env NAME or use --all (known: {})", known.join(", "))]
    NoSelection { known: Vec<String> },
}

/// Diagnostics shown at most; a generated or hostile file can hold millions of mistakes.
const SHOWN: usize = 100;

fn lines(diagnostics: &[Diagnostic]) -> String {
    let mut out: Vec<String> = diagnostics
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    if diagnostics.len() > SHOWN {
        out.push(format!(
            "... and {} more problems in this file",
            diagnostics.len() - SHOWN
        ));
    }
    out.join("\n")
}
