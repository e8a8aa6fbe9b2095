//! `tf.ssh-allowlist`: the SSH rule of `net.ssh-allowlist`, applied to the
//! terraform source before anything is applied.
//!
//! Reads `terraform/*.tf` and `*.tfvars` with hcl-rs and finds the SSH
//! ingress of `aws_security_group` (inline `ingress` blocks),
//! `aws_security_group_rule` (type = "ingress") and
//! `aws_vpc_security_group_ingress_rule`. Source ranges are resolved
//! statically: literals, `var.X` (default and every tfvars value),
//! `local.X`, `each.value` of a `for_each`, both arms of a conditional and
//! list helpers (`toset`, `concat`, ...). Whatever cannot be resolved is a
//! `warn` quoting the expression: a static check must not guess. The
//! allowlist variable itself (`ssh_allowed_cidrs`) is judged too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, TraversalOperator};

use super::net_ssh_allowlist::{
    Allowlist, Tally, configured_allowlist, covers_ssh, describe_ports,
};
use crate::doctor::check::{CheckCtx, CheckFuture, CheckStatus, Outcome, SourceRef};

/// The terraform variable that carries the SSH allowlist in this repo.
pub const ALLOWLIST_VARIABLE: &str = "ssh_allowed_cidrs";

/// Where a resolved value is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In the expression itself (or the `for_each` it iterates).
    Literal,
    /// The default of `variable "NAME"`.
    VarDefault(String),
    /// `NAME = ...` in a tfvars file.
    Tfvars { var: String, file: String },
    /// `locals { NAME = ... }`.
    Local(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Literal => f.write_str("literal"),
            Origin::VarDefault(name) => write!(f, "var.{name} default"),
            Origin::Tfvars { var, file } => write!(f, "var.{var} in {file}"),
            Origin::Local(name) => write!(f, "local.{name}"),
        }
    }
}

/// A resolved value and where it came from (for the evidence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub value: String,
    pub origin: Origin,
}

/// What static resolution of one expression gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub values: Vec<Sourced>,
    /// Expressions that could not be resolved, quoted.
    pub unresolved: Vec<String>,
    /// Variables with neither a default nor a tfvars value: their value is
    /// given at plan time and cannot be known here.
    pub unset: BTreeSet<String>,
    /// Variables the expression read.
    pub vars: BTreeSet<String>,
}

impl Resolved {
    fn merge(&mut self, other: Resolved) {
        self.values.extend(other.values);
        self.unresolved.extend(other.unresolved);
        self.unset.extend(other.unset);
        self.vars.extend(other.vars);
    }
}

/// The parsed terraform directory.
#[derive(Debug, Default)]
pub struct Module {
    /// variable name → default expression.
    pub defaults: BTreeMap<String, Expression>,
    /// variable name → (tfvars file, value).
    pub tfvars: BTreeMap<String, Vec<(String, Expression)>>,
    pub locals: BTreeMap<String, Expression>,
    /// (file, resource type, resource name, body).
    pub resources: Vec<(String, String, String, Body)>,
    /// variable name → the .tf file that declares it.
    pub variable_files: BTreeMap<String, String>,
    /// file name → its text, to find the line of a finding.
    pub texts: BTreeMap<String, String>,
}

/// Why the terraform could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TfReadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid HCL: {message}")]
    Parse { path: PathBuf, message: String },
}

fn label(block: &Block, i: usize) -> Option<&str> {
    block.labels().get(i).map(|l| l.as_str())
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

impl Module {
    /// Reads `dir/*.tf`, `dir/*.tfvars` (the files terraform itself loads,
    /// so `terraform.tfvars.example` is not one of them).
    pub fn load(dir: &Path) -> Result<Self, TfReadError> {
        let mut m = Module::default();
        let entries = std::fs::read_dir(dir).map_err(|source| TfReadError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let is_tf = name.ends_with(".tf");
            let is_vars = name.ends_with(".tfvars");
            if !(is_tf || is_vars) || !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| TfReadError::Read {
                path: path.clone(),
                source,
            })?;
            let body = hcl::parse(&text).map_err(|e| TfReadError::Parse {
                path: path.clone(),
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?;
            m.texts.insert(name.clone(), text);
            if is_vars {
                for a in body.attributes() {
                    m.tfvars
                        .entry(a.key.to_string())
                        .or_default()
                        .push((name.clone(), a.expr.clone()));
                }
            } else {
                m.add_tf(&name, &body);
            }
        }
        Ok(m)
    }

    /// Adds one parsed `.tf` file (public so tests can build a module from text).
    pub fn add_tf(&mut self, file: &str, body: &Body) {
        for b in body.blocks() {
            match b.identifier() {
                "variable" => {
                    if let Some(name) = label(b, 0) {
                        self.variable_files
                            .insert(name.to_string(), file.to_string());
                        if let Some(d) = attr(b.body(), "default") {
                            self.defaults.insert(name.to_string(), d.clone());
                        }
                    }
                }
                "locals" => {
                    for a in b.body().attributes() {
                        self.locals.insert(a.key.to_string(), a.expr.clone());
                    }
                }
                "resource" => {
                    if let (Some(t), Some(n)) = (label(b, 0), label(b, 1)) {
                        self.resources.push((
                            file.to_string(),
                            t.to_string(),
                            n.to_string(),
                            b.body().clone(),
                        ));
                    }
                }
                _ => {}
            }
        }
    }

    /// Where a finding with this origin is written: the tfvars line or the
    /// variable's declaration, else the resource the rule belongs to.
    fn locate(&self, origin: &Origin, resource: Option<(&str, &str, &str)>) -> Option<SourceRef> {
        let at = |file: &str, pred: &dyn Fn(&str) -> bool| SourceRef {
            file: format!("terraform/{file}"),
            line: self
                .texts
                .get(file)
                .and_then(|t| crate::sarif::line_where(t, pred)),
        };
        let assigns = |name: &str| {
            let name = name.to_string();
            move |l: &str| {
                l.trim_start()
                    .strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            }
        };
        match (origin, resource) {
            (Origin::Tfvars { var, file }, _) => Some(at(file, &assigns(var))),
            (Origin::VarDefault(name), _) => {
                let file = self.variable_files.get(name)?;
                let header = format!("\"{name}\"");
                Some(at(file, &|l: &str| {
                    l.trim_start().starts_with("variable") && l.contains(&header)
                }))
            }
            (_, Some((file, rtype, rname))) => {
                let (t, n) = (format!("\"{rtype}\""), format!("\"{rname}\""));
                Some(at(file, &|l: &str| {
                    l.trim_start().starts_with("resource") && l.contains(&t) && l.contains(&n)
                }))
            }
            (Origin::Local(name), None) => self
                .texts
                .iter()
                .find(|(f, t)| f.ends_with(".tf") && t.lines().any(assigns(name)))
                .map(|(f, _)| at(f, &assigns(name))),
            (Origin::Literal, None) => None,
        }
    }

    /// Every static value of variable `name`: its default and each tfvars value.
    fn variable(&self, name: &str, depth: usize) -> Resolved {
        let mut r = Resolved::default();
        r.vars.insert(name.to_string());
        let mut any = false;
        if let Some(d) = self.defaults.get(name) {
            any = true;
            r.merge(self.resolve_as(
                d,
                &Origin::VarDefault(name.to_string()),
                None,
                depth + 1,
            ));
        }
        for (file, e) in self.tfvars.get(name).into_iter().flatten() {
            any = true;
            let origin = Origin::Tfvars {
                var: name.to_string(),
                file: file.clone(),
            };
            r.merge(self.resolve_as(e, &origin, None, depth + 1));
        }
        if !any {
            r.unset.insert(name.to_string());
        }
        r
    }

    /// Resolves an expression to the flat list of strings it can hold.
    /// `each` is the enclosing resource's `for_each` expression.
    pub fn resolve(&self, e: &Expression, each: Option<&Expression>) -> Resolved {
        self.resolve_as(e, &Origin::Literal, each, 0)
    }

    fn resolve_as(
        &self,
        e: &Expression,
        origin: &Origin,
        each: Option<&Expression>,
        depth: usize,
    ) -> Resolved {
        let mut r = Resolved::default();
        let unresolved = |r: &mut Resolved| r.unresolved.push(e.to_string());
        if depth > 16 {
            unresolved(&mut r);
            return r;
        }
        match e {
            Expression::Null => {}
            Expression::String(s) => r.values.push(Sourced {
                value: s.clone(),
                origin: origin.clone(),
            }),
            Expression::Number(n) => r.values.push(Sourced {
                value: n.to_string(),
                origin: origin.clone(),
            }),
            Expression::TemplateExpr(t) => {
                let s = t.to_string();
                // A quoted string without interpolation is a literal.
                let inner = s.trim_matches('"');
                if s.starts_with('"') && !inner.contains("${") && !inner.contains("%{") {
                    r.values.push(Sourced {
                        value: inner.to_string(),
                        origin: origin.clone(),
                    });
                } else {
                    unresolved(&mut r);
                }
            }
            Expression::Array(items) => {
                for i in items {
                    r.merge(self.resolve_as(i, origin, each, depth + 1));
                }
            }
            Expression::Parenthesis(inner) => {
                r.merge(self.resolve_as(inner, origin, each, depth + 1))
            }
            Expression::Conditional(c) => {
                r.merge(self.resolve_as(&c.true_expr, origin, each, depth + 1));
                r.merge(self.resolve_as(&c.false_expr, origin, each, depth + 1));
            }
            Expression::FuncCall(f)
                if matches!(
                    f.name.to_string().as_str(),
                    "toset"
                        | "tolist"
                        | "concat"
                        | "distinct"
                        | "compact"
                        | "flatten"
                        | "sort"
                        | "tostring"
                ) =>
            {
                for a in &f.args {
                    r.merge(self.resolve_as(a, origin, each, depth + 1));
                }
            }
            Expression::Traversal(t) => {
                let root = match &t.expr {
                    Expression::Variable(v) => v.to_string(),
                    _ => String::new(),
                };
                let first = match t.operators.first() {
                    Some(TraversalOperator::GetAttr(id)) => Some(id.to_string()),
                    _ => None,
                };
                match (root.as_str(), first, t.operators.len()) {
                    ("var", Some(name), 1) => r.merge(self.variable(&name, depth)),
                    ("local", Some(name), 1) => match self.locals.get(&name) {
                        Some(l) => {
                            r.merge(self.resolve_as(l, &Origin::Local(name.clone()), each, depth + 1))
                        }
                        None => unresolved(&mut r),
                    },
                    ("each", Some(k), 1) if k == "value" || k == "key" => match each {
                        Some(fe) => r.merge(self.resolve_as(fe, origin, None, depth + 1)),
                        None => unresolved(&mut r),
                    },
                    _ => unresolved(&mut r),
                }
            }
            _ => unresolved(&mut r),
        }
        r
    }

    /// A port or protocol: exactly one static value, or the quoted expression.
    fn scalar(
        &self,
        body: &Body,
        key: &str,
        each: Option<&Expression>,
    ) -> Result<Option<String>, String> {
        let Some(e) = attr(body, key) else {
            return Ok(None);
        };
        let r = self.resolve(e, each);
        let mut vals: Vec<String> = r.values.into_iter().map(|s| s.value).collect();
        vals.dedup();
        if r.unresolved.is_empty() && r.unset.is_empty() && vals.len() == 1 {
            Ok(vals.pop())
        } else {
            Err(format!("{key} = {e}"))
        }
    }
}

/// One SSH-relevant rule found in the source.
struct Rule<'a> {
    /// `network.tf: aws_security_group.host ingress`.
    place: String,
    /// (file, resource type, resource name), to find its line.
    resource: (&'a str, &'a str, &'a str),
    body: &'a Body,
    protocol_key: &'static str,
    source_keys: &'static [&'static str],
    each: Option<&'a Expression>,
}

/// Applies the allowlist to every SSH ingress in `module`.
pub fn judge_module(module: &Module, allow: &Allowlist) -> Tally {
    let mut tally = Tally::default();
    let mut rules: Vec<Rule> = Vec::new();
    for (file, rtype, rname, body) in &module.resources {
        let each = attr(body, "for_each");
        match rtype.as_str() {
            "aws_security_group" => {
                for b in body.blocks() {
                    match b.identifier() {
                        "ingress" => rules.push(Rule {
                            place: format!("{file}: {rtype}.{rname} ingress"),
                            resource: (file.as_str(), rtype.as_str(), rname.as_str()),
                            body: b.body(),
                            protocol_key: "protocol",
                            source_keys: &["cidr_blocks", "ipv6_cidr_blocks"],
                            each,
                        }),
                        "dynamic" if label(b, 0) == Some("ingress") => {
                            if let Some(content) =
                                b.body().blocks().find(|c| c.identifier() == "content")
                            {
                                rules.push(Rule {
                                    place: format!("{file}: {rtype}.{rname} dynamic ingress"),
                                    resource: (file.as_str(), rtype.as_str(), rname.as_str()),
                                    body: content.body(),
                                    protocol_key: "protocol",
                                    source_keys: &["cidr_blocks", "ipv6_cidr_blocks"],
                                    each: None,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            "aws_security_group_rule" => {
                let kind = module.scalar(body, "type", each);
                if matches!(kind, Ok(Some(ref k)) if k == "ingress") {
                    rules.push(Rule {
                        place: format!("{file}: {rtype}.{rname}"),
                        resource: (file.as_str(), rtype.as_str(), rname.as_str()),
                        body,
                        protocol_key: "protocol",
                        source_keys: &["cidr_blocks", "ipv6_cidr_blocks"],
                        each,
                    });
                } else if let Err(expr) = kind {
                    tally.unverifiable(format!(
                        "{file}: {rtype}.{rname}: cannot tell ingress from egress: {expr}"
                    ));
                }
            }
            "aws_vpc_security_group_ingress_rule" => rules.push(Rule {
                place: format!("{file}: {rtype}.{rname}"),
                resource: (file.as_str(), rtype.as_str(), rname.as_str()),
                body,
                protocol_key: "ip_protocol",
                source_keys: &["cidr_ipv4", "cidr_ipv6"],
                each,
            }),
            _ => {}
        }
    }

    let mut vars_seen: BTreeSet<String> = BTreeSet::new();
    for rule in rules {
        let proto = module.scalar(rule.body, rule.protocol_key, rule.each);
        let from = module.scalar(rule.body, "from_port", rule.each);
        let to = module.scalar(rule.body, "to_port", rule.each);
        let (proto, from, to) = match (proto, from, to) {
            (Ok(p), Ok(f), Ok(t)) => (
                p.unwrap_or_else(|| "-1".to_string()),
                f.and_then(|s| s.parse::<i64>().ok()),
                t.and_then(|s| s.parse::<i64>().ok()),
            ),
            (p, f, t) => {
                let exprs: Vec<String> =
                    [p.err(), f.err(), t.err()].into_iter().flatten().collect();
                tally.unverifiable(format!(
                    "{}: cannot tell whether it opens port 22: {}",
                    rule.place,
                    exprs.join(", ")
                ));
                continue;
            }
        };
        if !covers_ssh(&proto, from, to) {
            continue;
        }
        let name = format!("{} {}", rule.place, describe_ports(&proto, from, to));
        for key in rule.source_keys {
            let Some(e) = attr(rule.body, key) else {
                continue;
            };
            let r = module.resolve(e, rule.each);
            vars_seen.extend(r.vars.iter().cloned());
            for v in &r.values {
                if tally.judge(allow, &format!("{name} [{key} via {}]", v.origin), &v.value) {
                    tally
                        .locations
                        .extend(module.locate(&v.origin, Some(rule.resource)));
                }
            }
            for u in &r.unresolved {
                tally.unverifiable(format!(
                    "{name}: {key} = {e}: cannot resolve `{u}` statically"
                ));
            }
            for var in &r.unset {
                tally.evidence.push(format!(
                    "{name}: {key} comes from var.{var}, which has no default or tfvars value \
                     (given at plan time: the `openpay tf plan` risk gate and net.ssh-allowlist check it)"
                ));
            }
        }
    }

    // The allowlist variable's own values, when no rule already judged them.
    if !vars_seen.contains(ALLOWLIST_VARIABLE) {
        let r = module.variable(ALLOWLIST_VARIABLE, 0);
        for v in &r.values {
            let label = format!("variable {ALLOWLIST_VARIABLE} [{}]", v.origin);
            if tally.judge(allow, &label, &v.value) {
                tally.locations.extend(module.locate(&v.origin, None));
            }
        }
        for u in &r.unresolved {
            tally.unverifiable(format!(
                "variable {ALLOWLIST_VARIABLE}: cannot resolve `{u}` statically"
            ));
        }
    }
    tally
}

/// The registered check fn.
pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(check(ctx))
}

/// The check.
pub async fn check(ctx: CheckCtx) -> Outcome {
    let root = ctx
        .options
        .repo_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = root.join("terraform");
    if !dir.is_dir() {
        return Outcome::skip(format!("no terraform/ directory in {}", root.display()));
    }
    let allow = match configured_allowlist(&ctx) {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };
    let module = match tokio::task::spawn_blocking(move || Module::load(&dir)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            return Outcome::fail(e.to_string()).with_remediation(
                "fix the file (`terraform fmt` / `terraform validate` point at the line)",
            );
        }
        Err(e) => return Outcome::fail(format!("reading terraform/ failed: {e}")),
    };
    let mut tally = judge_module(&module, &allow);
    tally.evidence.insert(
        0,
        format!(
            "allowlist: {}",
            allow
                .entries()
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let outcome = match tally.status() {
        CheckStatus::Fail => Outcome::fail(format!(
            "{} SSH source range(s) in terraform/ outside the allowlist",
            tally.findings
        ))
        .with_remediation(format!(
            "narrow the offending cidr_blocks / {ALLOWLIST_VARIABLE} values (lines above) to ranges inside \
             [doctor] allowed_ssh_cidrs; never 0.0.0.0/0 or ::/0 on port 22"
        )),
        CheckStatus::Warn => Outcome::warn(format!(
            "{} SSH source(s) in terraform/ cannot be resolved statically",
            tally.unverifiable
        ))
        .with_remediation("use literal CIDRs or var.ssh_allowed_cidrs for SSH ingress so it can be checked before apply"),
        _ if tally.ssh_sources == 0 => Outcome::pass("no static SSH source range in terraform/ outside the allowlist"),
        _ => Outcome::pass(format!(
            "all {} SSH source range(s) in terraform/ within the allowlist",
            tally.ssh_sources
        )),
    };
    // one place per offending line, however many values it holds
    let mut locations = std::mem::take(&mut tally.locations);
    locations.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    locations.dedup();
    outcome
        .with_evidence(tally.evidence)
        .with_locations(locations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(tf: &str, tfvars: &str) -> Module {
        let mut m = Module::default();
        m.add_tf("main.tf", &hcl::parse(tf).unwrap());
        for a in hcl::parse(tfvars).unwrap().attributes() {
            m.tfvars
                .entry(a.key.to_string())
                .or_default()
                .push(("terraform.tfvars".into(), a.expr.clone()));
        }
        m
    }

    fn allow() -> Allowlist {
        Allowlist::parse(&["197.210.77.0/24".to_string()]).unwrap()
    }

    #[test]
    fn inline_ingress_open_to_world_fails() {
        let m = module(
            r#"resource "aws_security_group" "h" {
                 ingress {
                   from_port = 22
                   to_port = 22
                   protocol = "tcp"
                   cidr_blocks = ["0.0.0.0/0"]
                 }
                 ingress {
                   from_port = 443
                   to_port = 443
                   protocol = "tcp"
                   cidr_blocks = ["0.0.0.0/0"]
                 }
               }"#,
            "",
        );
        let t = judge_module(&m, &allow());
        assert_eq!(t.status(), CheckStatus::Fail);
        assert_eq!(t.findings, 1, "{:?}", t.evidence);
        assert!(
            t.evidence
                .iter()
                .any(|l| l.contains("0.0.0.0/0") && l.contains("WORLD")),
            "{:?}",
            t.evidence
        );
    }

    #[test]
    fn for_each_over_variable_uses_default_and_tfvars() {
        let tf = r#"
            variable "ssh_allowed_cidrs" { default = ["197.210.77.0/24"] }
            resource "aws_vpc_security_group_ingress_rule" "ssh" {
              for_each    = toset(var.ssh_allowed_cidrs)
              ip_protocol = "tcp"
              from_port   = 22
              to_port     = 22
              cidr_ipv4   = strcontains(each.value, ":") ? null : each.value
            }"#;
        let t = judge_module(&module(tf, ""), &allow());
        assert_eq!(t.status(), CheckStatus::Pass, "{:?}", t.evidence);
        assert_eq!(t.ssh_sources, 1);
        let t = judge_module(
            &module(tf, r#"ssh_allowed_cidrs = ["10.0.0.0/8"]"#),
            &allow(),
        );
        assert_eq!(t.status(), CheckStatus::Fail, "{:?}", t.evidence);
        assert!(
            t.evidence
                .iter()
                .any(|l| l.contains("10.0.0.0/8") && l.contains("terraform.tfvars")),
            "{:?}",
            t.evidence
        );
    }

    #[test]
    fn unresolvable_source_warns_with_expression() {
        let tf = r#"
            resource "aws_security_group_rule" "ssh" {
              type        = "ingress"
              protocol    = "-1"
              from_port   = 0
              to_port     = 0
              cidr_blocks = [data.http.myip.body]
            }"#;
        let t = judge_module(&module(tf, ""), &allow());
        assert_eq!(t.status(), CheckStatus::Warn, "{:?}", t.evidence);
        assert!(
            t.evidence.iter().any(|l| l.contains("data.http.myip.body")),
            "{:?}",
            t.evidence
        );
    }

    #[test]
    fn unset_variable_is_a_note_not_a_finding() {
        let tf = r#"
            variable "ssh_allowed_cidrs" { type = list(string) }
            resource "aws_vpc_security_group_ingress_rule" "ssh" {
              for_each    = toset(var.ssh_allowed_cidrs)
              ip_protocol = "tcp"
              from_port   = 22
              to_port     = 22
              cidr_ipv4   = each.value
            }"#;
        let t = judge_module(&module(tf, ""), &allow());
        assert_eq!(t.status(), CheckStatus::Pass, "{:?}", t.evidence);
        assert!(
            t.evidence
                .iter()
                .any(|l| l.contains("no default or tfvars value")),
            "{:?}",
            t.evidence
        );
    }

    #[test]
    fn egress_and_other_ports_are_ignored() {
        let tf = r#"
            resource "aws_security_group_rule" "out" {
              type        = "egress"
              protocol    = "-1"
              from_port   = 0
              to_port     = 0
              cidr_blocks = ["0.0.0.0/0"]
            }
            resource "aws_vpc_security_group_ingress_rule" "web" {
              ip_protocol = "tcp"
              from_port   = 443
              to_port     = 443
              cidr_ipv4   = "0.0.0.0/0"
            }"#;
        let t = judge_module(&module(tf, ""), &allow());
        assert_eq!(t.status(), CheckStatus::Pass, "{:?}", t.evidence);
        assert_eq!(t.ssh_sources, 0);
    }

    #[test]
    fn allowlist_variable_judged_even_when_unused() {
        let t = judge_module(
            &module(r#"variable "ssh_allowed_cidrs" { default = ["::/0"] }"#, ""),
            &allow(),
        );
        assert_eq!(t.status(), CheckStatus::Fail, "{:?}", t.evidence);
    }
}
