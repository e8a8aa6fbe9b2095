//! `net.ssh-allowlist`: every live ingress rule that reaches TCP 22 on the
//! host's security groups lies inside `[doctor] allowed_ssh_cidrs`.
//!
//! Also holds the rule itself ([`Allowlist`], [`covers_ssh`]) because
//! `tf.ssh-allowlist` applies the very same rule to the terraform source:
//! the two checks must never disagree about what "open" means.

use ipnet::IpNet;

use super::aws_identity::{clients, sdk_error_line};
use super::instance::{self, Found, Unresolved};
use crate::doctor::check::{CheckCtx, CheckFuture, CheckStatus, Outcome, SourceRef};
use crate::config::OUTPUTS_FILE;
use crate::infra::cidr::{CidrError, parse_cidr, within};

/// The fix when no allowlist is configured.
pub const EMPTY_ALLOWLIST_FIX: &str = "set the networks allowed to reach SSH in openpay.toml, e.g.\n  [doctor]\n  allowed_ssh_cidrs = [\"197.210.77.0/24\"]\n(or OPENPAY_DOCTOR_ALLOWED_SSH_CIDRS=197.210.77.0/24); `openpay cidr '197.210.77.*'` turns a pattern into a CIDR";

/// The configured networks SSH may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

/// What the rule says about one source range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Inside this allowlist entry.
    Allowed(IpNet),
    /// 0.0.0.0/0 or ::/0 (or any /0): always a finding.
    World,
    /// A valid range not inside any allowlist entry.
    Outside,
    /// Not a CIDR at all.
    Invalid(String),
}

impl Verdict {
    pub fn is_finding(&self) -> bool {
        !matches!(self, Verdict::Allowed(_))
    }

    /// The words after the range in an evidence line.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Allowed(net) => format!("ok, within {net}"),
            Verdict::World => "OPEN TO THE WORLD".to_string(),
            Verdict::Outside => "outside the allowlist".to_string(),
            Verdict::Invalid(why) => format!("not a CIDR ({why})"),
        }
    }
}

/// A source range as found in a rule. Patterns and bare addresses are
/// read by [`parse_cidr`]; a range with host bits set (which AWS itself
/// normalises) is judged as its network, never widened further.
pub fn parse_range(s: &str) -> Result<IpNet, String> {
    match parse_cidr(s) {
        Ok(net) => Ok(net),
        Err(CidrError::HostBits { suggestion, .. }) => Ok(suggestion),
        Err(e) => Err(e.to_string()),
    }
}

impl Allowlist {
    /// Parses `[doctor] allowed_ssh_cidrs` (CIDRs, addresses or patterns
    /// like `197.210.77.*`). An entry with host bits set is refused: it
    /// usually means a typo and would silently widen access.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let nets = entries
            .iter()
            .map(|e| parse_cidr(e).map_err(|why| format!("[doctor] allowed_ssh_cidrs: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn entries(&self) -> &[IpNet] {
        &self.nets
    }

    /// The rule: /0 always fails (even if someone allowlisted it),
    /// otherwise the range must be inside one entry of the same family.
    pub fn judge(&self, range: &str) -> Verdict {
        let net = match parse_range(range) {
            Ok(n) => n,
            Err(why) => return Verdict::Invalid(why),
        };
        if net.prefix_len() == 0 {
            return Verdict::World;
        }
        match self
            .nets
            .iter()
            .find(|a| within(&net, std::slice::from_ref(a)))
        {
            Some(a) => Verdict::Allowed(*a),
            None => Verdict::Outside,
        }
    }
}

/// Whether a rule with this protocol and port range lets TCP 22 in.
/// Protocol `-1`/`all` is every protocol and port; `tcp`/`6` with no ports
/// means every port. `from`/`to` of -1 mean "all" for tcp as well.
pub fn covers_ssh(protocol: &str, from: Option<i64>, to: Option<i64>) -> bool {
    match protocol.trim().to_ascii_lowercase().as_str() {
        "-1" | "all" => true,
        "tcp" | "6" => match (from, to) {
            (Some(f), Some(t)) if f >= 0 && t >= 0 => f <= 22 && 22 <= t,
            _ => true,
        },
        _ => false,
    }
}

/// How a rule's protocol and ports read in evidence.
pub fn describe_ports(protocol: &str, from: Option<i64>, to: Option<i64>) -> String {
    match protocol {
        "-1" | "all" => "all traffic (protocol -1)".to_string(),
        p => match (from, to) {
            (Some(f), Some(t)) if f == t => format!("{p} {f}"),
            (Some(f), Some(t)) => format!("{p} {f}-{t}"),
            _ => format!("{p} all ports"),
        },
    }
}

/// Findings and notes gathered over all rules, turned into one outcome.
#[derive(Debug, Default)]
pub struct Tally {
    pub evidence: Vec<String>,
    /// Where each finding is written, when it is in a file (terraform).
    pub locations: Vec<SourceRef>,
    pub findings: usize,
    pub unverifiable: usize,
    pub ssh_sources: usize,
}

impl Tally {
    /// Judges one source range of one SSH rule; `rule` names where it is.
    /// True when the range is a finding.
    pub fn judge(&mut self, allow: &Allowlist, rule: &str, range: &str) -> bool {
        let v = allow.judge(range);
        self.ssh_sources += 1;
        if v.is_finding() {
            self.findings += 1;
        }
        self.evidence
            .push(format!("{rule} from {range}: {}", v.describe()));
        v.is_finding()
    }

    /// A source that cannot be checked (prefix list, unresolved expression).
    pub fn unverifiable(&mut self, line: String) {
        self.unverifiable += 1;
        self.evidence.push(line);
    }

    pub fn status(&self) -> CheckStatus {
        if self.findings > 0 {
            CheckStatus::Fail
        } else if self.unverifiable > 0 {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        }
    }
}

/// `[doctor] allowed_ssh_cidrs`, or the failing outcome that says how to
/// set it (empty or unreadable allowlist). Shared with `tf.ssh-allowlist`.
#[allow(clippy::result_large_err)]
pub fn configured_allowlist(ctx: &CheckCtx) -> Result<Allowlist, Outcome> {
    match Allowlist::parse(&ctx.config.doctor.allowed_ssh_cidrs) {
        Ok(a) if a.is_empty() => Err(Outcome::fail(
            "no SSH allowlist configured ([doctor] allowed_ssh_cidrs is empty)",
        )
        .with_remediation(EMPTY_ALLOWLIST_FIX)),
        Ok(a) => Ok(a),
        Err(why) => Err(Outcome::fail(why).with_remediation(EMPTY_ALLOWLIST_FIX)),
    }
}

/// The registered check fn.
pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(check(ctx))
}

/// The instances whose security groups are judged, in [`instance`]'s
/// order, and the addresses no single instance could be named for; `Err`
/// is the outcome when there is nothing to judge at all.
#[allow(clippy::result_large_err)]
async fn targets(
    ctx: &CheckCtx,
    ec2: &aws_sdk_ec2::Client,
) -> Result<(Vec<Found>, Vec<Unresolved>), Outcome> {
    if let Some(id) = &ctx.options.instance_id {
        return Ok((vec![instance::from_flag(id)], Vec::new()));
    }
    if ctx.options.hosts.is_empty() {
        return match instance::this_machine().await {
            Ok(found) => Ok((vec![found], Vec::new())),
            Err(why) => Err(Outcome::skip(format!(
                "no security groups to check: {why}, and neither --instance-id nor [doctor] security_group_ids is set"
            ))
            .with_remediation("pass --instance-id i-... or set [doctor] security_group_ids")),
        };
    }
    let outputs_file = ctx
        .options
        .repo_dir
        .clone()
        .unwrap_or_default()
        .join(OUTPUTS_FILE);
    let (mut found, mut unresolved) = (Vec::new(), Vec::new());
    for address in &ctx.options.hosts {
        if let Some(f) = instance::from_outputs(&outputs_file, address) {
            found.push(f);
            continue;
        }
        match instance::by_address(ec2, address).await {
            Ok(Ok(f)) => found.push(f),
            Ok(Err(u)) => unresolved.push(u),
            Err(why) => {
                return Err(Outcome::fail(why).with_remediation(
                    "check the region and that the identity may call ec2:DescribeInstances, or pass --instance-id",
                ));
            }
        }
    }
    Ok((found, unresolved))
}

/// The security groups of one instance (its own and its interfaces').
#[allow(clippy::result_large_err)]
async fn groups_of(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<Vec<String>, Outcome> {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| {
            Outcome::fail(format!(
                "ec2:DescribeInstances for {id} failed: {}",
                sdk_error_line(&e)
            ))
            .with_remediation(
                "check the instance id, the region, and that the identity may call ec2:DescribeInstances",
            )
        })?;
    let mut ids: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| {
            i.security_groups()
                .iter()
                .filter_map(|g| g.group_id())
                .chain(
                    i.network_interfaces()
                        .iter()
                        .flat_map(|n| n.groups())
                        .filter_map(|g| g.group_id()),
                )
        })
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The security groups to judge, with the evidence of where they came
/// from in `tally`: --instance-id first, then DESIGN.md's
/// `security_group_ids` (an override of "the groups of the instance being
/// checked"), then the instances [`targets`] finds. `Err` is the outcome
/// when no group can be named.
#[allow(clippy::result_large_err)]
async fn group_ids(
    ctx: &CheckCtx,
    ec2: &aws_sdk_ec2::Client,
    tally: &mut Tally,
) -> Result<Vec<String>, Outcome> {
    let configured = &ctx.config.doctor.security_group_ids;
    if ctx.options.instance_id.is_none() && !configured.is_empty() {
        tally.evidence.push(format!(
            "groups from [doctor] security_group_ids: {}",
            configured.join(", ")
        ));
        return Ok(configured.clone());
    }
    let mut group_ids: Vec<String> = Vec::new();
    let (found, unresolved) = targets(ctx, ec2).await?;
    if found.is_empty() {
        let lines: Vec<String> = unresolved
            .iter()
            .map(|u| format!("{}: {}", u.address, u.why))
            .collect();
        return Err(Outcome::warn(format!(
            "cannot tell which instance to check: {}",
            lines.join("; ")
        ))
        .with_evidence(lines)
        .with_remediation(instance::PASS_INSTANCE_ID));
    }
    for u in &unresolved {
        tally.unverifiable(format!(
            "{}: {}; its groups are not checked ({})",
            u.address,
            u.why,
            instance::PASS_INSTANCE_ID
        ));
    }
    for f in found {
        tally.evidence.push(f.how.clone());
        let mut ids = f.known_groups.clone();
        if !f.instance_id.is_empty() {
            match groups_of(ec2, &f.instance_id).await {
                Ok(g) if g.is_empty() && ids.is_empty() => {
                    return Err(Outcome::fail(format!(
                        "instance {} has no security groups or was not found",
                        f.instance_id
                    ))
                    .with_evidence(std::mem::take(&mut tally.evidence))
                    .with_remediation(
                        "check the instance id and region (AWS_REGION / [aws] region)",
                    ));
                }
                Ok(g) => ids.extend(g),
                Err(outcome) => {
                    return Err(outcome.with_evidence(std::mem::take(&mut tally.evidence)));
                }
            }
            ids.sort();
            ids.dedup();
            tally.evidence.push(format!(
                "groups of instance {}: {}",
                f.instance_id,
                ids.join(", ")
            ));
        } else {
            tally
                .evidence
                .push(format!("groups from outputs: {}", ids.join(", ")));
        }
        group_ids.extend(ids);
    }
    group_ids.sort();
    group_ids.dedup();
    Ok(group_ids)
}

/// The check.
pub async fn check(ctx: CheckCtx) -> Outcome {
    let aws = match clients(&ctx) {
        Ok(aws) => aws,
        Err(outcome) => return outcome,
    };
    let allow = match configured_allowlist(&ctx) {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };
    let ec2 = aws.ec2();

    let mut tally = Tally::default();
    let group_ids = match group_ids(&ctx, &ec2, &mut tally).await {
        Ok(ids) => ids,
        Err(outcome) => return outcome,
    };

    let groups = match ec2
        .describe_security_groups()
        .set_group_ids(Some(group_ids.clone()))
        .send()
        .await
    {
        Ok(out) => out.security_groups().to_vec(),
        Err(e) => {
            return Outcome::fail(format!(
                "ec2:DescribeSecurityGroups for {} failed: {}",
                group_ids.join(", "),
                sdk_error_line(&e)
            ))
            .with_remediation(
                "check the group ids and that the identity may call ec2:DescribeSecurityGroups",
            );
        }
    };

    tally.evidence.push(format!(
        "allowlist: {}",
        allow
            .entries()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for g in &groups {
        let gid = g.group_id().unwrap_or("?");
        for p in g.ip_permissions() {
            let proto = p.ip_protocol().unwrap_or("-1");
            let (from, to) = (p.from_port().map(i64::from), p.to_port().map(i64::from));
            if !covers_ssh(proto, from, to) {
                continue;
            }
            let rule = format!("{gid} ingress {}", describe_ports(proto, from, to));
            for r in p.ip_ranges() {
                tally.judge(&allow, &rule, r.cidr_ip().unwrap_or("?"));
            }
            for r in p.ipv6_ranges() {
                tally.judge(&allow, &rule, r.cidr_ipv6().unwrap_or("?"));
            }
            for pl in p.prefix_list_ids() {
                tally.unverifiable(format!(
                    "{rule} from prefix list {}: cannot verify its entries",
                    pl.prefix_list_id().unwrap_or("?")
                ));
            }
            for pair in p.user_id_group_pairs() {
                tally.evidence.push(format!(
                    "{rule} from security group {}: ok, not an address range",
                    pair.group_id().unwrap_or("?")
                ));
            }
        }
    }
    let missing: Vec<&String> = group_ids
        .iter()
        .filter(|id| !groups.iter().any(|g| g.group_id() == Some(id.as_str())))
        .collect();
    for id in &missing {
        tally.unverifiable(format!("{id}: not returned by DescribeSecurityGroups"));
    }

    let n = groups.len();
    let outcome = match tally.status() {
        CheckStatus::Fail => Outcome::fail(format!(
            "{} SSH source range(s) outside the allowlist in {n} security group(s)",
            tally.findings
        ))
        .with_remediation(
            "remove or narrow the offending ingress rules (the lines marked above), e.g. \
             `aws ec2 revoke-security-group-ingress --group-id GROUP --protocol tcp --port 22 --cidr RANGE`, \
             then manage SSH ingress only through terraform's ssh_allowed_cidrs",
        ),
        CheckStatus::Warn => Outcome::warn(format!(
            "{} SSH source(s) could not be verified in {n} security group(s)",
            tally.unverifiable
        )),
        _ if tally.ssh_sources == 0 => {
            Outcome::pass(format!("no ingress rule opens SSH in {n} security group(s)"))
        }
        _ => Outcome::pass(format!(
            "all {} SSH source range(s) within the allowlist in {n} security group(s)",
            tally.ssh_sources
        )),
    };
    outcome.with_evidence(tally.evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(v: &[&str]) -> Allowlist {
        Allowlist::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn ssh_coverage_table() {
        let cases: &[(&str, Option<i64>, Option<i64>, bool)] = &[
            ("tcp", Some(22), Some(22), true),
            ("tcp", Some(0), Some(65535), true),
            ("tcp", Some(20), Some(23), true),
            ("tcp", Some(23), Some(80), false),
            ("tcp", Some(443), Some(443), false),
            ("6", Some(22), Some(22), true),
            ("-1", None, None, true),
            ("-1", Some(-1), Some(-1), true),
            ("all", None, None, true),
            ("udp", Some(22), Some(22), false),
            ("icmp", Some(-1), Some(-1), false),
            ("tcp", None, None, true),
            ("TCP", Some(22), Some(22), true),
        ];
        for (p, f, t, want) in cases {
            assert_eq!(covers_ssh(p, *f, *t), *want, "{p} {f:?}-{t:?}");
        }
    }

    #[test]
    fn judge_table() {
        let a = allow(&["197.210.77.0/24", "2001:db8::/32"]);
        assert_eq!(
            a.judge("197.210.77.0/24"),
            Verdict::Allowed("197.210.77.0/24".parse().unwrap())
        );
        assert!(matches!(a.judge("197.210.77.5/32"), Verdict::Allowed(_)));
        assert!(matches!(a.judge("197.210.77.5"), Verdict::Allowed(_)));
        assert_eq!(a.judge("197.210.0.0/16"), Verdict::Outside);
        assert_eq!(a.judge("10.0.0.0/8"), Verdict::Outside);
        assert_eq!(a.judge("0.0.0.0/0"), Verdict::World);
        assert_eq!(a.judge("::/0"), Verdict::World);
        assert!(matches!(a.judge("2001:db8:1::/48"), Verdict::Allowed(_)));
        assert_eq!(a.judge("2001:db9::/32"), Verdict::Outside);
        assert!(matches!(a.judge("garbage"), Verdict::Invalid(_)));
    }

    #[test]
    fn world_fails_even_when_allowlisted() {
        let a = allow(&["0.0.0.0/0"]);
        assert_eq!(a.judge("0.0.0.0/0"), Verdict::World);
    }

    #[test]
    fn allowlist_refuses_host_bits_and_garbage() {
        let e = Allowlist::parse(&["10.0.0.5/24".to_string()]).unwrap_err();
        assert!(e.contains("10.0.0.0/24"), "{e}");
        let e = Allowlist::parse(&["197.210.77.x".to_string()]).unwrap_err();
        assert!(e.contains("197.210.77.x"), "{e}");
        // Patterns are accepted, as `openpay cidr` reads them.
        let a = Allowlist::parse(&["197.210.77.*".to_string()]).unwrap();
        assert_eq!(a.entries(), &["197.210.77.0/24".parse::<IpNet>().unwrap()]);
    }
}
