//! `openpay iam drift` through the real binary against moto_server: the
//! role and its policies are created with the real SDK, one server per test.

use serde_json::Value;

use crate::common::moto::MotoServer;
use crate::common::{openpay, repo_root};

const ROLE: &str = "openpay-runner";
const BUCKET: &str = "openpayments-test-bucket";

/// The repo's template rendered by hand, then reordered: statements
/// swapped, Action as string vs list flipped, other whitespace, no Sids.
fn reordered_policy() -> String {
    format!(
        r#"{{ "Statement": [
  {{"Resource": ["arn:aws:s3:::{b}/metadata/*", "arn:aws:s3:::{b}/raw/*"],
    "Action": ["s3:GetObject", "s3:PutObject", "s3:GetObject"], "Effect": "Allow"}},
  {{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":"arn:aws:s3:::{b}"}}
], "Version": "2012-10-17" }}"#,
        b = BUCKET
    )
}

async fn role_with_inline(server: &MotoServer, policies: &[(&str, String)]) {
    let inline: Vec<(&str, &str)> = policies.iter().map(|(n, d)| (*n, d.as_str())).collect();
    crate::common::iam::role(&server.clients().await, ROLE, &inline, &[]).await;
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

fn drift(server: &MotoServer, extra: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let template = repo_root().join("terraform/policies/runner.json.tftpl");
    let out = openpay()
        .current_dir(dir.path())
        .envs(server.env())
        .args(["iam", "drift", "--role", ROLE, "--policy"])
        .arg(template)
        .args(["--var", &format!("bucket={BUCKET}")])
        .args(extra)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn differences(report: &Value, class: &str) -> Vec<Value> {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == class)
        .cloned()
        .collect()
}

fn actions(d: &Value) -> String {
    d["action"].to_string()
}

#[tokio::test]
async fn drift_reordered_equal_policy_is_no_drift() {
    let server = MotoServer::start();
    role_with_inline(&server, &[("runner", reordered_policy())]).await;
    let out = drift(&server, &["--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["drift"], false);
    assert_eq!(r["summary"]["added"], 0);
    assert_eq!(r["summary"]["removed"], 0);
    // Every needed probe is allowed on both sides.
    for p in r["probes"].as_array().unwrap() {
        assert_eq!(p["repo"], p["live"], "{p}");
    }
    // Text: no drift; -v lists the cosmetic difference.
    let text = drift(&server, &["-v"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("no drift"), "{}", text.stdout);
    assert!(text.stdout.contains("~ cosmetic"), "{}", text.stdout);
}

#[tokio::test]
async fn drift_delete_object_added_live_is_added_access() {
    let server = MotoServer::start();
    let mut v: Value = serde_json::from_str(&reordered_policy()).unwrap();
    v["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Sid": "Cleanup", "Effect": "Allow", "Action": "s3:DeleteObject",
            "Resource": format!("arn:aws:s3:::{BUCKET}/raw/*")
        }));
    role_with_inline(&server, &[("runner", v.to_string())]).await;
    let out = drift(&server, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["drift"], true);
    let added = differences(&r, "added");
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(actions(&added[0]).contains("s3:DeleteObject"));
    assert_eq!(added[0]["policy"], "inline:runner");
    assert_eq!(added[0]["sid"], "Cleanup");
    assert!(
        added[0]["impact"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "s3:DeleteObject"
                && i["kind"] == "sensitive"
                && i["with"] == "allowed"),
        "{}",
        added[0]
    );
    assert!(differences(&r, "removed").is_empty());
    // The readable diff names the statement and the action.
    let text = drift(&server, &[]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("DRIFT"), "{}", text.stdout);
    assert!(
        text.stdout.lines().any(|l| l.starts_with("+ added")
            && l.contains("s3:DeleteObject")
            && l.contains("Cleanup")),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn drift_statement_removed_live_is_removed_access() {
    let server = MotoServer::start();
    let only_list = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{BUCKET}"}}]}}"#
    );
    role_with_inline(&server, &[("runner", only_list)]).await;
    let out = drift(&server, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    let removed = differences(&r, "removed");
    // PutObject and GetObject on raw/* and metadata/*: four atoms.
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(
        removed
            .iter()
            .all(|d| d["side"] == "repo" && d["sid"] == "ReadWriteRawAndMetadata")
    );
    assert!(removed.iter().any(|d| actions(d).contains("s3:PutObject")));
    assert!(differences(&r, "added").is_empty());
    let put = r["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["action"] == "s3:PutObject")
        .unwrap()
        .clone();
    assert_eq!(put["repo"], "allowed");
    assert_eq!(put["live"], "implicitDeny");
}

#[tokio::test]
async fn drift_administrator_access_attached_is_added_access() {
    let server = MotoServer::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    role_with_inline(&server, &[("runner", reordered_policy())]).await;
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    server
        .clients()
        .await
        .iam()
        .attach_role_policy()
        .role_name(ROLE)
        .policy_arn(admin)
        .send()
        .await
        .expect("attach AdministratorAccess in moto");
    let out = drift(&server, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["undeclared_managed_policies"][0], admin);
    let added = differences(&r, "added");
    assert!(
        added
            .iter()
            .any(|d| d["policy"] == format!("managed:{admin}") && actions(d).contains("\"*\"")),
        "{added:?}"
    );
    let iam = r["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["action"] == "iam:*")
        .unwrap()
        .clone();
    assert_eq!(iam["live"], "allowed");
    assert_eq!(iam["repo"], "implicitDeny");
    let live = r["live"].as_array().unwrap();
    assert!(
        live.iter()
            .any(|p| p["kind"] == "managed" && p["policy_arn"] == admin)
    );
}

#[tokio::test]
async fn drift_resource_widened_to_all_buckets_is_added_access() {
    let server = MotoServer::start();
    let widened =
        reordered_policy().replace(&format!("\"arn:aws:s3:::{BUCKET}\""), "\"arn:aws:s3:::*\"");
    assert!(widened.contains("arn:aws:s3:::*"));
    role_with_inline(&server, &[("runner", widened)]).await;
    let out = drift(&server, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    let added = differences(&r, "added");
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0]["resource"].to_string().contains("arn:aws:s3:::*"));
    assert!(
        added[0]["impact"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "s3:ListBucket"
                && i["resource"].as_str().unwrap().contains("other-bucket")),
        "{}",
        added[0]
    );
    // ListBucket on the bucket itself is covered by the wider grant: cosmetic.
    let cosmetic = differences(&r, "cosmetic");
    assert!(cosmetic.iter().any(|d| d["side"] == "repo"), "{cosmetic:?}");
}

#[tokio::test]
async fn drift_missing_role_exits_3_with_clear_message() {
    let server = MotoServer::start();
    let out = drift(&server, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(ROLE), "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("testing"), "no credentials in errors");
}

#[test]
fn drift_without_bucket_or_role_is_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let template = repo_root().join("terraform/policies/runner.json.tftpl");
    let out = openpay()
        .current_dir(dir.path())
        .args(["iam", "drift", "--role", ROLE, "--policy"])
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--var bucket="), "{err}");
    let out = openpay()
        .current_dir(dir.path())
        .args(["iam", "drift", "--var", "bucket=b", "--policy"])
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role"));
}

#[test]
fn drift_without_credentials_exits_3_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let template = repo_root().join("terraform/policies/runner.json.tftpl");
    // A real moto endpoint, but no credentials anywhere in the chain.
    let server = MotoServer::start();
    let out = openpay()
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("AWS_ENDPOINT_URL", server.url())
        .env("AWS_REGION", "us-west-1")
        .args([
            "iam", "drift", "--role", ROLE, "--var", "bucket=b", "--policy",
        ])
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no AWS credentials found"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn drift_takes_role_from_config_and_bucket_from_terraform_outputs() {
    let server = MotoServer::start();
    role_with_inline(&server, &[("runner", reordered_policy())]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".openpay")).unwrap();
    std::fs::write(
        dir.path().join(".openpay/outputs.json"),
        format!(r#"{{"bucket":{{"value":"{BUCKET}","sensitive":false}}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("openpay.toml"),
        format!("[aws]\nrole_name = \"{ROLE}\"\n"),
    )
    .unwrap();
    let template = repo_root().join("terraform/policies/runner.json.tftpl");
    let run = |extra: &[&str]| {
        openpay()
            .current_dir(dir.path())
            .envs(server.env())
            .args(["iam", "drift", "--format", "json", "--policy"])
            .arg(&template)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["role"], ROLE);
    assert_eq!(r["repo"]["variables"]["bucket"], BUCKET);
    // --var overrides the outputs: another bucket means every grant differs.
    let out = run(&["--var", "bucket=some-other-bucket"]);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["summary"]["removed"], 5, "{r}");
    assert_eq!(r["summary"]["added"], 5, "{r}");
}
