//! Who may publish which host, the same in both backends and in the local proxy.
//!
//! A published host routes strangers' traffic to a box, so the name says whose it is:
//!
//! - `forks.{domain}` is the API's own;
//! - `*.{project}.{domain}` is project `project`'s namespace (its boxes' URLs live there): only
//!   that project's boxes publish it;
//! - a single label `{x}.{domain}` goes to the first publish (or box: it is also the URL of box
//!   `x` of project `default`); a default-project box created later is told its URL is taken;
//! - the bare domain, and every host outside the server's domains, need an admin token.
//!
//! The server's domains are the deployment domain (FORKR_DOMAIN) and the publish domain
//! (FORKR_PUBLISH_DOMAIN), which is the same unless set. `--force` takes a host from another box
//! of the caller's project; only an admin takes one from another project. A conflict never
//! names another project's box.

use forkr_crds::validation::{validate_box_name, validate_project_name};

use crate::error::{ApiError, ApiResult};

/// The project whose boxes' URLs need no project label.
pub const DEFAULT_PROJECT: &str = "default";

/// The `forks.<domain>` host is the API's own.
pub fn api_host(domain: &str) -> String {
    format!("forks.{domain}")
}

/// The box a URL host names: `{box}.{domain}` in the default project, `{box}.{project}.{domain}`
/// elsewhere. Names hold no dots, so the form is unambiguous.
pub fn box_of_url_host(host: &str, domain: &str) -> Option<(String, String)> {
    let prefix = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (name, project) = match prefix.split_once('.') {
        None => (prefix, DEFAULT_PROJECT),
        Some((name, project)) => (name, project),
    };
    validate_box_name(name).ok()?;
    validate_project_name(project).ok()?;
    Some((project.to_owned(), name.to_owned()))
}

/// The server's domains.
#[derive(Debug, Clone, Copy)]
pub struct Domains<'a> {
    /// FORKR_DOMAIN: box URLs and the API's host.
    pub domain: &'a str,
    /// Where `4kr publish <box> <sub>` puts `<sub>`.
    pub publish: &'a str,
}

/// Whose a host is, by its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// `forks.{domain}`.
    Api,
    /// The bare deployment or publish domain.
    Apex,
    /// `{x}.{domain}`: the first publish takes it.
    Open,
    /// `*.{project}.{domain}`: that project's.
    Project(String),
    /// Outside the server's domains.
    Foreign,
}

/// Classifies `host`. The publish domain is looked at first: it may sit under the deployment
/// domain (`apps.forkr.test` under `forkr.test`), and then its hosts are open, not project
/// `apps`'s.
pub fn zone(host: &str, d: Domains<'_>) -> Zone {
    if host == api_host(d.domain) {
        return Zone::Api;
    }
    for domain in [d.publish, d.domain] {
        if domain.is_empty() {
            continue;
        }
        if host == domain {
            return Zone::Apex;
        }
        let Some(prefix) = host
            .strip_suffix(domain)
            .and_then(|p| p.strip_suffix('.'))
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        return match prefix.rsplit_once('.') {
            None => Zone::Open,
            Some((_, project)) => Zone::Project(project.to_owned()),
        };
    }
    Zone::Foreign
}

/// Whether a box of `project` may publish `host` at all, whoever has it now.
pub fn may_publish(host: &str, d: Domains<'_>, project: &str, admin: bool) -> ApiResult<()> {
    match zone(host, d) {
        Zone::Api => Err(ApiError::conflict(
            "host_in_use",
            format!("host {host} is the API's own"),
        )),
        Zone::Project(owner) if owner != project => Err(ApiError::forbidden(format!(
            "host {host} is in project {owner:?}'s namespace: only that project's boxes publish hosts under {owner}.{domain}",
            domain = d.domain
        ))),
        Zone::Apex | Zone::Foreign if !admin => Err(ApiError::forbidden(format!(
            "publishing {host} needs an admin token: a project token publishes hosts under {}",
            under(d)
        ))),
        _ => Ok(()),
    }
}

fn under(d: Domains<'_>) -> String {
    if d.publish == d.domain || d.publish.is_empty() {
        d.domain.to_owned()
    } else {
        format!("{} or {}", d.publish, d.domain)
    }
}

/// A box that has a host: by publishing it, or because the host is its URL.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    Published { project: &'a str, name: &'a str },
    Url { project: &'a str, name: &'a str },
}

/// Whether box `project:name` may have `host`, which `holder` has: `Ok` means take it over.
/// Within a project, `force` takes a published host and the conflict names the box; across
/// projects only an admin's `force` does, and nothing names the other project's box.
pub fn take_over(
    host: &str,
    holder: Holder<'_>,
    (project, name): (&str, &str),
    force: bool,
    admin: bool,
) -> ApiResult<()> {
    match holder {
        Holder::Url {
            project: p,
            name: n,
        } if (p, n) == (project, name) => Ok(()),
        Holder::Url {
            project: p,
            name: n,
        } if p == project => Err(ApiError::conflict(
            "host_in_use",
            format!("host {host} is the URL of box {p}:{n}"),
        )),
        Holder::Url { .. } => Err(ApiError::conflict(
            "host_in_use",
            format!("host {host} is the URL of a box of another project"),
        )),
        Holder::Published {
            project: p,
            name: n,
        } if p == project => {
            if force || n == name {
                Ok(())
            } else {
                Err(ApiError::conflict(
                    "host_in_use",
                    format!(
                        "host {host} is already published by box {p}:{n} (use --force to take it over)"
                    ),
                ))
            }
        }
        Holder::Published { .. } if force && admin => Ok(()),
        Holder::Published { .. } if force => Err(ApiError::forbidden(format!(
            "host {host} is published by a box of another project: --force takes over only hosts of this project's boxes"
        ))),
        Holder::Published { .. } => Err(ApiError::conflict(
            "host_in_use",
            format!("host {host} is already published by a box of another project"),
        )),
    }
}

/// Whether the proxy may route `host` to a box of `project` that published it. The publish
/// rules keep every recorded host within them; this holds the proxy to the same rules for
/// hosts recorded before they existed.
pub fn may_route(host: &str, d: Domains<'_>, project: &str) -> bool {
    match zone(host, d) {
        Zone::Api => false,
        Zone::Project(owner) => owner == project,
        Zone::Open | Zone::Apex | Zone::Foreign => true,
    }
}

/// The URL host of box `name` of project `project` that a publish can take before the box
/// exists: only `{name}.{domain}` in the default project (other projects' URL hosts are in
/// their own namespace).
pub fn claimable_url_host(project: &str, name: &str, domain: &str) -> Option<String> {
    (project == DEFAULT_PROJECT).then(|| format!("{name}.{domain}"))
}

/// What a create tells a default-project box whose URL host another box published first; the
/// proxy keeps serving that box there (the first publish wins).
pub fn url_taken(host: &str, holder_project: &str, holder_name: &str) -> String {
    let by = if holder_project == DEFAULT_PROJECT {
        format!("box {holder_project}:{holder_name}")
    } else {
        "a box of another project".to_owned()
    };
    format!(
        "its URL is taken: {host} was published first by {by}, which keeps it; publish this box under another host with 4kr publish"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Domains<'static> = Domains {
        domain: "forkr.test",
        publish: "forkr.test",
    };

    #[test]
    fn url_hosts_name_boxes() {
        let d = "forkr.test";
        assert_eq!(
            box_of_url_host("web.forkr.test", d),
            Some(("default".into(), "web".into()))
        );
        assert_eq!(
            box_of_url_host("web.shop.forkr.test", d),
            Some(("shop".into(), "web".into()))
        );
        assert_eq!(box_of_url_host("forkr.test", d), None);
        assert_eq!(box_of_url_host("a.b.c.forkr.test", d), None);
        assert_eq!(box_of_url_host("webforkr.test", d), None);
        assert_eq!(box_of_url_host("web.example.com", d), None);
        assert_eq!(box_of_url_host("Bad_Name.forkr.test", d), None);
    }

    #[test]
    fn hosts_fall_in_zones() {
        assert_eq!(zone("forks.forkr.test", D), Zone::Api);
        assert_eq!(zone("forkr.test", D), Zone::Apex);
        assert_eq!(zone("app.forkr.test", D), Zone::Open);
        assert_eq!(zone("web.shop.forkr.test", D), Zone::Project("shop".into()));
        assert_eq!(zone("a.b.shop.forkr.test", D), Zone::Project("shop".into()));
        assert_eq!(zone("example.org", D), Zone::Foreign);
        assert_eq!(zone("evilforkr.test", D), Zone::Foreign);
        // A publish domain under the deployment domain holds open hosts, not a project's.
        let nested = Domains {
            domain: "forkr.test",
            publish: "apps.forkr.test",
        };
        assert_eq!(zone("x.apps.forkr.test", nested), Zone::Open);
        assert_eq!(zone("apps.forkr.test", nested), Zone::Apex);
        assert_eq!(
            zone("x.shop.forkr.test", nested),
            Zone::Project("shop".into())
        );
    }

    #[test]
    fn a_project_publishes_in_its_namespace_and_open_hosts_only() {
        assert!(may_publish("web.shop.forkr.test", D, "shop", false).is_ok());
        assert!(may_publish("app.forkr.test", D, "shop", false).is_ok());
        let e = may_publish("web.other.forkr.test", D, "shop", false).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"));
        // Not even an admin puts another project's box in a project's namespace.
        assert!(may_publish("web.other.forkr.test", D, "shop", true).is_err());
        for host in ["example.org", "forkr.test"] {
            let e = may_publish(host, D, "shop", false).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"), "{host}");
            assert!(may_publish(host, D, "shop", true).is_ok(), "{host}");
        }
        let e = may_publish("forks.forkr.test", D, "shop", true).unwrap_err();
        assert_eq!(e.code, "host_in_use");
    }

    #[test]
    fn force_stays_within_the_project_unless_admin() {
        let theirs = Holder::Published {
            project: "acme",
            name: "victim",
        };
        let me = ("shop", "web");
        let e = take_over("app.forkr.test", theirs, me, false, false).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (409, "host_in_use"));
        assert!(!e.message.contains("acme") && !e.message.contains("victim"));
        let e = take_over("app.forkr.test", theirs, me, true, false).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"));
        assert!(!e.message.contains("victim"));
        assert!(take_over("app.forkr.test", theirs, me, true, true).is_ok());
        let mine = Holder::Published {
            project: "shop",
            name: "api",
        };
        let e = take_over("app.forkr.test", mine, me, false, false).unwrap_err();
        assert!(e.message.contains("shop:api"), "{}", e.message);
        assert!(take_over("app.forkr.test", mine, me, true, false).is_ok());
        let url = Holder::Url {
            project: "default",
            name: "app",
        };
        let e = take_over("app.forkr.test", url, me, true, true).unwrap_err();
        assert_eq!(e.code, "host_in_use");
        assert!(!e.message.contains("default:app"));
    }

    #[test]
    fn the_proxy_routes_a_project_namespace_only_to_that_project() {
        assert!(may_route("x.shop.forkr.test", D, "shop"));
        assert!(!may_route("x.shop.forkr.test", D, "other"));
        assert!(!may_route("forks.forkr.test", D, "shop"));
        assert!(may_route("app.forkr.test", D, "other"));
    }
}
