//! Reading what a role really has: its inline policies and the default
//! versions of its attached managed policies, through the IAM API. One
//! reader for `openpay iam drift` and the doctor's `aws.iam.put-object`
//! (its local fallback), so both judge the same documents.
//!
//! Needs only iam:GetRole, iam:ListRolePolicies, iam:GetRolePolicy,
//! iam:ListAttachedRolePolicies, iam:GetPolicy and iam:GetPolicyVersion
//! (the read-only policy in docs/iam-drift.md).

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};

use crate::infra::policy::{PolicyDocument, PolicyError};

/// Where a live policy comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveKind {
    Inline {
        policy_name: String,
    },
    Managed {
        policy_arn: String,
        default_version: String,
    },
}

/// One policy attached to the role, parsed.
#[derive(Debug, Clone)]
pub struct LivePolicy {
    /// `inline:NAME` or `managed:ARN`, the name used in the diff.
    pub name: String,
    pub kind: LiveKind,
    pub document: PolicyDocument,
}

/// Why the live side could not be read. All of these are "could not
/// evaluate" (exit 3): drift is never reported as absent because IAM was
/// unreadable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error(
        "role `{role}` does not exist (IAM GetRole: NoSuchEntity); check --role or [aws] role_name, and that the credentials are for the right account"
    )]
    RoleNotFound { role: String },
    #[error(
        "no AWS credentials found ({detail}); set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance or OIDC role provides them"
    )]
    Credentials { detail: String },
    #[error("cannot read role `{role}`: IAM {operation} failed: {message}")]
    Api {
        role: String,
        operation: &'static str,
        message: String,
    },
    #[error("policy {policy} of role `{role}` is not a readable IAM policy: {source}")]
    Document {
        role: String,
        policy: String,
        #[source]
        source: PolicyError,
    },
}

fn api<E, R>(role: &str, operation: &'static str, err: SdkError<E, R>) -> LiveError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match err.as_service_error() {
        Some(se) => format!(
            "{}: {}; the credentials need the read-only policy in docs/iam-drift.md",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("no message")
        ),
        None => {
            let chain = one_line_chain(&err);
            if chain.contains("no credentials found") || chain.contains("credential provider") {
                return LiveError::Credentials {
                    detail: "tried the environment, AWS_PROFILE, web identity, ECS and instance metadata".into(),
                };
            }
            format!("{chain}; check the network, the region and AWS_ENDPOINT_URL")
        }
    };
    LiveError::Api {
        role: role.to_string(),
        operation,
        message,
    }
}

/// The error and its sources on one line (the SDK's own rendering spans
/// lines and appends Debug dumps).
fn one_line_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = cur {
        let text = e
            .to_string()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Reads every inline and attached managed policy of `role`.
pub async fn read_role_policies(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<Vec<LivePolicy>, LiveError> {
    match iam.get_role().role_name(role).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_no_such_entity_exception()) =>
        {
            return Err(LiveError::RoleNotFound {
                role: role.to_string(),
            });
        }
        Err(e) => return Err(api(role, "GetRole", e)),
    }

    let parse = |policy: &str, text: &str| {
        PolicyDocument::parse_maybe_url_encoded(text).map_err(|source| LiveError::Document {
            role: role.to_string(),
            policy: policy.to_string(),
            source,
        })
    };

    let mut out = Vec::new();
    let mut inline_names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_role_policies()
            .role_name(role)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| api(role, "ListRolePolicies", e))?;
        inline_names.extend(page.policy_names().iter().cloned());
        match page.marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    for policy_name in inline_names {
        let got = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(&policy_name)
            .send()
            .await
            .map_err(|e| api(role, "GetRolePolicy", e))?;
        let name = format!("inline:{policy_name}");
        let document = parse(&name, got.policy_document())?;
        out.push(LivePolicy {
            name,
            kind: LiveKind::Inline { policy_name },
            document,
        });
    }

    let mut arns = Vec::new();
    loop {
        let page = iam
            .list_attached_role_policies()
            .role_name(role)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| api(role, "ListAttachedRolePolicies", e))?;
        arns.extend(
            page.attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string)),
        );
        match page.marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    for policy_arn in arns {
        let policy = iam
            .get_policy()
            .policy_arn(&policy_arn)
            .send()
            .await
            .map_err(|e| api(role, "GetPolicy", e))?;
        let version = policy
            .policy()
            .and_then(|p| p.default_version_id())
            .ok_or_else(|| LiveError::Api {
                role: role.to_string(),
                operation: "GetPolicy",
                message: format!("{policy_arn} has no default version"),
            })?
            .to_string();
        let got = iam
            .get_policy_version()
            .policy_arn(&policy_arn)
            .version_id(&version)
            .send()
            .await
            .map_err(|e| api(role, "GetPolicyVersion", e))?;
        let name = format!("managed:{policy_arn}");
        let text = got
            .policy_version()
            .and_then(|v| v.document())
            .ok_or_else(|| LiveError::Api {
                role: role.to_string(),
                operation: "GetPolicyVersion",
                message: format!("{policy_arn} {version} has no document"),
            })?;
        let document = parse(&name, text)?;
        out.push(LivePolicy {
            name,
            kind: LiveKind::Managed {
                policy_arn,
                default_version: version,
            },
            document,
        });
    }
    Ok(out)
}
