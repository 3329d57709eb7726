//! The clients one command shares between its environments, and the tags it resolved.

use crate::cluster::{self, Cluster};
use crate::model::RegistrySettings;
use crate::registry::Registry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Shared<T> = Arc<OnceCell<Result<T, String>>>;

/// What one command shares between its environments: one Kubernetes client per kubeconfig
/// context (one connection pool and one `/version` per cluster, one kubeconfig read and TLS
/// set-up per context), one registry client set per registry settings (one protocol probe and
/// one TLS set-up per registry), and each `image:tag` resolved once, so that every environment
/// of one plan pins the same digest for the same tag.
#[derive(Clone, Default)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Default)]
struct SessionInner {
    kubeconfig: Option<PathBuf>,
    clusters: Mutex<HashMap<Option<String>, Shared<Cluster>>>,
    registries: Mutex<Vec<(RegistrySettings, Arc<RegistryEntry>)>>,
}

struct RegistryEntry {
    registry: Arc<Registry>,
    tags: Mutex<HashMap<(String, String), Shared<String>>>,
}

impl Session {
    pub fn new(kubeconfig: Option<PathBuf>) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                kubeconfig,
                ..Default::default()
            }),
        }
    }

    /// The client of a kubeconfig context (`None`: the current one), connected once.
    pub async fn cluster(&self, context: Option<&str>) -> Result<Cluster, String> {
        let cell = self
            .inner
            .clusters
            .lock()
            .unwrap()
            .entry(context.map(str::to_string))
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            cluster::connect(self.inner.kubeconfig.as_deref(), context)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .clone()
    }

    fn registry_entry(&self, settings: &RegistrySettings) -> Arc<RegistryEntry> {
        let mut all = self.inner.registries.lock().unwrap();
        if let Some((_, e)) = all.iter().find(|(s, _)| s == settings) {
            return e.clone();
        }
        let entry = Arc::new(RegistryEntry {
            registry: Arc::new(Registry::new(settings.clone())),
            tags: Mutex::default(),
        });
        all.push((settings.clone(), entry.clone()));
        entry
    }

    /// The registry clients for these settings.
    pub fn registry(&self, settings: &RegistrySettings) -> Arc<Registry> {
        self.registry_entry(settings).registry.clone()
    }

    /// `image:tag` resolved to a digest, once per command and settings.
    pub(super) async fn resolve(
        &self,
        settings: &RegistrySettings,
        image: &str,
        tag: &str,
    ) -> Result<String, String> {
        let entry = self.registry_entry(settings);
        let cell = entry
            .tags
            .lock()
            .unwrap()
            .entry((image.to_string(), tag.to_string()))
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            entry
                .registry
                .resolve(image, tag)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .clone()
    }
}
