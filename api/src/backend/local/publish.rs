//! `4kr publish` and `unpublish` in local mode: hosts live in the Box object's `spec.publish`,
//! as they do in the CRD, and the in-memory [`HostIndex`](super::hosts::HostIndex) routes them.
//! Who may have which host is `hostrules`', shared with the kube backend.

use async_trait::async_trait;
use forkr_crds::PublishedHost;

use super::LocalBackend;
use super::hosts::box_of_url_host;
use crate::backend::hostrules::{self, Domains, Holder};
use crate::backend::{BoxKey, Hosts, spec};
use crate::error::{ApiError, ApiResult};
use crate::wire::{PublishBox, Published, UnpublishBox, Unpublished};

fn no_such_host(host: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "host_not_found",
        format!("no box serves {host}"),
    )
}

/// Where a box's URL goes when it has no `PORT`: the common default of web frameworks.
pub const DEFAULT_PORT: u16 = 8080;

impl LocalBackend {
    /// The address a request for `host` goes to: a published host's box (at the host's port or
    /// the box's), or the box a URL host names. 404 when no box has the host, 503 when its box
    /// is not running.
    pub async fn upstream(&self, host: &str) -> ApiResult<std::net::SocketAddr> {
        // A published host wins over a URL host (the first publish takes a default-project
        // URL), but never one the publish rules would refuse its box today.
        let published = self
            .hosts
            .owner(host)
            .filter(|o| hostrules::may_route(host, self.domains(), &o.project));
        let (project, name, port) = match published {
            Some(o) => (o.project, o.name, o.port),
            None => match box_of_url_host(host, &self.domain) {
                Some((p, n)) => (p, n, None),
                None => return Err(no_such_host(host)),
            },
        };
        let Some(b) = self.find_box(&project, &name).await? else {
            return Err(no_such_host(host));
        };
        let port = port
            .or_else(|| b.spec.port.and_then(|p| u16::try_from(p).ok()))
            .unwrap_or(DEFAULT_PORT);
        let (p, n) = (project.clone(), name.clone());
        let st = self.rt(move |rt| rt.status(&p, &n)).await;
        match st {
            Ok(st) if st.phase == forkr_node_agent::runtime::Phase::Running => match st.ip {
                Some(ip) => Ok(std::net::SocketAddr::from((ip, port))),
                // Without a bridge a box has only its own loopback: nothing outside reaches it.
                None => Err(ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "box_unreachable",
                    format!(
                        "box {project}:{name} has no network: forkr-api runs with --no-network"
                    ),
                )),
            },
            _ => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "box_not_running",
                format!("box {project}:{name} is not running; resume it with 4kr resume"),
            )),
        }
    }

    /// The server's domains, for the host rules.
    pub(super) fn domains(&self) -> Domains<'_> {
        Domains {
            domain: &self.domain,
            publish: &self.publish_domain,
        }
    }
}

#[async_trait]
impl Hosts for LocalBackend {
    async fn publish_box(&self, key: BoxKey, req: PublishBox, admin: bool) -> ApiResult<Published> {
        let (project, name) = key.into_parts();
        let host = spec::publish_target(
            req.subdomain.as_deref(),
            req.host.as_deref(),
            req.domain.as_deref(),
            &self.publish_domain,
        )?;
        hostrules::may_publish(&host, self.domains(), &project, admin)?;
        if let Some((p, n)) = box_of_url_host(&host, &self.domain)
            && self.find_box(&p, &n).await?.is_some()
        {
            let holder = Holder::Url {
                project: &p,
                name: &n,
            };
            hostrules::take_over(&host, holder, (&project, &name), req.force, admin)?;
        }
        // Ownership changes one at a time, so two publishes of one host cannot both win.
        let _publishing = self.publish_lock.lock().await;
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        if b.spec.publish.iter().any(|p| p.host == host) {
            return Ok(Published { host });
        }
        if let Some(owner) = self.hosts.owner(&host) {
            let holder = Holder::Published {
                project: &owner.project,
                name: &owner.name,
            };
            hostrules::take_over(&host, holder, (&project, &name), req.force, admin)?;
            // Take it over: the other box gives it up first, under its own lock.
            let other_lock = self.box_lock(&owner.project, &owner.name);
            let _og = other_lock.lock().await;
            if let Some(mut other) = self.find_box(&owner.project, &owner.name).await? {
                other.spec.publish.retain(|p| p.host != host);
                self.put_box(&owner.project, &other).await?;
            }
            self.hosts.remove(&host, &owner.project, &owner.name);
        }
        b.spec.publish.push(PublishedHost {
            host: host.clone(),
            port: None,
            service: None,
        });
        b.validate()?;
        self.put_box(&project, &b).await?;
        self.hosts.set(&host, &project, &name, None);
        Ok(Published { host })
    }

    async fn unpublish_box(&self, key: BoxKey, req: UnpublishBox) -> ApiResult<Unpublished> {
        let (project, name) = key.into_parts();
        let target = if req.subdomain.is_none() && req.host.is_none() {
            if req.domain.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_publish",
                    "a subdomain is required with --domain",
                ));
            }
            None
        } else {
            Some(spec::publish_target(
                req.subdomain.as_deref(),
                req.host.as_deref(),
                req.domain.as_deref(),
                &self.publish_domain,
            )?)
        };
        let _publishing = self.publish_lock.lock().await;
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        let removed: Vec<String> = match &target {
            Some(host) => {
                if !b.spec.publish.iter().any(|p| &p.host == host) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "host_not_owned",
                        format!("host {host} is not published by box {project}:{name}"),
                    ));
                }
                vec![host.clone()]
            }
            None => b.spec.publish.iter().map(|p| p.host.clone()).collect(),
        };
        b.spec.publish.retain(|p| !removed.contains(&p.host));
        self.put_box(&project, &b).await?;
        for host in &removed {
            self.hosts.remove(host, &project, &name);
        }
        Ok(Unpublished { hosts: removed })
    }
}
