//! `aws.iam.put-object`: may this host's principal write and read the raw
//! zone and the run metadata, and list the bucket?
//!
//! Asks IAM's policy simulator (SimulatePrincipalPolicy) first, because it
//! knows everything (permission boundaries, managed policy versions). When
//! the simulator cannot be used — the identity lacks
//! iam:SimulatePrincipalPolicy, or the endpoint does not implement it
//! (moto answers HTTP 500) — the role's own identity policies are read
//! (`infra::iam`, the reader `iam drift` shares) and evaluated locally with [`crate::infra::policy::evaluate`], and the
//! evidence says the decision is local. `--probe` adds ground truth: a real
//! put/head/delete of one fixed key under `metadata/_doctor/`.

use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType};

use super::aws_identity::{caller_identity, clients, sdk_error_line};
use crate::aws::AwsClients;
use crate::doctor::check::{CheckCtx, CheckFuture, CheckStatus, Outcome};
use crate::infra::iam::read_role_policies;
use crate::infra::policy::{Decision, MatchedStatement, PolicyDocument, Request, evaluate};

/// The fix when no bucket is configured.
pub const NO_BUCKET_FIX: &str = "set the raw-zone bucket: `bucket = \"...\"` under [aws] in openpay.toml, \
OPENPAY_AWS_BUCKET, or run `openpay tf apply` (its outputs feed the bucket)";

/// The prefix the probe writes under; the key is fixed per host so that a
/// role without s3:DeleteObject (the least-privilege runner) leaves at most
/// one small object per host behind.
pub const PROBE_PREFIX: &str = "metadata/_doctor/probe-";

/// One action on one resource that the pipeline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: &'static str,
    pub resource: String,
}

/// What `openpay run` does to the bucket, as IAM requests.
pub fn needs(bucket: &str) -> Vec<Need> {
    let raw = format!("arn:aws:s3:::{bucket}/raw/*");
    let meta = format!("arn:aws:s3:::{bucket}/metadata/*");
    let mut v = Vec::new();
    for action in ["s3:PutObject", "s3:GetObject"] {
        for resource in [&raw, &meta] {
            v.push(Need {
                action,
                resource: resource.clone(),
            });
        }
    }
    v.push(Need {
        action: "s3:ListBucket",
        resource: format!("arn:aws:s3:::{bucket}"),
    });
    v
}

/// Whose policies decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Role { name: String, arn: String },
    User { name: String, arn: String },
}

impl Principal {
    pub fn arn(&self) -> &str {
        match self {
            Principal::Role { arn, .. } | Principal::User { arn, .. } => arn,
        }
    }
    pub fn label(&self) -> String {
        match self {
            Principal::Role { name, .. } => format!("role {name}"),
            Principal::User { name, .. } => format!("user {name}"),
        }
    }
}

/// The decision for one [`Need`], with the statements behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub action: String,
    pub resource: String,
    pub decision: Decision,
    /// Human-readable statement references ("inline:runner Sid (#1)").
    pub matched: Vec<String>,
}

impl Judgement {
    fn status(&self) -> CheckStatus {
        match self.decision {
            Decision::Allowed => CheckStatus::Pass,
            Decision::Inconclusive { .. } => CheckStatus::Warn,
            Decision::ImplicitDeny | Decision::ExplicitDeny => CheckStatus::Fail,
        }
    }

    fn line(&self) -> String {
        let mut s = format!("{} on {}: {}", self.action, self.resource, self.decision);
        if !self.matched.is_empty() {
            s.push_str(&format!(" [{}]", self.matched.join("; ")));
        }
        s
    }
}

/// Turns the simulator's answer for one action into judgements, one per
/// resource. The simulator may aggregate: when `ResourceSpecificResults` is
/// present each entry decides its resource; otherwise the top-level
/// decision covers `eval_resource_name` (or every requested resource).
/// A denial that lists missing context keys is inconclusive, not a denial:
/// the simulator could not evaluate a Condition, so the real request may
/// well be allowed.
pub fn judgements_from_simulation(
    result: &EvaluationResult,
    requested: &[String],
) -> Vec<Judgement> {
    let action = result.eval_action_name().to_string();
    let matched = |st: &[aws_sdk_iam::types::Statement]| -> Vec<String> {
        st.iter().map(describe_sim_statement).collect()
    };
    let rs = result.resource_specific_results();
    if !rs.is_empty() {
        return rs
            .iter()
            .map(|r| Judgement {
                action: action.clone(),
                resource: r.eval_resource_name().to_string(),
                decision: sim_decision(r.eval_resource_decision(), r.missing_context_values()),
                matched: matched(r.matched_statements()),
            })
            .collect();
    }
    let decision = sim_decision(result.eval_decision(), result.missing_context_values());
    let resources: Vec<String> = match result.eval_resource_name() {
        Some(r) if r != "*" => vec![r.to_string()],
        _ => requested.to_vec(),
    };
    resources
        .into_iter()
        .map(|resource| Judgement {
            action: action.clone(),
            resource,
            decision: decision.clone(),
            matched: matched(result.matched_statements()),
        })
        .collect()
}

fn sim_decision(d: &PolicyEvaluationDecisionType, missing: &[String]) -> Decision {
    match d {
        PolicyEvaluationDecisionType::Allowed => Decision::Allowed,
        _ if !missing.is_empty() => Decision::Inconclusive {
            reason: format!(
                "the simulator lacked context keys {}; the real request may differ",
                missing.join(", ")
            ),
        },
        PolicyEvaluationDecisionType::ExplicitDeny => Decision::ExplicitDeny,
        _ => Decision::ImplicitDeny,
    }
}

fn describe_sim_statement(st: &aws_sdk_iam::types::Statement) -> String {
    let mut s = st.source_policy_id().unwrap_or("?").to_string();
    if let Some(t) = st.source_policy_type() {
        s.push_str(&format!(" ({})", t.as_str()));
    }
    if let Some(p) = st.start_position() {
        s.push_str(&format!(" line {} col {}", p.line(), p.column()));
    }
    s
}

fn describe_local_statement(m: &MatchedStatement) -> String {
    match &m.sid {
        Some(sid) => format!("{} {sid} (#{} {})", m.policy, m.index, m.effect.as_str()),
        None => format!("{} #{} {}", m.policy, m.index, m.effect.as_str()),
    }
}

/// Decides every need locally against the given identity policies.
pub fn judge_locally(policies: &[(String, PolicyDocument)], needs: &[Need]) -> Vec<Judgement> {
    needs
        .iter()
        .map(|n| {
            let ev = evaluate(policies, &Request::new(n.action, n.resource.clone()));
            Judgement {
                action: n.action.to_string(),
                resource: n.resource.clone(),
                decision: ev.decision,
                matched: ev.matched.iter().map(describe_local_statement).collect(),
            }
        })
        .collect()
}

/// Runs the simulator for every need; `Err` carries why it is unusable.
async fn simulate(
    aws: &AwsClients,
    principal: &Principal,
    needs: &[Need],
) -> Result<Vec<Judgement>, String> {
    let iam = aws.iam();
    let mut actions: Vec<&str> = needs.iter().map(|n| n.action).collect();
    actions.dedup();
    let mut out = Vec::new();
    for action in actions {
        let resources: Vec<String> = needs
            .iter()
            .filter(|n| n.action == action)
            .map(|n| n.resource.clone())
            .collect();
        let mut marker: Option<String> = None;
        loop {
            let resp = iam
                .simulate_principal_policy()
                .policy_source_arn(principal.arn())
                .action_names(action)
                .set_resource_arns(Some(resources.clone()))
                .set_marker(marker.clone())
                .customize()
                // No retries: an endpoint that cannot simulate answers the
                // same every time, and the local fallback is ready.
                .config_override(
                    aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled()),
                )
                .send()
                .await
                .map_err(|e| sdk_error_line(&e))?;
            for r in resp.evaluation_results() {
                out.extend(judgements_from_simulation(r, &resources));
            }
            match resp.marker() {
                Some(m) if resp.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Finds the principal: `[aws] role_name` when set, else the role (or
/// user) of the STS identity. Roles are looked up for their real ARN
/// (paths); when GetRole is not allowed the ARN is built from the account.
async fn principal(ctx: &CheckCtx, aws: &AwsClients) -> Result<Principal, Outcome> {
    let id = caller_identity(aws).await;
    let configured = ctx.config.aws.role_name.clone();
    let role = match (&configured, &id) {
        (Some(r), _) => Some(r.clone()),
        (None, Ok(id)) => id.role_name.clone(),
        (None, Err(_)) => None,
    };
    if let Some(name) = role {
        let arn = match aws.iam().get_role().role_name(&name).send().await {
            Ok(out) => out.role().map(|r| r.arn().to_string()),
            Err(_) => None,
        };
        let arn = match (arn, &id) {
            (Some(a), _) => a,
            (None, Ok(id)) => format!("arn:aws:iam::{}:role/{name}", id.account),
            (None, Err(e)) => {
                return Err(Outcome::fail(format!("cannot resolve role {name}: {e}"))
                    .with_remediation(super::aws_identity::CREDENTIALS_HELP));
            }
        };
        return Ok(Principal::Role { name, arn });
    }
    match id {
        Ok(id) => match &id.user_name {
            Some(user) => Ok(Principal::User {
                name: user.clone(),
                arn: format!("arn:aws:iam::{}:user/{user}", id.account),
            }),
            None => Err(Outcome::fail(format!(
                "cannot tell which role to check: the identity {} is neither an assumed role nor an IAM user",
                id.arn
            ))
            .with_remediation("set `role_name = \"...\"` under [aws] in openpay.toml (or OPENPAY_AWS_ROLE_NAME)")),
        },
        Err(e) => Err(Outcome::fail(e.to_string()).with_remediation(super::aws_identity::CREDENTIALS_HELP)),
    }
}

/// The ground-truth probe: put, head, delete one fixed small object.
/// Returns (status, evidence lines).
async fn probe(ctx: &CheckCtx, aws: &AwsClients, bucket: &str) -> (CheckStatus, Vec<String>) {
    let host = match ctx.exec("hostname").await {
        Ok(out) if out.success() => out.stdout.trim().to_string(),
        _ => String::new(),
    };
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let host = if host.is_empty() {
        "unknown-host".to_string()
    } else {
        host
    };
    let key = format!("{PROBE_PREFIX}{host}");
    let s3 = aws.s3();
    let mut lines = Vec::new();
    let body = format!("openpay doctor probe from {host}\n");
    if let Err(e) = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.into_bytes().into())
        .send()
        .await
    {
        lines.push(format!(
            "probe: PutObject s3://{bucket}/{key}: DENIED or failed: {}",
            sdk_error_line(&e)
        ));
        return (CheckStatus::Fail, lines);
    }
    lines.push(format!("probe: PutObject s3://{bucket}/{key}: ok"));
    if let Err(e) = s3.head_object().bucket(bucket).key(&key).send().await {
        lines.push(format!(
            "probe: HeadObject s3://{bucket}/{key}: failed: {}",
            sdk_error_line(&e)
        ));
        return (CheckStatus::Fail, lines);
    }
    lines.push(format!("probe: HeadObject s3://{bucket}/{key}: ok"));
    match s3.delete_object().bucket(bucket).key(&key).send().await {
        Ok(_) => lines.push(format!("probe: DeleteObject s3://{bucket}/{key}: ok")),
        Err(e) => lines.push(format!(
            "probe: DeleteObject denied or failed ({}); note: the least-privilege runner role has no s3:DeleteObject, \
             the key is fixed per host so nothing accumulates",
            sdk_error_line(&e)
        )),
    }
    (CheckStatus::Pass, lines)
}

/// The registered check fn.
pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(check(ctx))
}

/// The check.
pub async fn check(ctx: CheckCtx) -> Outcome {
    let aws = match clients(&ctx) {
        Ok(aws) => aws,
        Err(outcome) => return outcome,
    };
    let Some(bucket) = ctx.config.aws.bucket.clone().filter(|b| !b.is_empty()) else {
        return Outcome::fail("no bucket configured, so there is nothing to check permissions on")
            .with_remediation(NO_BUCKET_FIX);
    };
    let principal = match principal(&ctx, aws).await {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    let needs = needs(&bucket);
    let mut evidence = vec![format!(
        "principal: {} ({})",
        principal.label(),
        principal.arn()
    )];

    let judgements = match simulate(aws, &principal, &needs).await {
        Ok(j) => {
            evidence
                .push("decided by the IAM policy simulator (SimulatePrincipalPolicy)".to_string());
            j
        }
        Err(sim_err) => {
            let read = match &principal {
                Principal::Role { name, .. } => read_role_policies(&aws.iam(), name)
                    .await
                    .map(|live| {
                        live.into_iter()
                            .map(|p| (p.name, p.document))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| e.to_string()),
                Principal::User { name, .. } => Err(format!(
                    "local evaluation reads role policies only, and the identity is user {name}; \
                     set [aws] role_name to the role the host runs as"
                )),
            };
            match read {
                Ok(policies) => {
                    evidence.push(format!(
                        "decided locally (simulator unavailable: {sim_err})"
                    ));
                    evidence.push(format!(
                        "policies read: {}",
                        if policies.is_empty() {
                            "none".to_string()
                        } else {
                            policies
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ));
                    evidence.push(
                        "local evaluation covers the role's identity policies only (no permission boundary, SCP or bucket policy)"
                            .to_string(),
                    );
                    judge_locally(&policies, &needs)
                }
                Err(read_err) => {
                    return Outcome::fail(format!(
                        "cannot decide the permissions of {}: simulator unavailable ({sim_err}) and its policies unreadable ({read_err})",
                        principal.label()
                    ))
                    .with_evidence(evidence)
                    .with_remediation(
                        "allow this identity iam:SimulatePrincipalPolicy on itself, or iam:GetRole*/ListRolePolicies/\
                         ListAttachedRolePolicies/GetPolicy/GetPolicyVersion, or run the doctor with an admin profile",
                    );
                }
            }
        }
    };

    let mut status = judgements
        .iter()
        .map(Judgement::status)
        .max()
        .unwrap_or(CheckStatus::Fail);
    evidence.extend(judgements.iter().map(Judgement::line));
    if ctx.options.probe {
        let (probe_status, lines) = probe(&ctx, aws, &bucket).await;
        evidence.extend(lines);
        status = status.max(probe_status);
    }

    let denied: Vec<&Judgement> = judgements
        .iter()
        .filter(|j| j.status() == CheckStatus::Fail)
        .collect();
    let unsure = judgements
        .iter()
        .filter(|j| j.status() == CheckStatus::Warn)
        .count();
    let who = principal.label();
    match status {
        CheckStatus::Fail if !denied.is_empty() => {
            let first = denied[0];
            Outcome::fail(format!(
                "{who} may not {} on {} ({}){}",
                first.action,
                first.resource,
                first.decision.as_str(),
                if denied.len() > 1 {
                    format!(" and {} more", denied.len() - 1)
                } else {
                    String::new()
                }
            ))
            .with_evidence(evidence)
            .with_remediation(format!(
                "grant {who} the runner policy (terraform/policies/runner.json.tftpl with bucket = {bucket}) via \
                 `openpay tf apply`; `openpay iam drift` shows what differs; an explicitDeny must be removed from the \
                 policy named above"
            ))
        }
        CheckStatus::Fail => Outcome::fail(format!("the --probe write to s3://{bucket} failed"))
            .with_evidence(evidence)
            .with_remediation(
                "the simulation allows the request but S3 refused it: check the bucket policy, KMS key policy and the bucket name",
            ),
        CheckStatus::Warn => Outcome::warn(format!(
            "{unsure} permission(s) of {who} on s3://{bucket} are inconclusive (conditions)"
        ))
        .with_evidence(evidence),
        _ => Outcome::pass(format!(
            "{who} may put/get raw/ and metadata/ objects and list s3://{bucket}"
        ))
        .with_evidence(evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::types::{ResourceSpecificResult, Statement};

    fn need_resources() -> Vec<String> {
        vec![
            "arn:aws:s3:::b/raw/*".into(),
            "arn:aws:s3:::b/metadata/*".into(),
        ]
    }

    #[test]
    fn needs_cover_contract() {
        let n = needs("b");
        assert_eq!(n.len(), 5);
        assert!(n.contains(&Need {
            action: "s3:PutObject",
            resource: "arn:aws:s3:::b/raw/*".into()
        }));
        assert!(n.contains(&Need {
            action: "s3:GetObject",
            resource: "arn:aws:s3:::b/metadata/*".into()
        }));
        assert!(n.contains(&Need {
            action: "s3:ListBucket",
            resource: "arn:aws:s3:::b".into()
        }));
    }

    #[test]
    fn simulator_resource_specific_results_are_split() {
        let r = EvaluationResult::builder()
            .eval_action_name("s3:PutObject")
            .eval_resource_name("*")
            .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
            .resource_specific_results(
                ResourceSpecificResult::builder()
                    .eval_resource_name("arn:aws:s3:::b/raw/*")
                    .eval_resource_decision(PolicyEvaluationDecisionType::Allowed)
                    .matched_statements(Statement::builder().source_policy_id("runner").build())
                    .build()
                    .unwrap(),
            )
            .resource_specific_results(
                ResourceSpecificResult::builder()
                    .eval_resource_name("arn:aws:s3:::b/metadata/*")
                    .eval_resource_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let j = judgements_from_simulation(&r, &need_resources());
        assert_eq!(j.len(), 2);
        assert_eq!(j[0].decision, Decision::Allowed);
        assert_eq!(j[0].matched, vec!["runner".to_string()]);
        assert_eq!(j[1].decision, Decision::ExplicitDeny);
        assert_eq!(j[1].resource, "arn:aws:s3:::b/metadata/*");
    }

    #[test]
    fn simulator_missing_context_is_inconclusive() {
        let r = EvaluationResult::builder()
            .eval_action_name("s3:PutObject")
            .eval_resource_name("arn:aws:s3:::b/raw/*")
            .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
            .missing_context_values("aws:SourceVpce")
            .build()
            .unwrap();
        let j = judgements_from_simulation(&r, &need_resources());
        assert_eq!(j.len(), 1);
        assert!(
            matches!(j[0].decision, Decision::Inconclusive { .. }),
            "{:?}",
            j[0]
        );
        assert_eq!(j[0].status(), CheckStatus::Warn);
        assert!(j[0].line().contains("aws:SourceVpce"), "{}", j[0].line());
    }

    #[test]
    fn simulator_wildcard_resource_covers_all_requested() {
        let r = EvaluationResult::builder()
            .eval_action_name("s3:GetObject")
            .eval_decision(PolicyEvaluationDecisionType::ExplicitDeny)
            .build()
            .unwrap();
        let j = judgements_from_simulation(&r, &need_resources());
        assert_eq!(j.len(), 2);
        assert!(j.iter().all(|j| j.decision == Decision::ExplicitDeny));
    }

    #[test]
    fn local_judgement_names_statement() {
        let doc = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"Rw","Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/*"},
                {"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"},
                {"Sid":"NoMeta","Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/metadata/*"}]}"#,
        )
        .unwrap();
        let j = judge_locally(&[("inline:runner".into(), doc)], &needs("b"));
        let put_meta = j
            .iter()
            .find(|j| j.action == "s3:PutObject" && j.resource.ends_with("metadata/*"))
            .unwrap();
        assert_eq!(put_meta.decision, Decision::ExplicitDeny);
        assert!(
            put_meta.line().contains("inline:runner NoMeta"),
            "{}",
            put_meta.line()
        );
        assert_eq!(
            j.iter().filter(|j| j.decision == Decision::Allowed).count(),
            4
        );
    }
}
