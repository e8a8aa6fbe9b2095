//! EC2 fixtures in moto: security groups with SSH ingress rules, as the
//! net.ssh-allowlist tests need them.

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use openpay::aws::AwsClients;

/// A security group (default VPC) with one ingress permission; its id.
pub async fn group(aws: &AwsClients, name: &str, perm: IpPermission) -> String {
    let ec2 = aws.ec2();
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description("openpay test")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(perm)
        .send()
        .await
        .unwrap();
    id
}

/// An ingress permission: protocol, port range, IPv4 and IPv6 sources.
pub fn perm(proto: &str, from: i32, to: i32, v4: &[&str], v6: &[&str]) -> IpPermission {
    let mut p = IpPermission::builder()
        .ip_protocol(proto)
        .from_port(from)
        .to_port(to);
    for c in v4 {
        p = p.ip_ranges(IpRange::builder().cidr_ip(*c).build());
    }
    for c in v6 {
        p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(*c).build());
    }
    p.build()
}
