//! Local AWS endpoints (moto, LocalStack): while a command runs, a
//! `*_override.tf` file points the provider at the endpoint with the
//! settings terraform-local uses, and it is removed afterwards, also when
//! the command fails (the guard's `Drop`).

use std::path::{Path, PathBuf};

use super::TfError;

/// The file name terraform merges into the provider block.
pub const OVERRIDE_FILE: &str = "openpay_endpoint_override.tf";

/// Services the stack talks to.
const SERVICES: [&str; 5] = ["ec2", "iam", "s3", "ssm", "sts"];

/// Removes the override file when dropped.
#[derive(Debug)]
pub struct EndpointOverride {
    path: PathBuf,
}

impl EndpointOverride {
    /// Validates `url` and writes the override file into `dir`.
    pub fn write(dir: &Path, url: &str) -> Result<Self, TfError> {
        let url = validate(url)?;
        let path = dir.join(OVERRIDE_FILE);
        std::fs::write(&path, render(&url)).map_err(|source| TfError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EndpointOverride {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove endpoint override: {e}");
        }
    }
}

/// An http(s) URL with a host and nothing that could break out of an HCL
/// string.
fn validate(raw: &str) -> Result<String, TfError> {
    let bad = |message: &str| TfError::Invalid {
        input: format!("--endpoint-url / AWS_ENDPOINT_URL `{raw}`"),
        message: message.to_string(),
    };
    let url =
        url::Url::parse(raw).map_err(|e| bad(&format!("{e}; use e.g. http://127.0.0.1:5000")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(
            "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:5000",
        ));
    }
    let s = url.as_str().trim_end_matches('/').to_string();
    if s.contains(['"', '\\', '$', '%', '\n']) {
        return Err(bad("must not contain quotes, backslashes, '$' or '%'"));
    }
    Ok(s)
}

fn render(url: &str) -> String {
    let mut endpoints = String::new();
    for s in SERVICES {
        endpoints.push_str(&format!("    {s:<3} = \"{url}\"\n"));
    }
    format!(
        "# Written by openpay for a local AWS endpoint; removed when the command ends.\n\
         provider \"aws\" {{\n\
         \x20 skip_credentials_validation = true\n\
         \x20 skip_metadata_api_check     = true\n\
         \x20 skip_requesting_account_id  = true\n\
         \x20 s3_use_path_style           = true\n\
         \n\
         \x20 endpoints {{\n{endpoints}  }}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let g = EndpointOverride::write(dir.path(), "http://127.0.0.1:5000/").unwrap();
        let text = std::fs::read_to_string(g.path()).unwrap();
        for s in SERVICES {
            assert!(
                text.contains(&format!("{s:<3} = \"http://127.0.0.1:5000\"")),
                "{text}"
            );
            assert!(text.contains(s), "{text}");
        }
        assert!(text.contains("skip_requesting_account_id  = true"));
        let p = g.path().to_path_buf();
        drop(g);
        assert!(!p.exists());
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["localhost:5000", "ftp://x", "http://x/\"}"] {
            let e = EndpointOverride::write(dir.path(), bad).unwrap_err();
            assert_eq!(
                crate::exit::Classify::exit(&e),
                crate::exit::Exit::Usage,
                "{bad}"
            );
        }
        assert!(!dir.path().join(OVERRIDE_FILE).exists());
    }
}
