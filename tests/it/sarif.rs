//! `--format sarif` of `openpay doctor` and `openpay iam drift` through the
//! real binary, every document validated by Microsoft's SARIF Multitool
//! (the official 2.1.0 schema plus GitHub's ingestion rules).

use serde_json::Value;

use crate::common::moto::MotoServer;
use crate::common::{openpay, repo_root, sarif};

/// The 1-based number of the first line of `file` containing `needle`,
/// as `grep -n -m1 -F` reports it.
fn grep_line(file: &std::path::Path, needle: &str) -> u64 {
    let out = std::process::Command::new("grep")
        .args(["-n", "-m1", "-F", needle])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`{needle}` not in {}", file.display()))
}

fn results(doc: &Value) -> Vec<Value> {
    doc["runs"][0]["results"].as_array().unwrap().clone()
}

fn location(r: &Value) -> (String, Option<u64>) {
    let p = &r["locations"][0]["physicalLocation"];
    (
        p["artifactLocation"]["uri"].as_str().unwrap().to_string(),
        p["region"]["startLine"].as_u64(),
    )
}

fn fingerprint(r: &Value) -> String {
    r["partialFingerprints"]["openpay/v1"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `openpay doctor ARGS --format sarif` in `cwd`; (exit code, document).
fn doctor_sarif(cwd: &std::path::Path, allow: &str, args: &[&str]) -> (i32, Value, String) {
    let home = tempfile::tempdir().unwrap();
    let out = openpay()
        .current_dir(cwd)
        .env("HOME", home.path())
        .env("OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS", allow)
        .args(["doctor", "--format", "sarif"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), doc, stdout)
}

#[test]
fn the_validators_catch_invalid_documents() {
    // Each oracle must be able to say no. The schema: an unknown level.
    let bad_level = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"a","level":"severe","message":{"text":"m"}}]}]}"#;
    let errors = sarif::schema_errors(bad_level);
    assert!(
        errors.iter().any(|e| e.contains("results/0/level")),
        "{errors:#?}"
    );
    // The Multitool: a result GitHub cannot show (no location, no rule).
    let no_location = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"a","message":{"text":"m"}}]}]}"#;
    let errors: Vec<_> = sarif::findings(no_location)
        .into_iter()
        .filter(|(level, rule, _)| level == "error" && rule.starts_with("GH"))
        .collect();
    assert!(!errors.is_empty(), "{errors:#?}");
}

#[test]
fn doctor_sarif_points_at_the_terraform_lines_and_is_valid() {
    let fixtures = repo_root().join("tests/fixtures/awschecks");
    // 0.0.0.0/0 on an inline ingress block: the resource's line
    let fail = fixtures.join("fail");
    let (code, doc, text) = doctor_sarif(&fail, "197.210.77.0/24", &["--only", "tf.ssh-allowlist"]);
    assert_eq!(code, 1, "{text}");
    sarif::assert_valid(&text);
    let rs = results(&doc);
    assert_eq!(rs.len(), 1, "{text}");
    assert_eq!(rs[0]["ruleId"], "tf.ssh-allowlist");
    assert_eq!(rs[0]["level"], "error");
    let main_tf = fail.join("terraform/main.tf");
    assert_eq!(
        location(&rs[0]),
        (
            "terraform/main.tf".to_string(),
            Some(grep_line(
                &main_tf,
                r#"resource "aws_security_group" "host""#
            ))
        )
    );
    assert!(
        rs[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("0.0.0.0/0: OPEN TO THE WORLD"),
        "{text}"
    );
    // the rule is the catalog's, with its remediation as help
    let rule =
        &doc["runs"][0]["tool"]["driver"]["rules"][rs[0]["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(rule["id"], "tf.ssh-allowlist");
    assert_eq!(
        rule["shortDescription"]["text"],
        "terraform opens SSH only to the allowlist"
    );
    assert!(
        rule["help"]["text"]
            .as_str()
            .unwrap()
            .contains("var.ssh_allowed_cidrs")
    );

    // the same findings on a rerun: the same fingerprints
    let (_, again, _) = doctor_sarif(&fail, "197.210.77.0/24", &["--only", "tf.ssh-allowlist"]);
    assert_eq!(fingerprint(&rs[0]), fingerprint(&results(&again)[0]));

    // a tfvars value outside a v4-only allowlist: the tfvars line
    let pass = fixtures.join("pass");
    let (code, doc, text) = doctor_sarif(&pass, "197.210.77.0/24", &["--only", "tf.ssh-allowlist"]);
    assert_eq!(code, 1, "{text}");
    sarif::assert_valid(&text);
    let tfvars = pass.join("terraform/terraform.tfvars");
    let places: Vec<_> = results(&doc).iter().map(location).collect();
    assert_eq!(
        places,
        [(
            "terraform/terraform.tfvars".to_string(),
            Some(grep_line(&tfvars, "ssh_allowed_cidrs"))
        )],
        "{text}"
    );
}

#[test]
fn doctor_sarif_puts_other_findings_at_the_config_and_unreachable_hosts_in_notifications() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("doctor.toml"), "# test config\n[doctor]\n").unwrap();
    let dead = crate::common::free_port();
    let (code, doc, text) = doctor_sarif(
        dir.path(),
        "197.210.77.0/24",
        &[
            "--config",
            "doctor.toml",
            "--offline",
            "--host",
            &format!("nobody@127.0.0.1:{dead}"),
            "--only",
            "aws.identity",
        ],
    );
    assert_eq!(code, 3, "{text}");
    sarif::assert_valid(&text);
    let run = &doc["runs"][0];
    assert_eq!(
        run["invocations"][0]["executionSuccessful"], false,
        "{text}"
    );
    let note = run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
        .as_str()
        .unwrap();
    assert!(note.contains(&format!("127.0.0.1:{dead}")), "{note}");
    // --offline skips aws.identity: a skip is not a result
    assert!(results(&doc).is_empty(), "{text}");

    // an empty allowlist fails tf.ssh-allowlist with no terraform line:
    // the fix goes in the config file
    let stack = dir.path().join("terraform");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(stack.join("main.tf"), "# empty stack\n").unwrap();
    let (code, doc, text) = doctor_sarif(
        dir.path(),
        "",
        &["--config", "doctor.toml", "--only", "tf.ssh-allowlist"],
    );
    assert_eq!(code, 1, "{text}");
    sarif::assert_valid(&text);
    let rs = results(&doc);
    assert_eq!(rs.len(), 1, "{text}");
    // at the [doctor] section, where allowed_ssh_cidrs goes
    assert_eq!(location(&rs[0]), ("doctor.toml".to_string(), Some(2)));
}

// ---------------------------------------------------------------- iam drift

const ROLE: &str = "openpay-runner";
const BUCKET: &str = "openpayments-test-bucket";

#[tokio::test]
async fn drift_sarif_has_one_valid_result_per_drift_at_the_template() {
    let server = MotoServer::start();
    let aws = server.clients().await;
    // live: the metadata prefix dropped (removed), DeleteObject granted
    // (added), and a managed policy the repo does not declare
    let live = format!(
        r#"{{"Version":"2012-10-17","Statement":[
  {{"Sid":"ListRawZoneBucket","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{b}"}},
  {{"Sid":"ReadWriteRawAndMetadata","Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":["arn:aws:s3:::{b}/raw/*"]}},
  {{"Sid":"Cleanup","Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{b}/raw/*"}}]}}"#,
        b = BUCKET
    );
    let extra = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    crate::common::iam::role(&aws, ROLE, &[("runner", &live)], &[("team-extra", extra)]).await;

    let cwd = tempfile::tempdir().unwrap();
    let template = cwd.path().join("terraform/policies/runner.json.tftpl");
    std::fs::create_dir_all(template.parent().unwrap()).unwrap();
    std::fs::copy(
        repo_root().join("terraform/policies/runner.json.tftpl"),
        &template,
    )
    .unwrap();
    let run = || {
        let out = openpay()
            .current_dir(cwd.path())
            .envs(server.env())
            .args(["iam", "drift", "--role", ROLE, "--var"])
            .arg(format!("bucket={BUCKET}"))
            .args(["--format", "sarif"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = run();
    sarif::assert_valid(&text);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let rs = results(&doc);
    let by_rule =
        |id: &str| -> Vec<Value> { rs.iter().filter(|r| r["ruleId"] == id).cloned().collect() };
    let uri = "terraform/policies/runner.json.tftpl".to_string();
    let statements = grep_line(&template, "\"Statement\"");

    // added: the DeleteObject grant, and team-extra's GetObject on *
    let added = by_rule("iam.drift.added");
    let delete: Vec<_> = added
        .iter()
        .filter(|r| {
            r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("s3:DeleteObject")
        })
        .collect();
    assert_eq!(delete.len(), 1, "{text}");
    assert!(
        added
            .iter()
            .any(|r| r["message"]["text"].as_str().unwrap().contains("managed:")),
        "{text}"
    );
    for r in &added {
        assert_eq!(location(r), (uri.clone(), Some(statements)), "{r}");
    }

    let removed = by_rule("iam.drift.removed");
    assert!(!removed.is_empty(), "{text}");
    let sid_line = grep_line(&template, "\"Sid\": \"ReadWriteRawAndMetadata\"");
    for r in &removed {
        assert!(
            r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("/metadata/"),
            "{r}"
        );
        assert_eq!(location(r), (uri.clone(), Some(sid_line)));
    }

    let undeclared = by_rule("iam.drift.undeclared-managed-policy");
    assert_eq!(undeclared.len(), 1, "{text}");
    assert!(
        undeclared[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("team-extra")
    );

    // every alert has its own fingerprint, and keeps it on the next run
    let mut prints: Vec<String> = rs.iter().map(fingerprint).collect();
    let again: Vec<String> = results(&serde_json::from_str(&run()).unwrap())
        .iter()
        .map(fingerprint)
        .collect();
    assert_eq!(prints, again);
    prints.sort();
    prints.dedup();
    assert_eq!(prints.len(), rs.len(), "{text}");
}
