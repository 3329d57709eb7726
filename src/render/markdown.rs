//! The plan as one GitHub pull request comment: totals, a table with a row per environment, then
//! a section per environment with collapsed diffs; shortened step by step so that it always fits.

use super::{count_checks, errors_line, plural, totals_line};
use crate::model::{
    Action, ArtifactState, Change, Check, ContentChange, ContentDiff, EnvPlan, Plan, Severity,
    Summary,
};

/// The most a GitHub comment body holds (it counts characters; bytes are never fewer).
pub const MARKDOWN_LIMIT: usize = 65_536;

const FIELDS: [&str; 4] = ["reference", "pull_policy", "mount_path", "sub_path"];
const FIELD_WIDTH: usize = 11;

const NOTE_COMPACT: &str = "_Change details omitted to fit in one comment; see the JSON plan._\n";
const NOTE_TRUNCATED: &str = "\n\n_Comment truncated; see the JSON plan._\n";

/// The plan as Markdown, never longer than `MARKDOWN_LIMIT` bytes.
///
/// When everything does not fit: first each change becomes one line, then environment sections
/// are dropped from the end, then table rows; the totals line always stays.
pub fn markdown(plan: &Plan) -> String {
    let head = head(plan);
    if plan.envs.is_empty() {
        return head;
    }
    let table_head =
        "| Environment | Add | Change | Remove | Status |\n| --- | ---: | ---: | ---: | --- |\n";
    let rows: Vec<String> = plan.envs.iter().map(row).collect();
    let table = format!("{table_head}{}", rows.concat());

    let full: Vec<String> = plan.envs.iter().map(|e| section(e, true)).collect();
    let doc = blocks([head.as_str(), table.as_str()], &full);
    if doc.len() <= MARKDOWN_LIMIT {
        return doc;
    }

    let compact: Vec<String> = plan.envs.iter().map(|e| section(e, false)).collect();
    let doc = blocks([head.as_str(), NOTE_COMPACT, table.as_str()], &compact);
    if doc.len() <= MARKDOWN_LIMIT {
        return doc;
    }

    // The note's length is reserved for the largest count it can say.
    let n = plan.envs.len();
    let fixed = head.len() + 1 + omitted_note(n).len() + 1 + table.len();
    if fixed <= MARKDOWN_LIMIT {
        let shown = take_fitting(&compact, MARKDOWN_LIMIT - fixed);
        let note = omitted_note(n - shown);
        let doc = blocks(
            [head.as_str(), note.as_str(), table.as_str()],
            &compact[..shown],
        );
        debug_assert!(doc.len() <= MARKDOWN_LIMIT);
        return doc;
    }

    let fixed = head.len() + 1 + listed_note(n, n).len() + 1 + table_head.len();
    let listed = take_fitting_rows(&rows, MARKDOWN_LIMIT.saturating_sub(fixed));
    let note = listed_note(listed, n);
    let table = format!("{table_head}{}", rows[..listed].concat());
    let mut doc = blocks([head.as_str(), note.as_str(), table.as_str()], &[]);
    if doc.len() > MARKDOWN_LIMIT {
        // Only a head longer than the limit gets here (thousands of failed environments).
        let mut end = MARKDOWN_LIMIT - NOTE_TRUNCATED.len();
        while !doc.is_char_boundary(end) {
            end -= 1;
        }
        doc.truncate(end);
        doc.push_str(NOTE_TRUNCATED);
    }
    doc
}

/// Blocks that each end with a newline, separated by a blank line.
fn blocks<const N: usize>(fixed: [&str; N], sections: &[String]) -> String {
    let all: Vec<&str> = fixed
        .into_iter()
        .chain(sections.iter().map(String::as_str))
        .collect();
    all.join("\n")
}

/// How many leading sections fit in `budget` bytes, each after a blank line.
fn take_fitting(sections: &[String], budget: usize) -> usize {
    let mut used = 0;
    sections
        .iter()
        .take_while(|s| {
            used += s.len() + 1;
            used <= budget
        })
        .count()
}

fn take_fitting_rows(rows: &[String], budget: usize) -> usize {
    let mut used = 0;
    rows.iter()
        .take_while(|r| {
            used += r.len();
            used <= budget
        })
        .count()
}

fn omitted_note(n: usize) -> String {
    format!(
        "_Details of {} omitted to fit in one comment; see the JSON plan._\n",
        plural(n, "environment", "environments")
    )
}

fn listed_note(listed: usize, total: usize) -> String {
    format!(
        "_Only {listed} of {total} environments are listed to fit in one comment; see the JSON plan._\n"
    )
}

fn head(plan: &Plan) -> String {
    let mut out = format!("### perses-oci plan\n\n**{}**", totals_line(plan));
    if let Some(line) = errors_line(plan) {
        out.push(' ');
        out.push_str(&text(&line));
    }
    out.push('\n');
    out
}

fn row(env: &EnvPlan) -> String {
    let s = Summary::of(&env.changes);
    format!(
        "| {} | {} | {} | {} | {} |\n",
        text(&env.env),
        s.add,
        s.change,
        s.remove,
        status(env, s)
    )
}

fn status(env: &EnvPlan, s: Summary) -> String {
    if env.error.is_some() {
        return "failed".to_string();
    }
    let mut parts = vec![if s.is_empty() {
        "no changes".to_string()
    } else if s.add + s.change + s.remove == 0 {
        // Only adopts: a write, but the pod template stays as it is.
        plural(s.adopt, "adopt", "adopts")
    } else {
        "changes".to_string()
    }];
    let errors = count_checks(env, Severity::Error);
    if errors > 0 {
        parts.push(plural(errors, "error", "errors"));
    }
    let warnings = count_checks(env, Severity::Warning);
    if warnings > 0 {
        parts.push(plural(warnings, "warning", "warnings"));
    }
    parts.join(", ")
}

/// One environment; `details` chooses collapsible diffs over one line per change.
fn section(env: &EnvPlan, details: bool) -> String {
    let t = &env.target;
    let context = match (&t.manifest, &t.context) {
        (Some(m), _) => format!("manifest {}", code(&m.display().to_string())),
        (None, Some(c)) => format!("context {}", code(c)),
        (None, None) => "current context".to_string(),
    };
    let mut parts = vec![format!("#### {}", text(&env.env))];
    if super::target_known(t) {
        parts.push(format!(
            "Target: {context}, {}, container {}.",
            code(&format!("{}/{}", t.namespace, t.workload)),
            code(&t.container)
        ));
    }
    if let Some(err) = &env.error {
        parts.push(format!("**Error:** {}", text(&err.message)));
        return parts.join("\n\n") + "\n";
    }
    if env.changes.is_empty() {
        parts.push("No changes. The workload matches the configuration.".to_string());
    }
    let mut bullets = Vec::new();
    if details {
        parts.extend(env.changes.iter().map(details_block));
    } else {
        bullets.extend(env.changes.iter().map(change_line));
    }
    bullets.extend(env.checks.iter().map(check_line));
    if !bullets.is_empty() {
        parts.push(bullets.join("\n"));
    }
    parts.join("\n\n") + "\n"
}

fn change_line(c: &Change) -> String {
    let mut line = format!(
        "- **{}** {}: {}",
        c.action.as_str(),
        code(&c.artifact),
        text(&reasons(c))
    );
    if !c.conflicts_with.is_empty() {
        let owners: Vec<String> = c.conflicts_with.iter().map(|o| code(o)).collect();
        line.push_str(&format!(
            "; fields owned by {}: apply needs `--force-conflicts`",
            owners.join(", ")
        ));
    }
    if let Some(content) = &c.content {
        line.push_str(&format!("; content: {}", text(&content.summary())));
    }
    line
}

fn details_block(c: &Change) -> String {
    let mut summary = format!(
        "<b>{}</b> <code>{}</code>: {}",
        c.action.as_str(),
        html(&c.artifact),
        html(&reasons(c))
    );
    if !c.conflicts_with.is_empty() {
        let owners: Vec<String> = c
            .conflicts_with
            .iter()
            .map(|o| format!("<code>{}</code>", html(o)))
            .collect();
        summary.push_str(&format!(
            "; fields owned by {}: apply needs <code>--force-conflicts</code>",
            owners.join(", ")
        ));
    }
    let before = values(c.before.as_ref());
    let after = values(c.after.as_ref());
    let mut diff = Vec::new();
    for (i, name) in FIELDS.iter().enumerate() {
        let field = format!("{name:<FIELD_WIDTH$}");
        match c.action {
            Action::Add => diff.push(format!("+ {field} = {}", after[i])),
            Action::Remove => diff.push(format!("- {field} = {}", before[i])),
            Action::Update | Action::Adopt if before[i] == after[i] => {
                diff.push(format!("  {field} = {}", after[i]))
            }
            // A -/+ pair rather than `~`: GitHub colours diff lines by their first character.
            Action::Update | Action::Adopt => {
                diff.push(format!("- {field} = {}", before[i]));
                diff.push(format!("+ {field} = {}", after[i]));
            }
        }
    }
    let body = diff.join("\n");
    let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
    let content = c.content.as_ref().map(content_block).unwrap_or_default();
    format!(
        "<details><summary>{summary}</summary>\n\n{fence}diff\n{body}\n{fence}\n{content}\n</details>"
    )
}

/// What changes inside the artifact: one line per resource, each changed one's diff collapsed.
fn content_block(content: &ContentDiff) -> String {
    let mut out = format!("\nContent: {}\n\n", text(&content.summary()));
    for r in &content.changes {
        let label = match r.change {
            ContentChange::Added => "added",
            ContentChange::Removed => "removed",
            ContentChange::Changed => "changed",
        };
        if r.diff.is_empty() {
            out.push_str(&format!(
                "- {label} {} ({})\n",
                code(&r.key()),
                code(&r.path)
            ));
        } else {
            let fence = "`".repeat(longest_run(&r.diff, '`').max(2) + 1);
            out.push_str(&format!(
                "<details><summary>{label} <code>{}</code> ({})</summary>\n\n{fence}diff\n{}{fence}\n\n</details>\n",
                html(&r.key()),
                html(&r.path),
                r.diff
            ));
        }
    }
    out
}

fn check_line(c: &Check) -> String {
    let label = match c.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
    };
    format!("- **{label}** {}: {}", code(&c.code), text(&c.message))
}

fn reasons(c: &Change) -> String {
    let r: Vec<String> = c.reasons.iter().map(|r| r.to_string()).collect();
    r.join("; ")
}

/// Quoted like the human format; Debug quoting also keeps control characters out.
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

fn longest_run(s: &str, ch: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == ch { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Inline text: one line, and nothing that Markdown, a table cell or HTML would interpret.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // `>` only matters at the start of a line, where text never is.
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A code span that survives backticks inside (a longer fence) and newlines (spaces).
fn code(s: &str) -> String {
    let flat: String = s
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    let fence = "`".repeat(longest_run(&flat, '`') + 1);
    if flat.contains('`') {
        format!("{fence} {flat} {fence}")
    } else {
        format!("{fence}{flat}{fence}")
    }
}

/// Text inside the raw HTML of `<summary>`, where Markdown is not parsed.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn a_small_plan() {
        let plan = Plan {
            envs: vec![
                env(
                    "prod",
                    vec![tag_update(), dashboards_add()],
                    vec![check(
                        Severity::Warning,
                        "provisioning_folder",
                        "/etc/perses/dashboards is not a provisioning folder of Perses",
                    )],
                ),
                error_env("staging", "cannot reach the cluster: connection refused"),
                no_change_env("dev"),
            ],
        };
        let want = "\
### perses-oci plan

**Plan: 1 to add, 1 to change, 0 to remove.** 3 environments planned, 1 with errors: staging.

| Environment | Add | Change | Remove | Status |
| --- | ---: | ---: | ---: | --- |
| prod | 1 | 1 | 0 | changes, 1 warning |
| staging | 0 | 0 | 0 | failed |
| dev | 0 | 0 | 0 | no changes |

#### prod

Target: context `prod`, `monitoring/statefulset/perses`, container `perses`.

<details><summary><b>update</b> <code>perses-resources</code>: tag changed (v1.1.0 -&gt; v1.2.0); mount moved; fields owned by <code>helm</code>: apply needs <code>--force-conflicts</code></summary>

```diff
- reference   = \"registry.example.com/perses-resources:v1.1.0\"
+ reference   = \"registry.example.com/perses-resources:v1.2.0@sha256:2222222222222222222222222222222222222222222222222222222222222222\"
  pull_policy = \"IfNotPresent\"
  mount_path  = \"/etc/perses/provisioning\"
- sub_path    = (none)
+ sub_path    = \"prod\"
```

</details>

<details><summary><b>add</b> <code>perses-dashboards</code>: not in the workload yet</summary>

```diff
+ reference   = \"registry.example.com/perses-dashboards:v2.0.0@sha256:1111111111111111111111111111111111111111111111111111111111111111\"
+ pull_policy = (none)
+ mount_path  = \"/etc/perses/dashboards\"
+ sub_path    = (none)
```

</details>

- **Warning** `provisioning_folder`: /etc/perses/dashboards is not a provisioning folder of Perses

#### staging

Target: current context, `monitoring/statefulset/perses`, container `perses`.

**Error:** cannot reach the cluster: connection refused

#### dev

Target: context `dev`, `monitoring/statefulset/perses`, container `perses`.

No changes. The workload matches the configuration.
";
        assert_eq!(markdown(&plan), want);
    }

    #[test]
    fn an_adopt_only_environment_says_so() {
        let plan = Plan {
            envs: vec![env("prod", vec![helm_adopt()], vec![])],
        };
        let out = markdown(&plan);
        assert!(
            out.starts_with(
                "### perses-oci plan\n\n**Plan: 0 to add, 0 to change, 0 to remove, 1 to adopt.**\n"
            ),
            "{out}"
        );
        assert!(out.contains("| prod | 0 | 0 | 0 | 1 adopt |\n"), "{out}");
        assert!(
            out.contains("<details><summary><b>adopt</b> <code>perses-resources</code>: the values match, but only field manager &quot;helm&quot; owns them"),
            "{out}"
        );
        assert!(
            out.contains("  reference   = \"registry.example.com/perses-resources:v1.1.0\"\n"),
            "{out}"
        );
    }

    #[test]
    fn removal_and_quiet_plans() {
        let plan = Plan {
            envs: vec![env("prod", vec![old_remove()], vec![])],
        };
        let want = "\
### perses-oci plan

**Plan: 0 to add, 0 to change, 1 to remove.**

| Environment | Add | Change | Remove | Status |
| --- | ---: | ---: | ---: | --- |
| prod | 0 | 0 | 1 | changes |

#### prod

Target: context `prod`, `monitoring/statefulset/perses`, container `perses`.

<details><summary><b>remove</b> <code>old-dashboards</code>: no longer in the environment file</summary>

```diff
- reference   = \"registry.example.com/old-dashboards:v0.9.0\"
- pull_policy = \"Always\"
- mount_path  = \"/etc/perses/old\"
- sub_path    = (none)
```

</details>
";
        assert_eq!(markdown(&plan), want);

        assert_eq!(
            markdown(&Plan::default()),
            "### perses-oci plan\n\n**No changes.**\n"
        );
        let quiet = Plan {
            envs: vec![no_change_env("dev")],
        };
        assert!(markdown(&quiet).starts_with("### perses-oci plan\n\n**No changes.**\n\n|"));
    }

    #[test]
    fn error_checks_show_in_the_table_and_as_bullets() {
        let out = markdown(&rich_plan());
        assert!(out.contains("| qa | 0 | 1 | 0 | changes, 1 error |\n"));
        assert!(out.contains(
            "- **Error** `mount_clash`: mount path /etc/perses/provisioning is already used by volume config\n"
        ));
        assert!(out.contains("4 environments planned, 2 with errors: staging, qa."));
        assert!(!out.contains("INPUTS"));
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn values_are_escaped() {
        let mut e = env(
            "a|b",
            vec![],
            vec![check(
                Severity::Warning,
                "odd`code",
                "pipe | tick ` star * <b>html</b>\nsecond",
            )],
        );
        e.target.container = "c`x".to_string();
        let mut change = tag_update();
        change.artifact = "x<y".to_string();
        change.after.as_mut().unwrap().reference = "r```evil".to_string();
        e.changes.push(change);
        let out = markdown(&Plan { envs: vec![e] });
        assert!(out.contains("| a\\|b | 0 | 1 | 0 | changes, 1 warning |\n"));
        assert!(out.contains("#### a\\|b\n"));
        assert!(out.contains("container `` c`x ``."));
        assert!(out.contains(
            "- **Warning** `` odd`code ``: pipe \\| tick \\` star \\* \\<b>html\\</b> second\n"
        ));
        assert!(out.contains("<code>x&lt;y</code>"));
        // The diff fence is longer than any backtick run inside it.
        assert!(out.contains("\n````diff\n"));
        assert!(out.contains("+ reference   = \"r```evil\"\n"));
        assert!(out.contains("\n````\n\n</details>"));
    }

    /// Each environment: two adds, two updates with conflicts, one removal, long references.
    fn big_plan(envs: usize) -> Plan {
        let long = |name: &str, tag: &str| {
            format!(
                "{REG}/a/very/long/path/to/the/repository/of/{name}/with/many/segments:{tag}@{D2}"
            )
        };
        let st = |r: String| state(&r, Some("IfNotPresent"), Some("/etc/perses/x"), None);
        Plan {
            envs: (0..envs)
                .map(|i| {
                    env(
                        &format!("environment-{i:04}"),
                        vec![
                            add_change("dash-a", st(long("dash-a", "v1"))),
                            add_change("dash-b", st(long("dash-b", "v1"))),
                            update_change(
                                "res-a",
                                vec![crate::model::Reason::TagChanged {
                                    from: "v1.0.0".into(),
                                    to: "v2.0.0".into(),
                                }],
                                st(long("res-a", "v1.0.0")),
                                st(long("res-a", "v2.0.0")),
                                &["helm"],
                            ),
                            update_change(
                                "res-b",
                                vec![crate::model::Reason::PullPolicyChanged],
                                st(long("res-b", "v1")),
                                st(long("res-b", "v1")),
                                &["argocd-controller"],
                            ),
                            remove_change("old", st(long("old", "v0"))),
                        ],
                        vec![check(
                            Severity::Warning,
                            "provisioning_folder",
                            "not provisioned",
                        )],
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn two_hundred_environments_fit_in_one_comment() {
        let out = markdown(&big_plan(200));
        assert!(out.len() <= MARKDOWN_LIMIT, "{} bytes", out.len());
        assert!(out.starts_with(
            "### perses-oci plan\n\n**Plan: 400 to add, 400 to change, 200 to remove.**\n"
        ));
        for i in 0..200 {
            assert!(out.contains(&format!(
                "| environment-{i:04} | 2 | 2 | 1 | changes, 1 warning |\n"
            )));
        }
        assert!(!out.contains("<details>"));
        // Some sections still fit; the note says how many did not.
        assert!(out.contains("#### environment-0000\n"));
        assert!(!out.contains("#### environment-0199\n"));
        let shown = out.matches("\n#### ").count();
        assert!(out.contains(&format!(
            "_Details of {} environments omitted to fit in one comment; see the JSON plan._\n",
            200 - shown
        )));
    }

    #[test]
    fn details_go_first() {
        // Too much for details, few enough for one line per change.
        let plan = big_plan(40);
        let out = markdown(&plan);
        assert!(out.len() <= MARKDOWN_LIMIT);
        assert!(!out.contains("<details>"));
        assert!(out.contains(NOTE_COMPACT));
        assert_eq!(out.matches("\n#### ").count(), 40);
        assert!(out.contains(
            "- **update** `res-a`: tag changed (v1.0.0 -> v2.0.0); fields owned by `helm`: apply needs `--force-conflicts`\n"
        ));
        // And a plan that fits keeps them.
        let small = markdown(&big_plan(5));
        assert_eq!(small.matches("<details>").count(), 25);
        assert!(!small.contains("omitted"));
    }

    #[test]
    fn even_the_table_is_cut_when_it_must_be() {
        let out = markdown(&big_plan(3000));
        assert!(out.len() <= MARKDOWN_LIMIT, "{} bytes", out.len());
        assert!(out.contains("**Plan: 6000 to add, 6000 to change, 3000 to remove.**"));
        let rows = out.matches("\n| environment-").count();
        assert!(rows > 100 && rows < 3000);
        assert!(out.contains(&format!(
            "_Only {rows} of 3000 environments are listed to fit in one comment; see the JSON plan._\n"
        )));
    }

    #[test]
    fn a_huge_head_is_truncated() {
        let plan = Plan {
            envs: (0..4000)
                .map(|i| error_env(&format!("failed-environment-{i:05}"), "boom"))
                .collect(),
        };
        let out = markdown(&plan);
        assert!(out.len() <= MARKDOWN_LIMIT);
        assert!(
            out.starts_with("### perses-oci plan\n\n**Plan: 0 to add, 0 to change, 0 to remove.**")
        );
        assert!(out.ends_with(NOTE_TRUNCATED));
    }
}
