//! Tests of the Go type and format rules (types.rs), each against what the model spec records
//! Perses v0.54 doing (and tests/perses_mutations.rs confirms on the real server).

use super::types::*;
use serde_json::{Value, json};

fn problem(v: Value, ty: Ty, json: bool) -> Option<String> {
    scalar_problem(&v, &ty, json)
}

#[test]
fn durations_follow_the_prometheus_parser() {
    for ok in [
        "",
        "0",
        "0s",
        "5m30s",
        "1h30m",
        "2d12h",
        "90d",
        "1500ms",
        "1h2m3s4ms",
        "01h",
        "1y",
        "1w",
    ] {
        assert_eq!(duration_problem(ok), None, "{ok}");
    }
    let cases = [
        ("1.5h", "unknown unit \".\" in duration \"1.5h\""),
        ("1hour", "unknown unit \"hour\""),
        ("1us", "unknown unit \"us\""),
        ("1H", "unknown unit \"H\""),
        ("5 s", "unknown unit \" s\""),
        ("30s5m", "not a valid duration string"),
        ("1m1m", "not a valid duration string"),
        ("-1h", "not a valid duration string"),
        (" 1h", "not a valid duration string"),
        ("h", "not a valid duration string"),
        ("60", "not a valid duration string"),
        ("300y", "duration out of range"),
    ];
    for (s, why) in cases {
        let p = duration_problem(s).unwrap_or_else(|| panic!("{s} accepted"));
        assert!(p.contains(why), "{s}: {p}");
    }
}

#[test]
fn a_duration_field_is_a_string_in_json_and_any_scalar_in_yaml() {
    assert!(
        problem(json!(0), Ty::Duration, true)
            .unwrap()
            .contains("in quotes")
    );
    assert_eq!(problem(json!(0), Ty::Duration, false), None);
    assert!(
        problem(json!(60), Ty::Duration, false)
            .unwrap()
            .contains("\"60\"")
    );
    assert!(problem(json!(true), Ty::Duration, false).is_some());
    assert!(
        problem(json!("1hour"), Ty::Duration, true)
            .unwrap()
            .contains("1h30m")
    );
    assert!(problem(json!({}), Ty::Duration, false).is_some());
}

#[test]
fn booleans_are_strict_in_json_and_read_yaml_1_1_words_in_yaml() {
    for json in [true, false] {
        assert_eq!(problem(json!(true), Ty::Bool, json), None);
        let p = problem(json!("true"), Ty::Bool, json).unwrap();
        assert!(p.contains("without quotes"), "{p}");
        assert!(problem(json!(1), Ty::Bool, json).is_some());
        assert!(problem(json!({}), Ty::Bool, json).is_some());
    }
    for word in ["yes", "Yes", "on", "y", "N", "off", "NO"] {
        assert_eq!(problem(json!(word), Ty::Bool, false), None, "{word}");
        assert!(problem(json!(word), Ty::Bool, true).is_some(), "{word}");
    }
    assert!(problem(json!("True"), Ty::Bool, false).is_some());
}

#[test]
fn strings_take_any_yaml_scalar_and_only_strings_in_json() {
    for v in [json!(5), json!(true), json!(1.5)] {
        assert!(
            problem(v.clone(), Ty::Str, true)
                .unwrap()
                .contains("in quotes")
        );
        assert_eq!(problem(v, Ty::Str, false), None);
    }
    for json in [true, false] {
        assert!(problem(json!({}), Ty::Str, json).is_some());
        assert!(problem(json!([]), Ty::Str, json).is_some());
    }
    assert_eq!(go_string(&json!(5), false), "5");
    assert_eq!(go_string(&json!(true), false), "true");
    assert_eq!(go_string(&json!(1.5), false), "1.5");
    assert_eq!(go_string(&json!(1000.0), false), "1000");
    assert_eq!(go_string(&json!(1e6), false), "1e+06");
    assert_eq!(go_string(&json!(123456789.0), false), "1.23456789e+08");
    assert_eq!(go_string(&json!(0.00001), false), "1e-05");
    assert_eq!(go_string(&json!(5), true), "");
    assert_eq!(go_string(&Value::Null, false), "");
}

#[test]
fn integers_go_through_float64_in_json_and_truncate_in_yaml() {
    assert_eq!(problem(json!(1.0), Ty::Int, true), None);
    assert_eq!(problem(json!(100.0), Ty::Uint, true), None);
    assert!(
        problem(json!(1.5), Ty::Int, true)
            .unwrap()
            .contains("not a whole number")
    );
    assert_eq!(problem(json!(1.9), Ty::Int, false), None);
    assert_eq!(problem(json!(1.5), Ty::Uint, false), None);
    for json in [true, false] {
        let p = problem(json!("3"), Ty::Uint, json).unwrap();
        assert!(p.contains("write a whole number without quotes"), "{p}");
        assert!(problem(json!(true), Ty::Int, json).is_some());
        assert!(
            problem(json!(-1), Ty::Uint, json)
                .unwrap()
                .contains("negative")
        );
        assert_eq!(problem(json!(-1), Ty::Int, json), None);
    }
    assert!(problem(json!(-0.5), Ty::Uint, false).is_some());
    assert!(
        problem(json!(1e20), Ty::Int, false)
            .unwrap()
            .contains("out of range")
    );
    // 2^64 - 1 comes back from float64 as 2^64; yaml.v3 reads it exactly.
    assert!(problem(json!(u64::MAX), Ty::Uint, true).is_some());
    assert_eq!(problem(json!(u64::MAX), Ty::Uint, false), None);
}

#[test]
fn times_are_rfc_3339() {
    for ok in [
        "2024-01-01T00:00:00Z",
        "2021-11-09T00:00:00Z",
        "2024-06-20T15:44:05.9758548Z",
        "2024-01-01T10:00:00.5+01:00",
        "2024-02-29T23:59:59-12:00",
    ] {
        assert_eq!(rfc3339_problem(ok), None, "{ok}");
    }
    let cases = [
        ("2024-01-01", "expected"),
        ("", "expected"),
        ("2024-01-01T24:00:00Z", "hour out of range"),
        ("2023-02-29T00:00:00Z", "day out of range"),
        ("2024-13-01T00:00:00Z", "month out of range"),
        ("2024-01-01t00:00:00Z", "expected"),
        ("2024-01-01T00:00:00z", "expected"),
        ("2024-01-01 00:00:00Z", "expected"),
    ];
    for (s, why) in cases {
        let p = rfc3339_problem(s).unwrap_or_else(|| panic!("{s} accepted"));
        assert!(p.contains(why), "{s}: {p}");
    }
    assert!(problem(json!(1700000000), Ty::Time, true).is_some());
    // yaml.v3 decodes any mapping into the struct time.Time.
    assert_eq!(problem(json!({}), Ty::Time, false), None);
    assert!(problem(json!({}), Ty::Time, true).is_some());
}

#[test]
fn time_zones_are_those_go_loads() {
    for ok in [
        "",
        "local",
        "Local",
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Etc/GMT+5",
    ] {
        assert_eq!(timezone_problem(ok), None, "{ok}");
    }
    assert!(
        timezone_problem("utc")
            .unwrap()
            .contains("did you mean UTC?")
    );
    assert!(
        timezone_problem("europe/paris")
            .unwrap()
            .contains("Europe/Paris")
    );
    assert!(timezone_problem("browser").is_some());
    assert!(timezone_problem("Europe/Nowhere").is_some());
}

#[test]
fn urls_fail_where_go_url_parse_fails() {
    for ok in [
        "",
        "http://localhost:9090",
        "https://prometheus.demo.prometheus.io",
        "foo/bar",
        "/api",
        "http://[::1]:9090/x?q=1#f",
        "mailto:a@b",
    ] {
        assert_eq!(url_problem(ok), None, "{ok}");
    }
    let cases = [
        ("::bad", "missing protocol scheme"),
        ("http://a b", "invalid character ' ' in host name"),
        ("http://x/%zz", "invalid URL escape \"%zz\""),
        ("http://x\n", "invalid control character"),
        ("1a:b", "first path segment in URL cannot contain colon"),
    ];
    for (s, why) in cases {
        let p = url_problem(s).unwrap_or_else(|| panic!("{s} accepted"));
        assert!(p.contains(why), "{s}: {p}");
    }
}

#[test]
fn regexps_fail_on_unbalanced_syntax() {
    for ok in [
        "",
        "/api/v1/labels",
        "/api/v1/label/([a-zA-Z0-9_-]+)/values",
        "a*?",
        "[)]",
        "\\(",
    ] {
        assert_eq!(regexp_problem(ok), None, "{ok}");
    }
    for bad in ["(", "a)", "[a", "*a", "a**", "x\\"] {
        assert!(regexp_problem(bad).is_some(), "{bad}");
    }
    assert!(regexp_problem("(").unwrap().contains("missing closing )"));
}

#[test]
fn the_walk_knows_json_null_reaches_a_decoder_and_yaml_null_does_not() {
    fn hook(_: &Value, w: &mut Walk, at: &At) {
        w.error(format!("{at} validated"));
    }
    static CHECKED: Ty = Ty::Checked(&Ty::Str, hook);
    static PTR: Ty = Ty::Ptr(&CHECKED);
    static LIST: Ty = Ty::List(&CHECKED);
    let run = |v: Value, ty: &Ty, json: bool| {
        let mut w = Walk::new(json);
        w.check(&v, ty, &At::Root("x"));
        w.errors
    };
    assert_eq!(run(Value::Null, &CHECKED, true), vec!["x validated"]);
    assert!(run(Value::Null, &CHECKED, false).is_empty());
    assert!(run(Value::Null, &PTR, true).is_empty());
    // A null item: a zero value in JSON, dropped by yaml.v3.
    assert_eq!(run(json!([null]), &LIST, true), vec!["x[0] validated"]);
    assert!(run(json!([null]), &LIST, false).is_empty());
    assert_eq!(run(json!("a"), &CHECKED, false), vec!["x validated"]);
    // A type error stops before the decoder's own checks.
    assert_eq!(
        run(json!({}), &CHECKED, false),
        vec!["x must be a string, found an object"]
    );
}

#[test]
fn a_path_is_written_as_perses_names_the_field() {
    let root = At::Root("spec");
    let panels = root.key("panels");
    let panel = panels.key("a");
    let queries = panel.key("queries");
    assert_eq!(
        queries.index(2).key("kind").to_string(),
        "spec.panels.a.queries[2].kind"
    );
    // Under the empty root a key stands alone, as at the top of a resource.
    assert_eq!(At::Root("").key("kind").to_string(), "kind");
    assert_eq!(At::Root("").index(0).to_string(), "[0]");
}
