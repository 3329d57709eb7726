//! Smoke tests: prove that the bed is made of real components that behave as production does.

use crate::support::{self, ChartArtifact, Reg, bed};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use serde_json::json;
use std::collections::BTreeMap;

fn image_volume(sts: &StatefulSet, name: &str) -> Option<k8s_openapi::api::core::v1::Volume> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == name)
        .cloned()
}

fn mount(sts: &StatefulSet, name: &str) -> Option<k8s_openapi::api::core::v1::VolumeMount> {
    let c = &sts.spec.as_ref()?.template.spec.as_ref()?.containers[0];
    c.volume_mounts
        .as_ref()?
        .iter()
        .find(|m| m.name == name)
        .cloned()
}

#[tokio::test]
async fn image_volume_with_sub_path_round_trips_on_prod() {
    let bed = bed();
    let client = bed.client("prod").await;
    let ns = support::unique_ns("smoke-prod");
    support::create_namespace(&client, &ns).await;
    let mut art = ChartArtifact::new(
        "registry.example/perses-resources:v1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    art.sub_path = Some("prod".into());
    support::create_chart_workload(&client, &ns, Some(&art)).await;

    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let got = sts.get("perses").await.unwrap();
    let vol = image_volume(&got, "perses-resources").expect("image volume kept");
    let image = vol.image.expect("image source");
    assert_eq!(image.reference.as_deref(), Some(art.reference.as_str()));
    assert_eq!(image.pull_policy.as_deref(), Some("IfNotPresent"));
    let m = mount(&got, "perses-resources").expect("mount kept");
    assert_eq!(m.mount_path, "/etc/perses/provisioning");
    assert_eq!(m.sub_path.as_deref(), Some("prod"));
    // Every field of the object was written by `helm` with operation Update, as Helm 3 leaves
    // it (the controller's `status` subresource entry may already be there, or not yet).
    let mf: Vec<_> = got
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter(|e| e.subresource.is_none())
        .collect();
    assert_eq!(mf.len(), 1, "{mf:?}");
    assert_eq!(mf[0].manager.as_deref(), Some("helm"));
    assert_eq!(mf[0].operation.as_deref(), Some("Update"));
}

#[tokio::test]
async fn gate_off_cluster_silently_drops_image_volume_and_mount() {
    let bed = bed();
    let client = bed.client("gate-off").await;
    let ns = support::unique_ns("smoke-gate");
    support::create_namespace(&client, &ns).await;
    let art = ChartArtifact::new("registry.example/perses-resources:v1");
    let created = support::create_chart_workload(&client, &ns, Some(&art)).await;
    // The create succeeded, without an error or a warning we could act on...
    assert_eq!(created.metadata.name.as_deref(), Some("perses"));
    // ...but the image volume and every mount of it are gone; the other volumes stay.
    let sts: Api<StatefulSet> = Api::namespaced(client, &ns);
    let got = sts.get("perses").await.unwrap();
    assert!(image_volume(&got, "perses-resources").is_none());
    assert!(mount(&got, "perses-resources").is_none());
    assert!(image_volume(&got, "config").is_some());
    assert!(mount(&got, "data").is_some());
}

#[tokio::test]
async fn readonly_user_reads_but_gets_403_on_patch_and_none_gets_403_on_read() {
    let bed = bed();
    let admin = bed.client("prod").await;
    let ns = support::unique_ns("smoke-ro");
    support::create_namespace(&admin, &ns).await;
    support::create_chart_workload(&admin, &ns, None).await;

    let ro: Api<StatefulSet> = Api::namespaced(bed.client("prod-readonly").await, &ns);
    ro.get("perses").await.expect("readonly may get");
    let err = ro
        .patch(
            "perses",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect_err("readonly may not patch");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains("cannot patch resource \"statefulsets\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let none: Api<StatefulSet> = Api::namespaced(bed.client("prod-none").await, &ns);
    match none.get("perses").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403 for prod-none, got {other:?}"),
    }
}

#[tokio::test]
async fn staging_is_a_separate_cluster() {
    let bed = bed();
    let prod = bed.client("prod").await;
    let staging = bed.client("staging").await;
    let ns = support::unique_ns("smoke-sep");
    support::create_namespace(&prod, &ns).await;
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(staging);
    assert!(
        ns_api.get_opt(&ns).await.unwrap().is_none(),
        "namespace leaked to staging"
    );
}

async fn push_then_pull(r: Reg) {
    let bed = bed();
    let files: BTreeMap<String, Vec<u8>> = support::corpus_files("dashboards", "prod");
    let repo = format!("smoke/push-pull-{}", std::process::id());
    let digest = support::push_files(bed, r, &repo, "v1", &files).await;
    assert!(digest.starts_with("sha256:"), "{digest}");
    let (client, auth) = bed.oci(r);
    let reference: Reference = format!("{}/{repo}:v1", bed.registry_host(r))
        .parse()
        .unwrap();
    let image = client
        .pull(
            &reference,
            &auth,
            vec!["application/vnd.oci.image.layer.v1.tar+gzip"],
        )
        .await
        .expect("pull");
    assert_eq!(image.digest.as_deref(), Some(digest.as_str()));
    // The layer holds exactly the files pushed.
    let gz = flate2::read::GzDecoder::new(&image.layers[0].data[..]);
    let mut ar = tar::Archive::new(gz);
    let mut got = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let p = e.path().unwrap().to_string_lossy().to_string();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
            got.insert(p, buf);
        }
    }
    assert_eq!(got, files);
}

#[tokio::test]
async fn push_then_pull_plain_registry() {
    push_then_pull(Reg::Plain).await;
}

#[tokio::test]
async fn push_then_pull_auth_registry() {
    push_then_pull(Reg::Auth).await;
}

#[tokio::test]
async fn push_then_pull_tls_registry() {
    push_then_pull(Reg::Tls).await;
}

#[tokio::test]
async fn anonymous_pull_from_auth_registry_is_401() {
    let bed = bed();
    let files = support::corpus_files("datasources", "");
    support::push_files(bed, Reg::Auth, "smoke/anon", "v1", &files).await;
    // Raw HTTP, so the status code is the registry's own.
    let url = format!("http://{}/v2/smoke/anon/manifests/v1", bed.registry_auth);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    // And through an OCI client without credentials.
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![bed.registry_auth.clone()]),
        ..Default::default()
    });
    let reference: Reference = format!("{}/smoke/anon:v1", bed.registry_auth)
        .parse()
        .unwrap();
    let err = client
        .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
        .await
        .expect_err("anonymous must be refused");
    let msg = format!("{err}");
    assert!(
        msg.contains("401")
            || msg.to_lowercase().contains("unauthorized")
            || msg.to_lowercase().contains("auth"),
        "{msg}"
    );
}

#[tokio::test]
async fn tls_registry_works_only_with_its_ca() {
    let bed = bed();
    let files = support::corpus_files("datasources", "");
    support::push_files(bed, Reg::Tls, "smoke/tls", "v1", &files).await;
    let reference: Reference = format!("{}/smoke/tls:v1", bed.registry_tls)
        .parse()
        .unwrap();
    let without_ca = oci_client::Client::new(ClientConfig::default());
    let err = without_ca
        .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
        .await
        .expect_err("a self-signed CA must not be trusted by default");
    let msg = format!("{err:?}");
    assert!(
        msg.to_lowercase().contains("certificate")
            || msg.contains("UnknownIssuer")
            || msg.to_lowercase().contains("tls"),
        "{msg}"
    );
    let (with_ca, auth) = bed.oci(Reg::Tls);
    with_ca
        .fetch_manifest_digest(&reference, &auth)
        .await
        .expect("with the CA it works");
}
