use super::Context;
use crate::cli::BaseCommand;
use crate::output;

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

pub async fn run(ctx: &Context, cmd: BaseCommand) -> anyhow::Result<String> {
    let project = ctx.project(None)?;
    match cmd {
        BaseCommand::List { json } => {
            let bases = ctx.client()?.list_bases(&project).await?;
            if json.json {
                return output::json(&bases);
            }
            let rows: Vec<Vec<String>> = bases
                .iter()
                .map(|b| {
                    vec![
                        b.name.clone(),
                        b.version.clone(),
                        output::human_size(b.size),
                        b.created.clone(),
                    ]
                })
                .collect();
            Ok(output::table(
                &["NAME", "VERSION", "SIZE", "CREATED"],
                &rows,
            ))
        }
        BaseCommand::Show { name, tag, json } => {
            let d = ctx
                .client()?
                .show_base(&project, &name, tag.as_deref())
                .await?;
            if json.json {
                return output::json(&d);
            }
            let rows: Vec<Vec<String>> = d
                .versions
                .iter()
                .map(|v| {
                    vec![
                        v.version.clone(),
                        v.kind.clone(),
                        dash(&v.tag),
                        dash(&v.builder),
                        dash(&v.parent),
                        output::human_size(v.size),
                        v.created.clone(),
                    ]
                })
                .collect();
            Ok(format!(
                "name:     {}\nlatest:   {}\nversions: {}\n\n{}",
                d.name,
                d.latest,
                d.version_count,
                output::table(
                    &[
                        "VERSION", "KIND", "TAG", "BUILDER", "PARENT", "SIZE", "CREATED"
                    ],
                    &rows
                )
            ))
        }
        BaseCommand::Delete { name } => {
            ctx.client()?.delete_base(&project, &name).await?;
            Ok(format!("{name}: deleted\n"))
        }
    }
}
