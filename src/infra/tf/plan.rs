//! `terraform show -json` of a saved plan, reduced to what openpay shows
//! and gates on: one [`ResourceChange`] per resource that changes.
//!
//! Format 0.x and 1.x are accepted (the fields read here exist in both;
//! `action_reason` is newer and optional). `resource_changes` is absent when
//! a configuration has no resources. Values that terraform marks sensitive
//! (`before_sensitive`/`after_sensitive`) are replaced by
//! [`SENSITIVE`] while parsing, and the plan's `variables`, `prior_state`
//! and `configuration` (which hold sensitive values in clear text) are never
//! read, so no later stage can print a secret.

use serde::Deserialize;
use serde_json::Value;

use super::TfError;

/// What a sensitive value is shown as, everywhere.
pub const SENSITIVE: &str = "(sensitive)";

/// The effective action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }

    /// terraform's action list: `["create"]`, `["delete","create"]`, ...
    /// `None` for no-op and read, which are not changes.
    fn from_actions(actions: &[String]) -> Option<Self> {
        let has = |a: &str| actions.iter().any(|x| x == a);
        match (has("create"), has("delete"), has("update")) {
            (true, true, _) => Some(Action::Replace),
            (true, false, _) => Some(Action::Create),
            (false, true, _) => Some(Action::Delete),
            (false, false, true) => Some(Action::Update),
            _ => None,
        }
    }
}

/// One resource that the plan changes. `before`/`after` are the planned
/// values with sensitive parts masked; unknown-after-apply values are null.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceChange {
    pub address: String,
    pub resource_type: String,
    pub action: Action,
    pub reason: String,
    #[serde(skip)]
    pub before: Value,
    #[serde(skip)]
    pub after: Value,
}

/// The part of a saved plan openpay uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub format_version: String,
    pub changes: Vec<ResourceChange>,
    /// Output names whose value changes (values never kept).
    pub output_changes: Vec<String>,
}

impl Plan {
    /// The change to one resource address, if the plan changes it.
    pub fn change(&self, address: &str) -> Option<&ResourceChange> {
        self.changes.iter().find(|c| c.address == address)
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || !self.output_changes.is_empty()
    }

    /// Parses `terraform show -json PLANFILE` output.
    pub fn parse(json: &str) -> Result<Self, TfError> {
        let raw: RawPlan =
            serde_json::from_str(json).map_err(|e| TfError::PlanJson(e.to_string()))?;
        let major = raw.format_version.split('.').next().unwrap_or("");
        if major != "0" && major != "1" {
            return Err(TfError::PlanJson(format!(
                "format_version {} is not supported (openpay reads 0.x and 1.x); use terraform 0.12-1.x or OpenTofu",
                raw.format_version
            )));
        }
        let mut changes: Vec<ResourceChange> = raw
            .resource_changes
            .into_iter()
            .filter(|rc| rc.mode.as_deref().unwrap_or("managed") == "managed")
            .filter_map(ResourceChange::from_raw)
            .collect();
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        let output_changes = raw
            .output_changes
            .into_iter()
            .filter(|(_, c)| Action::from_actions(&c.actions).is_some())
            .map(|(name, _)| name)
            .collect();
        Ok(Plan {
            format_version: raw.format_version,
            changes,
            output_changes,
        })
    }
}

impl ResourceChange {
    fn from_raw(rc: RawResourceChange) -> Option<Self> {
        let action = Action::from_actions(&rc.change.actions)?;
        let before = mask(
            rc.change.before.unwrap_or(Value::Null),
            rc.change.before_sensitive.as_ref(),
        );
        let after = mask(
            rc.change.after.unwrap_or(Value::Null),
            rc.change.after_sensitive.as_ref(),
        );
        let reason = reason(
            action,
            rc.action_reason.as_deref(),
            rc.change.replace_paths.as_ref(),
            &before,
            &after,
            rc.change.after_unknown.as_ref(),
        );
        Some(ResourceChange {
            address: rc.address,
            resource_type: rc.kind,
            action,
            reason,
            before,
            after,
        })
    }
}

#[derive(Deserialize)]
struct RawPlan {
    format_version: String,
    #[serde(default)]
    resource_changes: Vec<RawResourceChange>,
    #[serde(default)]
    output_changes: std::collections::BTreeMap<String, RawOutputChange>,
}

#[derive(Deserialize)]
struct RawOutputChange {
    #[serde(default)]
    actions: Vec<String>,
}

#[derive(Deserialize)]
struct RawResourceChange {
    address: String,
    #[serde(rename = "type")]
    kind: String,
    mode: Option<String>,
    change: RawChange,
    action_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawChange {
    actions: Vec<String>,
    before: Option<Value>,
    after: Option<Value>,
    after_unknown: Option<Value>,
    before_sensitive: Option<Value>,
    after_sensitive: Option<Value>,
    replace_paths: Option<Value>,
}

/// Replaces every part of `v` that the parallel `sensitive` tree marks
/// `true` with [`SENSITIVE`]. terraform's sensitivity tree mirrors the value:
/// `true` for a sensitive leaf or subtree, objects/arrays for nested marks.
pub fn mask(v: Value, sensitive: Option<&Value>) -> Value {
    match (v, sensitive) {
        (Value::Null, _) => Value::Null,
        (_, Some(Value::Bool(true))) => Value::String(SENSITIVE.into()),
        (Value::Object(map), Some(Value::Object(marks))) => Value::Object(
            map.into_iter()
                .map(|(k, val)| {
                    let m = marks.get(&k);
                    (k, mask(val, m))
                })
                .collect(),
        ),
        (Value::Array(items), Some(Value::Array(marks))) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, val)| mask(val, marks.get(i)))
                .collect(),
        ),
        (v, _) => v,
    }
}

fn reason(
    action: Action,
    action_reason: Option<&str>,
    replace_paths: Option<&Value>,
    before: &Value,
    after: &Value,
    after_unknown: Option<&Value>,
) -> String {
    let paths = || -> Vec<String> {
        replace_paths
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(Value::as_array)
                    .map(|p| {
                        p.iter()
                            .map(|s| match s {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let known = match action_reason {
        Some("replace_because_tainted") => Some("tainted".to_string()),
        Some("replace_by_request") => Some("replacement requested (-replace)".to_string()),
        Some("replace_by_triggers") => Some("replace_triggered_by".to_string()),
        Some("replace_because_cannot_update") => None,
        Some("delete_because_no_resource_config") => Some("removed from the configuration".into()),
        Some("delete_because_no_module") => Some("its module was removed".into()),
        Some("delete_because_wrong_repetition") => {
            Some("count/for_each was removed or added".into())
        }
        Some("delete_because_count_index") => Some("count index no longer exists".into()),
        Some("delete_because_each_key") => Some("for_each key no longer exists".into()),
        Some("delete_because_no_move_target") => {
            Some("moved to an address that does not exist".into())
        }
        Some(other) => Some(other.replace('_', " ")),
        None => None,
    };
    if let Some(k) = known {
        return k;
    }
    match action {
        Action::Create => "new".into(),
        Action::Delete => "not in the configuration".into(),
        Action::Replace => {
            let p = paths();
            if p.is_empty() {
                "cannot update in place".into()
            } else {
                format!("forces replacement: {}", p.join(", "))
            }
        }
        Action::Update => {
            let changed = changed_keys(before, after, after_unknown);
            if changed.is_empty() {
                "in-place update".into()
            } else {
                format!("changed: {}", changed.join(", "))
            }
        }
    }
}

/// Top-level attributes that differ, or become unknown, between before
/// and after. Only names are reported, never values.
fn changed_keys(before: &Value, after: &Value, after_unknown: Option<&Value>) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let unknown = after_unknown.and_then(Value::as_object);
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| {
            let now_unknown = unknown
                .and_then(|u| u.get(*k))
                .is_some_and(|u| u == &Value::Bool(true));
            now_unknown || a.get(*k) != b.get(*k)
        })
        .filter(|k| k.as_str() != "tags_all")
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::tf::fixture;

    fn actions(p: &Plan) -> Vec<(String, Action)> {
        p.changes
            .iter()
            .map(|c| (c.address.clone(), c.action))
            .collect()
    }

    #[test]
    fn stack_create_is_all_creates() {
        let p = Plan::parse(&fixture("plan-stack-create-1.2.json")).unwrap();
        assert_eq!(p.format_version, "1.2");
        assert_eq!(p.changes.len(), 23, "{:?}", actions(&p));
        assert!(p.changes.iter().all(|c| c.action == Action::Create));
        assert!(p.changes.iter().any(|c| c.address == "aws_s3_bucket.lake"));
        // 22 resources, the SSH rule twice (one IPv4, one IPv6 CIDR); data
        // sources (mode "data") are reads, never changes
        assert!(p.changes.iter().all(|c| !c.address.starts_with("data.")));
    }

    fn check_mixed(p: &Plan) {
        let got = actions(p);
        assert!(
            got.contains(&("aws_s3_bucket.lake".into(), Action::Replace)),
            "{got:?}"
        );
        assert!(
            got.contains(&("aws_security_group.old[0]".into(), Action::Delete)),
            "{got:?}"
        );
        assert!(
            got.contains(&("aws_iam_role.runner".into(), Action::Update)),
            "{got:?}"
        );
        assert!(
            got.contains(&("aws_ssm_parameter.token".into(), Action::Update)),
            "{got:?}"
        );
        assert!(
            !got.iter().any(|(a, _)| a == "aws_security_group.host"),
            "no-op is not a change"
        );
        let role = p.change("aws_iam_role.runner").unwrap();
        assert_eq!(role.reason, "changed: tags");
        let bucket = p.change("aws_s3_bucket.lake").unwrap();
        assert_eq!(bucket.reason, "forces replacement: bucket");
    }

    #[test]
    fn mixed_1_2_update_replace_delete() {
        let p = Plan::parse(&fixture("plan-mixed-1.2.json")).unwrap();
        check_mixed(&p);
        let sg = p.change("aws_security_group.old[0]").unwrap();
        assert_eq!(sg.reason, "count index no longer exists");
    }

    #[test]
    fn mixed_0_2_reads_the_same() {
        let p = Plan::parse(&fixture("plan-mixed-0.2.json")).unwrap();
        assert_eq!(p.format_version, "0.2");
        check_mixed(&p);
        let sg = p.change("aws_security_group.old[0]").unwrap();
        assert_eq!(sg.reason, "not in the configuration");
    }

    #[test]
    fn sensitive_values_are_masked_at_parse_time() {
        let json = fixture("plan-mixed-1.2.json");
        assert!(
            json.contains("n3w-s3cr3t-fixture-token"),
            "fixture must hold the secret"
        );
        let p = Plan::parse(&json).unwrap();
        let ssm = p.change("aws_ssm_parameter.token").unwrap();
        assert_eq!(ssm.after["value"], Value::String(SENSITIVE.into()));
        assert_eq!(ssm.before["value"], Value::String(SENSITIVE.into()));
        let everything = format!("{p:?}");
        assert!(
            !everything.contains("s3cr3t"),
            "secret leaked: {everything}"
        );
    }

    #[test]
    fn no_changes_and_absent_resource_changes() {
        let p = Plan::parse(&fixture("plan-no-changes-1.2.json")).unwrap();
        assert!(!p.has_changes());
        let p = Plan::parse(&fixture("plan-empty-1.2.json")).unwrap();
        assert!(p.changes.is_empty());
        assert_eq!(p.output_changes, vec!["answer".to_string()]);
    }

    #[test]
    fn unknown_major_format_is_an_error() {
        let e = Plan::parse(r#"{"format_version":"2.0"}"#).unwrap_err();
        assert!(e.to_string().contains("2.0"), "{e}");
        assert!(Plan::parse("not json").is_err());
    }

    #[test]
    fn mask_nested() {
        let v = serde_json::json!({"a": 1, "b": {"c": "x", "d": ["p", "q"]}});
        let s = serde_json::json!({"b": {"c": true, "d": [false, true]}});
        let m = mask(v, Some(&s));
        assert_eq!(
            m,
            serde_json::json!({"a": 1, "b": {"c": SENSITIVE, "d": ["p", SENSITIVE]}})
        );
    }
}
