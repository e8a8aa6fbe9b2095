//! Tables and JSON for `openpay tf`; the command layer prints them.
//! Everything rendered here comes from masked/redacted models, never from
//! terraform's raw JSON.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::outputs::Outputs;
use super::plan::Plan;
use super::risk::Risk;

/// The change table: address, action, reason. "No changes" when empty.
pub fn plan_table(plan: &Plan) -> String {
    if !plan.has_changes() {
        return "No changes. The infrastructure matches the configuration.".into();
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["address", "action", "reason"]);
    for c in &plan.changes {
        t.add_row(vec![
            c.address.clone(),
            c.action.as_str().to_string(),
            c.reason.clone(),
        ]);
    }
    let mut s = if plan.changes.is_empty() {
        String::new()
    } else {
        format!("{t}\n")
    };
    let count = |a| plan.changes.iter().filter(|c| c.action == a).count();
    use super::plan::Action::*;
    s.push_str(&format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete.",
        count(Create),
        count(Update),
        count(Replace),
        count(Delete)
    ));
    if !plan.output_changes.is_empty() {
        s.push_str(&format!(
            " Outputs changing: {}.",
            plan.output_changes.join(", ")
        ));
    }
    s
}

/// The risk list, one line each.
pub fn risks_text(risks: &[Risk]) -> String {
    let mut s = format!("Risky changes ({}):\n", risks.len());
    for r in risks {
        s.push_str(&format!("  - {r}\n"));
    }
    s
}

/// Plan + risks as one JSON document (`--format json`).
pub fn plan_json(plan: &Plan, risks: &[Risk]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "format_version": plan.format_version,
        "changes": plan.changes,
        "output_changes": plan.output_changes,
        "risks": risks,
    }))
    .expect("plan serializes")
}

/// Outputs as a name/value table (values already redacted).
pub fn outputs_table(outputs: &Outputs) -> String {
    if outputs.is_empty() {
        return "No outputs: the stack has not been applied (run `openpay tf apply`).".into();
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["output", "value"]);
    for (name, o) in outputs {
        let v = match &o.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        t.add_row(vec![name.clone(), v]);
    }
    t.to_string()
}

pub fn outputs_json(outputs: &Outputs) -> String {
    serde_json::to_string_pretty(outputs).expect("outputs serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::tf::fixture;

    #[test]
    fn no_secret_in_any_rendering() {
        for f in [
            "plan-mixed-1.2.json",
            "plan-mixed-0.2.json",
            "plan-risky-1.2.json",
            "plan-no-changes-1.2.json",
        ] {
            let raw = fixture(f);
            assert!(raw.contains("s3cr3t"), "{f} must hold the secret");
            let p = Plan::parse(&raw).unwrap();
            let r = super::super::risk::assess(&p);
            for out in [plan_table(&p), plan_json(&p, &r), risks_text(&r)] {
                assert!(!out.contains("s3cr3t"), "{f}: {out}");
            }
        }
        let o = super::super::outputs::parse_redacted(&fixture("output-sensitive.json")).unwrap();
        for out in [outputs_table(&o), outputs_json(&o)] {
            assert!(!out.contains("s3cr3t"), "{out}");
            assert!(out.contains("(sensitive)"), "{out}");
        }
    }

    #[test]
    fn table_lists_actions_and_summary() {
        let p = Plan::parse(&fixture("plan-mixed-1.2.json")).unwrap();
        let t = plan_table(&p);
        assert!(
            t.contains("aws_s3_bucket.lake") && t.contains("replace"),
            "{t}"
        );
        assert!(
            t.contains("Plan: 0 to create, 3 to update, 1 to replace, 1 to delete."),
            "{t}"
        );
        let none = Plan::parse(&fixture("plan-no-changes-1.2.json")).unwrap();
        assert!(plan_table(&none).starts_with("No changes"));
    }
}
