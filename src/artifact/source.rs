//! Where an artifact's files come from: a directory, a registry reference, or an OCI image
//! layout (`oci:PATH:TAG`). `artifact::scan` reads every kind the same way.

use super::layout::LayoutRef;
use std::path::{Path, PathBuf};

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Layout(LayoutRef),
    Registry(String),
}

impl Source {
    /// `oci:PATH:TAG` is a layout, an existing directory is a directory, anything else a
    /// registry reference.
    pub fn parse(s: &str) -> Result<Source, String> {
        if let Some(l) = LayoutRef::parse(s) {
            return l.map(Source::Layout).map_err(|e| e.to_string());
        }
        if Path::new(s).is_dir() {
            return Ok(Source::Dir(PathBuf::from(s)));
        }
        Ok(Source::Registry(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert!(matches!(
            Source::parse("oci:some/dir:v1"),
            Ok(Source::Layout(_))
        ));
        assert!(matches!(Source::parse("."), Ok(Source::Dir(_))));
        assert_eq!(
            Source::parse("reg.example/x:v1"),
            Ok(Source::Registry("reg.example/x:v1".into()))
        );
    }
}
