//! Golden YAML of every Box child. `FORKR_UPDATE_GOLDEN=1 cargo nextest run -p forkr-operator`
//! rewrites the files after an intended change; review the diff.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use forkr_crds::{BoxResource, BoxSpec, DataMount, PublishedHost};
use forkr_operator::build::boxes::{self, BoxContext};
use forkr_operator::config::Settings;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn golden(name: &str, value: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = serde_yaml_ng::to_string(value).unwrap();
    if std::env::var_os("FORKR_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with FORKR_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert_eq!(text, want, "{name} differs from its golden file");
}

fn web() -> BoxResource {
    let mut b = BoxResource::new(
        "web",
        BoxSpec {
            cpu: Some(Quantity("500m".into())),
            memory: Some(Quantity("2Gi".into())),
            port: Some(8080),
            termination_grace_period_seconds: Some(30),
            env: BTreeMap::from([("GREETING".into(), "hello \"world\"".into())]),
            tags: BTreeMap::from([("team".into(), "search".into())]),
            data: vec![DataMount {
                volume: "cache".into(),
                mount_path: "/var/cache/app".into(),
                read_only: false,
            }],
            publish: vec![
                PublishedHost {
                    host: "docs.forkr.example.com".into(),
                    port: None,
                    service: None,
                },
                PublishedHost {
                    host: "api.customer.example".into(),
                    port: Some(9000),
                    service: Some("api".into()),
                },
            ],
            ..BoxSpec::default()
        },
    );
    b.metadata.namespace = Some("team".into());
    b.metadata.uid = Some("0b6a9c1e-0000-4000-8000-000000000001".into());
    b
}

fn plain() -> BoxResource {
    let mut b = BoxResource::new("scratch", BoxSpec::default());
    b.metadata.namespace = Some("default".into());
    b.metadata.uid = Some("0b6a9c1e-0000-4000-8000-000000000002".into());
    b
}

#[test]
fn deployment_of_a_full_box() {
    let s = Settings::example();
    let b = web();
    let d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-a",
            run: true,
            env: &b.spec.env,
        },
    )
    .unwrap();
    golden("web-deployment.yaml", &d);
    let pod = d.spec.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.name, "fork");
    assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
    let res = c.resources.as_ref().unwrap();
    assert!(res.limits.as_ref().unwrap().get("cpu").is_none());
    assert!(pod.os.is_none(), "1.20 rejects pod.os");
}

#[test]
fn stopped_box_scales_to_zero_and_keeps_its_env() {
    let s = Settings::example();
    let b = web();
    let frozen = BTreeMap::from([("GREETING".to_string(), "from creation".to_string())]);
    let d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-a",
            run: false,
            env: &frozen,
        },
    )
    .unwrap();
    assert_eq!(d.spec.replicas, Some(0));
    assert_eq!(boxes::frozen_env(&d), Some(frozen));
}

#[test]
fn minimal_box_in_the_default_project() {
    let s = Settings::example();
    let b = plain();
    let d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-b",
            run: true,
            env: &b.spec.env,
        },
    )
    .unwrap();
    golden("scratch-deployment.yaml", &d);
    golden("scratch-service.yaml", &boxes::service(&b));
    assert!(
        boxes::ingress(&b, &s).is_none(),
        "no port, nothing to route"
    );
}

#[test]
fn service_is_headless_with_tcp_ports() {
    let svc = boxes::service(&web());
    golden("web-service.yaml", &svc);
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    for p in spec.ports.unwrap() {
        assert_eq!(p.protocol.as_deref(), Some("TCP"));
    }
}

#[test]
fn ingress_uses_the_wildcard_then_cert_manager() {
    let s = Settings::example();
    let ing = boxes::ingress(&web(), &s).unwrap();
    golden("web-ingress.yaml", &ing);
    let no_wildcard = Settings {
        wildcard_tls_secret: None,
        ..Settings::example()
    };
    let ing = boxes::ingress(&web(), &no_wildcard).unwrap();
    golden("web-ingress-cert-manager.yaml", &ing);
}

#[test]
fn box_urls_follow_local_mode() {
    let s = Settings::example();
    assert_eq!(boxes::routes(&plain(), &s), Vec::<(String, i32)>::new());
    let r = boxes::routes(&web(), &s);
    assert_eq!(r[0], ("web.team.forkr.example.com".into(), 8080));
    assert_eq!(r[2], ("api.customer.example".into(), 9000));
}

/// The runner container is privileged and starts before the runner chroots into the box, so
/// none of the box's own variables may be its environment: `LD_PRELOAD` naming a file the box
/// wrote, or a `PATH` into the box, would run box code as root on the node. They reach the box
/// through the runner configuration only.
#[test]
fn the_box_env_reaches_the_runner_config_but_never_the_runner_process() {
    let s = Settings::example();
    let mut b = web();
    b.spec.env.extend([
        ("LD_PRELOAD".to_string(), "/volumes/tmp/evil.so".to_string()),
        ("PATH".to_string(), "/volumes/tmp:/usr/bin".to_string()),
        ("LD_LIBRARY_PATH".to_string(), "/volumes/tmp".to_string()),
    ]);
    let d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-a",
            run: true,
            env: &b.spec.env,
        },
    )
    .unwrap();
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    let env = c.env.as_ref().unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["FORKR_RUNNER_CONFIG", "FORKR_NODE_IP", "FORKR_API_IP"],
        "only what the runner reads"
    );
    for e in env.iter().filter(|e| e.name != "FORKR_RUNNER_CONFIG") {
        assert!(e.value.is_none(), "{} comes from the pod's status", e.name);
    }
    let config: forkr_agent_proto::runner::RunnerConfig =
        serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(config.env, b.spec.env, "the box gets all of it from here");
    assert_eq!(boxes::frozen_env(&d).as_ref(), Some(&b.spec.env));
}

/// The volumes every project shares are written host-side by the agent; the runner only binds
/// them into the box, so its container has them read-only. Per-project ones stay writable.
#[test]
fn shared_system_volumes_are_read_only_in_the_runner_container() {
    let s = Settings::example();
    let b = plain();
    let d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-b",
            run: true,
            env: &b.spec.env,
        },
    )
    .unwrap();
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    let ro = |name: &str| {
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no mount {name}"))
            .read_only
            == Some(true)
    };
    assert!(ro("sys-box-bin"));
    assert!(ro("sys-box-all"));
    assert!(!ro("sys-box-proj"));
    assert!(!ro("sys-home"));
    assert!(!ro("root"));
}

/// Deployments written before the box env left the container env carry it twice; the frozen
/// env is still the configuration's (what the box got at creation), so upgrading changes no
/// box's variables, only drops them from the runner's own environment.
#[test]
fn the_frozen_env_of_an_older_deployment_comes_from_its_runner_config() {
    let s = Settings::example();
    let b = web();
    let mut d = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-a",
            run: true,
            env: &b.spec.env,
        },
    )
    .unwrap();
    let c = &mut d.spec.template.spec.as_mut().unwrap().containers[0];
    c.env
        .as_mut()
        .unwrap()
        .push(k8s_openapi::api::core::v1::EnvVar {
            name: "GREETING".into(),
            value: Some("hello \"world\"".into()),
            value_from: None,
        });
    assert_eq!(boxes::frozen_env(&d).as_ref(), Some(&b.spec.env));
    let rebuilt = boxes::deployment(
        &b,
        &BoxContext {
            settings: &s,
            node: "node-a",
            run: true,
            env: &boxes::frozen_env(&d).unwrap(),
        },
    )
    .unwrap();
    let names: Vec<String> = rebuilt.spec.template.spec.unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    assert!(!names.contains(&"GREETING".to_string()), "{names:?}");
}
