//! The local proxy with TLS from a given certificate: box URLs over HTTPS, and the API's own
//! host behind the same certificate. (A cluster's Ingress does this there; local mode only.)

#![allow(clippy::unwrap_used)]

use forkr_e2e::{LocalOptions, Target};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec![
        "*.shop.forkr.test".to_string(),
        "forks.forkr.test".to_string(),
    ];
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let t = Target::local(LocalOptions {
        tls: Some((cert_path, key_path)),
    })
    .await;
    let proxy = t.proxy.unwrap();
    t.create_box("shop", json!({"name": "web", "port": 8000}))
        .await;
    t.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        "/v1/projects/shop/boxes/web/exec",
        Some(json!({"command": ["mkdir -p /srv && echo secure > /srv/index.html && exec httpd -f -p 8000 -h /srv"], "sh": true, "bg": true})),
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        "/v1/projects/shop/boxes/web/ports/8000/wait?timeout=10",
        None,
    )
    .await;
    let trusted = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(trusted)
        .resolve("web.shop.forkr.test", proxy)
        .resolve("forks.forkr.test", proxy)
        .build()
        .unwrap();
    let url = format!("https://web.shop.forkr.test:{}/", proxy.port());
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "secure\n");
    // The API answers on its own host through the proxy, TLS included.
    let health = client
        .get(format!("https://forks.forkr.test:{}/healthz", proxy.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{proxy}/"))
        .header("host", "web.shop.forkr.test")
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not reach the box through the TLS port"
    );
    // Inside the box the API's URL says https.
    let (_, out) = t.sh("shop", "web", "echo $FORKR_API_URL").await;
    assert_eq!(out, "https://forks.forkr.test\n");
}
