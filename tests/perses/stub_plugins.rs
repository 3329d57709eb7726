//! Stub Perses plugins with permissive CUE schemas, generated at run time for the plugin names the
//! judged resource files use (`tests/perses_judge.rs`).
//!
//! Why: Perses v0.54 refuses every Dashboard, Datasource, GlobalDatasource, Variable and
//! GlobalVariable with "schemas are not loaded" when it has no plugins, and the real plugin
//! archives come from GitHub releases, out of reach here. `perses-oci lint` does not validate
//! plugin specs (Perses' provisioning does not either: its services do, through the schemas), so
//! the judge gives Perses one stub schema per plugin name, accepting any `spec`. Perses then
//! judges exactly the rules lint claims to predict, and plugin specs are out of the comparison.
//!
//! Layout, as Perses' `internal/api/plugin` loads it (`loadSinglePlugin`, `schema.Load`):
//!
//! ```text
//! PLUGIN_PATH/perses-oci-stubs/
//!     mf-manifest.json          id, name, metaData.buildInfo.buildVersion (semver)
//!     package.json              perses.schemasPath + perses.plugins[{kind, spec.name}]
//!     schemas/NAME/model.cue
//!         package model
//!         kind: "NAME"
//!         spec: {...}
//! ```
//!
//! No `cue.mod` is needed (the stubs import nothing) and no `migrate/` folder (migration schemas
//! are optional). `schema.Load` keys each schema by its `kind` value and files it under the
//! plugin kind (Panel, Datasource, Variable, a query kind) that package.json gives that name.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The folder name of the stub module under the plugin path.
pub const MODULE: &str = "perses-oci-stubs";

/// Plugin name (what resources put in `plugin.kind`) -> plugin kind of package.json (`Panel`,
/// `Datasource`, `Variable`, `Annotation`, `TimeSeriesQuery`, `TraceQuery`, ...).
pub type Plugins = BTreeMap<String, String>;

/// The plugin names used by resource objects, with the kind of plugin each is used as, found by
/// where the `plugin` object sits: under `panels` (Panel), under a query of `queries` (that
/// query's own `kind`, e.g. TimeSeriesQuery), under `variables` (Variable), `annotations`
/// (Annotation), a dashboard's `datasources` (Datasource), or at the top of a Datasource,
/// GlobalDatasource (Datasource), Variable or GlobalVariable (Variable).
pub fn scan<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Plugins {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for obj in objects {
        let ctx = match obj.get("kind").and_then(Value::as_str) {
            Some("Datasource" | "GlobalDatasource") => "Datasource",
            Some("Variable" | "GlobalVariable") => "Variable",
            _ => "",
        };
        walk(obj, ctx, &mut uses);
    }
    uses.into_iter()
        .map(|(name, kinds)| {
            assert!(
                kinds.len() == 1 && !kinds.contains(""),
                "plugin {name} is used as {kinds:?}: the stub generator cannot tell which kind \
                 of plugin it is; extend stub_plugins::walk"
            );
            (name, kinds.into_iter().next().unwrap())
        })
        .collect()
}

fn walk(v: &Value, ctx: &str, uses: &mut BTreeMap<String, BTreeSet<String>>) {
    match v {
        Value::Object(map) => {
            for (key, x) in map {
                if key == "plugin"
                    && let Some(name) = x.get("kind").and_then(Value::as_str)
                {
                    uses.entry(name.to_string())
                        .or_default()
                        .insert(ctx.to_string());
                }
                let next = match key.as_str() {
                    "panels" => "Panel",
                    "variables" => "Variable",
                    "annotations" => "Annotation",
                    "datasources" => "Datasource",
                    "queries" => "query",
                    _ => ctx,
                };
                walk(x, next, uses);
            }
        }
        Value::Array(items) => {
            for x in items {
                // A query item says its own kind: {"kind": "TimeSeriesQuery", "spec": {"plugin"}}.
                let next = if ctx == "query" {
                    x.get("kind").and_then(Value::as_str).unwrap_or("query")
                } else {
                    ctx
                };
                walk(x, next, uses);
            }
        }
        _ => {}
    }
}

/// Writes the stub module under `plugin_path`.
pub fn write(plugin_path: &Path, plugins: &Plugins) {
    let module = plugin_path.join(MODULE);
    let mut declared = Vec::new();
    for (name, kind) in plugins {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "plugin name {name:?} cannot be a folder name and a CUE string as it is"
        );
        let dir = module.join("schemas").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.cue"),
            format!(
                "// Stub schema for the perses-oci judge: accepts any spec.\n\
                 package model\n\nkind: \"{name}\"\nspec: {{...}}\n"
            ),
        )
        .unwrap();
        declared.push(json!({"kind": kind, "spec": {"name": name, "display": {"name": name}}}));
    }
    let manifest = json!({
        "id": "PersesOciStubs",
        "name": "PersesOciStubs",
        "metaData": {"buildInfo": {"buildVersion": "0.0.1", "buildName": "PersesOciStubs"}},
    });
    let package = json!({
        "name": "perses-oci-stubs",
        "version": "0.0.1",
        "perses": {"schemasPath": "schemas", "plugins": declared},
    });
    std::fs::write(
        module.join("mf-manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(
        module.join("package.json"),
        serde_json::to_vec_pretty(&package).unwrap(),
    )
    .unwrap();
}
