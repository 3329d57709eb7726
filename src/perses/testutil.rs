//! Helpers of the unit tests of the Perses module: lint a few files given as text.

use super::*;

pub fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .collect()
}

pub fn lint(list: &[(&str, &str)], known: &[&str]) -> Report {
    let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    lint_files(&files(list), &known)
}

pub fn file<'a>(r: &'a Report, path: &str) -> &'a FileReport {
    r.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no report for {path}: {r:#?}"))
}

pub fn errors(f: &FileReport) -> Vec<&str> {
    f.problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.message.as_str())
        .collect()
}

pub fn warnings(f: &FileReport) -> Vec<&str> {
    f.problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| p.message.as_str())
        .collect()
}

pub fn dashboard(project: &str, name: &str) -> String {
    format!(
        r#"{{"kind":"Dashboard","metadata":{{"name":"{name}","project":"{project}"}},"spec":{{"duration":"1h"}}}}"#
    )
}

pub const PROJECT_P: &str = r#"{"kind":"Project","metadata":{"name":"p"},"spec":{}}"#;
