//! The semantic comparison of the repo's policy with the live one.
//!
//! Both sides are broken into atoms (see `policy::normalize`), so anything
//! that does not change what is granted or denied vanishes. Each atom found
//! on one side only is then classified:
//! - a live-only Allow that no repo Allow covers is **added** access;
//! - a repo-only Allow that no live Allow covers is **removed** access;
//! - an atom the other side covers anyway (a grant split differently, or
//!   narrower than one already there) is **cosmetic**;
//! - a Deny on one side only counts by its effect: it is added or removed
//!   access when it changes the decision for one of the probe requests
//!   (openpay's needed actions and the sensitive set), cosmetic otherwise.
//!
//! Every difference carries its "impact": the probe requests whose decision
//! it changes, computed with the IAM evaluator. A managed policy attached
//! to the role that the repo does not declare is drift on its own.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::infra::policy::normalize::{Atom, Part, SourcedAtom, atom_covers, atoms};
use crate::infra::policy::{
    ActionMatch, Effect, PolicyDocument, Request, ResourceMatch, Statement, evaluate,
};

use crate::infra::iam::{LiveKind, LivePolicy};

/// How a difference matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Live grants something the repo does not: the dangerous kind.
    Added,
    /// The repo grants something live lacks: the pipeline will break.
    Removed,
    /// Written differently, same access.
    Cosmetic,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Added => "added",
            Class::Removed => "removed",
            Class::Cosmetic => "cosmetic",
        }
    }
}

/// Which side the differing statement is written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Live,
    Repo,
}

/// Whether a probe request is something openpay needs or something it
/// must never be able to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Needed,
    Sensitive,
}

/// One request both sides are evaluated against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub kind: ProbeKind,
    pub action: String,
    pub resource: String,
}

/// A probe whose decision a difference changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    #[serde(flatten)]
    pub probe: Probe,
    /// Decision without the difference (`allowed`, `implicitDeny`, ...).
    pub without: String,
    /// Decision with it.
    pub with: String,
}

/// One atom present on one side only.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub class: Class,
    pub side: Side,
    pub policy: String,
    pub sid: Option<String>,
    /// Zero-based statement position in that policy.
    pub statement: usize,
    pub effect: Effect,
    /// `{"Action": "s3:DeleteObject"}` or `{"NotAction": [...]}`.
    pub action: Value,
    /// `{"Resource": "..."}` or `{"NotResource": [...]}`.
    pub resource: Value,
    pub condition: Option<Value>,
    pub reason: String,
    pub impact: Vec<Impact>,
}

/// A probe evaluated against each whole side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub probe: Probe,
    pub repo: String,
    pub live: String,
}

/// Everything `iam drift` found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    /// Attached managed policies the repo does not declare.
    pub undeclared_managed_policies: Vec<String>,
    pub probes: Vec<ProbeResult>,
}

impl Comparison {
    /// Drift = any added or removed access, or an undeclared managed policy.
    pub fn has_drift(&self) -> bool {
        !self.undeclared_managed_policies.is_empty()
            || self.differences.iter().any(|d| d.class != Class::Cosmetic)
    }

    pub fn count(&self, class: Class) -> usize {
        self.differences.iter().filter(|d| d.class == class).count()
    }
}

/// The requests both sides are evaluated against: openpay's needed
/// actions on its bucket, and the sensitive set (s3:DeleteObject,
/// s3:PutBucketPolicy, all of s3, all of iam, and access to another
/// bucket). `s3:*` and `iam:*` are probed literally, so only a grant of
/// the whole service (or of `*`) matches them.
pub fn probes(bucket: &str) -> Vec<Probe> {
    let b = format!("arn:aws:s3:::{bucket}");
    let other = "arn:aws:s3:::openpay-drift-probe-other-bucket";
    let p = |kind, action: &str, resource: String| Probe {
        kind,
        action: action.to_string(),
        resource,
    };
    use ProbeKind::{Needed, Sensitive};
    vec![
        p(Needed, "s3:ListBucket", b.clone()),
        p(
            Needed,
            "s3:PutObject",
            format!("{b}/raw/openpay-drift-probe"),
        ),
        p(
            Needed,
            "s3:GetObject",
            format!("{b}/raw/openpay-drift-probe"),
        ),
        p(
            Needed,
            "s3:PutObject",
            format!("{b}/metadata/openpay-drift-probe"),
        ),
        p(
            Needed,
            "s3:GetObject",
            format!("{b}/metadata/openpay-drift-probe"),
        ),
        p(
            Sensitive,
            "s3:DeleteObject",
            format!("{b}/raw/openpay-drift-probe"),
        ),
        p(Sensitive, "s3:PutBucketPolicy", b.clone()),
        p(Sensitive, "s3:*", b.clone()),
        p(Sensitive, "s3:ListBucket", other.to_string()),
        p(Sensitive, "s3:GetObject", format!("{other}/key")),
        p(Sensitive, "iam:*", "*".to_string()),
    ]
}

/// Compares the repo's policies with the live ones. `declared_managed`
/// lists managed policy ARNs the repo attaches on purpose.
pub fn compare(
    repo: &[(String, PolicyDocument)],
    live: &[LivePolicy],
    declared_managed: &[String],
    bucket: &str,
) -> Comparison {
    let live_named: Vec<(String, PolicyDocument)> = live
        .iter()
        .map(|p| (p.name.clone(), p.document.clone()))
        .collect();
    let repo_atoms: Vec<SourcedAtom> = repo.iter().flat_map(|(n, d)| atoms(n, d)).collect();
    let live_atoms: Vec<SourcedAtom> = live_named.iter().flat_map(|(n, d)| atoms(n, d)).collect();
    let repo_set: BTreeSet<&Atom> = repo_atoms.iter().map(|a| &a.atom).collect();
    let live_set: BTreeSet<&Atom> = live_atoms.iter().map(|a| &a.atom).collect();
    let probes = probes(bucket);

    let mut differences = Vec::new();
    let mut seen: BTreeSet<(&str, &Atom)> = BTreeSet::new();
    for (side, mine, theirs, their_docs) in [
        (Side::Live, &live_atoms, &repo_set, repo),
        (Side::Repo, &repo_atoms, &live_set, live_named.as_slice()),
    ] {
        for sa in mine.iter() {
            if theirs.contains(&sa.atom) || !seen.insert((sa.policy.as_str(), &sa.atom)) {
                continue;
            }
            differences.push(classify(side, sa, theirs, their_docs, &probes));
        }
    }

    // Same grants written differently still deserve a line under -v.
    if differences.is_empty() {
        let repo_text: Vec<Value> = repo
            .iter()
            .flat_map(|(_, d)| d.statements.iter().map(Statement::to_value))
            .collect();
        let live_text: Vec<Value> = live_named
            .iter()
            .flat_map(|(_, d)| d.statements.iter().map(Statement::to_value))
            .collect();
        if repo_text != live_text {
            for p in live {
                differences.push(Difference {
                    class: Class::Cosmetic,
                    side: Side::Live,
                    policy: p.name.clone(),
                    sid: None,
                    statement: 0,
                    effect: Effect::Allow,
                    action: Value::Null,
                    resource: Value::Null,
                    condition: None,
                    reason: "same grants as the repo, written differently (statement order, Sid, string vs list, whitespace or duplicates)".into(),
                    impact: Vec::new(),
                });
            }
        }
    }

    let undeclared_managed_policies = live
        .iter()
        .filter_map(|p| match &p.kind {
            LiveKind::Managed { policy_arn, .. } if !declared_managed.contains(policy_arn) => {
                Some(policy_arn.clone())
            }
            _ => None,
        })
        .collect();

    let probe_results = probes
        .iter()
        .map(|p| {
            let req = Request::new(&p.action, &p.resource);
            ProbeResult {
                probe: p.clone(),
                repo: evaluate(repo, &req).decision.as_str().to_string(),
                live: evaluate(&live_named, &req).decision.as_str().to_string(),
            }
        })
        .collect();

    differences.sort_by(|a, b| {
        (a.class, a.side as u8, &a.policy, a.statement).cmp(&(
            b.class,
            b.side as u8,
            &b.policy,
            b.statement,
        ))
    });
    Comparison {
        differences,
        undeclared_managed_policies,
        probes: probe_results,
    }
}

fn classify(
    side: Side,
    sa: &SourcedAtom,
    theirs: &BTreeSet<&Atom>,
    their_docs: &[(String, PolicyDocument)],
    probes: &[Probe],
) -> Difference {
    let statement = atom_statement(sa);
    // What would the other side decide if it also had this atom?
    let mut with = their_docs.to_vec();
    with.push((
        "difference".into(),
        PolicyDocument {
            version: None,
            statements: vec![statement.clone()],
        },
    ));
    let impact: Vec<Impact> = probes
        .iter()
        .filter_map(|p| {
            let req = Request::new(&p.action, &p.resource);
            let before = evaluate(their_docs, &req).decision;
            let after = evaluate(&with, &req).decision;
            (before != after).then(|| Impact {
                probe: p.clone(),
                without: before.as_str().into(),
                with: after.as_str().into(),
            })
        })
        .collect();
    let covered = theirs.iter().any(|t| atom_covers(t, &sa.atom));
    let other = match side {
        Side::Live => "the repo",
        Side::Repo => "the live role",
    };
    let (class, reason) = match (sa.atom.effect, side, covered) {
        (_, _, true) => (
            Class::Cosmetic,
            format!("{other} already has a statement that covers this"),
        ),
        (Effect::Allow, Side::Live, false) => (
            Class::Added,
            "the live role grants this and the repo does not".to_string(),
        ),
        (Effect::Allow, Side::Repo, false) => (
            Class::Removed,
            "the repo grants this and the live role does not".to_string(),
        ),
        (Effect::Deny, _, false) if impact.is_empty() => (
            Class::Cosmetic,
            format!("Deny only on this side; it changes no probed decision of {other}"),
        ),
        (Effect::Deny, Side::Live, false) => (
            Class::Removed,
            "the live role denies this and the repo does not".to_string(),
        ),
        (Effect::Deny, Side::Repo, false) => (
            Class::Added,
            "the repo denies this and the live role does not".to_string(),
        ),
    };
    let v = statement.to_value();
    let pick = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| v.get(*k).map(|x| serde_json::json!({ *k: x })))
            .unwrap_or(Value::Null)
    };
    Difference {
        class,
        side,
        policy: sa.policy.clone(),
        sid: sa.sid.clone(),
        statement: sa.index,
        effect: sa.atom.effect,
        action: pick(["Action", "NotAction"]),
        resource: pick(["Resource", "NotResource"]),
        condition: statement.condition.clone(),
        reason,
        impact,
    }
}

/// A one-atom statement, with the action spelled as written.
fn atom_statement(sa: &SourcedAtom) -> Statement {
    let action = match &sa.action_as_written {
        Part::Is(a) => ActionMatch::Action(vec![a.clone()]),
        Part::Not(v) => ActionMatch::NotAction(v.clone()),
    };
    let resource = match &sa.atom.resource {
        Part::Is(r) => ResourceMatch::Resource(vec![r.clone()]),
        Part::Not(v) => ResourceMatch::NotResource(v.clone()),
    };
    Statement {
        sid: sa.sid.clone(),
        effect: sa.atom.effect,
        action,
        resource,
        condition: sa
            .atom
            .condition
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        principal: None,
        not_principal: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(json: &str) -> Vec<(String, PolicyDocument)> {
        vec![("repo:t".into(), PolicyDocument::parse(json).unwrap())]
    }

    fn inline(json: &str) -> LivePolicy {
        LivePolicy {
            name: "inline:p".into(),
            kind: LiveKind::Inline {
                policy_name: "p".into(),
            },
            document: PolicyDocument::parse(json).unwrap(),
        }
    }

    const BASE: &str = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/raw/*"}]}"#;

    #[test]
    fn identical_is_no_drift_and_no_differences() {
        let c = compare(&repo(BASE), &[inline(BASE)], &[], "b");
        assert!(!c.has_drift());
        assert!(c.differences.is_empty());
    }

    #[test]
    fn split_statements_and_action_case_are_not_drift() {
        let live = r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"S3:GETOBJECT","Resource":["arn:aws:s3:::b/raw/*"]},
            {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/raw/*"}]}"#;
        let c = compare(&repo(BASE), &[inline(live)], &[], "b");
        assert!(!c.has_drift(), "{:?}", c.differences);
        assert_eq!(c.count(Class::Cosmetic), 1, "written differently");
    }

    #[test]
    fn live_deny_that_blocks_a_needed_action_is_removed_access() {
        let live = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/raw/*"},
            {"Effect":"Deny","Action":"s3:Put*","Resource":"*"}]}"#;
        let c = compare(&repo(BASE), &[inline(live)], &[], "b");
        assert!(c.has_drift());
        let d = &c.differences[0];
        assert_eq!(
            (d.class, d.side, d.effect),
            (Class::Removed, Side::Live, Effect::Deny)
        );
        assert!(
            d.impact
                .iter()
                .any(|i| i.probe.action == "s3:PutObject" && i.with == "explicitDeny")
        );
    }

    #[test]
    fn live_deny_of_something_never_granted_is_cosmetic() {
        let live = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/raw/*"},
            {"Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#;
        let c = compare(&repo(BASE), &[inline(live)], &[], "b");
        assert!(!c.has_drift(), "{:?}", c.differences);
        assert_eq!(c.differences[0].class, Class::Cosmetic);
    }

    #[test]
    fn narrower_live_grant_is_removed_and_wider_is_added() {
        let narrower = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/raw/*"}]}"#;
        let c = compare(&repo(BASE), &[inline(narrower)], &[], "b");
        assert_eq!(c.count(Class::Removed), 1);
        assert_eq!(c.count(Class::Added), 0);
        let wider = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/raw/*"}]}"#;
        let c = compare(&repo(BASE), &[inline(wider)], &[], "b");
        assert_eq!(c.count(Class::Added), 1);
        // The repo's two grants are inside the wider one: cosmetic, not removed.
        assert_eq!(c.count(Class::Removed), 0);
    }

    #[test]
    fn undeclared_managed_policy_is_drift_even_when_covered() {
        let managed = LivePolicy {
            name: "managed:arn:aws:iam::1:policy/x".into(),
            kind: LiveKind::Managed {
                policy_arn: "arn:aws:iam::1:policy/x".into(),
                default_version: "v1".into(),
            },
            document: PolicyDocument::parse(BASE).unwrap(),
        };
        let c = compare(&repo(BASE), std::slice::from_ref(&managed), &[], "b");
        assert!(c.has_drift());
        assert_eq!(
            c.undeclared_managed_policies,
            vec!["arn:aws:iam::1:policy/x"]
        );
        let c = compare(
            &repo(BASE),
            &[managed],
            &["arn:aws:iam::1:policy/x".into()],
            "b",
        );
        assert!(!c.has_drift());
    }

    #[test]
    fn conditions_are_part_of_the_grant() {
        let with_cond = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/raw/*",
            "Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
        let c = compare(&repo(BASE), &[inline(with_cond)], &[], "b");
        // The unconditioned repo grant covers the conditioned live one, but not the reverse.
        assert_eq!(c.count(Class::Removed), 2);
        assert_eq!(c.count(Class::Added), 0);
        assert_eq!(c.count(Class::Cosmetic), 2);
    }
}
