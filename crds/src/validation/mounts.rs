use std::collections::HashSet;

use super::{
    ValidationError, ValidationErrors, check_count, normalize_box_path, validate_volume_name,
};
use crate::box_resource::DataMount;

/// Paths the runner owns: a data volume there would hide the kernel surfaces, the box's own
/// config, or the root itself (`/volumes` is where the runner mounts it).
const FORBIDDEN_UNDER: &[&str] = &["/proc", "/sys", "/dev", "/run", "/etc", "/volumes"];

/// The CRD's bound on `mountPath`.
const MAX_MOUNT_PATH: usize = 1024;
/// The CRD's bound on `data[]`.
pub const MAX_MOUNTS: usize = 32;

/// One `--data NAME=/path[:ro|:rw]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMountArg {
    pub volume: String,
    pub mount_path: String,
    pub read_only: bool,
}

impl From<DataMountArg> for DataMount {
    fn from(arg: DataMountArg) -> Self {
        DataMount {
            volume: arg.volume,
            mount_path: arg.mount_path,
            read_only: arg.read_only,
        }
    }
}

/// Parses `NAME=/path`, `NAME=/path:ro` or `NAME=/path:rw` (rw is the default).
pub fn parse_data_mount(arg: &str) -> Result<DataMountArg, ValidationError> {
    let syntax = || ValidationError::MountSyntax {
        arg: arg.to_owned(),
    };
    let (volume, rest) = arg.split_once('=').ok_or_else(syntax)?;
    if volume.is_empty() || rest.is_empty() {
        return Err(syntax());
    }
    let (path, read_only) = match rest.rsplit_once(':') {
        Some((path, "ro")) => (path, true),
        Some((path, "rw")) => (path, false),
        Some(_) => return Err(syntax()),
        None => (rest, false),
    };
    validate_volume_name(volume)?;
    let mount_path = validate_mount_path(path)?;
    Ok(DataMountArg {
        volume: volume.to_owned(),
        mount_path,
        read_only,
    })
}

/// Checks a mount path and returns it normalized (no `.`, `..` or doubled slashes), which is the
/// form stored in the spec.
pub fn validate_mount_path(path: &str) -> Result<String, ValidationError> {
    if !path.starts_with('/') {
        return Err(ValidationError::MountNotAbsolute {
            path: path.to_owned(),
        });
    }
    if path.len() > MAX_MOUNT_PATH {
        return Err(ValidationError::TooLong {
            what: "mount path",
            len: path.len(),
            max: MAX_MOUNT_PATH,
        });
    }
    let normalized = normalize_box_path(path)?;
    if normalized == "/" {
        return Err(ValidationError::MountForbidden {
            path: path.to_owned(),
            under: "/ (the box root)",
        });
    }
    for under in FORBIDDEN_UNDER {
        let inside = normalized
            .strip_prefix(under)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if inside {
            return Err(ValidationError::MountForbidden {
                path: path.to_owned(),
                under,
            });
        }
    }
    Ok(normalized)
}

/// Every mount of a box: each valid, and no name or path used twice.
pub fn validate_mounts(mounts: &[DataMount]) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    errs.check("data", check_count("data mounts", mounts.len(), MAX_MOUNTS));
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        errs.check(format!("data[{i}].volume"), validate_volume_name(&m.volume));
        match validate_mount_path(&m.mount_path) {
            Ok(p) => {
                if !paths.insert(p) {
                    errs.push(
                        format!("data[{i}].mountPath"),
                        ValidationError::DuplicateMountPath {
                            path: m.mount_path.clone(),
                        },
                    );
                }
            }
            Err(e) => errs.push(format!("data[{i}].mountPath"), e),
        }
        if !names.insert(m.volume.as_str()) {
            errs.push(
                format!("data[{i}].volume"),
                ValidationError::DuplicateMountName {
                    name: m.volume.clone(),
                },
            );
        }
    }
    errs.into_result()
}
