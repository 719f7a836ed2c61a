//! Public hostnames for `4kr publish`.

use super::ValidationError;

/// A DNS-1123 subdomain: dot-separated labels of lowercase alphanumerics and '-', each 1-63
/// long and alphanumeric at both ends, 253 in all. Wildcards are refused: a box owns exact hosts.
pub fn validate_host(host: &str) -> Result<(), ValidationError> {
    let invalid = |rule| ValidationError::InvalidHost {
        host: host.to_owned(),
        rule,
    };
    if host.is_empty() || host.len() > 253 {
        return Err(invalid("a hostname is 1 to 253 characters"));
    }
    for label in host.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if !ok {
            return Err(invalid(
                "each dot-separated label must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            ));
        }
    }
    Ok(())
}

/// Resolves the host to publish, as 001 says: `--host` wins; otherwise `{subdomain}.{domain}`,
/// where `@` is the bare domain. Input is lowercased, since DNS is case-insensitive.
pub fn publish_host(
    subdomain: Option<&str>,
    host: Option<&str>,
    domain: &str,
) -> Result<String, ValidationError> {
    let resolved = match (host, subdomain) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::Invalid {
                what: "publish target",
                value: String::new(),
                rule: "give a subdomain or --host, not both",
            });
        }
        (Some(host), None) => host.to_ascii_lowercase(),
        (None, Some("@")) => domain.to_ascii_lowercase(),
        (None, Some(sub)) => format!(
            "{}.{}",
            sub.to_ascii_lowercase(),
            domain.to_ascii_lowercase()
        ),
        (None, None) => {
            return Err(ValidationError::Invalid {
                what: "publish target",
                value: String::new(),
                rule: "a subdomain is required unless --host is given",
            });
        }
    };
    validate_host(&resolved)?;
    Ok(resolved)
}
