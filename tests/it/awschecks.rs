//! The doctor's AWS checks against moto_server through the real SDK:
//! aws.identity, aws.iam.put-object (moto has no policy simulator, so the
//! local-evaluation fallback decides and must say so), net.ssh-allowlist on
//! real security groups, and tf.ssh-allowlist on fixture terraform.

use std::sync::Arc;
use std::time::Duration;

use openpay::aws::AwsClients;
use openpay::config::Config;
use openpay::doctor::check::{CheckCtx, CheckOptions, CheckStatus, Outcome};
use openpay::doctor::checks::{
    aws_iam_put_object, aws_identity, net_ssh_allowlist, tf_ssh_allowlist,
};
use openpay::doctor::transport::local::LocalTransport;

use crate::common::ec2::{group, perm};
use crate::common::iam::{role, runner_policy};
use crate::common::moto::MotoServer;
use crate::common::moto::create_bucket;
use crate::common::repo_root;

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "openpay-test-raw";

fn ctx(aws: Option<AwsClients>, config: Config, options: CheckOptions) -> CheckCtx {
    CheckCtx {
        transport: Arc::new(LocalTransport::new()),
        config: Arc::new(config),
        aws,
        options: Arc::new(options),
        timeout: Duration::from_secs(30),
    }
}

fn config(bucket: Option<&str>, role: Option<&str>, allow: &[&str]) -> Config {
    let mut c = Config::default();
    c.aws.bucket = bucket.map(str::to_string);
    c.aws.role_name = role.map(str::to_string);
    c.doctor.allowed_ssh_cidrs = allow.iter().map(|s| s.to_string()).collect();
    c
}

/// Clients holding the session credentials of `role` (moto's AssumeRole).
async fn assume(moto: &MotoServer, aws: &AwsClients, role: &str) -> AwsClients {
    let out = aws
        .sts()
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{role}"))
        .role_session_name("i-0doctor")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let creds = aws_sdk_s3::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "assumed",
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-1"))
        .endpoint_url(moto.url())
        .credentials_provider(creds)
        .load()
        .await;
    AwsClients::from_sdk(sdk, true)
}

fn evidence(o: &Outcome) -> String {
    o.evidence.join("\n")
}

// ---------------------------------------------------------------- identity

#[tokio::test]
async fn identity_plain_user() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let o = aws_identity::run(ctx(Some(aws), Config::default(), CheckOptions::default())).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    assert!(o.summary.contains(ACCOUNT), "{o:?}");
    assert!(evidence(&o).contains("arn: arn:aws:"), "{o:?}");
    assert!(!evidence(&o).contains("role:"), "a user has no role: {o:?}");
}

#[tokio::test]
async fn identity_assumed_role_names_the_role() {
    let moto = MotoServer::start();
    let admin = moto.clients().await;
    role(&admin, "openpay-runner", &[], &[]).await;
    let session = assume(&moto, &admin, "openpay-runner").await;
    let o = aws_identity::run(ctx(
        Some(session),
        Config::default(),
        CheckOptions::default(),
    ))
    .await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    assert!(o.summary.contains("role openpay-runner"), "{o:?}");
    assert!(
        evidence(&o).contains(&format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/openpay-runner/i-0doctor"
        )),
        "{o:?}"
    );
}

#[tokio::test]
async fn identity_offline_skips_and_no_clients_fails_with_chain() {
    let offline = CheckOptions {
        offline: true,
        ..Default::default()
    };
    let o = aws_identity::run(ctx(None, Config::default(), offline)).await;
    assert_eq!(o.status, CheckStatus::Skip, "{o:?}");
    assert!(o.summary.contains("--offline"), "{o:?}");
    let o = aws_identity::run(ctx(None, Config::default(), CheckOptions::default())).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        o.remediation.as_deref().unwrap().contains("AWS_PROFILE"),
        "{o:?}"
    );
}

// ---------------------------------------------------------------- put-object

async fn put_object(aws: AwsClients, cfg: Config) -> Outcome {
    aws_iam_put_object::run(ctx(Some(aws), cfg, CheckOptions::default())).await
}

#[tokio::test]
async fn put_object_missing_put_fails_naming_action_and_resource() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let read_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"Read","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}},
            {{"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{BUCKET}"}}]}}"#
    );
    role(&aws, "runner", &[("read-only", &read_only)], &[]).await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        o.summary.contains("s3:PutObject")
            && o.summary.contains(&format!("arn:aws:s3:::{BUCKET}/raw/*")),
        "{o:?}"
    );
    let ev = evidence(&o);
    assert!(
        ev.contains("decided locally (simulator unavailable"),
        "{ev}"
    );
    assert!(
        ev.contains(&format!(
            "s3:PutObject on arn:aws:s3:::{BUCKET}/metadata/*: implicitDeny"
        )),
        "{ev}"
    );
    assert!(
        ev.contains("s3:GetObject on") && ev.contains("allowed [inline:read-only Read"),
        "{ev}"
    );
}

#[tokio::test]
async fn put_object_runner_policy_as_managed_passes() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    role(
        &aws,
        "runner",
        &[],
        &[("openpay-runner", &runner_policy(BUCKET))],
    )
    .await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    let ev = evidence(&o);
    assert!(
        ev.contains(&format!(
            "policies read: managed:arn:aws:iam::{ACCOUNT}:policy/openpay-runner"
        )),
        "{ev}"
    );
    assert!(ev.contains("decided locally"), "{ev}");
    assert_eq!(ev.matches(": allowed [").count(), 5, "{ev}");
}

#[tokio::test]
async fn put_object_deny_overrides_allow() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Sid":"NoMetadataWrites","Effect":"Deny","Action":"s3:Put*","Resource":"arn:aws:s3:::{BUCKET}/metadata/*"}}}}"#
    );
    role(
        &aws,
        "runner",
        &[("guard", &deny)],
        &[("openpay-runner", &runner_policy(BUCKET))],
    )
    .await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(o.summary.contains("explicitDeny"), "{o:?}");
    assert!(
        o.summary
            .contains(&format!("arn:aws:s3:::{BUCKET}/metadata/*")),
        "{o:?}"
    );
    assert!(
        evidence(&o).contains("inline:guard NoMetadataWrites"),
        "{o:?}"
    );
}

#[tokio::test]
async fn put_object_not_action_and_bucket_wildcard_pass() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    // NotAction iam:* allows every s3 action; `bucket*` covers the bucket
    // itself and its objects.
    let broad = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","NotAction":"iam:*","Resource":"arn:aws:s3:::{BUCKET}*"}}]}}"#
    );
    role(&aws, "runner", &[("broad", &broad)], &[]).await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
}

#[tokio::test]
async fn put_object_object_wildcard_does_not_cover_list_bucket() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    // `s3:*` on `bucket/*` covers objects, not the bucket ARN ListBucket needs.
    let objects = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:Put*","s3:Get*","s3:List*"],"Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
    );
    role(&aws, "runner", &[("objects", &objects)], &[]).await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        o.summary
            .contains(&format!("s3:ListBucket on arn:aws:s3:::{BUCKET} ")),
        "{o:?}"
    );
    assert!(
        evidence(&o).contains(&format!(
            "s3:PutObject on arn:aws:s3:::{BUCKET}/raw/*: allowed"
        )),
        "{o:?}"
    );
}

#[tokio::test]
async fn put_object_condition_is_inconclusive_warn() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let vpce = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"ViaEndpoint","Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],
            "Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"],
            "Condition":{{"StringEquals":{{"aws:SourceVpce":"vpce-1a2b3c4d"}}}}}}]}}"#
    );
    role(&aws, "runner", &[("vpce", &vpce)], &[]).await;
    let o = put_object(aws, config(Some(BUCKET), Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Warn, "{o:?}");
    assert!(evidence(&o).contains("inconclusive"), "{o:?}");
}

#[tokio::test]
async fn put_object_principal_from_assumed_role_identity() {
    let moto = MotoServer::start();
    let admin = moto.clients().await;
    role(
        &admin,
        "openpay-runner",
        &[("rw", &runner_policy(BUCKET))],
        &[],
    )
    .await;
    let session = assume(&moto, &admin, "openpay-runner").await;
    let o = put_object(session, config(Some(BUCKET), None, &[])).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    assert!(
        evidence(&o).contains(&format!(
            "principal: role openpay-runner (arn:aws:iam::{ACCOUNT}:role/openpay-runner)"
        )),
        "{o:?}"
    );
}

#[tokio::test]
async fn put_object_without_bucket_fails_with_fix() {
    let moto = MotoServer::start();
    let o = put_object(moto.clients().await, config(None, Some("runner"), &[])).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        o.remediation
            .as_deref()
            .unwrap()
            .contains("OPENPAY_AWS_BUCKET"),
        "{o:?}"
    );
}

/// No object is left in BUCKET (the probe deletes what it wrote).
async fn assert_bucket_empty(aws: &AwsClients) {
    let left = aws
        .s3()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "the probe object was deleted");
}

#[tokio::test]
async fn put_object_probe_writes_heads_and_deletes() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    create_bucket(&aws.s3(), BUCKET).await;
    role(&aws, "runner", &[("rw", &runner_policy(BUCKET))], &[]).await;
    let probe = CheckOptions {
        probe: true,
        ..Default::default()
    };
    let o = aws_iam_put_object::run(ctx(
        Some(aws.clone()),
        config(Some(BUCKET), Some("runner"), &[]),
        probe.clone(),
    ))
    .await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    let ev = evidence(&o);
    for step in ["PutObject", "HeadObject", "DeleteObject"] {
        assert!(
            ev.contains(&format!(
                "probe: {step} s3://{BUCKET}/metadata/_doctor/probe-"
            )),
            "{step}: {ev}"
        );
    }
    assert_bucket_empty(&aws).await;

    // A bucket that does not exist: the probe is ground truth and fails.
    let o = aws_iam_put_object::run(ctx(
        Some(aws),
        config(Some("no-such-bucket"), Some("runner"), &[]),
        probe,
    ))
    .await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("probe: PutObject s3://no-such-bucket"),
        "{o:?}"
    );
}

// ---------------------------------------------------------------- net.ssh-allowlist

const ALLOW: &[&str] = &["197.210.77.0/24", "2001:db8::/32"];

/// Launches one instance in security group `g`; returns its id.
async fn instance_in(aws: &AwsClients, g: &str) -> String {
    let run = aws
        .ec2()
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .security_group_ids(g)
        .send()
        .await
        .unwrap();
    run.instances()[0].instance_id().unwrap().to_string()
}

async fn ssh_check(aws: AwsClients, groups: &[String], allow: &[&str]) -> Outcome {
    let mut c = config(None, None, allow);
    c.doctor.security_group_ids = groups.to_vec();
    net_ssh_allowlist::run(ctx(Some(aws), c, CheckOptions::default())).await
}

#[tokio::test]
async fn ssh_open_to_world_fails_naming_group_and_rule() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "world", perm("tcp", 22, 22, &["0.0.0.0/0"], &[])).await;
    let o = ssh_check(aws, std::slice::from_ref(&g), ALLOW).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains(&format!(
            "{g} ingress tcp 22 from 0.0.0.0/0: OPEN TO THE WORLD"
        )),
        "{o:?}"
    );
}

#[tokio::test]
async fn ssh_wider_than_allowed_fails() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "wide", perm("tcp", 22, 22, &["197.210.0.0/16"], &[])).await;
    let o = ssh_check(aws, &[g], ALLOW).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("from 197.210.0.0/16: outside the allowlist"),
        "{o:?}"
    );
}

#[tokio::test]
async fn ssh_protocol_all_fails() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "all", perm("-1", -1, -1, &["10.0.0.0/8"], &[])).await;
    let o = ssh_check(aws, &[g], ALLOW).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("all traffic (protocol -1) from 10.0.0.0/8"),
        "{o:?}"
    );
}

#[tokio::test]
async fn ssh_full_port_range_ipv6_world_fails() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "range", perm("tcp", 0, 65535, &[], &["::/0"])).await;
    let o = ssh_check(aws, &[g], ALLOW).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("tcp 0-65535 from ::/0: OPEN TO THE WORLD"),
        "{o:?}"
    );
}

#[tokio::test]
async fn ssh_correct_group_passes() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(
        &aws,
        "good",
        perm("tcp", 22, 22, &["197.210.77.0/24"], &["2001:db8:1::/48"]),
    )
    .await;
    // HTTPS from anywhere is not SSH.
    aws.ec2()
        .authorize_security_group_ingress()
        .group_id(&g)
        .ip_permissions(perm("tcp", 443, 443, &["0.0.0.0/0"], &[]))
        .send()
        .await
        .unwrap();
    let o = ssh_check(aws, &[g], ALLOW).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    assert!(o.summary.contains("all 2 SSH source range(s)"), "{o:?}");
}

#[tokio::test]
async fn ssh_groups_from_instance_id() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "inst", perm("tcp", 22, 22, &["0.0.0.0/0"], &[])).await;
    let instance = instance_in(&aws, &g).await;
    let opts = CheckOptions {
        instance_id: Some(instance.clone()),
        ..Default::default()
    };
    let o = net_ssh_allowlist::run(ctx(Some(aws), config(None, None, ALLOW), opts)).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    let ev = evidence(&o);
    assert!(
        ev.contains(&format!("groups of instance {instance}: {g}")),
        "{ev}"
    );
    assert!(ev.contains("0.0.0.0/0: OPEN TO THE WORLD"), "{ev}");
}

#[tokio::test]
async fn ssh_empty_allowlist_fails_with_fix_and_no_groups_skips() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let o = ssh_check(aws.clone(), &["sg-12345678".to_string()], &[]).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        o.remediation
            .as_deref()
            .unwrap()
            .contains("allowed_ssh_cidrs"),
        "{o:?}"
    );
    // IMDS disabled (as the test harness sets), no --instance-id, no groups.
    // SAFETY: nextest runs every test in its own process.
    unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
    let o = ssh_check(aws, &[], ALLOW).await;
    assert_eq!(o.status, CheckStatus::Skip, "{o:?}");
    assert!(o.summary.contains("AWS_EC2_METADATA_DISABLED"), "{o:?}");
}

// ---------------------------------------------------------------- tf.ssh-allowlist

async fn tf_check(root: std::path::PathBuf, allow: &[&str]) -> Outcome {
    let opts = CheckOptions {
        repo_dir: Some(root),
        ..Default::default()
    };
    tf_ssh_allowlist::run(ctx(None, config(None, None, allow), opts)).await
}

fn fixture(name: &str) -> std::path::PathBuf {
    repo_root().join("tests/fixtures/awschecks").join(name)
}

#[tokio::test]
async fn tf_fixture_within_allowlist_passes() {
    let o = tf_check(fixture("pass"), ALLOW).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    let ev = evidence(&o);
    assert!(
        ev.contains("var.ssh_allowed_cidrs in terraform.tfvars"),
        "{ev}"
    );
    assert!(ev.contains("2001:db8::/48: ok"), "{ev}");
    assert!(ev.contains("via local.office"), "{ev}");
}

#[tokio::test]
async fn tf_fixture_world_on_22_fails() {
    let o = tf_check(fixture("fail"), ALLOW).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("main.tf: aws_security_group.host ingress tcp 22 [cidr_blocks via literal] from 0.0.0.0/0: OPEN TO THE WORLD"),
        "{o:?}"
    );
}

#[tokio::test]
async fn tf_fixture_outside_narrower_allowlist_fails() {
    // The pass fixture's tfvars hold 2001:db8::/48: outside a v4-only allowlist.
    let o = tf_check(fixture("pass"), &["197.210.77.0/24"]).await;
    assert_eq!(o.status, CheckStatus::Fail, "{o:?}");
    assert!(
        evidence(&o).contains("2001:db8::/48: outside the allowlist"),
        "{o:?}"
    );
}

#[tokio::test]
async fn tf_repo_terraform_passes() {
    let o = tf_check(repo_root(), &["197.210.77.0/24"]).await;
    assert_eq!(o.status, CheckStatus::Pass, "{o:?}");
    let ev = evidence(&o);
    // The stack's SSH rule was found and traced to the allowlist variable.
    assert!(
        ev.contains("network.tf: aws_vpc_security_group_ingress_rule.ssh tcp 22")
            && ev.contains("var.ssh_allowed_cidrs"),
        "{ev}"
    );
}

#[tokio::test]
async fn tf_missing_directory_skips() {
    let dir = tempfile::tempdir().unwrap();
    let o = tf_check(dir.path().to_path_buf(), ALLOW).await;
    assert_eq!(o.status, CheckStatus::Skip, "{o:?}");
}

// ---------------------------------------------------------------- through the binary

/// Runs `openpay doctor ARGS --format json` in `cwd` with `env`; returns
/// the exit code and the shared (account/repo) results by id.
fn doctor_json(
    cwd: &std::path::Path,
    env: &[(String, String)],
    args: &[&str],
) -> (
    i32,
    std::collections::BTreeMap<String, serde_json::Value>,
    String,
) {
    let home = tempfile::tempdir().unwrap();
    let out = crate::common::openpay()
        .current_dir(cwd)
        .env("HOME", home.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("doctor")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {all}"));
    let by_id = v["shared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    (out.status.code().unwrap(), by_id, all)
}

fn status(results: &std::collections::BTreeMap<String, serde_json::Value>, id: &str) -> String {
    results[id]["status"].as_str().unwrap().to_string()
}

fn with(env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env;
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// The role `openpay-runner` with the repo's runner policy attached, and
/// the environment that points openpay at it, BUCKET and moto.
async fn runner_role_env(moto: &MotoServer, aws: &AwsClients) -> Vec<(String, String)> {
    role(
        aws,
        "openpay-runner",
        &[],
        &[("openpay-runner", &runner_policy(BUCKET))],
    )
    .await;
    with(
        moto.env(),
        &[
            ("OPENPAY_AWS_BUCKET", BUCKET),
            ("OPENPAY_AWS_ROLE_NAME", "openpay-runner"),
        ],
    )
}

#[tokio::test]
async fn binary_preflight_checks_pass_with_runner_role() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let env = runner_role_env(&moto, &aws).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, r, all) = doctor_json(
        dir.path(),
        &env,
        &["--only", "aws.identity", "--only", "aws.iam.put-object"],
    );
    assert_eq!(code, 0, "{all}");
    assert_eq!(status(&r, "aws.identity"), "pass", "{all}");
    assert_eq!(status(&r, "aws.iam.put-object"), "pass", "{all}");
    let ev = r["aws.iam.put-object"]["evidence"].to_string();
    assert!(
        ev.contains("decided locally (simulator unavailable: HTTP 500"),
        "{ev}"
    );
}

#[tokio::test]
async fn binary_put_object_denied_exits_1() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let get_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}"#
    );
    role(&aws, "openpay-runner", &[("get-only", &get_only)], &[]).await;
    let env = with(
        moto.env(),
        &[
            ("OPENPAY_AWS_BUCKET", BUCKET),
            ("OPENPAY_AWS_ROLE_NAME", "openpay-runner"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, r, all) = doctor_json(dir.path(), &env, &["--only", "aws.iam.put-object"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(status(&r, "aws.iam.put-object"), "fail", "{all}");
    let summary = r["aws.iam.put-object"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("s3:PutObject") && summary.contains("/raw/*"),
        "{summary}"
    );
}

#[tokio::test]
async fn binary_no_credentials_names_the_chain_and_leaks_nothing() {
    let moto = MotoServer::start();
    // A secret without its key id: the env provider is incomplete, nothing
    // else is configured (empty HOME, IMDS disabled).
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
    let env = vec![
        ("AWS_ENDPOINT_URL".to_string(), moto.url()),
        ("AWS_REGION".to_string(), "us-west-1".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), secret.to_string()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (code, r, all) = doctor_json(dir.path(), &env, &["--only", "aws.identity"]);
    assert_eq!(code, 3, "credentials missing: could not evaluate; {all}");
    assert_eq!(status(&r, "aws.identity"), "fail", "{all}");
    assert_eq!(r["aws.identity"]["cannot_evaluate"], true, "{all}");
    assert!(
        r["aws.identity"]["summary"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials"),
        "{all}"
    );
    let fix = r["aws.identity"]["remediation"].as_str().unwrap();
    for needle in ["instance profile", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"] {
        assert!(fix.contains(needle), "{needle}: {fix}");
    }
    assert!(!all.contains(secret), "the secret leaked: {all}");
    assert!(!all.contains("panicked"), "{all}");
}

#[tokio::test]
async fn binary_offline_skips_account_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r, all) = doctor_json(
        dir.path(),
        &[],
        &[
            "--offline",
            "--only",
            "aws.identity",
            "--only",
            "aws.iam.put-object",
            "--only",
            "net.ssh-allowlist",
        ],
    );
    assert_eq!(code, 0, "{all}");
    for id in ["aws.identity", "aws.iam.put-object", "net.ssh-allowlist"] {
        assert_eq!(status(&r, id), "skip", "{id}: {all}");
    }
}

#[tokio::test]
async fn binary_ssh_allowlist_by_instance_id_exits_1() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let g = group(&aws, "world", perm("tcp", 22, 22, &["0.0.0.0/0"], &[])).await;
    let instance = instance_in(&aws, &g).await;
    let env = with(
        moto.env(),
        &[("OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS", "197.210.77.0/24")],
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, r, all) = doctor_json(
        dir.path(),
        &env,
        &["--only", "net.ssh-allowlist", "--instance-id", &instance],
    );
    assert_eq!(code, 1, "{all}");
    assert_eq!(status(&r, "net.ssh-allowlist"), "fail", "{all}");
    let ev = r["net.ssh-allowlist"]["evidence"].to_string();
    assert!(
        ev.contains(&g) && ev.contains("0.0.0.0/0: OPEN TO THE WORLD"),
        "{ev}"
    );
}

#[test]
fn binary_tf_ssh_allowlist_on_fixtures() {
    let env = vec![(
        "OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS".to_string(),
        "197.210.77.0/24,2001:db8::/32".to_string(),
    )];
    let (code, r, all) = doctor_json(&fixture("fail"), &env, &["--only", "tf.ssh-allowlist"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(status(&r, "tf.ssh-allowlist"), "fail", "{all}");
    let (code, r, all) = doctor_json(&fixture("pass"), &env, &["--only", "tf.ssh-allowlist"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(status(&r, "tf.ssh-allowlist"), "pass", "{all}");
}

#[tokio::test]
async fn binary_probe_writes_heads_and_deletes_a_real_object() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    create_bucket(&aws.s3(), BUCKET).await;
    // versioning keeps the proof: the probe's write and its delete marker
    crate::common::moto::enable_versioning(&aws.s3(), BUCKET).await;
    let env = runner_role_env(&moto, &aws).await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = aws.s3();
    let versions = || {
        let s3 = s3.clone();
        async move {
            s3.list_object_versions()
                .bucket(BUCKET)
                .prefix("metadata/_doctor/")
                .send()
                .await
                .unwrap()
        }
    };

    // without --probe nothing is written
    let (code, _, all) = doctor_json(dir.path(), &env, &["--only", "aws.iam.put-object"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        versions().await.versions().is_empty(),
        "written without --probe"
    );

    let (code, r, all) = doctor_json(
        dir.path(),
        &env,
        &["--only", "aws.iam.put-object", "--probe"],
    );
    assert_eq!(code, 0, "{all}");
    assert_eq!(status(&r, "aws.iam.put-object"), "pass", "{all}");
    let ev = r["aws.iam.put-object"]["evidence"].to_string();
    for step in ["PutObject", "HeadObject", "DeleteObject"] {
        assert!(
            ev.contains(&format!(
                "probe: {step} s3://{BUCKET}/metadata/_doctor/probe-"
            )),
            "{step}: {ev}"
        );
    }
    // the bucket's own history: one object version and one delete marker
    // under metadata/_doctor/, and no current object left behind
    let v = versions().await;
    assert_eq!(v.versions().len(), 1, "{v:?}");
    assert_eq!(v.delete_markers().len(), 1, "{v:?}");
    assert!(
        v.versions()[0]
            .key()
            .unwrap()
            .starts_with("metadata/_doctor/probe-")
    );
    assert_bucket_empty(&aws).await;
}
