//! Evaluating one request against a set of identity policies, following
//! "Policy evaluation logic"
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
//! an explicit Deny in any policy wins; otherwise an Allow in any policy
//! allows; otherwise the request is implicitly denied. Statement and policy
//! order never matter.

use std::collections::BTreeMap;

use super::condition::{self, CondResult};
use super::document::{ActionMatch, Effect, PolicyDocument, ResourceMatch, Statement};
use super::matcher::{action_matches, resource_matches};

/// What is being asked: one action on one resource, with whatever request
/// context (condition keys such as `aws:SecureTransport`) the caller knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// A request without condition context.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// Adds a context key (builder style).
    pub fn with_context(mut self, key: impl Into<String>, values: &[&str]) -> Self {
        self.context
            .insert(key.into(), values.iter().map(|s| s.to_string()).collect());
        self
    }
}

/// The answer, in the simulator's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    ImplicitDeny,
    ExplicitDeny,
    /// The answer depends on a condition that cannot be decided from the
    /// request context; `reason` says which.
    Inconclusive {
        reason: String,
    },
}

impl Decision {
    /// The simulator's spelling: `allowed`, `implicitDeny`, `explicitDeny`, `inconclusive`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ImplicitDeny => "implicitDeny",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::Inconclusive { .. } => "inconclusive",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Inconclusive { reason } => write!(f, "inconclusive ({reason})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Which statement of which policy took part in the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    pub policy: String,
    pub sid: Option<String>,
    /// Zero-based position of the statement in its policy.
    pub index: usize,
    pub effect: Effect,
}

/// A decision and the statements behind it: the deciding Deny statements
/// for an explicit deny, the Allow statements for an allow, the undecidable
/// ones for an inconclusive answer, none for an implicit deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    pub matched: Vec<MatchedStatement>,
}

/// Does the statement's Action/NotAction and Resource/NotResource cover
/// the request? (Conditions are decided separately.)
pub(crate) fn statement_applies(st: &Statement, req: &Request) -> bool {
    let action = match &st.action {
        ActionMatch::Action(p) => p.iter().any(|p| action_matches(p, &req.action)),
        ActionMatch::NotAction(p) => !p.iter().any(|p| action_matches(p, &req.action)),
    };
    action
        && match &st.resource {
            ResourceMatch::Resource(p) => p.iter().any(|p| resource_matches(p, &req.resource)),
            ResourceMatch::NotResource(p) => !p.iter().any(|p| resource_matches(p, &req.resource)),
        }
}

/// Evaluates `req` against identity policies given as (name, document)
/// pairs, e.g. `("inline:runner", doc)`.
pub fn evaluate(policies: &[(String, PolicyDocument)], req: &Request) -> Evaluation {
    let mut deny = Vec::new();
    let mut allow = Vec::new();
    let mut maybe_deny = Vec::new();
    let mut maybe_allow = Vec::new();
    let mut reasons: Vec<String> = Vec::new();

    for (name, doc) in policies {
        for (index, st) in doc.statements.iter().enumerate() {
            if !statement_applies(st, req) {
                continue;
            }
            let m = MatchedStatement {
                policy: name.clone(),
                sid: st.sid.clone(),
                index,
                effect: st.effect,
            };
            let cond = match &st.condition {
                None => CondResult::True,
                Some(c) => condition::evaluate(c, &req.context),
            };
            match (st.effect, cond) {
                (_, CondResult::False) => {}
                (Effect::Deny, CondResult::True) => deny.push(m),
                (Effect::Allow, CondResult::True) => allow.push(m),
                (effect, CondResult::Unknown(r)) => {
                    reasons.push(format!("{} statement {}: {r}", name, label(&m)));
                    if effect == Effect::Deny {
                        maybe_deny.push(m);
                    } else {
                        maybe_allow.push(m);
                    }
                }
            }
        }
    }

    if !deny.is_empty() {
        return Evaluation {
            decision: Decision::ExplicitDeny,
            matched: deny,
        };
    }
    if allow.is_empty() && maybe_allow.is_empty() {
        // Denied either way; an undecidable Deny could only make it explicit.
        return Evaluation {
            decision: Decision::ImplicitDeny,
            matched: Vec::new(),
        };
    }
    if !allow.is_empty() && maybe_deny.is_empty() {
        return Evaluation {
            decision: Decision::Allowed,
            matched: allow,
        };
    }
    let mut matched = maybe_deny;
    matched.extend(maybe_allow);
    Evaluation {
        decision: Decision::Inconclusive {
            reason: reasons.join("; "),
        },
        matched,
    }
}

fn label(m: &MatchedStatement) -> String {
    match &m.sid {
        Some(sid) => format!("{sid} (#{})", m.index),
        None => format!("#{}", m.index),
    }
}
