//! `4kr base build NAME`: a Dockerfile built for linux/amd64 by the first container engine on
//! PATH (docker, podman, nerdctl), its root filesystem exported as a .tar.gz and uploaded as a
//! new version of the base, with the Dockerfile's sha256 as the version's tag.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use forkr_api_proto::wire::ImportBase;
use sha2::Digest;

use super::Context;

/// The engines 4kr can build with, in the order it looks for them.
pub const ENGINES: [&str; 3] = ["docker", "podman", "nerdctl"];

/// A container engine found on PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub name: &'static str,
    pub path: PathBuf,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first of docker, podman and nerdctl on `path` (a PATH value).
pub fn detect(path: Option<&str>) -> anyhow::Result<Engine> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path.unwrap_or_default()).collect();
    for name in ENGINES {
        if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| executable(p)) {
            return Ok(Engine { name, path: found });
        }
    }
    anyhow::bail!(
        "no container engine found: tried docker, podman and nerdctl on PATH; install one to build bases"
    )
}

/// Docker on a host that is not x86_64 cross-builds with buildx.
pub fn needs_buildx(engine: &str, host_arch: &str) -> bool {
    engine == "docker" && host_arch != "x86_64"
}

/// The build command's arguments: `buildx build --platform linux/amd64 ... --load` or a plain
/// `build --platform linux/amd64 ...`.
pub fn build_args(buildx: bool, tag: &str, file: &Path, context: &Path) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if buildx {
        args.push("buildx".into());
    }
    args.extend(
        ["build", "--platform", "linux/amd64", "-t", tag, "-f"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    args.push(file.display().to_string());
    if buildx {
        args.push("--load".into());
    }
    args.push(context.display().to_string());
    args
}

/// The image tag: `<name>:latest`, lowercased.
pub fn image_tag(name: &str) -> String {
    format!("{}:latest", name.to_lowercase())
}

fn engine_cmd(engine: &Engine, args: &[&str]) -> Command {
    let mut c = Command::new(&engine.path);
    c.args(args);
    c
}

/// Runs an engine command for its output; its stderr passes through to ours.
fn output(engine: &Engine, args: &[&str]) -> anyhow::Result<String> {
    let out = engine_cmd(engine, args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} {}", engine.name, args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} {} failed ({})",
            engine.name,
            args.first().copied().unwrap_or_default(),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes the exported tarball however the build ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `engine export` of a container made from the image, gzipped into `dest`.
fn export(engine: &Engine, tag: &str, dest: &Path) -> anyhow::Result<()> {
    // A command is given because an image without one (FROM scratch) cannot be created
    // otherwise; the container never starts.
    let id = output(engine, &["create", tag, "true"])?;
    let id = id.lines().last().unwrap_or_default().trim().to_owned();
    if id.is_empty() {
        anyhow::bail!("{} create printed no container id", engine.name);
    }
    let result = export_container(engine, &id, dest);
    if let Err(e) = output(engine, &["rm", &id]) {
        eprintln!("warning: removing container {id}: {e}");
    }
    result
}

fn export_container(engine: &Engine, id: &str, dest: &Path) -> anyhow::Result<()> {
    let mut child = engine_cmd(engine, &["export", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {} export", engine.name))?;
    let file =
        std::fs::File::create(dest).with_context(|| format!("writing {}", dest.display()))?;
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let copied = match child.stdout.as_mut() {
        Some(out) => std::io::copy(out, &mut gz).map(drop),
        None => Ok(()),
    };
    let status = child.wait()?;
    copied.with_context(|| format!("writing {}", dest.display()))?;
    if !status.success() {
        anyhow::bail!("{} export failed ({status})", engine.name);
    }
    gz.finish()?.flush()?;
    Ok(())
}

pub async fn build(
    ctx: &Context,
    project: &str,
    name: &str,
    file: &Path,
    context: &Path,
) -> anyhow::Result<String> {
    forkr_crds::validation::validate_base_alias(name)?;
    let dockerfile = ctx.cwd.join(file);
    let script =
        std::fs::read(&dockerfile).with_context(|| format!("reading {}", dockerfile.display()))?;
    let engine = detect(ctx.env("PATH").as_deref())?;
    let arch = std::env::consts::ARCH;
    let buildx = needs_buildx(engine.name, arch);
    if buildx && output(&engine, &["buildx", "version"]).is_err() {
        anyhow::bail!("docker buildx is required to build linux/amd64 images on this {arch} host");
    }
    let tag = image_tag(name);
    let args = build_args(buildx, &tag, file, context);
    // The engine's progress goes to stderr, so stdout stays 4kr's own.
    let status = Command::new(&engine.path)
        .args(&args)
        .current_dir(&ctx.cwd)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running {} build", engine.name))?;
    if !status.success() {
        anyhow::bail!("{} build failed ({status})", engine.name);
    }
    let built = output(
        &engine,
        &["image", "inspect", "--format", "{{.Architecture}}", &tag],
    )?;
    if built != "amd64" {
        anyhow::bail!("image {tag} is built for {built}, not amd64");
    }
    let tmp = TempFile(std::env::temp_dir().join(format!(
        "4kr-base-{}-{}.tar.gz",
        name.to_lowercase(),
        std::process::id()
    )));
    export(&engine, &tag, &tmp.0)?;
    let q = ImportBase {
        tag: Some(hex::encode(sha2::Sha256::digest(&script))),
        builder: Some(engine.name.to_owned()),
        ..Default::default()
    };
    let imported = super::upload::import(ctx, project, name, &tmp.0, q).await?;
    Ok(format!("built {tag} with {}\n{imported}", engine.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert!(needs_buildx("docker", "aarch64"));
        assert!(!needs_buildx("docker", "x86_64"));
        assert!(!needs_buildx("podman", "aarch64"));
        assert_eq!(image_tag("Dev-Base"), "dev-base:latest");
        assert_eq!(
            build_args(true, "b:latest", Path::new("Dockerfile"), Path::new(".")).join(" "),
            "buildx build --platform linux/amd64 -t b:latest -f Dockerfile --load ."
        );
        assert_eq!(
            build_args(false, "b:latest", Path::new("x/Dockerfile"), Path::new("x")).join(" "),
            "build --platform linux/amd64 -t b:latest -f x/Dockerfile x"
        );
    }

    #[test]
    fn detection_order_and_the_error() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let put = |dir: &Path, name: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(
            detect(Some(path)).unwrap_err().to_string(),
            "no container engine found: tried docker, podman and nerdctl on PATH; install one to build bases"
        );
        put(b.path(), "nerdctl", 0o755);
        assert_eq!(detect(Some(path)).unwrap().name, "nerdctl");
        put(a.path(), "podman", 0o755);
        assert_eq!(detect(Some(path)).unwrap().name, "podman");
        // Not executable: skipped.
        put(a.path(), "docker", 0o644);
        assert_eq!(detect(Some(path)).unwrap().name, "podman");
        put(b.path(), "docker", 0o755);
        let found = detect(Some(path)).unwrap();
        assert_eq!(
            (found.name, found.path),
            ("docker", b.path().join("docker"))
        );
        assert!(detect(None).is_err());
    }
}
