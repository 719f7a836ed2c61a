//! create, list, show, update, delete, stop, resume.

use std::collections::BTreeMap;

use forkr_api_proto::wire::{BoxView, CreateBox, PublishBox, UnpublishBox, UpdateBox};
use forkr_crds::validation::parse_env_assignment;

use super::Context;
use crate::output;

/// `show`'s text: one `key: value` line per field the documents list.
pub fn show_text(b: &BoxView) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let tags: Vec<String> = b.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let data: Vec<String> = b
        .data
        .iter()
        .map(|m| {
            format!(
                "{}={}{}",
                m.volume,
                m.mount_path,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    let rows = [
        ("name", b.name.clone()),
        ("project", b.project.clone()),
        ("status", b.status.clone()),
        ("base", opt(&b.base)),
        ("url", b.url.clone()),
        ("port", b.port.map_or("-".into(), |p| p.to_string())),
        ("created", opt(&b.created)),
        ("started", opt(&b.started)),
        ("stopped", opt(&b.stopped)),
        ("published", list(&b.published)),
        ("tags", list(&tags)),
        ("data", list(&data)),
        ("cpus", b.cpus.map_or("-".into(), |c| c.to_string())),
        ("ram_mb", b.ram_mb.map_or("-".into(), |r| r.to_string())),
        (
            "storage_gb",
            b.storage_gb.map_or("-".into(), |s| s.to_string()),
        ),
    ];
    let mut out: String = rows.iter().map(|(k, v)| format!("{k:<11} {v}\n")).collect();
    if let Some(m) = &b.message {
        out.push_str(&format!("{:<11} {m}\n", "message"));
    }
    out
}

fn one(b: &BoxView, json: bool) -> anyhow::Result<String> {
    if json {
        output::json(b)
    } else {
        Ok(show_text(b))
    }
}

fn env_map(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for p in pairs {
        let (k, v) = parse_env_assignment(p)?;
        map.insert(k, v);
    }
    Ok(map)
}

/// `KEY=VALUE` pairs where any key is fine (update settings and tags are checked by the server).
fn kv_map(pairs: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid {what} {p:?}: expected KEY=VALUE"))?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(map)
}

pub struct CreateArgs {
    pub name: String,
    pub base: Option<String>,
    pub fork: Option<String>,
    pub data: Vec<String>,
    pub env: Vec<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub project: Option<String>,
    pub json: bool,
}

pub async fn create(ctx: &Context, a: CreateArgs) -> anyhow::Result<String> {
    if a.base.is_some() && a.fork.is_some() {
        anyhow::bail!("--base cannot be used with --fork");
    }
    let project = ctx.project(a.project.as_deref())?;
    for d in &a.data {
        forkr_crds::validation::parse_data_mount(d)?;
    }
    let req = CreateBox {
        name: a.name,
        base: a.base,
        fork: a.fork,
        env: env_map(&a.env)?,
        cpu: a.cpu,
        memory: a.memory,
        data: a.data,
        ..Default::default()
    };
    let b = ctx.client()?.create_box(&project, &req).await?;
    one(&b, a.json)
}

pub async fn list(ctx: &Context, project: Option<&str>, json: bool) -> anyhow::Result<String> {
    let boxes = ctx.client()?.list_boxes(&ctx.project(project)?).await?;
    if json {
        return output::json(&boxes);
    }
    Ok(list_table(&boxes))
}

/// `list`'s NAME, STATUS, BASE, URL table.
pub fn list_table(boxes: &[BoxView]) -> String {
    let rows: Vec<Vec<String>> = boxes
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.status.clone(),
                b.base.clone().unwrap_or_else(|| "-".into()),
                b.url.clone(),
            ]
        })
        .collect();
    output::table(&["NAME", "STATUS", "BASE", "URL"], &rows)
}

pub async fn show(
    ctx: &Context,
    target: &str,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let (p, name) = ctx.box_ref(target, project)?;
    one(&ctx.client()?.show_box(&p, &name).await?, json)
}

pub async fn update(
    ctx: &Context,
    target: &str,
    settings: &[String],
    env: &[String],
    tags: &[String],
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let (p, name) = ctx.box_ref(target, project)?;
    // Everything goes into one map; the server applies its allowlist and drops the rest.
    let mut all = kv_map(settings, "setting")?;
    all.extend(kv_map(env, "setting")?);
    let tags = kv_map(tags, "tag")?;
    let req = UpdateBox {
        env: all,
        tags: (!tags.is_empty()).then_some(tags),
    };
    one(&ctx.client()?.update_box(&p, &name, &req).await?, json)
}

/// One `<name>: deleted` or `<name>: error: <msg>` line per box; any error exits non-zero.
pub async fn delete(
    ctx: &Context,
    targets: &[String],
    force: bool,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let client = ctx.client()?;
    let mut results = Vec::new();
    for t in targets {
        let outcome = match ctx.box_ref(t, project) {
            Ok((p, name)) => client
                .delete_box(&p, &name, force)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        results.push(output::Deleted::new(t.clone(), outcome));
    }
    output::delete_report(&results, json)
}

pub async fn stop(
    ctx: &Context,
    target: &str,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let (p, name) = ctx.box_ref(target, project)?;
    one(&ctx.client()?.stop_box(&p, &name).await?, json)
}

pub async fn resume(
    ctx: &Context,
    target: &str,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let (p, name) = ctx.box_ref(target, project)?;
    one(&ctx.client()?.resume_box(&p, &name).await?, json)
}

/// Checks the publish arguments as 001 gives them: a subdomain unless --host, not both, and no
/// --domain with --host.
fn check_publish(
    subdomain: Option<&str>,
    host: Option<&str>,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    match (subdomain, host, domain) {
        (Some(_), Some(_), _) => anyhow::bail!("--host cannot be used with a subdomain"),
        (_, Some(_), Some(_)) => anyhow::bail!("--domain cannot be used with --host"),
        _ => Ok(()),
    }
}

/// `publish BOX [SUBDOMAIN]`: `OK`, or `{"host": ...}` with -j.
pub async fn publish(
    ctx: &Context,
    target: &str,
    req: PublishBox,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    check_publish(
        req.subdomain.as_deref(),
        req.host.as_deref(),
        req.domain.as_deref(),
    )?;
    if req.subdomain.is_none() && req.host.is_none() {
        anyhow::bail!("a subdomain is required unless --host is given (`@` is the bare domain)");
    }
    let (p, name) = ctx.box_ref(target, project)?;
    let published = ctx.client()?.publish_box(&p, &name, &req).await?;
    if json {
        output::json(&published)
    } else {
        Ok("OK\n".into())
    }
}

/// `unpublish BOX [SUBDOMAIN]`: one host, or every host of the box when none is named; `OK`,
/// or `{"hosts": [...]}` with -j.
pub async fn unpublish(
    ctx: &Context,
    target: &str,
    req: UnpublishBox,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    check_publish(
        req.subdomain.as_deref(),
        req.host.as_deref(),
        req.domain.as_deref(),
    )?;
    if req.domain.is_some() && req.subdomain.is_none() {
        anyhow::bail!("a subdomain is required with --domain");
    }
    let (p, name) = ctx.box_ref(target, project)?;
    let removed = ctx.client()?.unpublish_box(&p, &name, &req).await?;
    if json {
        output::json(&removed)
    } else {
        Ok("OK\n".into())
    }
}
