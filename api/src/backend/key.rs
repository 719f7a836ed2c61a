//! [`BoxKey`]: which box a call is about, checked once where it enters (the route's extractor)
//! so that no backend has to validate a box name again, nor can be handed one unvalidated.

use forkr_crds::validation::{ValidationError, validate_box_name, validate_project_name};

/// A box's project and name, both valid names. The fields are private: the only way to build
/// one is [`BoxKey::new`], which validates them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoxKey {
    project: String,
    name: String,
}

impl BoxKey {
    /// The key of box `name` in `project`, or the name's `invalid_name` error.
    pub fn new(
        project: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<BoxKey, ValidationError> {
        let (project, name) = (project.into(), name.into());
        validate_project_name(&project)?;
        validate_box_name(&name)?;
        Ok(BoxKey { project, name })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The project and the name, for code that moves them into a blocking task.
    pub fn into_parts(self) -> (String, String) {
        (self.project, self.name)
    }
}

impl std::fmt::Display for BoxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.project, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_names_make_a_key() {
        let key = BoxKey::new("shop", "web").expect("valid key");
        assert_eq!((key.project(), key.name()), ("shop", "web"));
        assert_eq!(key.to_string(), "shop/web");
        for (project, name) in [
            ("shop", "Web"),
            ("shop", "-x"),
            ("shop", "1st"),
            ("shop", ""),
            ("shop", "no/slash"),
            ("shop", ".."),
            ("Shop", "web"),
            ("", "web"),
        ] {
            let err = BoxKey::new(project, name).expect_err(name);
            assert_eq!(err.code(), "invalid_name", "{project}/{name}: {err:?}");
        }
        let long = "a".repeat(64);
        assert!(BoxKey::new("shop", long.as_str()).is_err());
        assert!(BoxKey::new("shop", &long[..63]).is_ok());
    }
}
