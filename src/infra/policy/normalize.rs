//! The normal form `iam drift` compares: every statement broken into
//! atoms, one per (effect, action, resource, condition), so that statement
//! order, `"Action": "x"` vs `["x"]`, key order, whitespace, Sids, the way
//! grants are split across statements, duplicates and action case all
//! disappear before two policies are compared.
//!
//! `NotAction`/`NotResource` lists cannot be split (their meaning is "all
//! but these"), so they stay whole, sorted and de-duplicated.

use serde_json::Value;

use super::document::{ActionMatch, Effect, PolicyDocument, ResourceMatch};
use super::matcher::{action_covers, resource_covers};

/// One side of an atom: a single pattern, or an "all except" set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Is(String),
    Not(Vec<String>),
}

/// The smallest unit of a grant or a denial. Equality is semantic:
/// actions are compared lower-cased, conditions in canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom {
    pub effect: Effect,
    pub action: Part,
    pub resource: Part,
    /// Canonical JSON of the Condition block (keys sorted, value lists
    /// sorted and de-duplicated), if any.
    pub condition: Option<String>,
}

/// An atom and where it was written, for a readable diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedAtom {
    pub atom: Atom,
    pub policy: String,
    pub sid: Option<String>,
    pub index: usize,
    /// The action as written (the atom holds it lower-cased).
    pub action_as_written: Part,
}

/// Breaks a document into atoms, in statement order.
pub fn atoms(policy: &str, doc: &PolicyDocument) -> Vec<SourcedAtom> {
    let mut out = Vec::new();
    for (index, st) in doc.statements.iter().enumerate() {
        let condition = st.condition.as_ref().map(canonical_condition);
        let actions: Vec<(Part, Part)> = match &st.action {
            ActionMatch::Action(v) => v
                .iter()
                .map(|a| (Part::Is(a.to_ascii_lowercase()), Part::Is(a.clone())))
                .collect(),
            ActionMatch::NotAction(v) => vec![(
                Part::Not(sorted(v.iter().map(|a| a.to_ascii_lowercase()))),
                Part::Not(sorted(v.iter().cloned())),
            )],
        };
        let resources: Vec<Part> = match &st.resource {
            ResourceMatch::Resource(v) => v.iter().map(|r| Part::Is(r.clone())).collect(),
            ResourceMatch::NotResource(v) => vec![Part::Not(sorted(v.iter().cloned()))],
        };
        for (action, written) in &actions {
            for resource in &resources {
                out.push(SourcedAtom {
                    atom: Atom {
                        effect: st.effect,
                        action: action.clone(),
                        resource: resource.clone(),
                        condition: condition.clone(),
                    },
                    policy: policy.to_string(),
                    sid: st.sid.clone(),
                    index,
                    action_as_written: written.clone(),
                });
            }
        }
    }
    out
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    v
}

/// Canonical text of a Condition block: object keys sorted at every level,
/// a single value and a one-element list made the same, value lists sorted
/// and de-duplicated (they are alternatives, so order is meaningless).
pub fn canonical_condition(v: &Value) -> String {
    fn canon(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), canon(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut texts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::Object(_) | Value::Array(_) => canon(i).to_string(),
                        scalar => scalar.to_string(),
                    })
                    .collect();
                texts.sort();
                texts.dedup();
                Value::Array(
                    texts
                        .iter()
                        .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
                        .collect(),
                )
            }
            scalar => Value::Array(vec![scalar.clone()]),
        }
    }
    // Objects keep insertion order only with serde_json's preserve_order;
    // build the text by hand so the key order is sorted either way.
    fn text(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let inner: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}:{}", Value::String((*k).clone()), text(&m[*k])))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Array(items) => {
                format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(","))
            }
            other => other.to_string(),
        }
    }
    match v {
        Value::Object(_) => text(&canon(v)),
        other => other.to_string(),
    }
}

/// Does `outer` grant (or deny) at least everything `inner` does, under the
/// same condition? Conservative: `false` means "not provably".
pub fn atom_covers(outer: &Atom, inner: &Atom) -> bool {
    outer.effect == inner.effect
        && (outer.condition.is_none() || outer.condition == inner.condition)
        && part_covers(&outer.action, &inner.action, action_covers)
        && part_covers(&outer.resource, &inner.resource, resource_covers)
}

fn part_covers(outer: &Part, inner: &Part, covers: fn(&str, &str) -> bool) -> bool {
    match (outer, inner) {
        (Part::Is(o), Part::Is(i)) => covers(o, i),
        // "all except P" covers "all except Q" when everything P excludes, Q excludes too.
        (Part::Not(p), Part::Not(q)) => p.iter().all(|p| q.iter().any(|q| covers(q, p))),
        (Part::Is(o), Part::Not(_)) => o == "*",
        (Part::Not(_), Part::Is(_)) => false,
    }
}
