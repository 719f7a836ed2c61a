//! The project a command targets: `-p/--project` > FORKR_PROJECT > the name of the current git
//! repository's root directory > `default`.

use std::path::Path;

use forkr_crds::labels::DEFAULT_PROJECT;
use forkr_crds::validation::{normalize_project_name, validate_project_name};

/// The root of the git repository containing `cwd` (a `.git` directory or file), if any.
pub fn git_root(cwd: &Path) -> Option<&Path> {
    cwd.ancestors().find(|d| d.join(".git").exists())
}

/// Resolves the project. An explicit one (flag or env) must be valid as given; a directory
/// name is normalized (`My_Repo` gives `my-repo`) and skipped if nothing usable remains.
pub fn resolve(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<String, forkr_crds::ValidationError> {
    if let Some(p) = flag {
        validate_project_name(p)?;
        return Ok(p.to_owned());
    }
    if let Some(p) = env("FORKR_PROJECT").filter(|p| !p.is_empty()) {
        validate_project_name(&p)?;
        return Ok(p);
    }
    let from_git = git_root(cwd)
        .and_then(|root| root.file_name())
        .and_then(|name| normalize_project_name(&name.to_string_lossy()));
    Ok(from_git.unwrap_or_else(|| DEFAULT_PROJECT.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(project: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |k| {
            (k == "FORKR_PROJECT")
                .then(|| project.map(str::to_owned))
                .flatten()
        }
    }

    #[test]
    fn precedence() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("My_Shop.rs");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src/deep")).unwrap();
        let inside = repo.join("src/deep");
        assert_eq!(
            resolve(Some("flag"), &env(Some("envp")), &inside).unwrap(),
            "flag"
        );
        assert_eq!(resolve(None, &env(Some("envp")), &inside).unwrap(), "envp");
        assert_eq!(resolve(None, &env(None), &inside).unwrap(), "my-shop-rs");
        assert_eq!(resolve(None, &env(None), dir.path()).unwrap(), "default");
        assert_eq!(
            resolve(Some("Bad_P"), &env(None), dir.path())
                .unwrap_err()
                .to_string(),
            "invalid project name \"Bad_P\": use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        );
        // A repository whose name leaves nothing usable falls back to default.
        let odd = dir.path().join("___");
        std::fs::create_dir_all(odd.join(".git")).unwrap();
        assert_eq!(resolve(None, &env(None), &odd).unwrap(), "default");
    }
}
