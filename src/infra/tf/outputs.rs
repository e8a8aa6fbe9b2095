//! `terraform output -json`, redacted. terraform prints sensitive outputs
//! in clear text there; openpay keeps terraform's shape
//! (`{"name": {"value", "type", "sensitive"}}`) but replaces every
//! sensitive value with [`SENSITIVE`] before anything is printed or saved.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TfError;
use super::plan::SENSITIVE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub value: Value,
    #[serde(rename = "type", default)]
    pub kind: Value,
    #[serde(default)]
    pub sensitive: bool,
}

/// Output name → redacted output, in name order.
pub type Outputs = BTreeMap<String, Output>;

/// Parses `output -json` and redacts it in one step, so a clear-text
/// sensitive value never exists in an [`Outputs`].
pub fn parse_redacted(json: &str) -> Result<Outputs, TfError> {
    let mut outputs: Outputs = serde_json::from_str(json).map_err(|e| TfError::Failed {
        step: "output -json".into(),
        message: format!("unexpected JSON: {e}"),
    })?;
    for o in outputs.values_mut() {
        if o.sensitive {
            o.value = Value::String(SENSITIVE.into());
        }
    }
    Ok(outputs)
}

/// Writes the outputs atomically (temp file + rename) to `path`,
/// creating its directory.
pub fn write(path: &Path, outputs: &Outputs) -> Result<(), TfError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| TfError::Io {
            action,
            path: p,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let text = serde_json::to_string_pretty(outputs).expect("outputs serialize") + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into", path))?;
    Ok(())
}

/// A plain string value of an output (for `ssh_user`, `public_ip`).
pub fn string(outputs: &Outputs, name: &str) -> Option<String> {
    outputs
        .get(name)
        .filter(|o| !o.sensitive)
        .and_then(|o| o.value.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::tf::fixture;

    #[test]
    fn sensitive_values_are_redacted_and_shape_kept() {
        let raw = fixture("output-sensitive.json");
        assert!(raw.contains("s3cr3t"), "fixture must hold the secret");
        let o = parse_redacted(&raw).unwrap();
        assert_eq!(o["token"].value, Value::String(SENSITIVE.into()));
        assert!(o["token"].sensitive);
        assert_eq!(string(&o, "bucket").as_deref(), Some("openpay-fixture-a"));
        assert_eq!(string(&o, "token"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".openpay/outputs.json");
        write(&path, &o).unwrap();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(!saved.contains("s3cr3t"), "{saved}");
        let v: Value = serde_json::from_str(&saved).unwrap();
        assert_eq!(v["bucket"]["type"], "string");
        assert_eq!(v["bucket"]["sensitive"], false);
        // config.rs reads the same file
        let cfg = crate::config::Config::load_from(None, dir.path(), &[]).unwrap();
        assert_eq!(cfg.aws.bucket.as_deref(), Some("openpay-fixture-a"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_redacted("[1,2]").is_err());
    }
}
