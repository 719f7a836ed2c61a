//! Who may hold what across namespaces: the rules the operator applies to objects written
//! directly (kubectl, Argo CD) and that forkr-api applies to requests.

/// The namespace a host under the box domain belongs to: `{anything}.{ns}.{domain}` is
/// namespace `ns`'s, as box URLs `{box}.{ns}.{domain}` are. Single-label hosts
/// (`{x}.{domain}`), the bare domain and hosts outside it belong to no namespace: the first
/// claim wins there.
pub fn host_namespace<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    if domain.is_empty() {
        return None;
    }
    let prefix = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (_, ns) = prefix.rsplit_once('.')?;
    (!ns.is_empty()).then_some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_two_labels_under_the_domain_belong_to_the_namespace() {
        let d = "forkr.example.com";
        assert_eq!(
            host_namespace("web.shop.forkr.example.com", d),
            Some("shop")
        );
        assert_eq!(
            host_namespace("a.b.shop.forkr.example.com", d),
            Some("shop")
        );
        assert_eq!(host_namespace("web.forkr.example.com", d), None);
        assert_eq!(host_namespace("forkr.example.com", d), None);
        assert_eq!(host_namespace("app.example.org", d), None);
        // A suffix match must be on a label boundary.
        assert_eq!(host_namespace("web.shopforkr.example.com", d), None);
        assert_eq!(host_namespace("web.shop.xforkr.example.com", d), None);
        assert_eq!(host_namespace("web.shop.forkr.example.com", ""), None);
    }
}
