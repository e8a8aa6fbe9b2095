//! The risk gate: changes `apply` refuses without `--allow-risky`.
//!
//! Pure over a parsed [`Plan`], so it is tested on real `show -json`
//! outputs. Three families, each with a stable code:
//! - `ssh-open-to-world`: an ingress rule reaching TCP 22 from 0.0.0.0/0 or
//!   ::/0, in any of the three ways the AWS provider expresses rules;
//! - `data-or-role-destroyed`: the bucket or the role deleted or replaced
//!   (a replaced bucket is an empty bucket);
//! - `iam-wildcard`: an Allow statement with `*` / `service:*` actions or a
//!   `*` / `arn:aws:s3:::*` resource.

use serde_json::Value;

use super::plan::{Action, Plan, ResourceChange};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Risk {
    pub code: &'static str,
    pub address: String,
    pub detail: String,
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.code, self.address, self.detail)
    }
}

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// Every risk in the plan, in address order.
pub fn assess(plan: &Plan) -> Vec<Risk> {
    let mut risks = Vec::new();
    for c in &plan.changes {
        destroyed(c, &mut risks);
        if matches!(c.action, Action::Create | Action::Update | Action::Replace) {
            ssh_open(c, &mut risks);
            iam_wildcards(c, &mut risks);
        }
    }
    risks
}

fn destroyed(c: &ResourceChange, out: &mut Vec<Risk>) {
    let what = match c.resource_type.as_str() {
        "aws_s3_bucket" => "the bucket (and every object in it)",
        "aws_iam_role" => "the instance role",
        _ => return,
    };
    let verb = match c.action {
        Action::Delete => "deletes",
        Action::Replace => "replaces",
        _ => return,
    };
    out.push(Risk {
        code: "data-or-role-destroyed",
        address: c.address.clone(),
        detail: format!("{verb} {what} ({})", c.reason),
    });
}

fn ssh_open(c: &ResourceChange, out: &mut Vec<Risk>) {
    let a = &c.after;
    let mut push = |rule: &Value, cidrs: Vec<String>| {
        if reaches_port_22(rule) && !cidrs.is_empty() {
            out.push(Risk {
                code: "ssh-open-to-world",
                address: c.address.clone(),
                detail: format!(
                    "ingress {} reaches SSH (port 22) from {}",
                    port_text(rule),
                    cidrs.join(", ")
                ),
            });
        }
    };
    match c.resource_type.as_str() {
        "aws_security_group" => {
            for rule in a
                .get("ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(rule, world_in(rule, &["cidr_blocks", "ipv6_cidr_blocks"]));
            }
        }
        "aws_security_group_rule" if a.get("type").and_then(Value::as_str) == Some("ingress") => {
            push(a, world_in(a, &["cidr_blocks", "ipv6_cidr_blocks"]));
        }
        "aws_vpc_security_group_ingress_rule" => push(a, world_in(a, &["cidr_ipv4", "cidr_ipv6"])),
        _ => {}
    }
}

/// The world CIDRs named in `keys` (each a string or a list of strings).
fn world_in(rule: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| rule.get(*k))
        .flat_map(|v| match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(xs) => xs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        })
        .filter(|s| WORLD.contains(&s.as_str()))
        .collect()
}

/// Protocol "-1"/"all" covers every port; otherwise TCP with 22 in range.
/// Unknown (null) ports count as reaching 22: the gate errs on the safe side.
fn reaches_port_22(rule: &Value) -> bool {
    let proto = rule
        .get("protocol")
        .or_else(|| rule.get("ip_protocol"))
        .and_then(Value::as_str)
        .unwrap_or("-1")
        .to_ascii_lowercase();
    if proto == "-1" || proto == "all" {
        return true;
    }
    if proto != "tcp" && proto != "6" {
        return false;
    }
    let port = |k: &str| rule.get(k).and_then(Value::as_i64);
    match (port("from_port"), port("to_port")) {
        (Some(from), Some(to)) => from <= 22 && 22 <= to,
        _ => true,
    }
}

fn port_text(rule: &Value) -> String {
    let proto = rule
        .get("protocol")
        .or_else(|| rule.get("ip_protocol"))
        .and_then(Value::as_str)
        .unwrap_or("-1");
    if proto == "-1" || proto.eq_ignore_ascii_case("all") {
        return "all traffic".into();
    }
    let p = |k: &str| rule.get(k).and_then(Value::as_i64).map(|n| n.to_string());
    match (p("from_port"), p("to_port")) {
        (Some(f), Some(t)) if f == t => format!("{proto}/{f}"),
        (Some(f), Some(t)) => format!("{proto}/{f}-{t}"),
        _ => proto.to_string(),
    }
}

fn iam_wildcards(c: &ResourceChange, out: &mut Vec<Risk>) {
    let key = match c.resource_type.as_str() {
        "aws_iam_role_policy"
        | "aws_iam_policy"
        | "aws_iam_user_policy"
        | "aws_iam_group_policy" => "policy",
        _ => return,
    };
    let Some(doc) = c.after.get(key).and_then(Value::as_str) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<Value>(doc) else {
        return;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return,
    };
    for (i, s) in statements.iter().enumerate() {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let label = s
            .get("Sid")
            .and_then(Value::as_str)
            .map(|sid| format!("statement {sid}"))
            .unwrap_or_else(|| format!("statement #{}", i + 1));
        for action in strings(s.get("Action")) {
            if action == "*" || action.ends_with(":*") {
                out.push(Risk {
                    code: "iam-wildcard",
                    address: c.address.clone(),
                    detail: format!("{label} allows action {action}"),
                });
            }
        }
        for res in strings(s.get("Resource")) {
            if res == "*" || res.starts_with("arn:aws:s3:::*") {
                out.push(Risk {
                    code: "iam-wildcard",
                    address: c.address.clone(),
                    detail: format!("{label} allows resource {res}"),
                });
            }
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(xs)) => xs
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::tf::fixture;

    fn plan(name: &str) -> Plan {
        Plan::parse(&fixture(name)).unwrap()
    }

    fn codes(r: &[Risk]) -> Vec<(&'static str, &str)> {
        r.iter().map(|r| (r.code, r.address.as_str())).collect()
    }

    #[test]
    fn the_stack_itself_is_not_risky() {
        let risks = assess(&plan("plan-stack-create-1.2.json"));
        assert!(risks.is_empty(), "{risks:?}");
    }

    #[test]
    fn replaced_bucket_is_risky() {
        let risks = assess(&plan("plan-mixed-1.2.json"));
        assert_eq!(
            codes(&risks),
            vec![("data-or-role-destroyed", "aws_s3_bucket.lake")]
        );
        assert!(
            risks[0].detail.contains("replaces the bucket"),
            "{}",
            risks[0]
        );
    }

    #[test]
    fn world_ssh_and_wildcards_in_every_rule_style() {
        let risks = assess(&plan("plan-risky-1.2.json"));
        let c = codes(&risks);
        for expected in [
            ("ssh-open-to-world", "aws_security_group.host"),
            ("ssh-open-to-world", "aws_security_group_rule.ssh6[0]"),
            (
                "ssh-open-to-world",
                "aws_vpc_security_group_ingress_rule.ssh[0]",
            ),
            ("iam-wildcard", "aws_iam_role_policy.runner"),
        ] {
            assert!(c.contains(&expected), "missing {expected:?} in {c:?}");
        }
        let text: Vec<String> = risks.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains("allows action s3:*")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("allows resource arn:aws:s3:::*")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("from 0.0.0.0/0, ::/0")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("all traffic")), "{text:?}");
    }

    #[test]
    fn port_logic() {
        assert!(reaches_port_22(
            &serde_json::json!({"protocol": "tcp", "from_port": 0, "to_port": 65535})
        ));
        assert!(!reaches_port_22(
            &serde_json::json!({"protocol": "tcp", "from_port": 443, "to_port": 443})
        ));
        assert!(!reaches_port_22(
            &serde_json::json!({"protocol": "udp", "from_port": 22, "to_port": 22})
        ));
        assert!(reaches_port_22(&serde_json::json!({"ip_protocol": "-1"})));
    }

    #[test]
    fn deny_statements_and_scoped_resources_pass() {
        let doc = r#"{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/raw/*"}]}"#;
        let c = ResourceChange {
            address: "aws_iam_policy.p".into(),
            resource_type: "aws_iam_policy".into(),
            action: Action::Create,
            reason: "new".into(),
            before: Value::Null,
            after: serde_json::json!({ "policy": doc }),
        };
        let p = Plan {
            format_version: "1.2".into(),
            changes: vec![c],
            output_changes: vec![],
        };
        assert!(assess(&p).is_empty());
    }
}
