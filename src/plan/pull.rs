//! Whether the nodes will be able to pull a new artifact: a kubelet pulls an image volume with the
//! pod's imagePullSecrets (its own and its service account's), never with the credentials
//! perses-oci found, so a registry that refuses anonymous pulls needs one of them to hold
//! credentials for it. Pure: the facts are gathered by `ops::plan`.

use crate::model::{Check, PullIdentity, Severity};
use std::collections::BTreeMap;

/// What is known about one artifact's pull.
#[derive(Debug, Clone)]
pub struct PullFacts<'a> {
    pub artifact: &'a str,
    /// `host[:port]` of the registry, as image references and Docker configs name it.
    pub registry: &'a str,
    pub namespace: &'a str,
    /// The HTTP status of an anonymous pull of the manifest (401 or 403).
    pub refused_status: u16,
    pub pull: &'a PullIdentity,
    /// The service account's imagePullSecrets; `None` when it could not be read.
    pub account_secrets: Option<&'a [String]>,
    /// Per secret name, the registries it holds credentials for; `None` when it could not be
    /// read (no RBAC `get` on that secret, or it does not exist).
    pub secret_registries: &'a BTreeMap<String, Option<Vec<String>>>,
}

/// `host[:port]` of a Docker config `auths` key (`https://host:port/v1/`, `host:port`, ...).
pub fn registry_of_auth_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// The warning for a pull that will fail, or `None` when some secret holds credentials for the
/// registry (or could, and cannot be read to tell).
pub fn pull_check(f: &PullFacts) -> Option<Check> {
    let mut names: Vec<&String> = f.pull.secrets.iter().collect();
    if let Some(sa) = f.account_secrets {
        for s in sa {
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    let mut unreadable = Vec::new();
    for name in &names {
        match f.secret_registries.get(*name) {
            Some(Some(regs)) if regs.iter().any(|r| r == f.registry) => return None,
            Some(Some(_)) => {}
            _ => unreadable.push(name.as_str()),
        }
    }
    // A secret that cannot be read may well be the right one: no warning for it.
    if !unreadable.is_empty() {
        return None;
    }
    let has = if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
            + &format!(", none with credentials for {}", f.registry)
    };
    let account = match f.account_secrets {
        Some(_) => format!("service account {:?}", f.pull.service_account),
        None => format!(
            "service account {:?} (not readable with these credentials: RBAC verb \"get\" on serviceaccounts)",
            f.pull.service_account
        ),
    };
    Some(Check {
        severity: Severity::Warning,
        code: "pull_secret_missing".into(),
        message: format!(
            "artifact {:?}: registry {} refuses anonymous pulls (HTTP {}), and the kubelet pulls \
             with the pod's imagePullSecrets, not with perses-oci's credentials: the pod template \
             and {account} have {has}. Unless the nodes have their own credentials for {}, the \
             new pod will fail with ErrImagePull. Needed: a kubernetes.io/dockerconfigjson Secret \
             for {} in namespace {} (kubectl create secret docker-registry NAME \
             --docker-server={} ...) listed in spec.template.spec.imagePullSecrets.",
            f.artifact,
            f.registry,
            f.refused_status,
            f.registry,
            f.registry,
            f.namespace,
            f.registry,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        pull: &'a PullIdentity,
        account: Option<&'a [String]>,
        secrets: &'a BTreeMap<String, Option<Vec<String>>>,
    ) -> PullFacts<'a> {
        PullFacts {
            artifact: "perses-resources",
            registry: "reg.example:5000",
            namespace: "monitoring",
            refused_status: 401,
            pull,
            account_secrets: account,
            secret_registries: secrets,
        }
    }

    #[test]
    fn no_secret_at_all_warns_and_names_what_is_needed() {
        let pull = PullIdentity {
            secrets: vec![],
            service_account: "perses".into(),
        };
        let none: Vec<String> = vec![];
        let c = pull_check(&facts(&pull, Some(&none), &BTreeMap::new())).unwrap();
        assert_eq!(c.code, "pull_secret_missing");
        assert_eq!(c.severity, Severity::Warning);
        assert!(
            c.message
                .contains("registry reg.example:5000 refuses anonymous pulls (HTTP 401)")
                && c.message.contains("service account \"perses\" have none.")
                && c.message.contains("--docker-server=reg.example:5000")
                && c.message.contains("namespace monitoring"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_secret_for_the_registry_on_the_pod_or_the_account_is_enough() {
        let mut secrets = BTreeMap::new();
        secrets.insert("regcred".to_string(), Some(vec!["reg.example:5000".into()]));
        let pod = PullIdentity {
            secrets: vec!["regcred".into()],
            service_account: "default".into(),
        };
        assert_eq!(pull_check(&facts(&pod, None, &secrets)), None);
        let sa_only = PullIdentity {
            secrets: vec![],
            service_account: "perses".into(),
        };
        let account = vec!["regcred".to_string()];
        assert_eq!(pull_check(&facts(&sa_only, Some(&account), &secrets)), None);
    }

    #[test]
    fn secrets_for_other_registries_warn_and_are_named() {
        let mut secrets = BTreeMap::new();
        secrets.insert("other".to_string(), Some(vec!["ghcr.io".into()]));
        let pod = PullIdentity {
            secrets: vec!["other".into()],
            service_account: "default".into(),
        };
        let none: Vec<String> = vec![];
        let c = pull_check(&facts(&pod, Some(&none), &secrets)).unwrap();
        assert!(
            c.message
                .contains("have \"other\", none with credentials for reg.example:5000"),
            "{}",
            c.message
        );
    }

    #[test]
    fn an_unreadable_secret_gets_the_benefit_of_the_doubt() {
        let mut secrets = BTreeMap::new();
        secrets.insert("regcred".to_string(), None);
        let pod = PullIdentity {
            secrets: vec!["regcred".into()],
            service_account: "default".into(),
        };
        assert_eq!(pull_check(&facts(&pod, None, &secrets)), None);
    }

    #[test]
    fn an_unreadable_account_is_said_so() {
        let pod = PullIdentity {
            secrets: vec![],
            service_account: "perses".into(),
        };
        let c = pull_check(&facts(&pod, None, &BTreeMap::new())).unwrap();
        assert!(c.message.contains("not readable"), "{}", c.message);
    }

    #[test]
    fn docker_config_keys_name_registries() {
        assert_eq!(
            registry_of_auth_key("https://reg.example:5000/v1/"),
            "reg.example:5000"
        );
        assert_eq!(registry_of_auth_key("reg.example"), "reg.example");
        assert_eq!(
            registry_of_auth_key("https://index.docker.io/v1/"),
            "docker.io"
        );
    }
}
