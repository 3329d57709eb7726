//! Renderers: draw a computed `Plan` for a terminal (human), for programs (json) and for a pull
//! request comment (markdown). They only draw and count; deciding anything is `crate::plan`'s job.

pub mod drift;
mod human;
mod json;
mod markdown;
#[cfg(test)]
mod testutil;

pub use human::human;
pub use json::{FORMAT_VERSION, json, json_value};
pub use markdown::{MARKDOWN_LIMIT, markdown};

use crate::model::{EnvPlan, Plan, Severity, Summary};
use std::fmt;
use std::str::FromStr;

/// An output format. `ValueEnum` so that `--format` lists the possible values in `--help`;
/// `FromStr` for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Markdown,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Human, Format::Json, Format::Markdown];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Markdown => "markdown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of `human`, `json`, `markdown`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected human, json or markdown")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// How to draw for a terminal. The caller decides colour (TTY, `NO_COLOR`, `--no-color`) so that
/// renderers stay pure and testable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

/// Draws `plan` in `format`; `style` only matters for `Format::Human`.
pub fn render(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Human => human(plan, style),
        Format::Json => json(plan),
        Format::Markdown => markdown(plan),
    }
}

// Wording shared by the human and markdown renderers, so that both say the same thing.

/// `1 to add, 0 to change, 2 to remove`.
fn counts(s: Summary) -> String {
    let mut out = format!(
        "{} to add, {} to change, {} to remove",
        s.add, s.change, s.remove
    );
    // Only when there is one, as Terraform counts imports: most plans never adopt.
    if s.adopt > 0 {
        out.push_str(&format!(", {} to adopt", s.adopt));
    }
    out
}

/// The closing line: `Plan: ...` unless nothing changes and nothing is wrong anywhere.
fn totals_line(plan: &Plan) -> String {
    let s = plan.summary();
    if s.is_empty() && !plan.has_errors() {
        "No changes.".to_string()
    } else {
        format!("Plan: {}.", counts(s))
    }
}

/// `3 environments planned, 1 with errors: staging.`, when any environment has errors.
fn errors_line(plan: &Plan) -> Option<String> {
    let failed: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| e.has_errors())
        .map(|e| e.env.as_str())
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(format!(
        "{} planned, {} with errors: {}.",
        plural(plan.envs.len(), "environment", "environments"),
        failed.len(),
        failed.join(", ")
    ))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How many checks of `severity` an environment has.
fn count_checks(env: &EnvPlan, severity: Severity) -> usize {
    env.checks.iter().filter(|c| c.severity == severity).count()
}

/// Whether an environment's target is known: an environment whose file did not load has none,
/// and its heading names only the environment (never `/statefulset/, container `).
fn target_known(t: &crate::model::Target) -> bool {
    t.manifest.is_some() || !(t.namespace.is_empty() && t.workload.name.is_empty())
}

/// `current context` or `context NAME`, as both text renderers print it.
fn context_text(t: &crate::model::Target) -> String {
    match (&t.manifest, &t.context) {
        (Some(m), _) => format!("manifest {}", m.display()),
        (None, Some(c)) => format!("context {c}"),
        (None, None) => "current context".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn format_parses_its_own_names_only() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        let err = "yaml".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format \"yaml\": expected human, json or markdown"
        );
        assert!("JSON".parse::<Format>().is_err());
        assert_eq!(Format::default(), Format::Human);
    }

    #[test]
    fn format_names_match_clap_values() {
        use clap::ValueEnum;
        for f in Format::ALL {
            let pv = f.to_possible_value().expect("no hidden variants");
            assert_eq!(pv.get_name(), f.as_str());
        }
        assert_eq!(Format::value_variants(), &Format::ALL);
    }

    #[test]
    fn render_dispatches() {
        let plan = rich_plan();
        let plain = Style { color: false };
        assert_eq!(render(&plan, Format::Human, plain), human(&plan, plain));
        assert_eq!(render(&plan, Format::Json, plain), json(&plan));
        assert_eq!(render(&plan, Format::Markdown, plain), markdown(&plan));
    }

    #[test]
    fn totals_and_errors_lines() {
        assert_eq!(totals_line(&Plan::default()), "No changes.");
        assert_eq!(errors_line(&Plan::default()), None);

        let quiet = Plan {
            envs: vec![no_change_env("dev")],
        };
        assert_eq!(totals_line(&quiet), "No changes.");

        let failed = Plan {
            envs: vec![no_change_env("dev"), error_env("staging", "boom")],
        };
        assert_eq!(
            totals_line(&failed),
            "Plan: 0 to add, 0 to change, 0 to remove."
        );
        assert_eq!(
            errors_line(&failed).as_deref(),
            Some("2 environments planned, 1 with errors: staging.")
        );

        let one = Plan {
            envs: vec![error_env("staging", "boom")],
        };
        assert_eq!(
            errors_line(&one).as_deref(),
            Some("1 environment planned, 1 with errors: staging.")
        );

        assert_eq!(
            totals_line(&rich_plan()),
            "Plan: 1 to add, 2 to change, 1 to remove."
        );
    }
}
