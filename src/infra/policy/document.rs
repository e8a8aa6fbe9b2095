//! Policy documents as IAM writes them, parsed into one typed shape.
//!
//! IAM accepts several spellings of the same thing (a single `Statement`
//! object or a list, `"Action": "s3:GetObject"` or a list); the parser
//! folds them into one form so nothing downstream has to care.

use serde_json::{Map, Value};

/// Why a document could not be read as an IAM policy. The message names
/// the element so the caller can say which policy is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("policy is not valid URL-encoded text: {0}")]
    Encoding(String),
    #[error("policy document must be a JSON object with a Statement element")]
    NotAnObject,
    #[error("statement {index}: {message}")]
    Statement { index: usize, message: String },
}

/// `Allow` or `Deny`; IAM spells them with this exact case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Action` (the statement covers these) or `NotAction` (it covers every
/// action except these). IAM forbids both in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionMatch {
    Action(Vec<String>),
    NotAction(Vec<String>),
}

impl ActionMatch {
    pub fn patterns(&self) -> &[String] {
        match self {
            ActionMatch::Action(v) | ActionMatch::NotAction(v) => v,
        }
    }
}

/// `Resource` or `NotResource`, the same way as [`ActionMatch`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceMatch {
    Resource(Vec<String>),
    NotResource(Vec<String>),
}

impl ResourceMatch {
    pub fn patterns(&self) -> &[String] {
        match self {
            ResourceMatch::Resource(v) | ResourceMatch::NotResource(v) => v,
        }
    }
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub action: ActionMatch,
    pub resource: ResourceMatch,
    /// Kept as JSON: the evaluator decides what it can and reports the rest.
    pub condition: Option<Value>,
    /// Only meaningful in resource-based policies; kept so a round trip
    /// does not lose it.
    pub principal: Option<Value>,
    pub not_principal: Option<Value>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    /// Parses a policy document. `Statement` may be one object or a list;
    /// `Action`, `NotAction`, `Resource` and `NotResource` may be a string
    /// or a list of strings.
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        Self::from_value(&value)
    }

    /// Parses a document that may be %-encoded, as the IAM API returns
    /// them (`GetRolePolicy`, `GetPolicyVersion`). Plain JSON is accepted
    /// too, so callers need not know which endpoint they talked to.
    pub fn parse_maybe_url_encoded(s: &str) -> Result<Self, PolicyError> {
        let trimmed = s.trim_start();
        if trimmed.starts_with('{') {
            return Self::parse(s);
        }
        let decoded = percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map_err(|e| PolicyError::Encoding(e.to_string()))?;
        Self::parse(&decoded)
    }

    /// Builds a document from already-parsed JSON.
    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let obj = value.as_object().ok_or(PolicyError::NotAnObject)?;
        let version = match obj.get("Version") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(PolicyError::Json("Version must be a string".into()));
            }
        };
        let statements = match obj.get("Statement") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_statement(i, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(v @ Value::Object(_)) => vec![parse_statement(0, v)?],
            _ => return Err(PolicyError::NotAnObject),
        };
        Ok(Self {
            version,
            statements,
        })
    }

    /// The document as IAM JSON (lists always, keys in IAM's usual order).
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        if let Some(v) = &self.version {
            obj.insert("Version".into(), Value::String(v.clone()));
        }
        obj.insert(
            "Statement".into(),
            Value::Array(self.statements.iter().map(Statement::to_value).collect()),
        );
        Value::Object(obj)
    }
}

impl Statement {
    /// The statement as IAM JSON, with string-or-list fields as lists.
    pub fn to_value(&self) -> Value {
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let mut obj = Map::new();
        if let Some(sid) = &self.sid {
            obj.insert("Sid".into(), Value::String(sid.clone()));
        }
        obj.insert("Effect".into(), Value::String(self.effect.as_str().into()));
        let (key, list) = match &self.action {
            ActionMatch::Action(v) => ("Action", v),
            ActionMatch::NotAction(v) => ("NotAction", v),
        };
        obj.insert(key.into(), strings(list));
        let (key, list) = match &self.resource {
            ResourceMatch::Resource(v) => ("Resource", v),
            ResourceMatch::NotResource(v) => ("NotResource", v),
        };
        obj.insert(key.into(), strings(list));
        if let Some(c) = &self.condition {
            obj.insert("Condition".into(), c.clone());
        }
        if let Some(p) = &self.principal {
            obj.insert("Principal".into(), p.clone());
        }
        if let Some(p) = &self.not_principal {
            obj.insert("NotPrincipal".into(), p.clone());
        }
        Value::Object(obj)
    }
}

const KNOWN_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
    "NotPrincipal",
];

fn parse_statement(index: usize, value: &Value) -> Result<Statement, PolicyError> {
    let bad = |message: String| PolicyError::Statement { index, message };
    let obj = value
        .as_object()
        .ok_or_else(|| bad("must be a JSON object".into()))?;
    if let Some(unknown) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(bad(format!("unknown element `{unknown}`")));
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("Sid must be a string".into())),
    };
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(bad(format!("Effect `{other}` is not Allow or Deny"))),
        None => return Err(bad("Effect is missing".into())),
    };
    let action = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(v), None) => {
            ActionMatch::Action(string_list(v).map_err(|m| bad(format!("Action {m}")))?)
        }
        (None, Some(v)) => {
            ActionMatch::NotAction(string_list(v).map_err(|m| bad(format!("NotAction {m}")))?)
        }
        (Some(_), Some(_)) => return Err(bad("has both Action and NotAction".into())),
        (None, None) => return Err(bad("has neither Action nor NotAction".into())),
    };
    let resource = match (obj.get("Resource"), obj.get("NotResource")) {
        (Some(v), None) => {
            ResourceMatch::Resource(string_list(v).map_err(|m| bad(format!("Resource {m}")))?)
        }
        (None, Some(v)) => {
            ResourceMatch::NotResource(string_list(v).map_err(|m| bad(format!("NotResource {m}")))?)
        }
        (Some(_), Some(_)) => return Err(bad("has both Resource and NotResource".into())),
        (None, None) => return Err(bad("has neither Resource nor NotResource".into())),
    };
    let condition = match obj.get("Condition") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(bad("Condition must be an object".into())),
    };
    Ok(Statement {
        sid,
        effect,
        action,
        resource,
        condition,
        principal: obj.get("Principal").cloned(),
        not_principal: obj.get("NotPrincipal").cloned(),
    })
}

/// IAM's "string or list of strings".
fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "must hold only strings".to_string())
            })
            .collect(),
        _ => Err("must be a string or a list of strings".into()),
    }
}
