//! The specs of Project, Folder, Secret, GlobalSecret and User, as Perses decodes them
//! (pkg/model/api/v1/{project,folder,secret,user}.go, secret/*.go), and what the User service
//! refuses.

use super::datasource::DISPLAY;
use super::types::{At, Ty, Walk, f, go_string};
use super::{Found, V1_KIND, v1_kind};
use serde_json::Value;
use std::collections::BTreeSet;

static STR: Ty = Ty::Str;
static BOOL: Ty = Ty::Bool;
static INT: Ty = Ty::Int;

static PROJECT_SPEC: Ty = Ty::Struct(&[f("display", &Ty::Ptr(&DISPLAY))]);

/// A Project's spec: anything that decodes (missing, `{}` and `null` are fine).
pub(crate) fn check_project(spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &PROJECT_SPEC, &At::Root("spec"));
    }
    found.decoding.extend(w.errors);
}

/// `FolderItem.validate` (a JSON `null` item too): kind Dashboard or Folder (any case), a name,
/// and no sub-items under a dashboard.
static FOLDER_ITEM: Ty = Ty::Checked(
    &Ty::Struct(&[
        f("kind", &V1_KIND),
        f("name", &STR),
        f("items", &FOLDER_ITEMS),
    ]),
    folder_item,
);
static FOLDER_ITEMS: Ty = Ty::List(&FOLDER_ITEM);
static FOLDER_SPEC: Ty = Ty::Struct(&[
    f("display", &Ty::Ptr(&Ty::Struct(&[f("name", &STR)]))),
    f("items", &FOLDER_ITEMS),
]);

fn folder_item(v: &Value, w: &mut Walk, at: &At) {
    let kind = v
        .get("kind")
        .map(|k| go_string(k, w.json))
        .unwrap_or_default();
    let kind = v1_kind(&kind);
    if kind != Some("Dashboard") && kind != Some("Folder") {
        w.error(format!(
            "{at}.kind must be Dashboard or Folder: Perses refuses the folder"
        ));
        return;
    }
    if v.get("name")
        .map(|n| go_string(n, w.json))
        .unwrap_or_default()
        .is_empty()
    {
        w.error(format!(
            "{at}.name is missing or empty: Perses refuses the folder (name is required)"
        ));
        return;
    }
    let items = match v.get("items") {
        Some(Value::Array(items)) => items.iter().filter(|x| w.json || !x.is_null()).count(),
        _ => 0,
    };
    if kind == Some("Dashboard") && items > 0 {
        w.error(format!(
            "{at}: a dashboard item cannot have items: Perses refuses the folder"
        ));
    }
}

/// A Folder's spec: its items, and `Folder.validate`: a dashboard at most once in the tree.
pub(crate) fn check_folder(spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &FOLDER_SPEC, &At::Root("spec"));
    }
    if w.errors.is_empty() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&Value> = match spec.and_then(|s| s.get("items")) {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => Vec::new(),
        };
        while !todo.is_empty() {
            let item = todo.remove(0);
            let kind = item
                .get("kind")
                .map(|k| go_string(k, json))
                .unwrap_or_default();
            if v1_kind(&kind) == Some("Dashboard") {
                let name = item
                    .get("name")
                    .map(|n| go_string(n, json))
                    .unwrap_or_default();
                if !seen.insert(name.clone()) {
                    w.error(format!(
                        "spec.items: dashboard {name:?} is listed twice in this folder: Perses \
                         refuses it"
                    ));
                }
            } else if let Some(Value::Array(items)) = item.get("items") {
                todo.extend(items.iter().filter(|x| json || !x.is_null()));
            }
        }
    }
    found.decoding.extend(w.errors);
}

static BASIC_AUTH: Ty = Ty::Ptr(&Ty::Checked(
    &Ty::Struct(&[
        f("username", &STR),
        f("password", &STR),
        f("passwordFile", &STR),
    ]),
    basic_auth,
));
static AUTHORIZATION: Ty = Ty::Ptr(&Ty::Checked(
    &Ty::Struct(&[
        f("type", &STR),
        f("credentials", &STR),
        f("credentialsFile", &STR),
    ]),
    authorization,
));
static STRINGS: Ty = Ty::List(&STR);
static OAUTH: Ty = Ty::Ptr(&Ty::Checked(
    &Ty::Struct(&[
        f("clientID", &STR),
        f("clientSecret", &STR),
        f("clientSecretFile", &STR),
        f("tokenURL", &STR),
        f("scopes", &STRINGS),
        f("endpointParams", &Ty::Map(&STRINGS)),
        f("authStyle", &INT),
    ]),
    oauth,
));
static TLS_CONFIG: Ty = Ty::Ptr(&Ty::Struct(&[
    f("ca", &STR),
    f("cert", &STR),
    f("key", &STR),
    f("caFile", &STR),
    f("certFile", &STR),
    f("keyFile", &STR),
    f("serverName", &STR),
    f("insecureSkipVerify", &BOOL),
    f("minVersion", &STR),
    f("maxVersion", &STR),
]));
/// `SecretSpec`: its `validate` refuses basicAuth, authorization and oauth all three together.
static SECRET_SPEC: Ty = Ty::Checked(
    &Ty::Struct(&[
        f("basicAuth", &BASIC_AUTH),
        f("authorization", &AUTHORIZATION),
        f("oauth", &OAUTH),
        f("tlsConfig", &TLS_CONFIG),
    ]),
    secret,
);

fn text(v: &Value, key: &str, json: bool) -> String {
    v.get(key).map(|x| go_string(x, json)).unwrap_or_default()
}

fn secret(v: &Value, w: &mut Walk, at: &At) {
    let set = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if set("basicAuth") && set("authorization") && set("oauth") {
        w.error(format!(
            "{at}: basicAuth, authorization and oauth cannot all be set: Perses refuses it \
             (keep one)"
        ));
    }
}

/// `BasicAuth.validate`: a username, and a password or a password file, not both.
fn basic_auth(v: &Value, w: &mut Walk, at: &At) {
    let (user, pw, file) = (
        text(v, "username", w.json),
        text(v, "password", w.json),
        text(v, "passwordFile", w.json),
    );
    if user.is_empty() || (pw.is_empty() && file.is_empty()) {
        w.error(format!(
            "{at} needs a username and a password or passwordFile: Perses refuses it"
        ));
    } else if !pw.is_empty() && !file.is_empty() {
        w.error(format!(
            "{at} has both password and passwordFile: Perses refuses it (keep one)"
        ));
    }
}

/// `Authorization.validate`: not both credentials and a credentials file.
fn authorization(v: &Value, w: &mut Walk, at: &At) {
    if !text(v, "credentials", w.json).is_empty() && !text(v, "credentialsFile", w.json).is_empty()
    {
        w.error(format!(
            "{at} has both credentials and credentialsFile: Perses refuses it (keep one)"
        ));
    }
}

/// `OAuth.validate`: a client ID, a client secret (or its file, not both), a token URL.
fn oauth(v: &Value, w: &mut Walk, at: &At) {
    let s = |k: &str| text(v, k, w.json);
    if s("clientID").is_empty()
        || (s("clientSecret").is_empty() && s("clientSecretFile").is_empty())
        || s("tokenURL").is_empty()
    {
        w.error(format!(
            "{at} needs clientID, clientSecret (or clientSecretFile) and tokenURL: Perses \
             refuses it"
        ));
    } else if !s("clientSecret").is_empty() && !s("clientSecretFile").is_empty() {
        w.error(format!(
            "{at} has both clientSecret and clientSecretFile: Perses refuses it (keep one)"
        ));
    }
}

/// A Secret's or GlobalSecret's spec (missing, `{}` and `null` are fine).
pub(crate) fn check_secret(spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &SECRET_SPEC, &At::Root("spec"));
    }
    found.decoding.extend(w.errors);
}

static USER_SPEC: Ty = Ty::Struct(&[
    f("firstName", &STR),
    f("lastName", &STR),
    f("nativeProvider", &Ty::Struct(&[f("password", &STR)])),
    f(
        "oauthProviders",
        &Ty::List(&Ty::Struct(&[
            f("issuer", &STR),
            f("email", &STR),
            f("subject", &STR),
        ])),
    ),
]);

/// Longest password bcrypt hashes (golang.org/x/crypto/bcrypt `ErrPasswordTooLong`).
const MAX_PASSWORD: usize = 72;

/// A User's spec: its decoding (`User.validate` runs for JSON only: a password and OAuth
/// providers together are refused), then the User service (internal/api/impl/v1/user), which
/// refuses to create a user without a password, or with one bcrypt cannot hash.
pub(crate) fn check_user(spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &USER_SPEC, &At::Root("spec"));
    }
    let password = spec
        .and_then(|s| s.get("nativeProvider"))
        .map(|n| text(n, "password", json))
        .unwrap_or_default();
    let oauth = matches!(
        spec.and_then(|s| s.get("oauthProviders")),
        Some(Value::Array(items)) if !items.is_empty()
    );
    if json && w.errors.is_empty() && !password.is_empty() && oauth {
        w.error(
            "spec has both nativeProvider and oauthProviders: Perses refuses a JSON User with \
             both (keep one)",
        );
    }
    let decodes = w.errors.is_empty();
    found.decoding.extend(w.errors);
    if !decodes {
        return;
    }
    if password.is_empty() {
        found.refusals.push(
            "spec.nativeProvider.password is missing or empty: the User service refuses to \
             create a user without a password (password cannot be empty)"
                .into(),
        );
    } else if password.len() > MAX_PASSWORD {
        found.refusals.push(format!(
            "spec.nativeProvider.password is {} bytes long: the User service refuses it \
             (bcrypt hashes at most {MAX_PASSWORD} bytes)",
            password.len()
        ));
    }
}
