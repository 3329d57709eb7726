//! The Terraform-like text plan for a terminal: one block per change, totals at the end.

use super::{Style, context_text, counts, errors_line, target_known, totals_line};
use crate::model::{
    Action, ArtifactState, Change, Check, ContentChange, ContentDiff, EnvPlan, Plan, Severity,
    Summary,
};

/// Field names are padded to the longest one so that the `=` line up.
const FIELDS: [&str; 4] = ["reference", "pull_policy", "mount_path", "sub_path"];
const FIELD_WIDTH: usize = 11;

/// ANSI SGR codes, applied only when colour is on so that plain output has no escape byte.
struct Paint {
    color: bool,
}

impl Paint {
    fn wrap(&self, sgr: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn symbol(&self, action: Action) -> String {
        let sgr = match action {
            Action::Add => "32",
            Action::Update => "33",
            Action::Remove => "31",
            Action::Adopt => "36",
        };
        self.wrap(sgr, &action.symbol().to_string())
    }
    /// A whole line in the colour of an action (diff lines).
    fn symbol_text(&self, action: Action, s: &str) -> String {
        let sgr = match action {
            Action::Add => "32",
            Action::Update => "33",
            Action::Remove => "31",
            Action::Adopt => "36",
        };
        self.wrap(sgr, s)
    }
    fn severity(&self, severity: Severity) -> String {
        match severity {
            Severity::Error => self.wrap("1;31", "Error:"),
            Severity::Warning => self.wrap("1;33", "Warning:"),
        }
    }
}

/// The plan as text; `style.color` adds ANSI colours.
pub fn human(plan: &Plan, style: Style) -> String {
    let p = Paint { color: style.color };
    let several = plan.envs.len() > 1;
    // Paragraphs are separated by one blank line.
    let mut paragraphs = Vec::new();
    for env in &plan.envs {
        env_paragraphs(env, several, &p, &mut paragraphs);
    }
    let mut closing = Vec::new();
    if let Some(line) = errors_line(plan) {
        closing.push(clean(&line));
    }
    let totals = totals_line(plan);
    closing.push(match totals.strip_prefix("Plan:") {
        Some(rest) => format!("{}{rest}", p.bold("Plan:")),
        None => p.bold(&totals),
    });
    paragraphs.push(closing.join("\n"));
    let mut out = paragraphs.join("\n\n");
    out.push('\n');
    out
}

fn env_paragraphs(env: &EnvPlan, several: bool, p: &Paint, out: &mut Vec<String>) {
    let t = &env.target;
    let heading = if target_known(t) {
        format!(
            "Environment {} ({}, {}/{}, container {})",
            env.env,
            context_text(t),
            t.namespace,
            t.workload,
            t.container
        )
    } else {
        format!("Environment {}", env.env)
    };
    out.push(p.bold(&clean(&heading)));
    if let Some(err) = &env.error {
        out.push(check_line(
            p,
            &Check {
                severity: Severity::Error,
                code: String::new(),
                message: err.message.clone(),
            },
        ));
        return;
    }
    if env.changes.is_empty() {
        out.push("  No changes. The workload matches the configuration.".to_string());
    }
    for change in &env.changes {
        out.push(change_block(change, p));
    }
    if !env.checks.is_empty() {
        let lines: Vec<String> = env.checks.iter().map(|c| check_line(p, c)).collect();
        out.push(lines.join("\n"));
    }
    if several && !env.changes.is_empty() {
        out.push(clean(&format!(
            "  {}: {}.",
            env.env,
            counts(Summary::of(&env.changes))
        )));
    }
}

fn check_line(p: &Paint, check: &Check) -> String {
    let label = match check.severity {
        Severity::Error => "Error:",
        Severity::Warning => "Warning:",
    };
    // Continuation lines of a multi-line message align under its first line.
    let indent = 2 + label.len() + 1;
    format!(
        "  {} {}",
        p.severity(check.severity),
        hang(&check.message, indent)
    )
}

fn change_block(change: &Change, p: &Paint) -> String {
    let verb = match change.action {
        Action::Add => "added",
        Action::Update => "updated",
        Action::Remove => "removed",
        Action::Adopt => "adopted",
    };
    let reasons: Vec<String> = change.reasons.iter().map(|r| r.to_string()).collect();
    let mut comment = format!("# artifact {:?} will be {verb}", change.artifact);
    if !reasons.is_empty() {
        comment.push_str(": ");
        comment.push_str(&reasons.join("; "));
    }
    let mut lines = vec![format!("  {}", p.bold(&clean(&comment)))];
    if !change.conflicts_with.is_empty() {
        let owners: Vec<String> = change
            .conflicts_with
            .iter()
            .map(|o| format!("{o:?}"))
            .collect();
        lines.push(format!(
            "  {}",
            p.bold(&format!(
                "# fields owned by {}: apply needs --force-conflicts",
                owners.join(", ")
            ))
        ));
    }
    lines.push(format!(
        "  {} artifact {:?} {{",
        p.symbol(change.action),
        change.artifact
    ));
    let before = values(change.before.as_ref());
    let after = values(change.after.as_ref());
    for (i, name) in FIELDS.iter().enumerate() {
        let field = format!("{name:<FIELD_WIDTH$}");
        lines.push(match change.action {
            Action::Add => format!("      {} {field} = {}", p.symbol(Action::Add), after[i]),
            Action::Remove => format!("      {} {field} = {}", p.symbol(Action::Remove), before[i]),
            Action::Update | Action::Adopt if before[i] == after[i] => {
                format!("        {field} = {}", after[i])
            }
            Action::Update | Action::Adopt => format!(
                "      {} {field} = {} -> {}",
                p.symbol(Action::Update),
                before[i],
                after[i]
            ),
        });
    }
    lines.push("    }".to_string());
    if let Some(content) = &change.content {
        lines.extend(content_lines(content, p));
    }
    lines.join("\n")
}

/// What changes inside the artifact: a summary, one line per resource, and the unified diff of
/// each changed one (`-`/`+` coloured on a terminal).
fn content_lines(content: &ContentDiff, p: &Paint) -> Vec<String> {
    let mut lines = vec![format!("    Content: {}", content.summary())];
    for c in &content.changes {
        let (sym, action) = match c.change {
            ContentChange::Added => (Action::Add, "added"),
            ContentChange::Removed => (Action::Remove, "removed"),
            ContentChange::Changed => (Action::Update, "changed"),
        };
        lines.push(format!(
            "      {} {} ({action}, {})",
            p.symbol(sym),
            clean(&c.key()),
            clean(&c.path)
        ));
        for l in c.diff.lines() {
            let shown = if l.starts_with('+') && !l.starts_with("+++") {
                p.symbol_text(Action::Add, &clean(l))
            } else if l.starts_with('-') && !l.starts_with("---") {
                p.symbol_text(Action::Remove, &clean(l))
            } else {
                clean(l)
            };
            lines.push(format!("          {shown}"));
        }
    }
    lines
}

/// The four managed fields, quoted (Debug escapes control characters) or `(none)`.
fn values(state: Option<&ArtifactState>) -> [String; 4] {
    let quote = |v: Option<&String>| match v {
        Some(s) => format!("{s:?}"),
        None => "(none)".to_string(),
    };
    match state {
        Some(s) => [
            quote(Some(&s.reference)),
            quote(s.pull_policy.as_ref()),
            quote(s.mount_path.as_ref()),
            quote(s.sub_path.as_ref()),
        ],
        None => std::array::from_fn(|_| "(none)".to_string()),
    }
}

/// Text from outside (messages, names) must not smuggle escape sequences into the terminal, nor
/// break the layout: control characters are shown escaped.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `clean`, except that newlines stay and the following lines are indented by `indent`.
fn hang(s: &str, indent: usize) -> String {
    let sep = format!("\n{}", " ".repeat(indent));
    s.trim_end()
        .lines()
        .map(clean)
        .collect::<Vec<_>>()
        .join(&sep)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    const PLAIN: Style = Style { color: false };
    const COLOR: Style = Style { color: true };

    #[test]
    fn the_brief_example() {
        let plan = Plan {
            envs: vec![env("prod", vec![tag_update()], vec![])],
        };
        let want = "\
Environment prod (context prod, monitoring/statefulset/perses, container perses)

  # artifact \"perses-resources\" will be updated: tag changed (v1.1.0 -> v1.2.0); mount moved
  # fields owned by \"helm\": apply needs --force-conflicts
  ~ artifact \"perses-resources\" {
      ~ reference   = \"registry.example.com/perses-resources:v1.1.0\" -> \"registry.example.com/perses-resources:v1.2.0@sha256:2222222222222222222222222222222222222222222222222222222222222222\"
        pull_policy = \"IfNotPresent\"
        mount_path  = \"/etc/perses/provisioning\"
      ~ sub_path    = (none) -> \"prod\"
    }

Plan: 0 to add, 1 to change, 0 to remove.
";
        assert_eq!(human(&plan, PLAIN), want);
    }

    #[test]
    fn an_adopt_changes_no_value_and_is_counted_apart() {
        let plan = Plan {
            envs: vec![env("prod", vec![helm_adopt()], vec![])],
        };
        let want = "\
Environment prod (context prod, monitoring/statefulset/perses, container perses)

  # artifact \"perses-resources\" will be adopted: the values match, but only field manager \"helm\" owns them; perses-oci takes a share, the pod template does not change
  = artifact \"perses-resources\" {
        reference   = \"registry.example.com/perses-resources:v1.1.0\"
        pull_policy = \"IfNotPresent\"
        mount_path  = \"/etc/perses/provisioning\"
        sub_path    = \"prod\"
    }

Plan: 0 to add, 0 to change, 0 to remove, 1 to adopt.
";
        assert_eq!(human(&plan, PLAIN), want);
    }

    #[test]
    fn every_kind_of_environment() {
        let want = "\
Environment prod (context prod, monitoring/statefulset/perses, container perses)

  # artifact \"perses-dashboards\" will be added: not in the workload yet
  + artifact \"perses-dashboards\" {
      + reference   = \"registry.example.com/perses-dashboards:v2.0.0@sha256:1111111111111111111111111111111111111111111111111111111111111111\"
      + pull_policy = (none)
      + mount_path  = \"/etc/perses/dashboards\"
      + sub_path    = (none)
    }

  # artifact \"perses-resources\" will be updated: tag changed (v1.1.0 -> v1.2.0); mount moved
  # fields owned by \"helm\": apply needs --force-conflicts
  ~ artifact \"perses-resources\" {
      ~ reference   = \"registry.example.com/perses-resources:v1.1.0\" -> \"registry.example.com/perses-resources:v1.2.0@sha256:2222222222222222222222222222222222222222222222222222222222222222\"
        pull_policy = \"IfNotPresent\"
        mount_path  = \"/etc/perses/provisioning\"
      ~ sub_path    = (none) -> \"prod\"
    }

  # artifact \"old-dashboards\" will be removed: no longer in the environment file
  - artifact \"old-dashboards\" {
      - reference   = \"registry.example.com/old-dashboards:v0.9.0\"
      - pull_policy = \"Always\"
      - mount_path  = \"/etc/perses/old\"
      - sub_path    = (none)
    }

  Warning: /etc/perses/old is not a provisioning folder of Perses

  prod: 1 to add, 1 to change, 1 to remove.

Environment staging (current context, monitoring/statefulset/perses, container perses)

  Error: cannot reach the cluster: connection refused

Environment dev (context dev, monitoring/statefulset/perses, container perses)

  No changes. The workload matches the configuration.

Environment qa (context qa, monitoring/statefulset/perses, container perses)

  # artifact \"perses-resources\" will be updated: tag moved in the registry (sha256:111111111111 -> sha256:222222222222); changed outside perses-oci (by field manager \"kubectl-edit\")
  ~ artifact \"perses-resources\" {
      ~ reference   = \"registry.example.com/perses-resources:v1.2.0@sha256:1111111111111111111111111111111111111111111111111111111111111111\" -> \"registry.example.com/perses-resources:v1.2.0@sha256:2222222222222222222222222222222222222222222222222222222222222222\"
        pull_policy = (none)
        mount_path  = \"/etc/perses/provisioning\"
        sub_path    = (none)
    }

  Error: mount path /etc/perses/provisioning is already used by volume config

  qa: 0 to add, 1 to change, 0 to remove.

4 environments planned, 2 with errors: staging, qa.
Plan: 1 to add, 2 to change, 1 to remove.
";
        assert_eq!(human(&rich_plan(), PLAIN), want);
    }

    #[test]
    fn nothing_to_do() {
        let plan = Plan {
            envs: vec![no_change_env("dev"), no_change_env("prod")],
        };
        let want = "\
Environment dev (context dev, monitoring/statefulset/perses, container perses)

  No changes. The workload matches the configuration.

Environment prod (context prod, monitoring/statefulset/perses, container perses)

  No changes. The workload matches the configuration.

No changes.
";
        assert_eq!(human(&plan, PLAIN), want);
        assert_eq!(human(&Plan::default(), PLAIN), "No changes.\n");
    }

    #[test]
    fn warnings_alone_still_say_no_changes() {
        let plan = Plan {
            envs: vec![env(
                "dev",
                vec![],
                vec![check(Severity::Warning, "x", "first line\nsecond line\n")],
            )],
        };
        let want = "\
Environment dev (context dev, monitoring/statefulset/perses, container perses)

  No changes. The workload matches the configuration.

  Warning: first line
           second line

No changes.
";
        assert_eq!(human(&plan, PLAIN), want);
    }

    #[test]
    fn a_failed_environment_prints_only_its_error() {
        let plan = Plan {
            envs: vec![error_env(
                "staging",
                "no such context\ncheck your kubeconfig",
            )],
        };
        let want = "\
Environment staging (current context, monitoring/statefulset/perses, container perses)

  Error: no such context
         check your kubeconfig

1 environment planned, 1 with errors: staging.
Plan: 0 to add, 0 to change, 0 to remove.
";
        assert_eq!(human(&plan, PLAIN), want);
    }

    #[test]
    fn an_environment_whose_file_did_not_load_has_no_empty_heading_fields() {
        let mut env = error_env("prod", "environments/prod.toml:3:1: unknown key `imagee`");
        env.target.namespace.clear();
        env.target.workload.name.clear();
        env.target.container.clear();
        env.target.context = None;
        let want = "\
Environment prod

  Error: environments/prod.toml:3:1: unknown key `imagee`

1 environment planned, 1 with errors: prod.
Plan: 0 to add, 0 to change, 0 to remove.
";
        assert_eq!(human(&Plan { envs: vec![env] }, PLAIN), want);
    }

    #[test]
    fn colour_only_when_asked() {
        let plan = rich_plan();
        let plain = human(&plan, PLAIN);
        let colored = human(&plan, COLOR);
        assert!(!plain.contains('\x1b'));
        assert!(colored.contains("\x1b[32m+\x1b[0m artifact"));
        assert!(colored.contains("\x1b[33m~\x1b[0m artifact"));
        assert!(colored.contains("\x1b[31m-\x1b[0m artifact"));
        assert!(colored.contains("\x1b[1;31mError:\x1b[0m"));
        assert!(colored.contains("\x1b[1;33mWarning:\x1b[0m"));
        assert!(colored.contains("\x1b[1mPlan:\x1b[0m 1 to add"));
        assert!(colored.contains("\x1b[1mEnvironment prod ("));
        // Same text once the escapes are gone.
        assert_eq!(strip_sgr(&colored), plain);
    }

    #[test]
    fn foreign_escapes_are_neutralised() {
        let mut bad = error_env("x", "evil \x1b[2J clear");
        bad.env = "x\x1b]0;title\x07".to_string();
        let out = human(&Plan { envs: vec![bad] }, PLAIN);
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.contains("evil \\u{1b}[2J clear"));
    }

    #[test]
    fn inputs_are_not_rendered() {
        assert!(!human(&rich_plan(), PLAIN).contains("INPUTS"));
    }

    fn strip_sgr(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('\x1b') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('m').expect("SGR ends with m");
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        out
    }
}
