//! Finding the terraform binary: `$TERRAFORM`, else `terraform` on PATH,
//! else `tofu` on PATH (OpenTofu reads the same configuration and emits the
//! same plan JSON).

use std::path::{Path, PathBuf};

use super::TfError;

/// Where the binary comes from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub path: PathBuf,
}

/// Resolves the binary from an explicit `$TERRAFORM` value and a PATH
/// value; pure so it can be tested without touching the environment.
pub fn locate(terraform_env: Option<&str>, path_env: Option<&str>) -> Result<Binary, TfError> {
    if let Some(explicit) = terraform_env.filter(|s| !s.is_empty()) {
        let p = Path::new(explicit);
        let resolved = if p.components().count() > 1 {
            Some(p.to_path_buf()).filter(|p| is_executable(p))
        } else {
            search_path(explicit, path_env)
        };
        return resolved
            .map(|path| Binary { path })
            .ok_or_else(|| TfError::NotFound {
                detail: format!("TERRAFORM={explicit} is not an executable file"),
            });
    }
    for name in ["terraform", "tofu"] {
        if let Some(path) = search_path(name, path_env) {
            return Ok(Binary { path });
        }
    }
    Err(TfError::NotFound {
        detail: "neither `terraform` nor `tofu` is on PATH and TERRAFORM is not set".into(),
    })
}

/// [`locate`] with the process environment.
pub fn locate_from_env() -> Result<Binary, TfError> {
    let tf = std::env::var("TERRAFORM").ok();
    let path = std::env::var("PATH").ok();
    locate(tf.as_deref(), path.as_deref())
}

fn search_path(name: &str, path_env: Option<&str>) -> Option<PathBuf> {
    std::env::split_paths(path_env?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn prefers_terraform_then_tofu() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let tofu = fake(a.path(), "tofu");
        let path = format!("{}:{}", a.path().display(), b.path().display());
        assert_eq!(locate(None, Some(&path)).unwrap().path, tofu);
        let tf = fake(b.path(), "terraform");
        assert_eq!(locate(None, Some(&path)).unwrap().path, tf);
    }

    #[test]
    fn explicit_env_wins_and_must_exist() {
        let a = tempfile::tempdir().unwrap();
        let custom = fake(a.path(), "tf-1.11");
        let got = locate(Some(custom.to_str().unwrap()), Some("")).unwrap();
        assert_eq!(got.path, custom);
        let err = locate(Some("/nonexistent/terraform"), None).unwrap_err();
        assert!(err.to_string().contains("TERRAFORM=/nonexistent/terraform"));
    }

    #[test]
    fn missing_says_how_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = locate(None, Some(empty.path().to_str().unwrap())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("install Terraform"), "{msg}");
        assert_eq!(
            crate::exit::Classify::exit(&err),
            crate::exit::Exit::Blocked
        );
    }

    #[test]
    fn non_executable_file_is_not_a_binary() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("terraform"), "").unwrap();
        assert!(locate(None, Some(a.path().to_str().unwrap())).is_err());
    }
}
