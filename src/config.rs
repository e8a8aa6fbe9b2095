//! One `Config` from `openpay.toml`, `OPENPAY_<SECTION>_<KEY>` variables and
//! terraform's `.openpay/outputs.json`; command flags are applied on top by
//! each command (flags > env > file > terraform outputs > defaults).
//!
//! Unknown keys are errors, in the file and in the environment, so a typo
//! never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `openpay tf apply` leaves the stack outputs (sensitive values redacted).
pub const OUTPUTS_FILE: &str = ".openpay/outputs.json";

/// Parallel file transfers allowed (`[pipeline] jobs`, `--jobs`).
pub const JOBS: std::ops::RangeInclusive<usize> = 1..=64;

/// Every configuration variable, as `OPENPAY_{SECTION}_{KEY}` without the
/// `OPENPAY_` prefix. Other `OPENPAY_*` variables (`OPENPAY_LOG`, the test
/// kit's, docker-compose's) are not configuration, unless they are one
/// typo away from a name here.
const ENV_KEYS: &[&str] = &[
    "AWS_REGION",
    "AWS_BUCKET",
    "AWS_ROLE_NAME",
    "AWS_READ_TIMEOUT_SECS",
    "PIPELINE_WORK_DIR",
    "PIPELINE_SOURCE_URL",
    "PIPELINE_JOBS",
    "PIPELINE_DATASTORE_TIMEOUT_SECS",
    "DOCTOR_ALLOWED_SSH_CIDRS",
    "DOCTOR_SECURITY_GROUP_IDS",
    "DOCTOR_MIN_BUILDX",
];

const SECTIONS: &[&str] = &["AWS", "PIPELINE", "DOCTOR"];

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
    /// A value of the file that parses but is not allowed; names the key.
    #[error("invalid config file {path}: {key} {message}")]
    Value {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error(
        "cannot read terraform outputs {path}: {message}; rerun `openpay tf apply` or delete the file"
    )]
    Outputs { path: PathBuf, message: String },
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
    /// Seconds the publisher's datastore may take to give a file's record
    /// count before the run goes on without it.
    pub datastore_timeout_secs: u64,
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            work_dir: PathBuf::from("data"),
            source_url: "https://openpaymentsdata.cms.gov".to_string(),
            jobs: 4,
            datastore_timeout_secs: 20,
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
            from_file.check_values(&path)?;
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

    /// Values the types allow but the program does not, named by file and
    /// key (not by the flag the user never typed).
    fn check_values(&self, path: &Path) -> Result<(), ConfigError> {
        if !JOBS.contains(&self.pipeline.jobs) {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: "[pipeline] jobs",
                message: format!(
                    "= {}: use a number from {} to {}",
                    self.pipeline.jobs,
                    JOBS.start(),
                    JOBS.end()
                ),
            });
        }
        if self.pipeline.datastore_timeout_secs == 0 {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: "[pipeline] datastore_timeout_secs",
                message: "= 0: use a positive whole number of seconds".into(),
            });
        }
        Ok(())
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
            let bad = |message: String| ConfigError::Env {
                var: var.clone(),
                message,
            };
            match rest {
                "AWS_REGION" => self.aws.region = Some(value.clone()),
                "AWS_BUCKET" => self.aws.bucket = Some(value.clone()),
                "AWS_ROLE_NAME" => self.aws.role_name = Some(value.clone()),
                "AWS_READ_TIMEOUT_SECS" => {
                    self.aws.read_timeout_secs = Some(
                        value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                bad(format!("`{value}` is not a positive number of seconds"))
                            })?,
                    )
                }
                "PIPELINE_WORK_DIR" => self.pipeline.work_dir = PathBuf::from(value),
                "PIPELINE_SOURCE_URL" => self.pipeline.source_url = value.clone(),
                "PIPELINE_JOBS" => {
                    self.pipeline.jobs = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| JOBS.contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "`{value}` is not a number from {} to {}",
                                JOBS.start(),
                                JOBS.end()
                            ))
                        })?
                }
                "PIPELINE_DATASTORE_TIMEOUT_SECS" => {
                    self.pipeline.datastore_timeout_secs = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            bad(format!(
                                "`{value}` is not a positive whole number of seconds"
                            ))
                        })?
                }
                "DOCTOR_ALLOWED_SSH_CIDRS" => self.doctor.allowed_ssh_cidrs = split_list(value),
                "DOCTOR_SECURITY_GROUP_IDS" => self.doctor.security_group_ids = split_list(value),
                "DOCTOR_MIN_BUILDX" => self.doctor.min_buildx = value.clone(),
                other => {
                    if let Some(message) = unknown_env_key(other) {
                        return Err(bad(message));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why `OPENPAY_{rest}` is refused, or `None` when it is not meant as
/// configuration: a variable in a config section that names no key, or
/// one a typo away from a configuration variable (`OPENPAY_PIPELNE_JOBS`).
fn unknown_env_key(rest: &str) -> Option<String> {
    let closest = ENV_KEYS
        .iter()
        .map(|k| (strsim::levenshtein(rest, k), *k))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, k)| k);
    let section = rest.split('_').next().unwrap_or_default();
    let in_section = SECTIONS.contains(&section);
    // A section name misspelt: one edit per four letters (PIPELNE, DOCTR);
    // AWS is too short to tell a typo from another word.
    let near_section = SECTIONS
        .iter()
        .any(|s| strsim::levenshtein(section, s) <= s.len() / 4);
    let typo = closest.filter(|k| strsim::levenshtein(rest, k) <= 2);
    if !in_section && !near_section && typo.is_none() {
        return None;
    }
    let hint = match closest {
        Some(k) => format!("did you mean OPENPAY_{k}?"),
        None => "see the Configuration section of README.md".to_string(),
    };
    Some(if in_section {
        format!(
            "unknown key `{}` in section [{}]; {hint}",
            rest.get(section.len() + 1..)
                .unwrap_or_default()
                .to_lowercase(),
            section.to_lowercase()
        )
    } else {
        format!("not a configuration variable; {hint}")
    })
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
        assert!(load(None, &[("OPENPAY_PIPELINE_JOBS", "65")]).is_err());
    }

    #[test]
    fn every_env_key_is_applied() {
        for key in ENV_KEYS {
            let var = format!("OPENPAY_{key}");
            let c = load(None, &[(var.as_str(), "7")]).unwrap();
            assert_ne!(c, Config::default(), "{var} changed nothing");
        }
    }

    #[test]
    fn a_misspelt_section_is_refused_with_the_name_meant() {
        for (typo, meant) in [
            ("OPENPAY_PIPELNE_JOBS", "OPENPAY_PIPELINE_JOBS"),
            ("OPENPAY_DOCTR_MIN_BUILDX", "OPENPAY_DOCTOR_MIN_BUILDX"),
            ("OPENPAY_AWS_BUKKET", "OPENPAY_AWS_BUCKET"),
            ("OPENPAY_AWSREGION", "OPENPAY_AWS_REGION"),
            ("OPENPAY_PIPELINE_WORKDIR", "OPENPAY_PIPELINE_WORK_DIR"),
        ] {
            let e = load(None, &[(typo, "4")]).unwrap_err().to_string();
            assert!(e.contains(typo), "{e}");
            assert!(e.contains(&format!("did you mean {meant}?")), "{e}");
        }
        let e = load(None, &[("OPENPAY_PIPELINE", "x")]).unwrap_err();
        assert!(e.to_string().contains("OPENPAY_PIPELINE"), "{e}");
    }

    #[test]
    fn other_openpay_variables_in_use_are_not_configuration() {
        // OPENPAY_LOG, docker-compose's and the test kit's variables.
        for var in [
            "OPENPAY_LOG",
            "OPENPAY_YEAR",
            "OPENPAY_DATASET",
            "OPENPAY_JOBS",
            "OPENPAY_BUCKET",
            "OPENPAY_BIN",
            "OPENPAY_VENV",
            "OPENPAY_TF_MIRROR",
            "OPENPAY_DRIFT_ROLE_ARN",
            "OPENPAY_RUNNER_ROLE",
            "OPENPAY_BOOTSTRAP_LOG",
            "OPENPAY_CHECKOV_VENV",
            "OPENPAY_TEST_HOST_ROOT",
            "OPENPAY_TEST_LINT",
        ] {
            assert!(load(None, &[(var, "1")]).is_ok(), "{var}");
        }
    }

    #[test]
    fn an_invalid_file_value_names_the_file_and_key() {
        let e = load(Some("[pipeline]\njobs = 0\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("openpay.toml") && e.contains("[pipeline] jobs"),
            "{e}"
        );
        assert!(!e.contains("--jobs"), "names no flag: {e}");
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
