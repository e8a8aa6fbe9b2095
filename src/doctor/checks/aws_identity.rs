//! `aws.identity`: who this host is to AWS (STS GetCallerIdentity).
//!
//! The Python pipeline's first failure was an instance whose credentials
//! "were detected" but belonged to a role that could not write the bucket.
//! So the doctor names the account, the ARN and, for an assumed role, the
//! role — the principal `aws.iam.put-object` then simulates. Also home to
//! the small helpers every AWS check shares (offline/no-client handling,
//! one-line SDK error text).

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use crate::aws::AwsClients;
use crate::doctor::check::{CheckCtx, CheckFuture, Outcome};

/// How the SDK looks for credentials, shown when none were found. Never
/// echoes a key: it only names the places.
pub const CREDENTIALS_HELP: &str = "credentials are looked up in this order: \
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment, \
the profile named by AWS_PROFILE (default `default`) in ~/.aws/credentials and ~/.aws/config \
(including SSO and assume-role profiles), a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE), \
ECS container credentials, and finally the EC2 instance profile via IMDSv2; \
on the ingestion host attach the instance profile terraform creates, elsewhere \
set AWS_PROFILE or run `aws configure`";

/// The caller as STS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    /// `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` → `NAME`.
    pub role_name: Option<String>,
    /// `arn:aws:iam::ACCT:user/[PATH/]NAME` → `NAME`.
    pub user_name: Option<String>,
}

impl Identity {
    /// Builds an identity from the two fields STS returns.
    pub fn from_arn(account: impl Into<String>, arn: impl Into<String>) -> Self {
        let arn = arn.into();
        Self {
            account: account.into(),
            role_name: role_name_from_arn(&arn),
            user_name: user_name_from_arn(&arn),
            arn,
        }
    }
}

/// Why the identity could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No credentials anywhere in the chain.
    #[error("no AWS credentials found in the standard chain")]
    NoCredentials(String),
    /// STS answered, but refused (expired token, invalid key id, ...).
    #[error("STS GetCallerIdentity refused: {0}")]
    Refused(String),
    /// STS could not be reached or answered something unusable.
    #[error("STS GetCallerIdentity failed: {0}")]
    Failed(String),
}

/// The role name of an assumed-role session ARN (the principal whose
/// policies decide what the session may do), or of a plain role ARN.
pub fn role_name_from_arn(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        // assumed-role/NAME/SESSION: the session name may itself hold '/'.
        return rest
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    if let Some(rest) = resource.strip_prefix("role/") {
        // role/[PATH/]NAME: the name is the last segment.
        return rest
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    None
}

/// The user name of an IAM user ARN (`user/[PATH/]NAME`).
pub fn user_name_from_arn(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    resource
        .strip_prefix("user/")?
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Asks STS who we are.
pub async fn caller_identity(aws: &AwsClients) -> Result<Identity, IdentityError> {
    match aws.sts().get_caller_identity().send().await {
        Ok(out) => Ok(Identity::from_arn(
            out.account().unwrap_or_default(),
            out.arn().unwrap_or_default(),
        )),
        Err(e) => Err(classify_sts_error(&e)),
    }
}

fn classify_sts_error<E>(e: &SdkError<E, HttpResponse>) -> IdentityError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = sdk_error_line(e);
    if matches!(e, SdkError::ServiceError(_)) {
        return IdentityError::Refused(text);
    }
    let lower = text.to_lowercase();
    if lower.contains("credential") || lower.contains("no identity") {
        IdentityError::NoCredentials(text)
    } else {
        IdentityError::Failed(text)
    }
}

/// An SDK error as one line: the service's code and message when it
/// answered, else the error chain (which never holds credentials).
pub fn sdk_error_line<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    if let SdkError::ServiceError(se) = e {
        let err = se.err();
        if let Some(code) = err.code() {
            return match err.message() {
                Some(m) => format!("{code}: {m}"),
                None => code.to_string(),
            };
        }
    }
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.contains(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    let mut line = parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(code) = status {
        line = format!("HTTP {code}: {line}");
    }
    // A proxy or a local server may answer HTML; keep the report readable.
    if line.chars().count() > 400 {
        format!("{}…", line.chars().take(400).collect::<String>())
    } else {
        line
    }
}

/// The AWS clients a check may use, or the outcome to return instead:
/// `skip` when `--offline` was given, `fail` when no AWS configuration
/// could be loaded.
#[allow(clippy::result_large_err)]
pub fn clients(ctx: &CheckCtx) -> Result<&AwsClients, Outcome> {
    if ctx.options.offline {
        return Err(Outcome::skip("--offline given: AWS is not contacted"));
    }
    ctx.aws.as_ref().ok_or_else(|| {
        Outcome::fail("no AWS configuration could be loaded")
            .with_remediation(CREDENTIALS_HELP.to_string())
    })
}

/// The registered check fn.
pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(check(ctx))
}

/// The check: pass with account, ARN and role; fail with where credentials
/// are looked for.
pub async fn check(ctx: CheckCtx) -> Outcome {
    let aws = match clients(&ctx) {
        Ok(aws) => aws,
        Err(outcome) => return outcome,
    };
    match caller_identity(aws).await {
        Ok(id) => {
            let mut evidence = vec![
                format!("account: {}", id.account),
                format!("arn: {}", id.arn),
            ];
            let who = if let Some(role) = &id.role_name {
                evidence.push(format!("role: {role}"));
                format!("role {role}")
            } else if let Some(user) = &id.user_name {
                evidence.push(format!("user: {user}"));
                format!("user {user}")
            } else {
                id.arn.clone()
            };
            evidence.push(format!("region: {}", aws.region()));
            Outcome::pass(format!("AWS account {} as {who}", id.account)).with_evidence(evidence)
        }
        Err(IdentityError::NoCredentials(detail)) => Outcome::fail(
            "no AWS credentials found in the standard chain",
        )
        .with_evidence([format!("sdk: {detail}")])
        .with_remediation(CREDENTIALS_HELP.to_string())
        .cannot_evaluate(),
        Err(e @ IdentityError::Refused(_)) => Outcome::fail(e.to_string())
            .with_evidence([e.to_string()])
            .with_remediation(format!(
                "the credentials found were rejected (expired session or revoked key); {CREDENTIALS_HELP}"
            )),
        Err(e @ IdentityError::Failed(_)) => Outcome::fail(e.to_string())
            .with_evidence([e.to_string()])
            .with_remediation(
                "check network access to the STS endpoint (and AWS_ENDPOINT_URL / AWS_REGION if set)",
            ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_arn_gives_role_name() {
        let id = Identity::from_arn(
            "123456789012",
            "arn:aws:sts::123456789012:assumed-role/openpay-runner/i-0abc",
        );
        assert_eq!(id.role_name.as_deref(), Some("openpay-runner"));
        assert_eq!(id.user_name, None);
    }

    #[test]
    fn role_arn_with_path_gives_last_segment() {
        assert_eq!(
            role_name_from_arn("arn:aws:iam::123456789012:role/service/openpay-runner").as_deref(),
            Some("openpay-runner")
        );
    }

    #[test]
    fn user_arn_gives_user_name() {
        let id = Identity::from_arn("1", "arn:aws:iam::123456789012:user/ops/alice");
        assert_eq!(id.user_name.as_deref(), Some("alice"));
        assert_eq!(id.role_name, None);
    }

    #[test]
    fn garbage_arn_gives_nothing() {
        assert_eq!(role_name_from_arn("not-an-arn"), None);
        assert_eq!(role_name_from_arn("arn:aws:sts::1:assumed-role/"), None);
        assert_eq!(user_name_from_arn("arn:aws:iam::1:root"), None);
    }

    #[test]
    fn credentials_help_names_the_sources() {
        for needle in ["AWS_PROFILE", "instance profile", "AWS_ACCESS_KEY_ID"] {
            assert!(CREDENTIALS_HELP.contains(needle), "{needle}");
        }
    }
}
