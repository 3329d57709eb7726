//! How Perses' two decoders turn a value into the Go types of its model, and the formats some
//! of those types check (durations, times, time zones, URLs).
//!
//! JSON is Go's `encoding/json`: strict types (`"true"` is not a bool, `1` is not a string),
//! numbers through `float64` (`1.0` is an integer, `1.5` is not), unknown fields ignored.
//! YAML is `gopkg.in/yaml.v3`, through a map and back (`unmarshaller.unmarshalEntities`,
//! internal/cli/file/unmarshaller.go): any scalar is a string (`123`, `true`), a bool also reads
//! the YAML 1.1 words (`yes`, `off`, quoted or not), an integer truncates a float (`1.9` is 1),
//! and `null` leaves the field at its zero value without calling the type's own decoder. The
//! YAML values here are those of the decoder of `decode.rs`: plain scalars resolved as
//! yaml.v3 resolves them into `interface{}` (model spec §1.6).

use super::super::decode::type_name;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// A Go type of Perses' model, as far as decoding it can fail.
pub(crate) enum Ty {
    Str,
    Bool,
    /// `int`, `int32`.
    Int,
    /// `uint64` (`metadata.version`).
    Uint,
    /// `time.Time`.
    Time,
    /// perses/spec `common.DurationString`.
    Duration,
    /// `interface{}`: anything.
    Any,
    Struct(&'static [Field]),
    /// A pointer: `null` is nil, nothing runs.
    Ptr(&'static Ty),
    List(&'static Ty),
    /// `map[string]T`.
    Map(&'static Ty),
    /// A type with its own `UnmarshalJSON`/`UnmarshalYAML` that decodes as the inner type, then
    /// validates: the hook. In JSON a `null` (outside a pointer) still calls the decoder, so the
    /// hook sees `null` as the zero value; in YAML a `null` never does.
    Checked(&'static Ty, Hook),
}

pub(crate) type Hook = fn(&Value, &mut Walk, &At);

/// Where a field is, as `spec.panels.a.kind` or `spec.items[2]`: the walk goes through
/// thousands of fields per dashboard and nearly all are fine, so the path is a chain of
/// borrowed steps on the stack, written out only when there is something to say.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Root(&'a str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    /// The field `key` of this one (`key` alone under an empty root).
    pub(crate) fn key(&'a self, key: &'a str) -> At<'a> {
        At::Key(self, key)
    }

    pub(crate) fn index(&'a self, i: usize) -> At<'a> {
        At::Index(self, i)
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root(s) => f.write_str(s),
            At::Key(At::Root(""), k) => f.write_str(k),
            At::Key(p, k) => write!(f, "{p}.{k}"),
            At::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

pub(crate) struct Field {
    /// The JSON and YAML key (Perses' struct tags give both the same name).
    pub(crate) name: &'static str,
    pub(crate) ty: &'static Ty,
}

pub(crate) const fn f(name: &'static str, ty: &'static Ty) -> Field {
    Field { name, ty }
}

/// One decoding walk: the problems found, as sentences about the field.
pub(crate) struct Walk {
    pub(crate) json: bool,
    pub(crate) errors: Vec<String>,
}

impl Walk {
    pub(crate) fn new(json: bool) -> Walk {
        Walk {
            json,
            errors: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, e: impl Into<String>) {
        self.errors.push(e.into());
    }

    /// Checks a field that is present (the key exists) as a value of type `ty`.
    pub(crate) fn check(&mut self, v: &Value, ty: &Ty, at: &At) {
        if v.is_null() {
            if let (Ty::Checked(_, hook), true) = (ty, self.json) {
                hook(v, self, at);
            }
            return;
        }
        match ty {
            Ty::Any => {}
            Ty::Ptr(inner) => self.check(v, inner, at),
            Ty::Checked(inner, hook) => {
                let before = self.errors.len();
                self.check(v, inner, at);
                if self.errors.len() == before {
                    hook(v, self, at);
                }
            }
            Ty::Struct(fields) => {
                if let Some(m) = self.object(v, at) {
                    self.fields(m, fields, at);
                }
            }
            Ty::List(inner) => match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        // yaml.v3 drops a null item of a list.
                        if item.is_null() && !self.json {
                            continue;
                        }
                        self.check(item, inner, &at.index(i));
                    }
                }
                other => self.error(format!("{at} must be a list, found {}", type_name(other))),
            },
            Ty::Map(inner) => {
                if let Some(m) = self.object(v, at) {
                    for (k, x) in m {
                        self.child(x, inner, at, k);
                    }
                }
            }
            scalar => self.scalar(v, scalar, at),
        }
    }

    /// The fields of a struct, those present.
    pub(crate) fn fields(&mut self, m: &Map<String, Value>, fields: &[Field], at: &At) {
        for field in fields {
            if let Some(x) = m.get(field.name) {
                self.child(x, field.ty, at, field.name);
            }
        }
    }

    /// `check` of the field `key` of the value at `at`. A dashboard has thousands of fields,
    /// nearly all scalars or `Any` and nearly all fine: their path is only written out when
    /// there is something to say about them.
    fn child(&mut self, v: &Value, ty: &Ty, at: &At, key: &str) {
        match ty {
            Ty::Any => {}
            Ty::Str | Ty::Bool | Ty::Int | Ty::Uint | Ty::Time | Ty::Duration => {
                if !v.is_null() {
                    self.scalar(v, ty, &at.key(key));
                }
            }
            _ => self.check(v, ty, &at.key(key)),
        }
    }

    /// A scalar type's problem with `v` (not null), about the field at `at`.
    fn scalar(&mut self, v: &Value, ty: &Ty, at: &At) {
        if let Some(e) = scalar_problem(v, ty, self.json) {
            self.error(format!("{at} {e}"));
        }
    }

    fn object<'v>(&mut self, v: &'v Value, at: &At) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.error(format!(
                    "{at} must be an object, found {}",
                    type_name(other)
                ));
                None
            }
        }
    }
}

/// The words yaml.v3 reads into a bool, besides true and false (`decoder.scalar`, YAML 1.1).
const YAML_TRUE: [&str; 8] = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"];
const YAML_FALSE: [&str; 8] = ["n", "N", "no", "No", "NO", "off", "Off", "OFF"];

/// Why Perses cannot decode `v` (not null) as the scalar type `ty`, as the end of a sentence
/// about the field.
pub(crate) fn scalar_problem(v: &Value, ty: &Ty, json: bool) -> Option<String> {
    let found = type_name(v);
    match ty {
        Ty::Str => match v {
            Value::String(_) => None,
            Value::Number(_) | Value::Bool(_) if !json => None,
            Value::Number(_) | Value::Bool(_) => Some(format!(
                "must be a string, found {found}: write it in quotes"
            )),
            _ => Some(format!("must be a string, found {found}")),
        },
        Ty::Bool => match v {
            Value::Bool(_) => None,
            Value::String(s)
                if !json
                    && (YAML_TRUE.contains(&s.as_str()) || YAML_FALSE.contains(&s.as_str())) =>
            {
                None
            }
            Value::String(s) => Some(format!(
                "must be true or false, found the string {s:?}: write true or false without \
                 quotes"
            )),
            _ => Some(format!(
                "must be true or false, found {found}: write true or false"
            )),
        },
        Ty::Int | Ty::Uint => {
            let unsigned = matches!(ty, Ty::Uint);
            let hint = "write a whole number without quotes, such as 3";
            let Value::Number(n) = v else {
                return Some(format!("must be a whole number, found {found}: {hint}"));
            };
            let unsigned_max = 18446744073709551616.0; // 2^64
            let signed_max = 9223372036854775808.0; // 2^63
            let (min, max) = if unsigned {
                (0.0, unsigned_max)
            } else {
                (-signed_max, signed_max)
            };
            // An integer yaml.v3 reads exactly; JSON numbers all go through float64.
            let exact = if json {
                None
            } else {
                n.as_i64()
                    .map(|i| i as i128)
                    .or_else(|| n.as_u64().map(|u| u as i128))
            };
            let fits = match exact {
                Some(i) if unsigned => i >= 0,
                Some(i) => i <= i64::MAX as i128,
                None => {
                    let f = n.as_f64().unwrap_or(0.0);
                    if json && f.fract() != 0.0 {
                        return Some(format!("is {n}, not a whole number: {hint}"));
                    }
                    // yaml.v3 truncates a float into an integer, if it fits
                    // (`decoder.scalar`: a negative float never fits a uint).
                    f >= min && f.trunc() >= min && f.trunc() < max
                }
            };
            if !fits {
                let what = if unsigned && n.as_f64().is_some_and(|f| f < 0.0) {
                    "a negative number"
                } else {
                    "out of range"
                };
                return Some(format!("is {n}, {what}: {hint}"));
            }
            None
        }
        Ty::Time => match v {
            // yaml.v3 decodes a mapping into the struct `time.Time` (which has no exported
            // field): any mapping is accepted and leaves the zero time.
            Value::Object(_) if !json => None,
            Value::String(s) => rfc3339_problem(s).map(|why| {
                format!(
                    "is {s:?}, not an RFC 3339 time ({why}): write it such as \
                     \"2024-01-01T00:00:00Z\""
                )
            }),
            _ => Some(format!(
                "must be an RFC 3339 time in a string, found {found}: write it such as \
                 \"2024-01-01T00:00:00Z\""
            )),
        },
        Ty::Duration => {
            let s = match (v, json) {
                (Value::String(s), _) => s.clone(),
                (Value::Number(_) | Value::Bool(_), false) => go_scalar_string(v)?,
                (Value::Number(_) | Value::Bool(_), true) => {
                    return Some(format!(
                        "must be a duration in a string, found {found}: write it in quotes, \
                         such as \"1h\""
                    ));
                }
                _ => return Some(format!("must be a duration, found {found}")),
            };
            duration_problem(&s).map(|why| {
                format!(
                    "is {s:?}, not a duration Perses accepts ({why}): write whole numbers with \
                     units y, w, d, h, m, s, ms, largest first, such as \"1h30m\""
                )
            })
        }
        _ => None,
    }
}

/// The string Perses ends up with for a `string` field: the value itself in JSON (where
/// anything but a string or null fails, see `scalar_problem`); in YAML any scalar's text.
/// `null` and anything that is no scalar give "".
pub(crate) fn go_string(v: &Value, json: bool) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) if !json => go_scalar_string(v).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A YAML scalar as yaml.v3 re-emits it (`yaml.Marshal`) and reads it back into a string:
/// integers in decimal, floats as Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub(crate) fn go_scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_f64() => Some(go_float(n.as_f64()?)),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits, in exponent form when the
/// exponent is below -4 or at least 6 (the shortest form decides with precision 6), as
/// yaml.v3's `encoder.floatv` writes a float (`.inf`, `.nan` for the special values).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest digits too: "1.5e0", "1e21".
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Why perses/spec `common.ParseDuration` (go/common/duration.go, Prometheus' parser) refuses
/// `s`; `""` is allowed for a `DurationString` (its `validate` skips it). Units y, w, d, h, m,
/// s, ms, each at most once, largest first, with whole numbers; `"0"` alone is allowed.
pub(crate) fn duration_problem(s: &str) -> Option<String> {
    if s.is_empty() || s == "0" {
        return None;
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000_000_000),
        ("w", 7 * 24 * 3_600_000_000_000),
        ("d", 24 * 3_600_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let not_valid = || Some(format!("not a valid duration string: {s:?}"));
    let b = s.as_bytes();
    let (mut i, mut last, mut total) = (0usize, 0usize, 0u64);
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return not_valid();
        }
        let Ok(v) = s[start..i].parse::<u64>() else {
            return not_valid();
        };
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return not_valid();
        }
        let unit = &s[ustart..i];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Some(format!("unknown unit {unit:?} in duration {s:?}"));
        };
        if pos < last {
            return not_valid();
        }
        last = pos + 1;
        let mult = UNITS[pos].1;
        if v > (1u64 << 63) / mult {
            return Some("duration out of range".into());
        }
        total += v * mult;
        if total > (1u64 << 63) - 1 {
            return Some("duration out of range".into());
        }
    }
    None
}

/// Why Go's `time.Parse(time.RFC3339, s)` (what `time.Time`'s decoders use) refuses `s`:
/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z` or `±HH:MM`; `T` and `Z` uppercase.
pub(crate) fn rfc3339_problem(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let part = s.get(from..from + n)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let shape = || Some("expected YYYY-MM-DDTHH:MM:SSZ".to_string());
    let (Some(year), Some(month), Some(day)) = (digits(0, 4), digits(5, 2), digits(8, 2)) else {
        return shape();
    };
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return shape();
    }
    let (Some(hour), Some(minute), Some(second)) = (digits(11, 2), digits(14, 2), digits(17, 2))
    else {
        return shape();
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Some("month out of range".into()),
    };
    if day < 1 || day > days {
        return Some("day out of range".into());
    }
    if hour > 23 {
        return Some("hour out of range".into());
    }
    if minute > 59 {
        return Some("minute out of range".into());
    }
    if second > 59 {
        return Some("second out of range".into());
    }
    let mut i = 19;
    if at(i, b'.') || at(i, b',') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return shape();
        }
    }
    match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => None,
        Some(b'+' | b'-') if i + 6 == b.len() && at(i + 3, b':') => {
            match (digits(i + 1, 2), digits(i + 4, 2)) {
                (Some(h), Some(m)) if h < 24 && m < 60 => None,
                (Some(_), Some(_)) => Some("time zone offset out of range".into()),
                _ => shape(),
            }
        }
        _ => shape(),
    }
}

/// The time zones `time.LoadLocation` knows (IANA names, timezones.txt), besides `UTC` and
/// `Local`.
fn time_zones() -> &'static BTreeSet<&'static str> {
    static ZONES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    ZONES.get_or_init(|| {
        include_str!("timezones.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Why a dashboard's `spec.timezone` is refused (`validateTimezone`, perses/spec
/// go/dashboard/dashboard.go): `""` and `local` are allowed, anything else must be a zone
/// `time.LoadLocation` loads (`UTC`, `Local`, IANA names; case-sensitive).
pub(crate) fn timezone_problem(tz: &str) -> Option<String> {
    if tz.is_empty() || tz == "local" || tz == "UTC" || tz == "Local" {
        return None;
    }
    if time_zones().contains(tz) {
        return None;
    }
    let hint = time_zones()
        .iter()
        .find(|z| z.eq_ignore_ascii_case(tz))
        .map(|z| format!(" (did you mean {z}?)"))
        .unwrap_or_default();
    Some(format!(
        "{tz:?} is not a time zone Perses knows{hint}: use an IANA name such as \
         \"Europe/Paris\", \"UTC\", or \"local\" (the browser's)"
    ))
}

/// Why Go's `url.Parse` refuses `s`, for the checks it makes on the URLs Perses' model holds
/// (perses/spec `common.URL`): control characters, a missing scheme before `:`, a colon in the
/// first segment of a relative URL, a bad `%` escape, and characters a host cannot have.
pub(crate) fn url_problem(s: &str) -> Option<String> {
    if s.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f) {
        return Some("net/url: invalid control character in URL".into());
    }
    let (rest, _) = s.split_once('#').unwrap_or((s, ""));
    if let Some(e) = escape_problem(&s[rest.len()..]) {
        return Some(e);
    }
    // `getScheme`: letters, then letters, digits, '+', '-', '.', until ':'.
    let mut scheme = "";
    let mut body = rest;
    for (i, c) in rest.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') {
            if i == 0 {
                break;
            }
            continue;
        }
        if c == ':' {
            if i == 0 {
                return Some(format!("parse {s:?}: missing protocol scheme"));
            }
            scheme = &rest[..i];
            body = &rest[i + 1..];
        }
        break;
    }
    let (body, _query) = body.split_once('?').unwrap_or((body, ""));
    if scheme.is_empty() {
        let first = body.split('/').next().unwrap_or("");
        if first.contains(':') && !body.starts_with('/') {
            return Some(format!(
                "parse {s:?}: first path segment in URL cannot contain colon"
            ));
        }
    } else if !body.starts_with('/') {
        // Opaque (`mailto:x`): not parsed further.
        return None;
    }
    let path = if let Some(after) = body.strip_prefix("//") {
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if let Some(c) = host.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:[]%".contains(*c) || !c.is_ascii())
        }) {
            return Some(format!("parse {s:?}: invalid character {c:?} in host name"));
        }
        if let Some(e) = escape_problem(host) {
            return Some(e);
        }
        path
    } else {
        body
    };
    escape_problem(path)
}

fn escape_problem(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(b.len());
                return Some(format!("invalid URL escape {:?}", &s[i..end]));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// Why Go's `regexp.Compile` (RE2 syntax) refuses `s`, for the mistakes regex syntax makes
/// plain: unbalanced parentheses or brackets, a repetition with nothing to repeat, a trailing
/// backslash.
pub(crate) fn regexp_problem(s: &str) -> Option<String> {
    let mut depth = 0i32;
    let mut chars = s.chars().peekable();
    let mut prev_repeatable = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if chars.next().is_none() {
                    return Some("trailing backslash at end of expression".into());
                }
                prev_repeatable = true;
            }
            '[' => {
                // A class: up to the first `]` that is not its first character.
                let mut first = true;
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                loop {
                    match chars.next() {
                        None => return Some(format!("missing closing ]: `{s}`")),
                        Some(']') if !first => break,
                        Some('\\') => {
                            chars.next();
                        }
                        _ => {}
                    }
                    first = false;
                }
                prev_repeatable = true;
            }
            '(' => {
                depth += 1;
                prev_repeatable = false;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Some(format!("unexpected ): `{s}`"));
                }
                prev_repeatable = true;
            }
            '*' | '+' | '?' => {
                if !prev_repeatable {
                    return Some(format!("missing argument to repetition operator: `{c}`"));
                }
                // `a*?` (lazy) is fine, `a**` is not.
                if chars.peek() == Some(&'?') {
                    chars.next();
                }
                prev_repeatable = false;
            }
            '|' => prev_repeatable = false,
            _ => prev_repeatable = true,
        }
    }
    (depth > 0).then(|| format!("missing closing ): `{s}`"))
}
