//! SARIF 2.1.0 (OASIS), the subset `openpay doctor` and `openpay iam drift`
//! write for GitHub code scanning: one run, the rules a tool can report,
//! its results with locations and `partialFingerprints`, and tool
//! notifications for what could not be evaluated.
//!
//! Plain serde structs rather than the `serde-sarif` crate: the generated
//! model of the whole schema costs more build time than the dozen types
//! used here. The output is validated against the official schema and
//! GitHub's ingestion rules by Microsoft's SARIF Multitool in the tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The schema every log names (the OASIS standard's own URI).
pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The key of openpay's fingerprint in `partialFingerprints`; bump the
/// version if what it hashes ever changes, so old alerts are not matched
/// to new ones by accident.
pub const FINGERPRINT_KEY: &str = "openpay/v1";

/// `result.level` and `defaultConfiguration.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Note,
}

#[derive(Debug, Clone, Serialize)]
pub struct Text {
    pub text: String,
}

impl Text {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

/// A rule (`reportingDescriptor`): what a result's `ruleId` means.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    /// PascalCase name, as SARIF recommends for rule names.
    pub name: String,
    pub short_description: Text,
    pub full_description: Text,
    /// How to fix it.
    pub help: Text,
    pub default_configuration: Configuration,
    pub properties: RuleProperties,
}

#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    pub level: Level,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleProperties {
    pub tags: Vec<String>,
}

impl Rule {
    /// A rule from a stable dotted id (`net.ssh-allowlist`).
    pub fn new(id: &str, title: &str, why: &str, fix: &str, level: Level, tags: &[&str]) -> Self {
        Self {
            id: id.to_string(),
            name: pascal_case(id),
            short_description: Text::new(title),
            full_description: Text::new(why),
            help: Text::new(fix),
            default_configuration: Configuration { level },
            properties: RuleProperties {
                tags: tags.iter().map(|t| t.to_string()).collect(),
            },
        }
    }
}

/// `net.ssh-allowlist` → `NetSshAllowlist`.
fn pascal_case(id: &str) -> String {
    id.split(['.', '-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A file of the repository and, when known, the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub physical_location: PhysicalLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalLocation {
    pub artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    pub uri: String,
    pub uri_base_id: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub start_line: u32,
}

impl Location {
    /// `path` relative to the repository root (`%SRCROOT%`), `/`-separated.
    pub fn file(path: &str, line: Option<u32>) -> Self {
        Self {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation {
                    uri: relative_uri(path),
                    uri_base_id: "%SRCROOT%",
                },
                region: line
                    .filter(|l| *l > 0)
                    .map(|start_line| Region { start_line }),
            },
        }
    }

    pub fn uri(&self) -> &str {
        &self.physical_location.artifact_location.uri
    }
}

/// A path as a relative URI reference: `./` dropped, `\` turned into `/`,
/// characters outside RFC 3986's unreserved set and `/` percent-encoded.
fn relative_uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    let p = p.trim_start_matches("./");
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path` relative to `root` when it lies under it, else as given.
pub fn repo_relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SarifResult {
    pub rule_id: String,
    pub rule_index: usize,
    pub level: Level,
    pub message: Text,
    pub locations: Vec<Location>,
    pub partial_fingerprints: BTreeMap<String, String>,
}

impl SarifResult {
    /// A result whose fingerprint hashes `identity`: what makes this
    /// finding the same finding on the next run (rule, place, subject),
    /// never counts, durations or wording.
    pub fn new(
        rule: (&str, usize),
        level: Level,
        message: String,
        location: Location,
        identity: &[&str],
    ) -> Self {
        Self {
            rule_id: rule.0.to_string(),
            rule_index: rule.1,
            level,
            message: Text::new(message),
            locations: vec![location],
            partial_fingerprints: BTreeMap::from([(
                FINGERPRINT_KEY.to_string(),
                fingerprint(identity),
            )]),
        }
    }
}

/// sha256 over the parts, NUL-separated, as 32 hex digits.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Something that kept the tool from evaluating (an unreachable host).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub level: Level,
    pub message: Text,
}

/// One SARIF log with one run of `openpay`.
#[derive(Debug, Clone)]
pub struct Log {
    pub rules: Vec<Rule>,
    pub results: Vec<SarifResult>,
    pub notifications: Vec<Notification>,
    /// False when something could not be evaluated (exit 3).
    pub execution_successful: bool,
    /// `runAutomationDetails.id`, e.g. `openpay/doctor/`: keeps the doctor's
    /// and drift's alerts apart when both are uploaded for one commit.
    pub automation_id: String,
}

impl Log {
    /// The index of rule `id` in `rules`, for `ruleIndex`.
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// Writes the log as pretty JSON and a final newline.
    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Invocation<'a> {
            execution_successful: bool,
            tool_execution_notifications: &'a [Notification],
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Driver<'a> {
            name: &'static str,
            semantic_version: &'static str,
            rules: &'a [Rule],
        }
        #[derive(Serialize)]
        struct Tool<'a> {
            driver: Driver<'a>,
        }
        #[derive(Serialize)]
        struct Automation<'a> {
            id: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Run<'a> {
            tool: Tool<'a>,
            automation_details: Automation<'a>,
            invocations: [Invocation<'a>; 1],
            results: &'a [SarifResult],
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(rename = "$schema")]
            schema: &'static str,
            version: &'static str,
            runs: [Run<'a>; 1],
        }
        let doc = Doc {
            schema: SCHEMA,
            version: "2.1.0",
            runs: [Run {
                tool: Tool {
                    driver: Driver {
                        name: "openpay",
                        semantic_version: env!("CARGO_PKG_VERSION"),
                        rules: &self.rules,
                    },
                },
                automation_details: Automation {
                    id: &self.automation_id,
                },
                invocations: [Invocation {
                    execution_successful: self.execution_successful,
                    tool_execution_notifications: &self.notifications,
                }],
                results: &self.results,
            }],
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)
    }
}

/// The 1-based line of the first line of `text` for which `pred` holds.
pub fn line_where(text: &str, pred: impl Fn(&str) -> bool) -> Option<u32> {
    text.lines()
        .position(pred)
        .and_then(|i| u32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_uris_and_fingerprints() {
        assert_eq!(pascal_case("net.ssh-allowlist"), "NetSshAllowlist");
        assert_eq!(pascal_case("iam.drift.added"), "IamDriftAdded");
        assert_eq!(
            relative_uri("./terraform/network.tf"),
            "terraform/network.tf"
        );
        assert_eq!(
            relative_uri("conf dir/openpay.toml"),
            "conf%20dir/openpay.toml"
        );
        let a = fingerprint(&["net.ssh-allowlist", "account"]);
        assert_eq!(a.len(), 32);
        assert_eq!(a, fingerprint(&["net.ssh-allowlist", "account"]));
        // the separator keeps ("ab","c") and ("a","bc") apart
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(line_where("a\nb\nc", |l| l == "c"), Some(3));
        assert_eq!(Location::file("x", Some(0)).physical_location.region, None);
    }
}
