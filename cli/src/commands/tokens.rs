//! `4kr token list|create|revoke`: the server's bearer tokens, through the API (admin tokens
//! only; the server refuses others with 403).

use forkr_api_proto::wire::{CreateToken, ExpiresIn, TokenView};

use super::Context;
use crate::cli::TokenCommand;
use crate::output;

/// The ID NAME SCOPE CREATED EXPIRES LAST-USED table.
pub fn table(tokens: &[TokenView]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                scope(t),
                t.created.clone(),
                dash(&t.expires),
                dash(&t.last_used),
            ]
        })
        .collect();
    output::table(
        &["ID", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST-USED"],
        &rows,
    )
}

/// `admin`, or the projects, comma-separated.
fn scope(t: &TokenView) -> String {
    if t.admin {
        "admin".to_owned()
    } else {
        t.projects.join(",")
    }
}

/// `--expires`: a lifetime (`30d`, `12h`, `3600`) when it reads as one, else an RFC 3339 time;
/// the server checks either.
pub fn expiry(expires: Option<String>) -> (Option<ExpiresIn>, Option<String>) {
    match expires {
        None => (None, None),
        Some(e) if forkr_api_proto::wire::parse_lifetime(&e).is_ok() => {
            (Some(ExpiresIn::Text(e)), None)
        }
        Some(e) => (None, Some(e)),
    }
}

pub async fn run(ctx: &Context, cmd: TokenCommand) -> anyhow::Result<String> {
    match cmd {
        TokenCommand::List { .. } => Ok(table(&ctx.client()?.list_tokens().await?)),
        TokenCommand::Create {
            name,
            admin,
            project,
            expires,
            ..
        } => {
            if !admin && project.is_empty() {
                anyhow::bail!("give --admin or at least one --project");
            }
            let (expires_in, expires) = expiry(expires);
            let req = CreateToken {
                name,
                admin,
                projects: project,
                expires_in,
                expires,
            };
            let made = ctx.client()?.create_token(&req).await?;
            // The secret alone on stdout, so `T=$(4kr token create ...)` captures it; what it
            // is, on stderr.
            let until = made
                .info
                .expires
                .as_deref()
                .map_or_else(String::new, |e| format!(", expires {e}"));
            eprintln!(
                "token {} ({}, {}{until}): shown once, store it now",
                made.info.id,
                made.info.name,
                scope(&made.info)
            );
            Ok(format!("{}\n", made.token))
        }
        TokenCommand::Revoke { ids, .. } => {
            let client = ctx.client()?;
            let mut lines = String::new();
            let mut failed = false;
            for id in ids {
                match client.revoke_token(&id).await {
                    Ok(()) => lines.push_str(&format!("{id}: revoked\n")),
                    Err(e) => {
                        failed = true;
                        lines.push_str(&format!("{id}: error: {e}\n"));
                    }
                }
            }
            if failed {
                return Err(crate::PartialFailure(lines).into());
            }
            Ok(lines)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_reads_as_a_lifetime_or_a_time() {
        assert_eq!(
            expiry(Some("30d".into())),
            (Some(ExpiresIn::Text("30d".into())), None)
        );
        assert_eq!(
            expiry(Some("3600".into())),
            (Some(ExpiresIn::Text("3600".into())), None)
        );
        assert_eq!(
            expiry(Some("2030-01-01T00:00:00Z".into())),
            (None, Some("2030-01-01T00:00:00Z".into()))
        );
        assert_eq!(expiry(None), (None, None));
    }
}
