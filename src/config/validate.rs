//! Grammar of single values (names, paths, image references): pure functions that say what is
//! wrong with a string, in words that fit after the key, e.g. "must be an absolute path".

use super::suggest::did_you_mean;
use crate::model::{Pin, PullPolicy, WorkloadKind, WorkloadRef};

pub(super) type Check = Result<(), String>;

/// Anything a terminal would interpret, or that hides in an editor, has no place in a name or
/// path, and would make diagnostics print garbage.
pub(super) fn no_control(s: &str) -> Check {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters (found {c:?})"));
    }
    match s.chars().find(|c| invisible(*c)) {
        Some(c) => Err(format!(
            "must not contain invisible or text-direction characters (found U+{:04X})",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Bidirectional overrides and isolates reorder what a reviewer sees ("Trojan Source",
/// CVE-2021-42574); zero-width characters make two different strings look the same.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters: namespaces, containers, volumes.
pub(super) fn dns_label(s: &str) -> Check {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "must be a DNS-1123 label of at most 63 characters (is {})",
            s.len()
        ));
    }
    label_grammar(s, "DNS-1123 label", "lowercase letters, digits and '-'")
}

/// DNS-1123 labels joined by dots, at most 253 characters: workload names. As in Kubernetes,
/// the labels themselves are not limited to 63 characters.
pub(super) fn dns_subdomain(s: &str) -> Check {
    const WHAT: &str = "DNS-1123 subdomain";
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "must be a {WHAT} of at most 253 characters (is {})",
            s.len()
        ));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(format!(
                "must be a {WHAT}: no empty label (leading, trailing or doubled '.')"
            ));
        }
        label_grammar(label, WHAT, "lowercase letters, digits, '-' and '.'")?;
    }
    Ok(())
}

fn label_grammar(label: &str, what: &str, allowed: &str) -> Check {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if let Some(c) = label.chars().find(|c| !ok(*c)) {
        return Err(format!("must be a {what}: {allowed} only (found {c:?})"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "must be a {what}: must start and end with a lowercase letter or digit"
        ));
    }
    Ok(())
}

/// Tag grammar of the OCI distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub(super) fn tag(s: &str) -> Check {
    let Some(first) = s.chars().next() else {
        return Err("must not be empty".into());
    };
    if s.len() > 128 {
        return Err(format!("must be at most 128 characters (is {})", s.len()));
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!(
            "must start with a letter, a digit or '_' (found {first:?})"
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(c) = s.chars().find(|c| !ok(*c)) {
        let hint = match c {
            '@' => "; the digest is resolved by perses-oci (see `pin`)",
            _ => "",
        };
        return Err(format!(
            "may contain only letters, digits, '.', '_' and '-' (found {c:?}){hint}"
        ));
    }
    Ok(())
}

/// `source`: an OCI image layout (`oci:PATH`, relative to the project directory) that holds
/// the artifact `image` names, for sites where perses-oci cannot reach the registry the
/// nodes pull from (air-gapped, offline, the quickstart).
pub(super) fn layout_source(s: &str) -> Result<String, String> {
    match s.strip_prefix("oci:") {
        Some(path) if !path.is_empty() && !path.contains(['@', ':']) => Ok(s.to_string()),
        Some(_) => Err("an OCI layout is written `oci:PATH` (relative to the project directory), without tag or digest: the tag is the artifact's `tag`".into()),
        None => Err("must be an OCI layout, `oci:PATH`; a registry is named by `image`".into()),
    }
}

/// A repository without tag or digest: `[host[:port]/]component(/component)*`.
pub(super) fn repository(s: &str) -> Check {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    // An OCI image layout directory, relative to the project directory (air-gapped sites, the
    // quickstart); the tag is found by its `org.opencontainers.image.ref.name` annotation.
    if let Some(path) = s.strip_prefix("oci:") {
        if path.is_empty() || path.contains('@') || path.contains(':') {
            return Err("an OCI layout is written `oci:PATH` (relative to the project directory), without tag or digest".into());
        }
        return Ok(());
    }
    if s.contains("://") {
        return Err(
            "must not include a scheme: write `registry.example.com/name`; plain-HTTP \
             registries go in [registry] insecure"
                .into(),
        );
    }
    if s.contains('@') {
        return Err(
            "must not include a digest: perses-oci resolves `tag` to a digest itself (see `pin`)"
                .into(),
        );
    }
    if s.len() > 255 {
        return Err(format!("must be at most 255 characters (is {})", s.len()));
    }
    let parts: Vec<&str> = s.split('/').collect();
    // The rule Docker and containerd use: a first component is a registry host only if more
    // follow and it looks like one; otherwise `name` alone is a path on the default registry.
    let (host, path) = match parts.split_first() {
        Some((first, rest)) if !rest.is_empty() && looks_like_host(first) => (Some(*first), rest),
        _ => (None, &parts[..]),
    };
    for component in path {
        if let Some((_, tag)) = component.split_once(':') {
            return Err(format!(
                "must not include a tag: remove \":{tag}\" and write tag = {tag:?}"
            ));
        }
    }
    if let Some(host) = host {
        host_port(host).map_err(|e| format!("registry host {host:?} {e}"))?;
    }
    path.iter().try_for_each(|c| path_component(c))
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':', '['])
        || component == "localhost"
        || component.chars().any(|c| c.is_ascii_uppercase())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component(c: &str) -> Check {
    if c.is_empty() {
        return Err(
            "must not have an empty path component (leading, trailing or doubled '/')".into(),
        );
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if let Some(ch) = c.chars().find(|ch| {
        !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
    }) {
        let why = if ch.is_ascii_uppercase() {
            "repository paths are lowercase"
        } else {
            "only lowercase letters, digits, '.', '_' and '-' are allowed"
        };
        return Err(format!("path component {c:?}: {why} (found {ch:?})"));
    }
    let bytes = c.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "path component {c:?} must start and end with a lowercase letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return Err(format!(
                "path component {c:?}: {sep:?} is not a separator (use '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

/// `host[:port]` of a registry, the way it appears in image references.
pub(super) fn host_port(s: &str) -> Check {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains("://") {
        return Err("must be host[:port], without a scheme".into());
    }
    if s.contains('/') {
        return Err("must be host[:port], without a path".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err("must close the IPv6 address with ']'".into());
        };
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        {
            return Err(format!(
                "must hold an IPv6 address between '[' and ']' (found {inner:?})"
            ));
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err("must be [IPv6]:port".into()),
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(port) = port
        && !(!port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0))
    {
        return Err(format!("must have a port from 1 to 65535 (found {port:?})"));
    }
    if let Some(host) = host {
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "must be a host name or IP address, optionally with :port (bad part {label:?})"
                ));
            }
        }
    }
    Ok(())
}

/// Where the volume is mounted in the container. Compared verbatim with the live workload,
/// so spellings that Kubernetes would treat alike ("//", a trailing '/') are refused rather than
/// silently normalised: the file says exactly what ends up in the pod spec.
pub(super) fn mount_path(s: &str) -> Check {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if !s.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    if s == "/" {
        return Err("must not be \"/\", the container's root".into());
    }
    path_shape(&s[1..])
}

/// The directory of the image that is mounted, relative to the image root.
pub(super) fn sub_path(s: &str) -> Check {
    if s.is_empty() {
        return Err("must not be empty (omit `sub_path` to mount the whole image)".into());
    }
    if s.starts_with('/') {
        return Err("must be a relative path (no leading '/')".into());
    }
    path_shape(s)
}

fn path_shape(relative: &str) -> Check {
    if relative.contains("//") {
        return Err("must not contain \"//\"".into());
    }
    if relative.ends_with('/') {
        return Err("must not end with '/'".into());
    }
    for component in relative.split('/') {
        if component == ".." || component == "." {
            return Err(format!("must not contain a {component:?} component"));
        }
    }
    Ok(())
}

pub(super) fn workload(s: &str) -> Result<WorkloadRef, String> {
    const FORM: &str = "must be `statefulset/NAME` or `deployment/NAME`";
    let Some((kind, name)) = s.split_once('/') else {
        return Err(FORM.into());
    };
    let kind = match kind {
        "statefulset" => WorkloadKind::StatefulSet,
        "deployment" => WorkloadKind::Deployment,
        _ => {
            let hint = did_you_mean(kind, &["statefulset", "deployment"]);
            return Err(format!("{FORM}: unknown kind {kind:?}{hint}"));
        }
    };
    dns_subdomain(name).map_err(|e| format!("name {name:?} {e}"))?;
    Ok(WorkloadRef {
        kind,
        name: name.to_string(),
    })
}

pub(super) fn pull_policy(s: &str) -> Result<PullPolicy, String> {
    PullPolicy::parse(s).ok_or_else(|| {
        let names: Vec<&str> = PullPolicy::ALL.iter().map(|p| p.as_str()).collect();
        format!(
            "must be one of {}{}",
            names.join(", "),
            did_you_mean(s, &names)
        )
    })
}

pub(super) fn pin(s: &str) -> Result<Pin, String> {
    match s {
        "digest" => Ok(Pin::Digest),
        "tag" => Ok(Pin::Tag),
        _ => Err(format!(
            "must be \"digest\" or \"tag\"{}",
            did_you_mean(s, &["digest", "tag"])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in [
            "a",
            "monitoring",
            "perses-resources",
            "a1",
            "0",
            &"a".repeat(63),
        ] {
            assert_eq!(dns_label(ok), Ok(()), "{ok}");
        }
        assert_eq!(dns_label(""), Err("must not be empty".into()));
        assert_eq!(
            dns_label(&"a".repeat(64)),
            Err("must be a DNS-1123 label of at most 63 characters (is 64)".into())
        );
        assert_eq!(
            dns_label("Prod"),
            Err(
                "must be a DNS-1123 label: lowercase letters, digits and '-' only (found 'P')"
                    .into()
            )
        );
        assert!(dns_label("a.b").is_err());
        assert!(dns_label("a_b").is_err());
        assert_eq!(
            dns_label("-a"),
            Err(
                "must be a DNS-1123 label: must start and end with a lowercase letter or digit"
                    .into()
            )
        );
        assert!(dns_label("a-").is_err());
    }

    #[test]
    fn subdomains() {
        for ok in ["perses", "perses.v1", "a-b.c-d", &"a".repeat(100)] {
            assert_eq!(dns_subdomain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "A",
            "a_b",
            "-a.b",
            "a.b-",
            &"a".repeat(254),
        ] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in [
            "v1",
            "prod-v1.2.0",
            "staging-v1.3.0-rc.1",
            "_x",
            "1.0",
            "LATEST",
            &"a".repeat(128),
        ] {
            assert_eq!(tag(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".v1", "-v1", "v1+build", "v 1", &"a".repeat(129)] {
            assert!(tag(bad).is_err(), "{bad}");
        }
        assert!(tag("v1@sha256:00").unwrap_err().contains("see `pin`"));
    }

    #[test]
    fn repositories() {
        for ok in [
            "perses-resources",
            "registry.company.com/perses-resources",
            "registry.company.com:5000/team/perses-resources",
            "127.0.0.1:5000/perses",
            "localhost/perses",
            "localhost:5000/a/b/c",
            "[::1]:5000/perses",
            "a.b/c__d/e_f/g.h/i---j",
            "Registry.Company.com/x",
        ] {
            assert_eq!(repository(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            repository("registry.company.com/perses-resources:prod-v1"),
            Err("must not include a tag: remove \":prod-v1\" and write tag = \"prod-v1\"".into())
        );
        assert!(
            repository("perses:v1")
                .unwrap_err()
                .contains("must not include a tag")
        );
        assert!(
            repository("r.io/p@sha256:abc")
                .unwrap_err()
                .contains("digest")
        );
        assert!(repository("https://r.io/p").unwrap_err().contains("scheme"));
        assert_eq!(
            repository("r.io/Perses"),
            Err("path component \"Perses\": repository paths are lowercase (found 'P')".into())
        );
        for bad in [
            "",
            "r.io/",
            "r.io//p",
            "/p",
            "r.io/-p",
            "r.io/p-",
            "r.io/a..b",
            "r.io/a___b",
            "r.io/a._b",
            "r.io:abc/p",
            "r.io:0/p",
            "bad_host.io/p",
            "r.io/p q",
        ] {
            assert!(repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1:5000",
            "localhost",
            "registry.local:443",
            "[::1]:5000",
            "[fe80::1]",
        ] {
            assert_eq!(host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "http://r.io",
            "r.io/x",
            "r.io:",
            "r.io:70000",
            "-r.io",
            "a..b",
            "[::1",
            "[::1]x",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(mount_path("/etc/perses/provisioning"), Ok(()));
        assert_eq!(
            mount_path("etc/perses"),
            Err("must be an absolute path".into())
        );
        assert_eq!(
            mount_path("/"),
            Err("must not be \"/\", the container's root".into())
        );
        assert_eq!(
            mount_path("/etc//perses"),
            Err("must not contain \"//\"".into())
        );
        assert_eq!(
            mount_path("/etc/perses/"),
            Err("must not end with '/'".into())
        );
        assert_eq!(
            mount_path("/etc/../perses"),
            Err("must not contain a \"..\" component".into())
        );
        assert_eq!(sub_path("prod"), Ok(()));
        assert_eq!(sub_path("a/b.c/..d"), Ok(()));
        assert!(sub_path("").is_err());
        assert!(sub_path("/prod").is_err());
        assert!(sub_path("../prod").is_err());
        assert!(sub_path("a/..").is_err());
    }

    #[test]
    fn enums() {
        assert_eq!(
            workload("deployment/perses"),
            Ok(WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "perses".into()
            })
        );
        assert_eq!(
            workload("statefulsets/perses"),
            Err("must be `statefulset/NAME` or `deployment/NAME`: unknown kind \"statefulsets\"; did you mean `statefulset`?".into())
        );
        assert!(workload("perses").is_err());
        assert!(workload("statefulset/").is_err());
        assert!(
            workload("statefulset/Perses")
                .unwrap_err()
                .starts_with("name \"Perses\" must be")
        );
        assert_eq!(pull_policy("Never"), Ok(PullPolicy::Never));
        assert_eq!(
            pull_policy("ifnotpresent"),
            Err("must be one of Always, IfNotPresent, Never; did you mean `IfNotPresent`?".into())
        );
        assert_eq!(pin("tag"), Ok(Pin::Tag));
        assert!(
            pin("digests")
                .unwrap_err()
                .ends_with("did you mean `digest`?")
        );
    }

    #[test]
    fn control_characters() {
        assert_eq!(no_control("plain é"), Ok(()));
        assert_eq!(
            no_control("a\tb"),
            Err("must not contain control characters (found '\\t')".into())
        );
        assert!(no_control("\u{7f}").is_err());
        assert_eq!(
            no_control("/etc/perses/\u{202E}gnp.json"),
            Err("must not contain invisible or text-direction characters (found U+202E)".into())
        );
        assert!(no_control("prod\u{200B}").is_err());
        assert!(no_control("\u{2067}x").is_err());
        assert_eq!(no_control("日本語/ñ"), Ok(()));
    }
}
