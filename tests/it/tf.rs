//! `openpay tf` with the real terraform and the hashicorp/aws provider from
//! the local mirror, applying the whole `terraform/` stack to moto_server.
//! Without terraform or the mirror these tests fail with the fix, never skip.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{self, moto::MotoServer};

/// A real ed25519 public key (EC2's ImportKeyPair, and moto, parse it).
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMxzd1KUSGdHD7UB+kWR0jriB+dU05ZIlkBq5NJDpayp openpay-test";
const SECRET: &str = "s3cr3t-test-only-output";
const BUCKET: &str = "openpayments-dezoomcamp2026-us-west-1-123456789012";

/// Fails loudly unless scripts/test.sh found terraform and the mirror.
fn require_terraform() {
    common::required_env("OPENPAY_TEST_TF_MIRROR");
    common::required_env("TF_CLI_CONFIG_FILE");
    let ok = std::process::Command::new("terraform")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "terraform is not on PATH: install Terraform >= 1.6 and rerun scripts/test.sh"
    );
}

/// terraform/ and bootstrap/ copied into a scratch dir (state never lands
/// in the repository), plus one test-only sensitive output that must never
/// be printed or saved in clear text.
fn scratch_stack() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::repo_root();
    copy_dir(&root.join("terraform"), &tmp.path().join("terraform"));
    copy_dir(&root.join("bootstrap"), &tmp.path().join("bootstrap"));
    std::fs::write(
        tmp.path().join("terraform/zz_test_only.tf"),
        format!(
            "output \"test_only_secret\" {{\n  value     = \"{SECRET}\"\n  sensitive = true\n}}\n"
        ),
    )
    .unwrap();
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".terraform") || name.starts_with("terraform.tfstate") {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

struct Stack<'a> {
    dir: PathBuf,
    moto: &'a MotoServer,
}

impl Stack<'_> {
    /// `openpay tf ARGS --dir terraform` with the moto environment and the
    /// variables moto needs (no MonitorInstances in moto).
    fn tf(&self, args: &[&str], cidrs: &str, extra_vars: &[&str]) -> Output {
        self.tf_with_env(args, cidrs, extra_vars, &[])
    }

    /// [`Stack::tf`] with more environment (the doctor's HOME, allowlist).
    fn tf_with_env(
        &self,
        args: &[&str],
        cidrs: &str,
        extra_vars: &[&str],
        env: &[(String, String)],
    ) -> Output {
        let mut cmd = common::openpay();
        cmd.current_dir(&self.dir)
            .envs(self.moto.env())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("tf")
            .args(args);
        cmd.args(["--dir", "terraform"]);
        cmd.args(["--var", &format!("ssh_allowed_cidrs={cidrs}")]);
        cmd.args(["--var", &format!("public_key={PUBLIC_KEY}")]);
        cmd.args(["--var", "detailed_monitoring=false"]);
        for v in extra_vars {
            cmd.args(["--var", v]);
        }
        cmd.stdin(std::process::Stdio::null());
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(SECRET),
            "secret printed by `tf {args:?}`: {text}"
        );
        assert!(
            !self
                .dir
                .join("terraform/openpay_endpoint_override.tf")
                .exists(),
            "endpoint override left behind by `tf {args:?}`"
        );
        out
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Exit code `code`, and `needle` in stdout or stderr.
fn expect(out: &Output, code: i32, needle: &str) {
    let text = show(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(text.contains(needle), "`{needle}` missing: {text}");
}

const ALLOWED: &str = r#"["198.51.100.0/24"]"#;

/// One apply of the whole stack serves every step (an apply costs minutes
/// on a busy 2-core machine): outputs, the doctor handover, plans, gates,
/// destroy.
#[tokio::test(flavor = "multi_thread")]
async fn tf_applies_the_whole_stack_to_moto_hands_over_to_the_doctor_gates_and_destroys() {
    require_terraform();
    let moto = MotoServer::start();
    let tmp = scratch_stack();
    login_as_test_user(tmp.path());
    let stack = Stack {
        dir: tmp.path().to_path_buf(),
        moto: &moto,
    };

    // apply: whole stack, outputs saved, redacted
    let out = stack.tf(&["apply", "--no-doctor"], ALLOWED, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("aws_instance.host") && stdout.contains("create"),
        "{}",
        show(&out)
    );
    let saved = std::fs::read_to_string(tmp.path().join(".openpay/outputs.json")).unwrap();
    assert!(!saved.contains(SECRET), "{saved}");
    let outputs: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(outputs["bucket"]["value"], BUCKET, "{saved}");
    assert_eq!(
        outputs["test_only_secret"]["value"], "(sensitive)",
        "{saved}"
    );
    assert_eq!(outputs["test_only_secret"]["sensitive"], true);
    for name in [
        "region",
        "instance_id",
        "public_ip",
        "security_group_id",
        "role_name",
        "role_arn",
        "ssh_user",
    ] {
        assert!(
            outputs[name]["value"].is_string(),
            "output {name} missing: {saved}"
        );
    }
    assert!(
        !tmp.path().join(".openpay/tfplan").exists(),
        "applied plan left behind"
    );

    // what landed in "AWS" is what the stack promises
    let aws = moto.clients().await;
    let id = outputs["instance_id"]["value"].as_str().unwrap();
    let desc = aws
        .ec2()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let inst = &desc.reservations()[0].instances()[0];
    let md = inst.metadata_options().unwrap();
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(md.http_put_response_hop_limit(), Some(2));
    let policy = aws
        .iam()
        .get_role_policy()
        .role_name("openpay-runner")
        .policy_name("openpay-raw-zone")
        .send()
        .await
        .unwrap();
    let doc = percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8()
        .unwrap();
    assert!(
        doc.contains(&format!("arn:aws:s3:::{BUCKET}/raw/*")),
        "{doc}"
    );
    assert!(!doc.contains("s3:*"), "{doc}");

    // a second plan has nothing to do
    let out = stack.tf(&["plan", "--detailed-exitcode"], ALLOWED, &[]);
    expect(&out, 0, "No changes");

    // apply without --no-doctor: the doctor checks the new instance
    doctor_handover(&stack, &outputs).await;

    // output, as JSON, redacted
    let out = stack.tf(&["output", "--format", "json"], ALLOWED, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["bucket"]["value"], BUCKET);

    // SSH open to the world: refused by the variable validation (exit 2)
    for world in [r#"["0.0.0.0/0"]"#, r#"["198.51.100.0/24","::/0"]"#] {
        let out = stack.tf(&["apply", "--no-doctor"], world, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ssh_allowed_cidrs") && err.contains("0.0.0.0/0 or ::/0"),
            "{}",
            show(&out)
        );
    }

    // a plan that replaces the bucket: drift for CI (exit 1), refused by
    // apply (exit 3); the plan reads it from a --var-file, relative to
    // where openpay runs
    std::fs::write(
        tmp.path().join("renamed.tfvars"),
        "bucket_suffix = \"renamed\"\n",
    )
    .unwrap();
    let out = stack.tf(
        &[
            "plan",
            "--detailed-exitcode",
            "--var-file",
            "renamed.tfvars",
        ],
        ALLOWED,
        &[],
    );
    expect(&out, 1, "data-or-role-destroyed");
    let out = stack.tf(
        &["apply", "--no-doctor"],
        ALLOWED,
        &["bucket_suffix=renamed"],
    );
    expect(&out, 3, "apply refused");
    aws.s3()
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("the bucket must survive the refused apply");

    // destroy: never without --yes off a terminal, never a bucket with data without --force
    // moto evaluates the bucket policy's DenyInsecureTransport statement
    // without its aws:SecureTransport condition and refuses every object
    // write, so the policy goes before objects are written (destroy below
    // then also covers a resource that vanished outside terraform).
    aws.s3()
        .delete_bucket_policy()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    // versioning on: two writes of one key keep two versions (moto's
    // GetBucketVersioning reply does not parse in the Rust SDK, so the
    // behaviour is checked instead of the setting)
    for body in ["a,b\n", "a,b\n1,2\n"] {
        aws.s3()
            .put_object()
            .bucket(BUCKET)
            .key("raw/x.csv")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let versions = aws
        .s3()
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "versioning is not enabled");
    let pab = aws
        .s3()
        .get_public_access_block()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let c = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            c.block_public_acls(),
            c.block_public_policy(),
            c.ignore_public_acls(),
            c.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    // raw/x.csv (two versions) is still in the bucket
    let out = stack.tf(&["destroy"], ALLOWED, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "non-empty bucket must be refused first: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still holds objects"),
        "{}",
        show(&out)
    );
    let out = stack.tf(&["destroy", "--force"], ALLOWED, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --yes off a terminal: {}",
        show(&out)
    );
    aws.s3()
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("nothing destroyed without --yes");
    let out = stack.tf(&["destroy", "--yes", "--force"], ALLOWED, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        aws.s3().head_bucket().bucket(BUCKET).send().await.is_err(),
        "bucket still there"
    );
    assert!(
        aws.iam()
            .get_role()
            .role_name("openpay-runner")
            .send()
            .await
            .is_err(),
        "role still there"
    );
    assert!(
        !tmp.path().join(".openpay/outputs.json").exists(),
        "stale outputs kept after destroy"
    );
}

#[test]
fn tf_without_terraform_exits_3_with_how_to_install() {
    let tmp = scratch_stack();
    let empty = tempfile::tempdir().unwrap();
    let out = common::openpay()
        .current_dir(tmp.path())
        .env("PATH", empty.path())
        .env_remove("TERRAFORM")
        .args(["tf", "plan", "--dir", "terraform"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("terraform not found") && err.contains("install Terraform"),
        "{err}"
    );
}

#[test]
fn tf_bad_inputs_exit_2_with_one_line() {
    let tmp = scratch_stack();
    for (args, needle) in [
        (vec!["tf", "plan", "--dir", "no-such-dir"], "no-such-dir"),
        (
            vec!["tf", "plan", "--dir", "terraform", "--var", "novalue"],
            "--var `novalue`",
        ),
        (
            vec!["tf", "plan", "--dir", "terraform", "--lock-timeout", "soon"],
            "--lock-timeout `soon`",
        ),
        (
            vec![
                "tf",
                "plan",
                "--dir",
                "terraform",
                "--endpoint-url",
                "localhost:5000",
            ],
            "--endpoint-url",
        ),
    ] {
        let out = common::openpay()
            .current_dir(tmp.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
    }
}

/// The doctor's table line for `id` in `tf apply`'s output.
fn doctor_line<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id))
        .unwrap_or_else(|| panic!("no doctor line for {id} in:\n{stdout}"))
}

/// The test's sshd logs in the current user, not the AMI's ec2-user:
/// the stack copy's `ssh_user` local (an output the doctor logs in as)
/// says so.
fn login_as_test_user(stack_dir: &Path) {
    let compute = stack_dir.join("terraform/compute.tf");
    let text = std::fs::read_to_string(&compute).unwrap();
    assert!(text.contains("ssh_user = \"ec2-user\""), "{text}");
    std::fs::write(
        &compute,
        text.replace(
            "ssh_user = \"ec2-user\"",
            &format!("ssh_user = \"{}\"", common::sshd::current_user()),
        ),
    )
    .unwrap();
}

/// After the stack is applied: `tf apply` hands over to the doctor, whose
/// net.ssh-allowlist passes for the new instance and fails once SSH is
/// opened to the world outside terraform.
async fn doctor_handover(stack: &Stack<'_>, outputs: &serde_json::Value) {
    let moto = stack.moto;
    let ip = outputs["public_ip"]["value"].as_str().unwrap().to_string();
    let instance = outputs["instance_id"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let group = outputs["security_group_id"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{outputs}");

    // moto's invented public IP leads to this sshd on loopback
    let work = tempfile::tempdir().unwrap();
    let bin = common::sshd::stand_in_tools(work.path(), "0.17.1");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let sshd = common::sshd::Sshd::start_with_env(&[("PATH", &path)]);
    let env = [
        (
            "HOME".to_string(),
            sshd.home_mapping(&[&ip]).display().to_string(),
        ),
        (
            "OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS".to_string(),
            "198.51.100.0/24".to_string(),
        ),
    ];

    // apply (nothing to change) hands over to the doctor
    let out = stack.tf_with_env(&["apply"], ALLOWED, &[], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "--host {}@{ip} --wait --instance-id {instance}",
            common::sshd::current_user()
        )),
        "{}",
        show(&out)
    );
    assert!(
        sshd.logins() >= 1,
        "the doctor never reached the test sshd: {}\n{}",
        show(&out),
        sshd.log()
    );
    assert!(
        stdout.contains(&format!("@127.0.0.1:{}", sshd.port)),
        "{}",
        show(&out)
    );
    let line = doctor_line(&stdout, "net.ssh-allowlist");
    assert!(
        line.contains('✓') && line.contains("within the allowlist"),
        "{}",
        show(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // SSH opened to the world outside terraform: the next apply's doctor fails
    let aws = moto.clients().await;
    aws.ec2()
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(common::ec2::perm("tcp", 22, 22, &["0.0.0.0/0"], &[]))
        .send()
        .await
        .unwrap();
    let out = stack.tf_with_env(&["apply"], ALLOWED, &[], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = doctor_line(&stdout, "net.ssh-allowlist");
    assert!(line.contains('✗'), "{}", show(&out));
    assert!(
        stdout.contains(&format!("instance {instance}: from --instance-id"))
            && stdout.contains(&format!(
                "{group} ingress tcp 22 from 0.0.0.0/0: OPEN TO THE WORLD"
            )),
        "{}",
        show(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}
