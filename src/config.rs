//! One `Config` from `openpay.toml`, `OPENPAY_<SECTION>_<KEY>` variables and
//! terraform's `.openpay/outputs.json`; command flags are applied on top by
//! each command (flags > env > file > terraform outputs > defaults).
//!
//! Unknown keys are errors, in the file and in the environment, so a typo
//! never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::{Classify, Exit};

/// Where `openpay tf apply` leaves the stack outputs (sensitive values redacted).
pub const OUTPUTS_FILE: &str = ".openpay/outputs.json";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file {path}: {source}; fix the path or the permissions, or drop --config"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error(
        "cannot read terraform outputs {path}: {message}; rerun `openpay tf apply` or delete the file"
    )]
    Outputs { path: PathBuf, message: String },
}

impl Classify for ConfigError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub aws: AwsSection,
    pub pipeline: PipelineSection,
    pub doctor: DoctorSection,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSection {
    pub region: Option<String>,
    pub bucket: Option<String>,
    /// The instance role; default: derived from the STS identity.
    pub role_name: Option<String>,
    /// Seconds an AWS request may wait for its answer before it is cut
    /// and retried; default [`crate::aws::DEFAULT_READ_TIMEOUT`].
    pub read_timeout_secs: Option<u64>,
}

impl AwsSection {
    /// The AWS client settings this section asks for.
    pub fn settings(&self) -> crate::aws::AwsSettings {
        crate::aws::AwsSettings {
            region: self.region.clone(),
            endpoint_url: None,
            read_timeout: self.read_timeout_secs.map(std::time::Duration::from_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    pub work_dir: PathBuf,
    pub source_url: String,
    pub jobs: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            work_dir: PathBuf::from("data"),
            source_url: "https://openpaymentsdata.cms.gov".to_string(),
            jobs: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DoctorSection {
    pub allowed_ssh_cidrs: Vec<String>,
    /// Default: the groups of the instance being checked.
    pub security_group_ids: Vec<String>,
    pub min_buildx: String,
}

impl Default for DoctorSection {
    fn default() -> Self {
        Self {
            allowed_ssh_cidrs: Vec::new(),
            security_group_ids: Vec::new(),
            min_buildx: "0.17.0".to_string(),
        }
    }
}

impl Config {
    /// Loads the configuration the way every command sees it.
    ///
    /// `explicit` is `--config`: when given, the file must exist. Without
    /// it, `./openpay.toml` is read when present.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(explicit, Path::new("."), &env)
    }

    /// Same as [`Config::load`], with the working directory and environment
    /// given, so tests need not mutate the process environment.
    pub fn load_from(
        explicit: Option<&Path>,
        cwd: &Path,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();
        cfg.apply_outputs(&cwd.join(OUTPUTS_FILE))?;
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(cwd.join("openpay.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let from_file: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: one_line(&e.to_string()),
            })?;
            if from_file.aws.read_timeout_secs == Some(0) {
                return Err(ConfigError::Parse {
                    path,
                    message: "[aws] read_timeout_secs = 0 would cut every request; use at least 1"
                        .into(),
                });
            }
            cfg.merge_file(from_file);
        }
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// A file value wins over a terraform output only when it was set.
    fn merge_file(&mut self, f: Config) {
        let Config {
            aws,
            pipeline,
            doctor,
        } = f;
        if aws.region.is_some() {
            self.aws.region = aws.region;
        }
        if aws.bucket.is_some() {
            self.aws.bucket = aws.bucket;
        }
        if aws.role_name.is_some() {
            self.aws.role_name = aws.role_name;
        }
        if aws.read_timeout_secs.is_some() {
            self.aws.read_timeout_secs = aws.read_timeout_secs;
        }
        self.pipeline = pipeline;
        self.doctor = doctor;
    }

    fn apply_outputs(&mut self, path: &Path) -> Result<(), ConfigError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let outputs: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| ConfigError::Outputs {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let get = |name: &str| -> Option<String> {
            let v = outputs.get(name)?;
            if v.get("sensitive").and_then(|s| s.as_bool()) == Some(true) {
                return None;
            }
            v.get("value").unwrap_or(v).as_str().map(str::to_string)
        };
        self.aws.bucket = get("bucket").or(self.aws.bucket.take());
        self.aws.region = get("region").or(self.aws.region.take());
        self.aws.role_name = get("role_name").or(self.aws.role_name.take());
        Ok(())
    }

    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("OPENPAY_") else {
                continue;
            };
            let Some((section, key)) = ["AWS_", "PIPELINE_", "DOCTOR_"]
                .iter()
                .find_map(|s| rest.strip_prefix(s).map(|k| (s.trim_end_matches('_'), k)))
            else {
                continue;
            };
            let bad = |message: String| ConfigError::Env {
                var: var.clone(),
                message,
            };
            match (section, key) {
                ("AWS", "REGION") => self.aws.region = Some(value.clone()),
                ("AWS", "BUCKET") => self.aws.bucket = Some(value.clone()),
                ("AWS", "ROLE_NAME") => self.aws.role_name = Some(value.clone()),
                ("AWS", "READ_TIMEOUT_SECS") => {
                    self.aws.read_timeout_secs =
                        Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            bad(format!("`{value}` is not a positive number of seconds"))
                        })?)
                }
                ("PIPELINE", "WORK_DIR") => self.pipeline.work_dir = PathBuf::from(value),
                ("PIPELINE", "SOURCE_URL") => self.pipeline.source_url = value.clone(),
                ("PIPELINE", "JOBS") => {
                    self.pipeline.jobs =
                        value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            bad(format!("`{value}` is not a positive whole number"))
                        })?
                }
                ("DOCTOR", "ALLOWED_SSH_CIDRS") => {
                    self.doctor.allowed_ssh_cidrs = split_list(value)
                }
                ("DOCTOR", "SECURITY_GROUP_IDS") => {
                    self.doctor.security_group_ids = split_list(value)
                }
                ("DOCTOR", "MIN_BUILDX") => self.doctor.min_buildx = value.clone(),
                (section, key) => {
                    return Err(bad(format!(
                        "unknown key `{}` in section [{}]; see the Configuration section of README.md",
                        key.to_lowercase(),
                        section.to_lowercase()
                    )));
                }
            }
        }
        Ok(())
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// toml's errors span several lines with a caret drawing; keep the
/// contract's "one-line error".
pub(crate) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = toml {
            std::fs::write(dir.path().join("openpay.toml"), t).unwrap();
        }
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(None, dir.path(), &env)
    }

    #[test]
    fn defaults_without_file() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.pipeline.jobs, 4);
        assert_eq!(c.doctor.min_buildx, "0.17.0");
        assert!(c.aws.bucket.is_none());
    }

    #[test]
    fn env_beats_file() {
        let c = load(
            Some("[aws]\nbucket = \"from-file\"\n[pipeline]\njobs = 2\n"),
            &[("OPENPAY_AWS_BUCKET", "from-env")],
        )
        .unwrap();
        assert_eq!(c.aws.bucket.as_deref(), Some("from-env"));
        assert_eq!(c.pipeline.jobs, 2);
    }

    #[test]
    fn read_timeout_from_file_and_env() {
        let c = load(Some("[aws]\nread_timeout_secs = 30\n"), &[]).unwrap();
        assert_eq!(
            c.aws.settings().read_timeout,
            Some(std::time::Duration::from_secs(30))
        );
        let c = load(
            Some("[aws]\nread_timeout_secs = 30\n"),
            &[("OPENPAY_AWS_READ_TIMEOUT_SECS", "5")],
        )
        .unwrap();
        assert_eq!(c.aws.read_timeout_secs, Some(5));
        assert_eq!(load(None, &[]).unwrap().aws.settings().read_timeout, None);
        for bad in ["0", "soon", "-1"] {
            let e = load(None, &[("OPENPAY_AWS_READ_TIMEOUT_SECS", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("OPENPAY_AWS_READ_TIMEOUT_SECS"),
                "{e}"
            );
        }
        let e = load(Some("[aws]\nread_timeout_secs = 0\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("read_timeout_secs"), "{e}");
    }

    #[test]
    fn unknown_file_key_is_named() {
        let e = load(Some("[aws]\nbukket = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bukket"), "{e}");
        assert!(e.contains("openpay.toml"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn unknown_env_key_is_named() {
        let e = load(None, &[("OPENPAY_AWS_BUKKET", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("OPENPAY_AWS_BUKKET"), "{e}");
    }

    #[test]
    fn other_openpay_vars_are_not_config() {
        assert!(load(None, &[("OPENPAY_TEST_MOTO", "x")]).is_ok());
    }

    #[test]
    fn bad_jobs_env() {
        assert!(load(None, &[("OPENPAY_PIPELINE_JOBS", "zero")]).is_err());
    }

    #[test]
    fn terraform_outputs_feed_bucket_unless_file_sets_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".openpay")).unwrap();
        std::fs::write(
            dir.path().join(OUTPUTS_FILE),
            r#"{"bucket":{"value":"tf-bucket","sensitive":false},"region":{"value":"us-west-1","sensitive":false}}"#,
        )
        .unwrap();
        let c = Config::load_from(None, dir.path(), &[]).unwrap();
        assert_eq!(c.aws.bucket.as_deref(), Some("tf-bucket"));
        std::fs::write(
            dir.path().join("openpay.toml"),
            "[aws]\nbucket = \"file-bucket\"\n",
        )
        .unwrap();
        let c = Config::load_from(None, dir.path(), &[]).unwrap();
        assert_eq!(c.aws.bucket.as_deref(), Some("file-bucket"));
        assert_eq!(c.aws.region.as_deref(), Some("us-west-1"));
    }
}
