//! Dashboard layouts: their decoding (perses/spec go/dashboard/layout.go, `Layout.unmarshal`;
//! `JSONRef`, go/common/jsonref.go) and how Perses resolves Grid references to panels
//! (`verifyAndSetJSONReferences`, `checkAndSetRef`, pkg/model/api/v1/dashboard.go).

use super::super::decode::type_name;
use super::types::{At, Ty, Walk, f, go_string};
use serde_json::{Map, Value};

static STR: Ty = Ty::Str;
static BOOL: Ty = Ty::Bool;
static INT: Ty = Ty::Int;
static ANY: Ty = Ty::Any;

/// `LayoutKind.validate`: runs while the layout decodes, for a JSON `null` too.
static LAYOUT_KIND: Ty = Ty::Checked(&STR, layout_kind);

fn layout_kind(v: &Value, w: &mut Walk, at: &At) {
    let kind = go_string(v, w.json);
    if kind.is_empty() {
        w.error(format!(
            "{at} is empty: Perses refuses a layout without a kind (layout.kind cannot be \
             empty); write Grid or Tabs"
        ));
    } else if kind != "Grid" && kind != "Tabs" {
        let hint = ["Grid", "Tabs"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(&kind))
            .map(|k| format!(" (kinds are case-sensitive: {k})"))
            .unwrap_or_default();
        w.error(format!(
            "{at} {kind:?} is not a layout kind Perses knows: write Grid or Tabs{hint}"
        ));
    }
}

static SPEC_MAP: Ty = Ty::Map(&ANY);

/// A layout: `{kind, spec}` decoded first (the spec as a map), then the spec, re-encoded,
/// decoded as a Grid or Tabs spec.
pub(crate) static LAYOUT: Ty = Ty::Checked(
    &Ty::Struct(&[f("kind", &LAYOUT_KIND), f("spec", &SPEC_MAP)]),
    layout,
);

fn layout(v: &Value, w: &mut Walk, at: &At) {
    let kind = v
        .get("kind")
        .map(|k| go_string(k, w.json))
        .unwrap_or_default();
    let ty = match kind.as_str() {
        "Grid" => &GRID_SPEC,
        "Tabs" => &TABS_SPEC,
        // Perses' message says variable.kind (sic).
        "" => {
            w.error(format!(
                "{at}.kind is missing: Perses refuses a layout without a kind (\"variable.kind \
                 cannot be empty\"); write Grid or Tabs"
            ));
            return;
        }
        _ => return,
    };
    if let Some(spec) = v.get("spec") {
        w.check(spec, ty, &at.key("spec"));
    }
}

static COLLAPSE: Ty = Ty::Ptr(&Ty::Struct(&[f("open", &BOOL)]));
/// `GridLayoutDisplay`, `TabLayoutDisplay`.
static LAYOUT_DISPLAY: Ty = Ty::Ptr(&Ty::Struct(&[f("title", &STR), f("collapse", &COLLAPSE)]));

/// `JSONRef.validate`: `$ref` must match `^#?/([a-zA-Z0-9_-]+)(?:/([a-zA-Z0-9_-]+))*$`.
static JSON_REF: Ty = Ty::Ptr(&Ty::Checked(&Ty::Struct(&[f("$ref", &STR)]), json_ref));

fn json_ref(v: &Value, w: &mut Walk, at: &At) {
    let reference = v
        .get("$ref")
        .map(|r| go_string(r, w.json))
        .unwrap_or_default();
    if json_ref_path(&reference).is_none() {
        w.error(format!(
            "{at}.$ref {reference:?} is not a reference Perses accepts (`#/spec/panels/NAME`)"
        ));
    }
}

/// `RepeatVariableAlignment.validate`: when the key is there (even `""`, or a JSON `null`), it
/// must be horizontal or vertical.
static ALIGNMENT: Ty = Ty::Checked(&STR, alignment);

fn alignment(v: &Value, w: &mut Walk, at: &At) {
    let a = go_string(v, w.json);
    if a != "horizontal" && a != "vertical" {
        w.error(format!(
            "{at} {a:?} is not an alignment Perses knows: write horizontal or vertical, or \
             leave it out"
        ));
    }
}

static MAX_PER: Ty = Ty::Ptr(&INT);
static REPEAT: Ty = Ty::Ptr(&Ty::Struct(&[
    f("value", &STR),
    f("maxPer", &MAX_PER),
    f("alignment", &ALIGNMENT),
]));
static GRID_ITEM: Ty = Ty::Struct(&[
    f("x", &INT),
    f("y", &INT),
    f("width", &INT),
    f("height", &INT),
    f("content", &JSON_REF),
    f("repeatVariable", &REPEAT),
]);
static GRID_ITEMS: Ty = Ty::List(&GRID_ITEM);
static GRID_SPEC: Ty = Ty::Struct(&[
    f("display", &LAYOUT_DISPLAY),
    f("items", &GRID_ITEMS),
    f("repeatVariable", &STR),
]);
static TAB: Ty = Ty::Struct(&[f("name", &STR), f("items", &GRID_ITEMS)]);
static TABS: Ty = Ty::List(&TAB);
static TABS_SPEC: Ty = Ty::Struct(&[
    f("display", &LAYOUT_DISPLAY),
    f("tabs", &TABS),
    f("defaultTab", &INT),
]);

/// The parts of a JSON reference if it matches `^#?/([a-zA-Z0-9_-]+)(?:/([a-zA-Z0-9_-]+))*$`.
pub(crate) fn json_ref_path(reference: &str) -> Option<Vec<&str>> {
    let rest = reference.strip_prefix('#').unwrap_or(reference);
    let rest = rest.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    ok.then_some(parts)
}

/// Grid items, once the layouts decode: each must have a `content` (Perses v0.54 crashes
/// without one) whose `$ref` is exactly `spec/panels/NAME` for a panel of `spec.panels`. Tabs
/// items are not resolved.
pub(crate) fn check_grid_references(spec: &Map<String, Value>, json: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(Value::Array(layouts)) = spec.get("layouts") else {
        return problems;
    };
    let panels = spec.get("panels").and_then(Value::as_object);
    for (i, layout) in layouts.iter().enumerate() {
        if layout.get("kind").map(|k| go_string(k, json)).as_deref() != Some("Grid") {
            continue;
        }
        let Some(Value::Array(items)) = layout.get("spec").and_then(|s| s.get("items")) else {
            continue;
        };
        for (j, item) in items.iter().enumerate() {
            let at = format!("spec.layouts[{i}].spec.items[{j}]");
            let content = match item {
                // yaml.v3 drops a null item; a JSON one is a zero item, with no content.
                Value::Null if !json => continue,
                Value::Object(m) => m.get("content"),
                Value::Null => None,
                _ => continue,
            };
            let content = match content {
                Some(Value::Object(c)) => c,
                // `checkAndSetRef` dereferences the missing reference: Perses v0.54 panics (nil
                // pointer) while decoding the file, and the whole server stops, at every start.
                None | Some(Value::Null) => {
                    problems.push(format!(
                        "{at}: the item has no content: Perses v0.54 crashes on it (nil pointer \
                         in checkAndSetRef while decoding the dashboard), which stops the whole \
                         server, at every start"
                    ));
                    continue;
                }
                Some(other) => {
                    problems.push(format!(
                        "{at}.content must be an object, found {}",
                        type_name(other)
                    ));
                    continue;
                }
            };
            let reference = content
                .get("$ref")
                .map(|r| go_string(r, json))
                .unwrap_or_default();
            // A malformed reference is reported by the decoding walk.
            let Some(path) = json_ref_path(&reference) else {
                continue;
            };
            if path.len() != 3 {
                problems.push(format!(
                    "{at}.content.$ref {reference:?} does not point at a panel: Perses refuses \
                     it (pointing to the void); write `#/spec/panels/NAME`"
                ));
            } else if path[0] != "spec" || path[1] != "panels" {
                problems.push(format!(
                    "{at}.content.$ref {reference:?} does not point into spec.panels: Perses \
                     refuses it; write `#/spec/panels/NAME`"
                ));
            } else if !panels.is_some_and(|p| p.contains_key(path[2])) {
                problems.push(format!(
                    "{at}.content.$ref {reference:?} names no panel of spec.panels: Perses \
                     refuses the dashboard (no panel found for ref {:?})",
                    path[2]
                ));
            }
        }
    }
    problems
}
