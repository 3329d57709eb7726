//! Integration tests against the real test bed (etcd + kube-apiserver, OCI registries). One
//! binary, so the whole suite shares one bed; each test works in its own namespace.

#[path = "../support/mod.rs"]
mod support;

#[path = "../faultkit/mod.rs"]
mod faultkit;

mod apply;
mod content;
mod drift;
mod helm;
mod helm_handover;
mod node;
mod node_cron;
mod node_failures;
mod plan;
mod push;
mod reliability;
mod smoke;
