//! Which EC2 instance `net.ssh-allowlist` judges: the one the doctor is
//! pointed at, never whichever machine happens to run the doctor.
//!
//! In order: `--instance-id`; for each `--host ADDR`, the instance terraform
//! reported for that address in `.openpay/outputs.json`, else the one
//! instance whose public or private IP (or DNS name) is ADDR according to
//! ec2:DescribeInstances; and only when the doctor checks this machine (no
//! `--host`), this machine's own instance id from IMDS.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Instance};

use super::aws_identity::sdk_error_line;
use crate::infra::tf::outputs::{self, Outputs};

/// The outputs terraform writes that can name a host's address.
const ADDRESS_OUTPUTS: &[&str] = &["public_ip", "private_ip", "public_dns", "private_dns"];

/// Instance states that can still hold an address (terminated ones are gone).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// An instance the check should judge, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub instance_id: String,
    /// One line for the evidence: why this is the instance being checked.
    pub how: String,
    /// Groups already known without asking EC2 (outputs.json's
    /// `security_group_id`); the instance's own groups are added to them.
    pub known_groups: Vec<String>,
}

/// Why no single instance could be named for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub address: String,
    pub why: String,
}

/// The fix shown when an address names no instance, or several.
pub const PASS_INSTANCE_ID: &str = "pass --instance-id i-... (the instance behind --host), or set [doctor] security_group_ids; \
`openpay tf apply` passes the stack's instance id itself";

/// `--instance-id`.
pub fn from_flag(id: &str) -> Found {
    Found {
        instance_id: id.to_string(),
        how: format!("instance {id}: from --instance-id"),
        known_groups: Vec::new(),
    }
}

/// The instance of `address` as terraform reported it: an output among
/// [`ADDRESS_OUTPUTS`] equals `address`, and `instance_id` (or at least
/// `security_group_id`) is set. Absent or unreadable outputs give `None`:
/// the live lookup then decides.
pub fn from_outputs(path: &Path, address: &str) -> Option<Found> {
    let text = std::fs::read_to_string(path).ok()?;
    let outputs: Outputs = serde_json::from_str(&text).ok()?;
    let matched = ADDRESS_OUTPUTS
        .iter()
        .find(|name| outputs::string(&outputs, name).is_some_and(|v| v == address))?;
    let group = outputs::string(&outputs, "security_group_id");
    let instance_id = outputs::string(&outputs, "instance_id");
    if instance_id.is_none() && group.is_none() {
        return None;
    }
    let shown = path.display();
    Some(Found {
        how: match &instance_id {
            Some(id) => format!("instance {id}: from {shown} (its {matched} is {address})"),
            None => format!("security group from {shown} (its {matched} is {address})"),
        },
        instance_id: instance_id.unwrap_or_default(),
        known_groups: group.into_iter().collect(),
    })
}

/// The filters that find an instance by `address`: IPs by public and
/// private address, anything else by public and private DNS name. Each is
/// asked on its own (EC2 ANDs different filter names).
fn address_filters(address: &str) -> [&'static str; 2] {
    if address.parse::<IpAddr>().is_ok() {
        ["ip-address", "private-ip-address"]
    } else {
        ["dns-name", "private-dns-name"]
    }
}

/// Finds the one live instance whose public or private IP or DNS name is
/// `address` (ec2:DescribeInstances with filters).
pub async fn by_address(
    ec2: &aws_sdk_ec2::Client,
    address: &str,
) -> Result<Result<Found, Unresolved>, String> {
    let state = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
        .build();
    let mut hits: Vec<(String, &'static str)> = Vec::new();
    for name in address_filters(address) {
        let by = Filter::builder().name(name).values(address).build();
        let out = ec2
            .describe_instances()
            .filters(by)
            .filters(state.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ec2:DescribeInstances (filter {name}={address}) failed: {}",
                    sdk_error_line(&e)
                )
            })?;
        for id in out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(Instance::instance_id)
        {
            if !hits.iter().any(|(h, _)| h == id) {
                hits.push((id.to_string(), name));
            }
        }
    }
    Ok(match hits.as_slice() {
        [(id, filter)] => Ok(Found {
            instance_id: id.clone(),
            how: format!(
                "instance {id}: the only instance whose {} is {address} (ec2:DescribeInstances filter {filter})",
                describe_filter(filter)
            ),
            known_groups: Vec::new(),
        }),
        [] => Err(Unresolved {
            address: address.to_string(),
            why: format!(
                "no live EC2 instance has the public or private {} {address} in this account and region",
                if address.parse::<IpAddr>().is_ok() {
                    "IP"
                } else {
                    "DNS name"
                }
            ),
        }),
        many => Err(Unresolved {
            address: address.to_string(),
            why: format!(
                "{} instances match {address}: {}",
                many.len(),
                many.iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    })
}

fn describe_filter(filter: &str) -> &'static str {
    match filter {
        "ip-address" => "public IP",
        "private-ip-address" => "private IP",
        "dns-name" => "public DNS name",
        _ => "private DNS name",
    }
}

/// This machine's instance, from IMDS; `Err` says why not (not on EC2,
/// IMDS disabled). Short timeouts: off EC2 nothing answers.
pub async fn this_machine() -> Result<Found, String> {
    if std::env::var("AWS_EC2_METADATA_DISABLED")
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
    {
        return Err("IMDS disabled by AWS_EC2_METADATA_DISABLED".to_string());
    }
    let client = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(3))
        .max_attempts(1)
        .build();
    match client.get("/latest/meta-data/instance-id").await {
        Ok(id) => {
            let id = id.as_ref().trim().to_string();
            Ok(Found {
                how: format!("instance {id}: this machine (instance metadata)"),
                instance_id: id,
                known_groups: Vec::new(),
            })
        }
        Err(e) => Err(format!(
            "not on EC2 (instance metadata did not answer: {})",
            e.to_string().replace('\n', " ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs_file(json: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), json).unwrap();
        f
    }

    const OUTPUTS: &str = r#"{
      "instance_id": {"value": "i-0abc", "type": "string", "sensitive": false},
      "public_ip": {"value": "203.0.113.7", "type": "string", "sensitive": false},
      "security_group_id": {"value": "sg-0123", "type": "string", "sensitive": false}
    }"#;

    #[test]
    fn outputs_name_the_instance_only_for_their_own_address() {
        let f = outputs_file(OUTPUTS);
        let found = from_outputs(f.path(), "203.0.113.7").unwrap();
        assert_eq!(found.instance_id, "i-0abc");
        assert_eq!(found.known_groups, ["sg-0123"]);
        assert!(
            found.how.contains("public_ip is 203.0.113.7"),
            "{}",
            found.how
        );
        assert_eq!(from_outputs(f.path(), "203.0.113.8"), None);
        assert_eq!(from_outputs(Path::new("/no/such/outputs.json"), "x"), None);
        assert_eq!(from_outputs(outputs_file("[").path(), "203.0.113.7"), None);
    }

    #[test]
    fn ips_and_names_use_their_own_filters() {
        assert_eq!(
            address_filters("203.0.113.7"),
            ["ip-address", "private-ip-address"]
        );
        assert_eq!(
            address_filters("10.0.1.5"),
            ["ip-address", "private-ip-address"]
        );
        assert_eq!(
            address_filters("ec2-203-0-113-7.us-west-1.compute.amazonaws.com"),
            ["dns-name", "private-dns-name"]
        );
    }
}
