//! The check catalog: `checks/*.toml`, embedded in the binary at build time.
//!
//! Titles, levels, severities, timeouts and remediation text are data, so a
//! check's function only decides and explains (STYLE.md pattern 1). The
//! files are parsed strictly: an unknown key (a misspelled `remediaton =`)
//! is an error naming the key, never a silent default.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every embedded catalog file: (path shown in errors, contents). Branches
/// that add checks add one line here.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "checks/standard.toml",
        include_str!("../../checks/standard.toml"),
    ),
    ("checks/aws.toml", include_str!("../../checks/aws.toml")),
];

/// Where a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Once per host, through that host's transport.
    Host,
    /// Once per run, against the AWS account.
    Account,
    /// Once per run, reading files of this repository.
    Repo,
}

/// Whether a failure changes the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Required,
    /// Advisory failures are reported but never change the exit code.
    Advisory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

macro_rules! as_str_impl {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
as_str_impl!(Scope { Host => "host", Account => "account", Repo => "repo" });
as_str_impl!(Level { Required => "required", Advisory => "advisory" });
as_str_impl!(Severity { High => "high", Medium => "medium", Low => "low" });

/// One `[[check]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Stable, dotted, kebab-case after the dot (`host.cloud-init`).
    pub id: String,
    pub title: String,
    pub scope: Scope,
    pub level: Level,
    pub severity: Severity,
    /// `openpay run` runs it as part of its gate.
    pub preflight: bool,
    pub timeout_secs: u64,
    /// What it runs or reads, shown by `--explain`.
    pub runs: Vec<String>,
    pub why: String,
    /// The generic fix, shown under a failure when the check gives none.
    pub remediation: String,
}

impl CheckSpec {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    check: Vec<CheckSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("invalid catalog file {file}: {message}")]
    Parse { file: String, message: String },
    #[error("invalid catalog file {file}: check `{id}`: {message}")]
    Invalid {
        file: String,
        id: String,
        message: String,
    },
}

/// The loaded catalog, in file order (which is also report order).
#[derive(Debug, Clone)]
pub struct Catalog {
    checks: Vec<CheckSpec>,
}

impl Catalog {
    /// The catalog compiled into this binary. The unit tests load it, so a
    /// broken embedded file cannot ship; the panic is for that impossibility.
    pub fn embedded() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(EMBEDDED).expect("embedded catalog is validated by unit tests")
        })
    }

    /// Parses and validates catalog files given as (name, contents).
    pub fn parse(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
        let mut checks = Vec::new();
        let mut seen = HashSet::new();
        for (file, text) in files {
            let parsed: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Parse {
                file: file.to_string(),
                message: crate::config::one_line(&e.to_string()),
            })?;
            for spec in parsed.check {
                let invalid = |message: &str| CatalogError::Invalid {
                    file: file.to_string(),
                    id: spec.id.clone(),
                    message: message.to_string(),
                };
                if !valid_id(&spec.id) {
                    return Err(invalid(
                        "id must be dotted lowercase, kebab-case after the dot (e.g. host.cloud-init)",
                    ));
                }
                if !seen.insert(spec.id.clone()) {
                    return Err(invalid("duplicate id"));
                }
                if spec.timeout_secs == 0 {
                    return Err(invalid("timeout_secs must be at least 1"));
                }
                if spec.title.trim().is_empty() || spec.remediation.trim().is_empty() {
                    return Err(invalid("title and remediation must not be empty"));
                }
                checks.push(spec);
            }
        }
        Ok(Catalog { checks })
    }

    pub fn checks(&self) -> &[CheckSpec] {
        &self.checks
    }

    pub fn get(&self, id: &str) -> Option<&CheckSpec> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Position in the catalog, used to sort results into a stable order.
    pub fn position(&self, id: &str) -> usize {
        self.checks
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(usize::MAX)
    }

    /// Ids that look like `wanted` (shared prefix, substring, or a small
    /// edit distance), for "unknown id" errors.
    pub fn close_ids(&self, wanted: &str) -> Vec<&str> {
        let w = wanted.to_ascii_lowercase();
        let mut scored: Vec<(usize, &str)> = self
            .checks
            .iter()
            .filter_map(|c| {
                let id = c.id.as_str();
                let tail = id.split_once('.').map_or(id, |(_, t)| t);
                let d = edit_distance(&w, id).min(edit_distance(&w, tail));
                let related = id.contains(&w) || (w.len() >= 3 && w.contains(tail));
                (related || d <= 3).then_some((if related { 0 } else { d }, id))
            })
            .collect();
        scored.sort();
        scored.into_iter().map(|(_, id)| id).collect()
    }

    /// The one-line error for an id that is not in the catalog.
    pub fn unknown_id_message(&self, flag: &str, id: &str) -> String {
        let close = self.close_ids(id);
        let hint = if close.is_empty() {
            "see `openpay doctor --list-checks`".to_string()
        } else {
            format!("did you mean {}?", close.join(", "))
        };
        format!("{flag} {id}: no such check id; {hint}")
    }
}

fn valid_id(id: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^[a-z][a-z0-9]*(\.[a-z0-9]+(-[a-z0-9]+)*)+$").unwrap())
        .is_match(id)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[check]]
id = "host.git"
title = "git"
scope = "host"
level = "required"
severity = "high"
preflight = false
timeout_secs = 5
runs = ["git --version"]
why = "w"
remediation = "r"
"#;

    #[test]
    fn whole_embedded_catalog_loads() {
        let c = Catalog::parse(EMBEDDED).unwrap();
        assert!(c.get("host.cloud-init").is_some());
        assert!(c.checks().len() >= 6);
        assert!(c.get("host.cloud-init").unwrap().preflight);
    }

    #[test]
    fn unknown_key_is_named() {
        let bad = ONE.replace(
            "remediation = \"r\"",
            "remediation = \"r\"\nremediaton = \"x\"",
        );
        let e = Catalog::parse(&[("checks/x.toml", &bad)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("remediaton"), "{e}");
        assert!(e.contains("checks/x.toml"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn missing_key_and_bad_enum_rejected() {
        let missing = ONE.replace("why = \"w\"\n", "");
        assert!(Catalog::parse(&[("a", &missing)]).is_err());
        let bad_level = ONE.replace("\"required\"", "\"mandatory\"");
        assert!(Catalog::parse(&[("a", &bad_level)]).is_err());
    }

    #[test]
    fn duplicate_and_malformed_ids_rejected() {
        let e = Catalog::parse(&[("a", ONE), ("b", ONE)]).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        let bad = ONE.replace("host.git", "Host.Git_x");
        assert!(Catalog::parse(&[("a", &bad)]).is_err());
        let zero = ONE.replace("timeout_secs = 5", "timeout_secs = 0");
        assert!(Catalog::parse(&[("a", &zero)]).is_err());
    }

    #[test]
    fn close_ids_suggest_typos() {
        let c = Catalog::embedded();
        assert_eq!(c.close_ids("host.gti").first(), Some(&"host.git"));
        assert!(c.close_ids("cloud-init").contains(&"host.cloud-init"));
        assert!(c.close_ids("zzzzzzzzzzzz").is_empty());
        let msg = c.unknown_id_message("--explain", "host.dokcer");
        assert!(msg.contains("host.docker"), "{msg}");
    }
}
