//! The doctor checks the host it is pointed at: `openpay doctor --host
//! ADDR` judges the security groups of the instance whose address is ADDR
//! (outputs.json, else ec2:DescribeInstances filters on moto), never this
//! machine's. moto's invented addresses are mapped to a real sshd on
//! loopback through the test HOME's ssh_config, so none is ever dialled.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification;
use openpay::aws::AwsClients;
use serde_json::Value;

use crate::common::ec2::{group, perm};
use crate::common::moto::MotoServer;
use crate::common::openpay;
use crate::common::sshd::{Sshd, current_user};

const ALLOW: &str = "197.210.77.0/24";

/// A security group (default VPC) with one SSH ingress from `cidr`.
async fn ssh_group(aws: &AwsClients, name: &str, cidr: &str) -> String {
    group(aws, name, perm("tcp", 22, 22, &[cidr], &[])).await
}

/// An instance with a public IP in group `g`: (id, public IP, private IP).
async fn instance(aws: &AwsClients, g: &str) -> (String, String, String) {
    let ec2 = aws.ec2();
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(subnet)
                .associate_public_ip_address(true)
                .groups(g)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = run.instances()[0].instance_id().unwrap().to_string();
    let desc = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let i = &desc.reservations()[0].instances()[0];
    let public = i
        .public_ip_address()
        .expect("moto gave no public IP")
        .to_string();
    let private = i.private_ip_address().unwrap().to_string();
    (id, public, private)
}

/// An instance with private IP `ip` in a VPC and subnet of its own (so
/// another VPC may reuse the address); its id.
async fn instance_at(aws: &AwsClients, ip: &str) -> String {
    let ec2 = aws.ec2();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.9.0.0/24")
        .send()
        .await
        .unwrap();
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet.subnet().unwrap().subnet_id().unwrap())
        .private_ip_address(ip)
        .send()
        .await
        .unwrap();
    run.instances()[0].instance_id().unwrap().to_string()
}

/// A stand-in instance metadata endpoint that counts the connections it
/// gets and answers none: its count is the proof of who asked IMDS.
fn counting_imds() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            // dropped without an answer: "not on EC2"
        }
    });
    (url, hits)
}

struct Doctor<'a> {
    moto: &'a MotoServer,
    home: std::path::PathBuf,
    cwd: tempfile::TempDir,
    imds: String,
}

impl Doctor<'_> {
    /// `openpay doctor ARGS --only net.ssh-allowlist --format json`; (exit
    /// code, the net.ssh-allowlist result, the report).
    fn run(&self, args: &[&str]) -> (i32, Value, Value) {
        let out = openpay()
            .current_dir(self.cwd.path())
            .envs(self.moto.env())
            .env("HOME", &self.home)
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.imds)
            .env("OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS", ALLOW)
            .args(["doctor", "--only", "net.ssh-allowlist", "--format", "json"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let check = report["shared"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "net.ssh-allowlist")
            .cloned()
            .unwrap_or_else(|| panic!("no net.ssh-allowlist in {report}"));
        (out.status.code().unwrap(), check, report)
    }
}

/// A `warn` that does not fail the run, says `needle`, and tells how to
/// name the instance.
fn assert_warns(code: i32, check: &Value, report: &Value, needle: &str) {
    assert_eq!(code, 0, "a warning never fails the run: {report}");
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["summary"].as_str().unwrap().contains(needle),
        "{check}"
    );
    let fix = check["remediation"].as_str().unwrap();
    assert!(fix.contains("--instance-id"), "{check}");
}

fn evidence(check: &Value) -> String {
    check["evidence"].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_host_checks_the_instance_behind_the_address_and_never_asks_imds() {
    let moto = MotoServer::start();
    let aws = moto.clients().await;
    let world = ssh_group(&aws, "world", "0.0.0.0/0").await;
    let narrow = ssh_group(&aws, "narrow", "197.210.77.0/24").await;
    let (open_id, open_ip, open_private) = instance(&aws, &world).await;
    let (good_id, good_ip, _) = instance(&aws, &narrow).await;
    let unknown_ip = "203.0.113.250";
    // two VPCs with the same range: two instances share a private IP
    let shared_ip = "10.9.0.10";
    let mut twins = Vec::new();
    for _ in 0..2 {
        twins.push(instance_at(&aws, shared_ip).await);
    }

    let sshd = Sshd::start();
    let (imds, imds_hits) = counting_imds();
    let doctor = Doctor {
        moto: &moto,
        home: sshd.home_mapping(&[&open_ip, &good_ip, &open_private, unknown_ip, shared_ip]),
        cwd: tempfile::tempdir().unwrap(),
        imds,
    };
    // the login user of the test sshd (ssh_config's User would do too)
    let host = |ip: &str| format!("{}@{ip}", current_user());

    // the open instance by its public IP: found by the filter, judged, failed
    let (code, check, report) = doctor.run(&["--host", &host(&open_ip)]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(check["status"], "fail", "{check}");
    let ev = evidence(&check);
    assert!(
        ev.contains(&format!(
            "instance {open_id}: the only instance whose public IP is {open_ip} (ec2:DescribeInstances filter ip-address)"
        )),
        "{ev}"
    );
    assert!(
        ev.contains(&format!(
            "{world} ingress tcp 22 from 0.0.0.0/0: OPEN TO THE WORLD"
        )),
        "{ev}"
    );
    assert!(!ev.contains(&narrow), "{ev}");
    // the SSH session went to the test's sshd on loopback
    let label = report["hosts"][0]["label"].as_str().unwrap();
    assert!(
        label.contains(&format!("@127.0.0.1:{}", sshd.port)),
        "{report}"
    );
    assert_eq!(
        report["hosts"][0]["reachable"],
        true,
        "{report}\n{}",
        sshd.log()
    );

    // the other instance: its own groups, inside the allowlist
    let (code, check, report) = doctor.run(&["--host", &host(&good_ip)]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(check["status"], "pass", "{check}");
    assert!(
        evidence(&check).contains(&format!("groups of instance {good_id}: {narrow}")),
        "{check}"
    );

    // by private IP
    let (_, check, _) = doctor.run(&["--host", &host(&open_private)]);
    assert!(
        evidence(&check).contains(&format!(
            "instance {open_id}: the only instance whose private IP is {open_private} (ec2:DescribeInstances filter private-ip-address)"
        )),
        "{check}"
    );

    // no instance has the address: warn, with how to name it
    let (code, check, report) = doctor.run(&["--host", &host(unknown_ip)]);
    assert_warns(code, &check, &report, unknown_ip);

    // several instances have the address: warn, naming them
    let (code, check, report) = doctor.run(&["--host", &host(shared_ip)]);
    assert_warns(
        code,
        &check,
        &report,
        &format!("2 instances match {shared_ip}"),
    );
    let summary = check["summary"].as_str().unwrap();
    assert!(
        twins.iter().all(|id| summary.contains(id.as_str())),
        "{check}"
    );

    // terraform's outputs name the instance of that address
    let outputs = doctor.cwd.path().join(".openpay/outputs.json");
    std::fs::create_dir_all(outputs.parent().unwrap()).unwrap();
    std::fs::write(
        &outputs,
        serde_json::json!({
            "instance_id": {"value": open_id, "type": "string", "sensitive": false},
            "public_ip": {"value": unknown_ip, "type": "string", "sensitive": false},
            "security_group_id": {"value": world, "type": "string", "sensitive": false},
        })
        .to_string(),
    )
    .unwrap();
    let (code, check, report) = doctor.run(&["--host", &host(unknown_ip)]);
    assert_eq!(code, 1, "{report}");
    assert!(
        evidence(&check).contains(&format!(
            "instance {open_id}: from .openpay/outputs.json (its public_ip is {unknown_ip})"
        )),
        "{check}"
    );
    // outputs.json belongs to its own address only
    let (_, check, _) = doctor.run(&["--host", &host(&good_ip)]);
    assert_eq!(check["status"], "pass", "{check}");

    // --instance-id still wins over the address
    let (code, check, _) = doctor.run(&["--host", &host(&good_ip), "--instance-id", &open_id]);
    assert_eq!(code, 1, "{check}");
    assert!(
        evidence(&check).contains(&format!("instance {open_id}: from --instance-id")),
        "{check}"
    );

    assert_eq!(
        imds_hits.load(Ordering::SeqCst),
        0,
        "IMDS was asked while remote hosts were checked"
    );
    // control: checking this machine asks IMDS (and, off EC2, skips)
    let (_, check, _) = doctor.run(&[]);
    assert_eq!(check["status"], "skip", "{check}");
    assert!(
        imds_hits.load(Ordering::SeqCst) > 0,
        "the local check did not ask IMDS"
    );
    assert!(sshd.logins() >= 6, "{}", sshd.log());
}
