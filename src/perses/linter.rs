//! The lint of a tree, one file at a time: each file is decoded and checked when it is added,
//! and the tree-wide checks (projects, default datasources, duplicates) run at the end, in
//! Perses' reading order.

use super::checks::{Facts, check_object};
use super::decode::{Keep, parse_file_as};
use super::report::{FileReport, Note, Problem, Report, Resource, ResourceKey, Status, lower};
use super::tree::Tree;
use super::{RESOURCE_EXTENSIONS, cmp_paths, is_resource_file};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Per-file state while the tree-wide checks run.
pub(crate) struct Pending {
    pub(crate) report: FileReport,
    /// Perses fails to decode the file, whatever the rest of the tree holds.
    pub(crate) broken: bool,
    /// One entry per resource of `report.resources`.
    pub(crate) facts: Vec<Facts>,
    /// (project, line, label) of each project reference.
    pub(crate) needs: Vec<(String, Option<usize>, String)>,
    pub(crate) defines: Vec<String>,
    /// Where the bytes were in an image (`Linter::add_at`), to keep only a path's last version.
    pub(crate) at: (usize, usize),
}

/// A Datasource or GlobalDatasource Perses has stored, for the default-datasource rule.
pub(crate) struct StoredDatasource {
    pub(crate) kind: String,
    /// Lowercased; `None` for a GlobalDatasource or a project-less Datasource.
    pub(crate) project: Option<String>,
    /// Lowercased.
    pub(crate) name: String,
    pub(crate) default: bool,
    pub(crate) plugin: String,
    /// As written, for messages.
    pub(crate) shown: String,
    pub(crate) path: String,
}

/// The identifiable objects of one file, with their values (statuses are not computed: they
/// depend on the rest of the tree). For content diffs, which look at one file at a time.
pub fn file_resources(path: &str, bytes: &[u8]) -> Vec<Resource> {
    check_file(path, bytes, true).report.resources
}

/// A lint fed one file at a time, so that a tree is never held in memory: each file is parsed
/// and checked when it is added, and only what the tree-wide checks need (keys, project
/// references, problems) is kept. `finish` runs those checks in Perses' reading order, whatever
/// order the files came in.
#[derive(Default)]
pub struct Linter {
    keep_values: bool,
    pending: Vec<Pending>,
    ignored: Vec<String>,
    warnings: Vec<Note>,
}

impl Linter {
    pub fn new() -> Linter {
        Linter::default()
    }

    /// Keeps each resource's decoded value in the report (`Resource::value`); off by default,
    /// as it holds the whole tree in memory.
    pub fn keep_values(mut self) -> Linter {
        self.keep_values = true;
        self
    }

    /// Adds one file (a relative `/`-separated path). Non-resource files are counted as ignored.
    pub fn add(&mut self, path: &str, bytes: &[u8]) {
        if !is_resource_file(path) {
            let lower = path.to_ascii_lowercase();
            if RESOURCE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
                self.warnings.push(Note {
                    path: path.to_string(),
                    message: "ignored: Perses only reads names ending in lowercase .json, \
                              .yaml or .yml"
                        .into(),
                });
            }
            self.ignored.push(path.to_string());
            return;
        }
        self.pending.push(check_file(path, bytes, self.keep_values));
    }

    /// `add`, for bytes found at `at` in an image (see `retain_at`).
    pub fn add_at(&mut self, path: &str, bytes: &[u8], at: (usize, usize)) {
        let before = self.pending.len();
        self.add(path, bytes);
        if let Some(p) = self.pending.get_mut(before) {
            p.at = at;
        }
    }

    /// Keeps the files `keep(path, at)` takes: an image's reader hands out every version of a
    /// path (a later layer may replace or delete it), and only the last one is what a
    /// container sees.
    pub fn retain_at(&mut self, keep: impl Fn(&str, (usize, usize)) -> bool) {
        self.pending.retain(|p| keep(&p.report.path, p.at));
    }

    /// Takes in what another linter of the same tree was given (lint split over threads).
    pub fn merge(&mut self, other: Linter) {
        self.pending.extend(other.pending);
        self.ignored.extend(other.ignored);
        self.warnings.extend(other.warnings);
    }

    /// Runs the tree-wide checks. `known_projects` are projects that already exist on the
    /// Perses server.
    pub fn finish(self, known_projects: &[String]) -> Report {
        let Linter {
            mut pending,
            mut ignored,
            mut warnings,
            ..
        } = self;
        pending.sort_by(|a, b| cmp_paths(&a.report.path, &b.report.path));
        ignored.sort_by(|a, b| cmp_paths(a, b));
        warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
        let report = Report {
            ignored,
            warnings,
            ..Report::default()
        };
        tree_checks(pending, report, known_projects)
    }
}

/// Lints a whole tree of files (relative `/`-separated paths; non-resource files are counted as
/// ignored). `known_projects` are projects that already exist on the Perses server. Resource
/// values are not kept (see `Linter::keep_values`).
pub fn lint_files(files: &[(String, Vec<u8>)], known_projects: &[String]) -> Report {
    let mut linter = Linter::new();
    for (path, bytes) in files {
        linter.add(path, bytes);
    }
    linter.finish(known_projects)
}

pub(crate) fn tree_checks(
    mut pending: Vec<Pending>,
    mut report: Report,
    known_projects: &[String],
) -> Report {
    // A project exists if the server has it or a Project of a file Perses reads defines it;
    // `applyEntity` creates every Project before anything else, so the order of the files does
    // not matter. Names are compared lowercased, as Perses stores them.
    let available: BTreeSet<String> = known_projects
        .iter()
        .map(|p| lower(p))
        .chain(
            pending
                .iter()
                .filter(|p| !p.broken)
                .flat_map(|p| p.defines.iter().map(|d| lower(d))),
        )
        .collect();
    let defined_in: BTreeMap<String, Vec<&str>> =
        pending.iter().fold(BTreeMap::new(), |mut m, p| {
            for d in &p.defines {
                m.entry(lower(d))
                    .or_insert_with(Vec::new)
                    .push(p.report.path.as_str());
            }
            m
        });
    let mut missing: Vec<(usize, Problem)> = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        for (project, line, label) in &p.needs {
            if available.contains(&lower(project)) {
                continue;
            }
            let message = match defined_in.get(&lower(project)) {
                Some(files) => format!(
                    "{label}project {project:?} is defined in {}, which Perses skips, so \
                     Perses refuses this resource; fix that file (or pass --known-project \
                     {project} if the project already exists)",
                    files.join(", ")
                ),
                None => format!(
                    "{label}project {project:?} does not exist, so Perses refuses this \
                     resource: add a Project named {project} to the tree, or pass \
                     --known-project {project} if it already exists on the server"
                ),
            };
            missing.push((i, Problem::error(*line, message)));
        }
    }
    for (i, problem) in missing {
        pending[i].report.problems.push(problem);
    }

    // Statuses, in the order Perses applies the objects (the Projects it moves first are never
    // refused here, so reading order is enough).
    let mut datasources: Vec<StoredDatasource> = Vec::new();
    for p in &mut pending {
        p.report.accepted = !p.broken;
        for (r, facts) in p.report.resources.iter_mut().zip(&p.facts) {
            let project_missing = facts
                .needs_project
                .as_ref()
                .is_some_and(|n| !available.contains(&lower(n)));
            if p.broken || facts.refused || project_missing {
                r.status = Status::Refused;
                continue;
            }
            if let Some((default, plugin)) = &facts.datasource {
                if let Some(problem) = default_conflict(r, *default, plugin, &datasources) {
                    p.report.problems.push(problem);
                    r.status = Status::Refused;
                    continue;
                }
                store_datasource(&mut datasources, r, *default, plugin);
            }
            r.status = if facts.no_project {
                Status::StoredUnreachable
            } else {
                Status::Loaded
            };
        }
    }

    report_duplicates(&mut pending);
    report.files = pending.into_iter().map(|p| p.report).collect();
    report
}

/// A default datasource is refused when one of the same plugin kind, with another name, is
/// already stored where the service looks: `validateUnicityOfDefaultDTS`
/// (internal/api/validate/validate.go), called by the Datasource and GlobalDatasource services
/// on create and update with the list of the project's datasources (every GlobalDatasource for
/// a GlobalDatasource). For a Datasource with no project, Perses' file database lists the
/// datasources of every project.
pub(crate) fn default_conflict(
    r: &Resource,
    default: bool,
    plugin: &str,
    stored: &[StoredDatasource],
) -> Option<Problem> {
    if !default {
        return None;
    }
    let key = r.stored_key();
    let other = stored.iter().find(|d| {
        d.kind == r.kind
            && (key.project.is_none() || d.project == key.project)
            && d.name != key.name
            && d.default
            && d.plugin == plugin
    })?;
    let scope = match (&r.kind[..], &r.project) {
        ("GlobalDatasource", _) => "".to_string(),
        (_, Some(p)) => format!(" in project {p}"),
        (_, None) => " (with no project, the check sees every project)".to_string(),
    };
    Some(Problem::error(
        r.line,
        format!(
            "{}: a default {plugin:?} {} already exists{scope}: {} ({}); Perses refuses a second \
             one (set \"default\": false on one of them)",
            r.key(),
            r.kind,
            other.shown,
            other.path
        ),
    ))
}

pub(crate) fn store_datasource(
    stored: &mut Vec<StoredDatasource>,
    r: &Resource,
    default: bool,
    plugin: &str,
) {
    let key = r.stored_key();
    let entry = StoredDatasource {
        kind: r.kind.clone(),
        project: key.project.clone(),
        name: key.name.clone(),
        default,
        plugin: plugin.to_string(),
        shown: r.key().to_string(),
        path: r.path.clone(),
    };
    match stored
        .iter_mut()
        .find(|d| d.kind == entry.kind && d.project == entry.project && d.name == entry.name)
    {
        Some(d) => *d = entry,
        None => stored.push(entry),
    }
}

pub(crate) fn check_file(path: &str, bytes: &[u8], keep_values: bool) -> Pending {
    let mut pending = Pending {
        report: FileReport {
            path: path.to_string(),
            accepted: true,
            resources: Vec::new(),
            problems: Vec::new(),
        },
        broken: false,
        facts: Vec::new(),
        needs: Vec::new(),
        defines: Vec::new(),
        at: (0, 0),
    };
    let keep = if keep_values {
        Keep::All
    } else {
        Keep::Checked
    };
    let parsed = match parse_file_as(path, bytes, keep) {
        Ok(p) => p,
        Err(problem) => {
            pending.report.problems.push(problem);
            pending.broken = true;
            return pending;
        }
    };
    pending.report.problems.extend(parsed.warnings);
    if parsed.objects.is_empty() {
        pending.report.problems.push(Problem::error(
            None,
            "the file holds no object: Perses refuses an empty file",
        ));
        pending.broken = true;
        return pending;
    }
    for (i, obj) in parsed.objects.into_iter().enumerate() {
        let mut checked = check_object(path, &obj, i, parsed.json, &mut pending.report.problems);
        if keep_values && let Some(r) = &mut checked.resource {
            r.value = obj.value;
        }
        if !checked.decodes {
            pending.broken = true;
        }
        if let Some(p) = &checked.facts.needs_project {
            pending.needs.push((p.clone(), obj.line, checked.label));
        }
        pending.defines.extend(checked.defines_project);
        if let Some(r) = checked.resource {
            pending.report.resources.push(r);
            pending.facts.push(checked.facts);
        }
    }
    // Kept until the end of the tree, one per file: a vector grown by one push holds room for
    // four (about 1.4 KB per one-dashboard file, 60 MB for 45,000 files), so trim it.
    pending.report.resources.shrink_to_fit();
    pending.report.problems.shrink_to_fit();
    pending.facts.shrink_to_fit();
    pending.needs.shrink_to_fit();
    pending.defines.shrink_to_fit();
    pending
}

/// Perses creates the first definition of a key and updates it with each later one, so the
/// definition stored last wins (and the resource changes back and forth if they differ). Keys
/// are compared as Perses stores them (lowercased); only stored resources can clash.
pub(crate) fn report_duplicates(pending: &mut [Pending]) {
    let mut seen: BTreeMap<ResourceKey, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, p) in pending.iter().enumerate() {
        for (j, r) in p.report.resources.iter().enumerate() {
            if r.status.is_stored() {
                seen.entry(r.stored_key()).or_default().push((i, j));
            }
        }
    }
    for places in seen.into_values() {
        if places.len() < 2 {
            continue;
        }
        let (last_f, last_r) = places[places.len() - 1];
        let last_path = pending[last_f].report.path.clone();
        for &(f, r) in &places[..places.len() - 1] {
            pending[f].report.resources[r].overwritten_by = Some(last_path.clone());
        }
        let spellings: BTreeSet<String> = places
            .iter()
            .map(|&(f, r)| pending[f].report.resources[r].key().to_string())
            .collect();
        let case = if spellings.len() > 1 {
            let listed: Vec<String> = spellings.iter().map(|s| format!("`{s}`")).collect();
            format!(
                " ({} are one resource: Perses lowercases names and projects)",
                listed.join(" and ")
            )
        } else {
            String::new()
        };
        let files: BTreeSet<usize> = places.iter().map(|(f, _)| *f).collect();
        if files.len() == 1 {
            let lines: Vec<String> = places
                .iter()
                .filter_map(|&(f, r)| pending[f].report.resources[r].line.map(|l| l.to_string()))
                .collect();
            let at = if lines.is_empty() {
                String::new()
            } else {
                format!(" (lines {})", lines.join(", "))
            };
            let key = pending[last_f].report.resources[last_r].key();
            let line = pending[last_f].report.resources[last_r].line;
            pending[last_f].report.problems.push(Problem::warning(
                line,
                format!(
                    "{key} is defined {} times in this file{at}{case}; the last one wins",
                    places.len()
                ),
            ));
            continue;
        }
        let mut firsts: HashMap<usize, usize> = HashMap::new();
        for &(f, r) in &places {
            firsts.entry(f).or_insert(r);
        }
        for &f in &files {
            let others: Vec<&str> = files
                .iter()
                .filter(|o| **o != f)
                .map(|o| pending[*o].report.path.as_str())
                .collect();
            let first = &pending[f].report.resources[firsts[&f]];
            let message = format!(
                "{} is also defined in {}{case}: Perses stores each definition and the last \
                 one read ({last_path}) overwrites the others",
                first.key(),
                others.join(", ")
            );
            let line = first.line;
            pending[f]
                .report
                .problems
                .push(Problem::error(line, message));
        }
    }
}

/// `lint_files` on a tree read by `read_tree`, keeping its warnings.
pub fn lint_tree(tree: &Tree, known_projects: &[String]) -> Report {
    let mut report = lint_files(&tree.files, known_projects);
    report.warnings.extend(tree.warnings.iter().cloned());
    report.warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    report
}

/// A lint whose files come from another thread (say, an image's reader) and are parsed and
/// checked on worker threads, a few files in flight at a time. Files can go to separate lints
/// (`feeder_for`): an artifact with one folder per environment is linted folder by folder.
pub struct LintPool {
    tx: Option<std::sync::mpsc::SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<BTreeMap<String, Linter>>>,
}

type Job = (String, (usize, usize), String, Vec<u8>);

impl LintPool {
    /// One worker per core (at most 8).
    pub fn new() -> LintPool {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4 * workers);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut linters: BTreeMap<String, Linter> = BTreeMap::new();
                    loop {
                        let next = rx.lock().expect("no worker panics").recv();
                        match next {
                            Ok((group, at, path, bytes)) => {
                                linters.entry(group).or_default().add_at(&path, &bytes, at)
                            }
                            Err(_) => return linters,
                        }
                    }
                })
            })
            .collect();
        LintPool {
            tx: Some(tx),
            workers,
        }
    }

    /// What to hand the files of the one lint to (blocks while the workers are busy).
    pub fn feeder(&self) -> impl FnMut((usize, usize), &str, Vec<u8>) + Send + 'static {
        let mut f = self.feeder_for();
        move |at, path, bytes| f("", at, path, bytes)
    }

    /// What to hand files to, each for the lint of its group.
    pub fn feeder_for(&self) -> impl FnMut(&str, (usize, usize), &str, Vec<u8>) + Send + 'static {
        let tx = self.tx.clone().expect("not finished");
        move |group, at, path, bytes| {
            // A send fails only if every worker is gone, i.e. has panicked: finish reports it.
            let _ = tx.send((group.to_string(), at, path.to_string(), bytes));
        }
    }

    /// Waits for the workers and returns the lint of each group that got files.
    pub fn finish_groups(mut self) -> BTreeMap<String, Linter> {
        drop(self.tx.take());
        let mut all: BTreeMap<String, Linter> = BTreeMap::new();
        for w in self.workers.drain(..) {
            for (group, linter) in w.join().expect("lint does not panic") {
                all.entry(group).or_default().merge(linter);
            }
        }
        all
    }

    /// Waits for the workers and returns what they checked (the lint `feeder` fed).
    pub fn finish(self) -> Linter {
        self.finish_groups().remove("").unwrap_or_default()
    }
}

impl Default for LintPool {
    fn default() -> Self {
        LintPool::new()
    }
}
