//! Local mode's reverse proxy: what an Ingress does in a cluster. A request is routed by its
//! Host header: `forks.<domain>` (or a bare IP address) is the API itself; a published host or
//! a box's URL host
//! (`{box}.{domain}`, `{box}.{project}.{domain}`) goes to that box's address and port.
//! WebSocket and other upgrades pass through as byte streams. TLS, when configured, ends here.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;

use crate::backend::local::LocalBackend;
use crate::backend::local::hosts::bare_host;
use crate::error::ApiError;

/// Headers that describe one hop, not the request; never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub struct Proxy {
    backend: Arc<LocalBackend>,
    api: Router,
    api_host: String,
    scheme: &'static str,
    client: Client<HttpConnector, Body>,
}

impl Proxy {
    /// A proxy in front of `backend`'s boxes, answering `api_host` with `api`.
    pub fn new(backend: Arc<LocalBackend>, api: Router, api_host: &str, tls: bool) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
        Proxy {
            backend,
            api,
            api_host: api_host.to_ascii_lowercase(),
            scheme: if tls { "https" } else { "http" },
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The proxy as a router; serve it with connect info so X-Forwarded-For is right.
    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }
}

fn request_host(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(bare_host)
        .or_else(|| req.uri().host().map(bare_host))
}

async fn handle(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let Some(host) = request_host(&req) else {
        return ApiError::bad_request("missing_host", "the request has no Host header")
            .into_response();
    };
    // The API's own name, or an address: boxes are only ever reached by name.
    if host == proxy.api_host || host.parse::<std::net::IpAddr>().is_ok() {
        return match proxy.api.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    let target = match proxy.backend.upstream(&host).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    forward(&proxy, req, &host, target).await
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

/// Drops hop-by-hop headers, and the ones the Connection header names; an upgrade keeps its
/// `Connection: upgrade` and `Upgrade`, which are the point of the request.
fn strip_hop_headers(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::try_from(t.trim()).ok())
        .collect();
    let upgrade_to = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if upgrade && let Some(to) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, to);
    }
}

async fn forward(proxy: &Proxy, mut req: Request, host: &str, target: SocketAddr) -> Response {
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match Uri::try_from(format!("http://{target}{path}")) {
        Ok(u) => u,
        Err(e) => {
            return ApiError::bad_request("invalid_uri", format!("invalid request target: {e}"))
                .into_response();
        }
    };
    strip_hop_headers(&mut parts.headers, upgrade);
    if let Some(ip) = peer {
        let chain = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::try_from(chain) {
            parts.headers.insert("x-forwarded-for", v);
        }
    }
    if let Ok(v) = HeaderValue::try_from(host) {
        parts.headers.insert("x-forwarded-host", v);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static(proxy.scheme));
    let mut resp = match proxy
        .client
        .request(axum::http::Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("{host}: the box did not answer on {target}: {e}"),
            )
            .into_response();
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
                (Ok(c), Ok(u)) => (c, u),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        });
    } else {
        strip_hop_headers(resp.headers_mut(), false);
    }
    resp.map(Body::new)
}

/// TLS settings from PEM files: the certificate chain and its private key.
pub async fn tls_config(
    cert: &Path,
    key: &Path,
) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    // One process-wide provider; a second install (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await
}

/// Serves `app` on `listener`, over TLS when `tls` is given, with the peer address available to
/// handlers. Runs until the server fails.
pub async fn serve_on(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(cfg) => {
            axum_server::from_tcp_rustls(listener, cfg)?
                .serve(make)
                .await
        }
        None => axum_server::from_tcp(listener)?.serve(make).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_go_and_upgrades_stay() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_headers(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(h.get("x-kept").map(|v| v.as_bytes()), Some(&b"1"[..]));

        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_headers(&mut h, true);
        assert_eq!(
            h.get(header::UPGRADE).map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            h.get(header::CONNECTION).map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
    }
}
