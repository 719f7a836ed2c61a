//! forkr-api's Kubernetes backend over HTTP, on a real cluster with forkr-operator and a node
//! agent running (scripts/k8s-e2e.sh starts all of it and names the server in FORKR_E2E_URL).
//! What the backend serves so far: box lifecycle, update, exec, snapshots and restore, publish.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use forkr_e2e::{Target, Tok};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn boxes_through_the_kube_backend() {
    assert!(
        std::env::var("FORKR_E2E_URL").is_ok(),
        "run through scripts/k8s-e2e.sh, which starts forkr-api with the kube backend"
    );
    let t = Target::start().await;
    let p = "/v1/projects/kapi";
    // Leftovers of an earlier run go first.
    for name in ["web", "api"] {
        t.call(
            Method::DELETE,
            &format!("{p}/boxes/{name}?force=true"),
            Tok::Admin,
            None,
        )
        .await;
    }
    for name in ["web", "api"] {
        let until = Instant::now() + Duration::from_secs(120);
        while t
            .call(Method::GET, &format!("{p}/boxes/{name}"), Tok::Admin, None)
            .await
            .0
            != StatusCode::NOT_FOUND
        {
            assert!(
                Instant::now() < until,
                "{name} from an earlier run never went"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    let created = t
        .create_box(
            "kapi",
            json!({"name": "web", "env": {"GREETING": "hi"}, "memory": "128Mi"}),
        )
        .await;
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(created["url"], "https://web.kapi.e2e.forkr.test");
    let (code, out) = t
        .sh("kapi", "web", "echo $GREETING $BOX_NAME; hostname")
        .await;
    assert_eq!((code, out.as_str()), (0, "hi web\nweb.kapi\n"));
    let (code, _) = t.sh("kapi", "web", "exit 3").await;
    assert_eq!(code, 3);
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes"),
            Tok::Admin,
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let list = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes"), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Update: the allowlist; nothing from it is 400.
    let up = t
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{p}/boxes/web"),
            Some(json!({"env": {"PORT": "3000", "X": "y"}, "tags": {"team": "a"}})),
        )
        .await;
    assert_eq!(
        (up["port"].as_u64(), up["tags"]["team"].as_str()),
        (Some(3000), Some("a"))
    );
    let (s, v) = t
        .call(
            Method::PATCH,
            &format!("{p}/boxes/web"),
            Tok::Admin,
            Some(json!({"env": {"X": "y"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("no_updates"))
    );

    // Snapshot (named v0 by the API), change, restore.
    t.sh("kapi", "web", "echo one > /root/marker").await;
    let snap = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/boxes/web/snapshots"),
            Some(json!({"description": "first"})),
        )
        .await;
    assert_eq!(snap["name"], "v0", "{snap}");
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/web/snapshots"),
            Tok::Admin,
            Some(json!({"name": "v0"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    t.sh("kapi", "web", "echo two > /root/marker").await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/snapshots/v0/restore"),
        None,
    )
    .await;
    assert_eq!(t.sh("kapi", "web", "cat /root/marker").await.1, "one\n");
    let snaps = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/web/snapshots"),
            None,
        )
        .await;
    assert_eq!(snaps[0]["description"], "first");

    // Publish: 409 for a host in use, 403 for one not owned.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(v, json!({"host": "app.e2e.forkr.test"}));
    t.create_box("kapi", json!({"name": "api"})).await;
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/publish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/unpublish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let shown = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes/web"), None)
        .await;
    assert_eq!(shown["published"], json!(["app.e2e.forkr.test"]));

    // Stop and resume through replicas; the root survives.
    let stopped = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/stop"),
            None,
        )
        .await;
    assert_eq!(stopped["status"], "stopped");
    let resumed = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/resume"),
            None,
        )
        .await;
    assert_eq!(resumed["status"], "running");
    assert_eq!(t.sh("kapi", "web", "cat /root/marker").await.1, "one\n");

    // What the backend does not serve yet says so.
    let (s, v) = t
        .call(Method::GET, &format!("{p}/volumes"), Tok::Admin, None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_IMPLEMENTED, Some("not_supported"))
    );

    // Delete: 409 while running, then the finalizer takes it all.
    let (s, v) = t
        .call(Method::DELETE, &format!("{p}/boxes/web"), Tok::Admin, None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("fork_running"))
    );
    for name in ["web", "api"] {
        let (s, _) = t
            .call(
                Method::DELETE,
                &format!("{p}/boxes/{name}?force=true"),
                Tok::Admin,
                None,
            )
            .await;
        assert!(
            s == StatusCode::NO_CONTENT || s == StatusCode::ACCEPTED,
            "{s}"
        );
    }
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let (s, _) = t
            .call(Method::GET, &format!("{p}/boxes/web"), Tok::Admin, None)
            .await;
        if s == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < until, "the delete never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
