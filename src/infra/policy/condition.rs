//! Deciding a statement's `Condition` block from what the caller knows.
//!
//! Semantics follow the IAM documentation ("IAM JSON policy elements:
//! Condition operators" and "Single-valued vs. multivalued context keys",
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
//! every operator in a block must hold (AND), every key under an operator
//! must hold (AND), and the values listed for one key are alternatives
//! (OR) — for the negated operators, the context value must match none of
//! them. A key the request context does not carry, or an operator this
//! module does not implement, makes the answer unknown with a reason
//! instead of a guess: the caller knows less than AWS does at request time.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::matcher::{glob_match, resource_matches};

/// The outcome of a condition block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CondResult {
    True,
    False,
    Unknown(String),
}

/// Evaluates a `Condition` object against the request context. Context
/// keys compare case-insensitively, as IAM condition keys do.
pub(crate) fn evaluate(condition: &Value, context: &BTreeMap<String, Vec<String>>) -> CondResult {
    let Some(block) = condition.as_object() else {
        return CondResult::Unknown("Condition is not an object".into());
    };
    let mut unknown: Vec<String> = Vec::new();
    for (operator, keys) in block {
        let Some(keys) = keys.as_object() else {
            unknown.push(format!(
                "operator {operator} does not hold a key/value object"
            ));
            continue;
        };
        for (key, expected) in keys {
            let values = match condition_values(expected) {
                Some(v) => v,
                None => {
                    unknown.push(format!("{operator} {key}: values are not strings"));
                    continue;
                }
            };
            let actual = lookup(context, key);
            match evaluate_one(operator, key, &values, actual) {
                CondResult::True => {}
                CondResult::False => return CondResult::False,
                CondResult::Unknown(r) => unknown.push(r),
            }
        }
    }
    if unknown.is_empty() {
        CondResult::True
    } else {
        CondResult::Unknown(unknown.join("; "))
    }
}

fn lookup<'a>(context: &'a BTreeMap<String, Vec<String>>, key: &str) -> Option<&'a [String]> {
    context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_slice())
}

/// Condition values may be a string, number, boolean or a list of them.
fn condition_values(v: &Value) -> Option<Vec<String>> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

fn evaluate_one(
    operator: &str,
    key: &str,
    expected: &[String],
    actual: Option<&[String]>,
) -> CondResult {
    let (qualifier, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };

    if base == "Null" {
        // "Null": true means the key must be absent, false that it is present.
        let want_absent = match expected {
            [v] if v.eq_ignore_ascii_case("true") => true,
            [v] if v.eq_ignore_ascii_case("false") => false,
            _ => return CondResult::Unknown(format!("Null {key}: value must be true or false")),
        };
        let absent = actual.is_none_or(|v| v.is_empty());
        return bool_result(absent == want_absent);
    }

    let Some((test, negated)) = operator_test(base) else {
        return CondResult::Unknown(format!(
            "condition operator {operator} is not supported by the local evaluator"
        ));
    };

    let actual = match actual {
        Some(v) if !v.is_empty() => v,
        _ => {
            return match (qualifier, if_exists) {
                (SetQualifier::ForAllValues, _) => CondResult::True,
                (SetQualifier::ForAnyValue, _) => CondResult::False,
                (SetQualifier::None, true) => CondResult::True,
                (SetQualifier::None, false) => CondResult::Unknown(format!(
                    "condition key {key} ({operator}) is not in the request context"
                )),
            };
        }
    };

    // Per context value: does it satisfy the operator against the listed values?
    let mut per_value = Vec::with_capacity(actual.len());
    for a in actual {
        let mut any = false;
        for e in expected {
            match test(a, e) {
                Some(true) => any = true,
                Some(false) => {}
                None => {
                    return CondResult::Unknown(format!(
                        "{operator} {key}: cannot compare `{e}` with the context value"
                    ));
                }
            }
        }
        per_value.push(if negated { !any } else { any });
    }
    let holds = match qualifier {
        SetQualifier::ForAnyValue => per_value.iter().any(|b| *b),
        SetQualifier::ForAllValues => per_value.iter().all(|b| *b),
        SetQualifier::None if negated => per_value.iter().all(|b| *b),
        SetQualifier::None => per_value.iter().any(|b| *b),
    };
    bool_result(holds)
}

fn bool_result(b: bool) -> CondResult {
    if b {
        CondResult::True
    } else {
        CondResult::False
    }
}

/// A test of one context value against one listed value; `None` when the
/// values cannot be compared (not a number, not a date, not an address).
type Test = fn(&str, &str) -> Option<bool>;

/// The positive test behind an operator, and whether the operator negates it.
fn operator_test(base: &str) -> Option<(Test, bool)> {
    let t: (Test, bool) = match base {
        "StringEquals" => (|a, e| Some(a == e), false),
        "StringNotEquals" => (|a, e| Some(a == e), true),
        "StringEqualsIgnoreCase" => (|a, e| Some(a.eq_ignore_ascii_case(e)), false),
        "StringNotEqualsIgnoreCase" => (|a, e| Some(a.eq_ignore_ascii_case(e)), true),
        "StringLike" => (|a, e| Some(glob_match(e, a, false)), false),
        "StringNotLike" => (|a, e| Some(glob_match(e, a, false)), true),
        "ArnEquals" | "ArnLike" => (|a, e| Some(resource_matches(e, a)), false),
        "ArnNotEquals" | "ArnNotLike" => (|a, e| Some(resource_matches(e, a)), true),
        "Bool" => (|a, e| Some(a.eq_ignore_ascii_case(e)), false),
        "BinaryEquals" => (|a, e| Some(a == e), false),
        "NumericEquals" => (|a, e| num(a, e).map(|(a, e)| a == e), false),
        "NumericNotEquals" => (|a, e| num(a, e).map(|(a, e)| a == e), true),
        "NumericLessThan" => (|a, e| num(a, e).map(|(a, e)| a < e), false),
        "NumericLessThanEquals" => (|a, e| num(a, e).map(|(a, e)| a <= e), false),
        "NumericGreaterThan" => (|a, e| num(a, e).map(|(a, e)| a > e), false),
        "NumericGreaterThanEquals" => (|a, e| num(a, e).map(|(a, e)| a >= e), false),
        "DateEquals" => (|a, e| date(a, e).map(|(a, e)| a == e), false),
        "DateNotEquals" => (|a, e| date(a, e).map(|(a, e)| a == e), true),
        "DateLessThan" => (|a, e| date(a, e).map(|(a, e)| a < e), false),
        "DateLessThanEquals" => (|a, e| date(a, e).map(|(a, e)| a <= e), false),
        "DateGreaterThan" => (|a, e| date(a, e).map(|(a, e)| a > e), false),
        "DateGreaterThanEquals" => (|a, e| date(a, e).map(|(a, e)| a >= e), false),
        "IpAddress" => (ip_in, false),
        "NotIpAddress" => (ip_in, true),
        _ => return None,
    };
    Some(t)
}

fn num(a: &str, e: &str) -> Option<(f64, f64)> {
    Some((a.trim().parse().ok()?, e.trim().parse().ok()?))
}

/// Dates are ISO 8601 (RFC 3339) or epoch seconds, as IAM accepts them.
fn date(a: &str, e: &str) -> Option<(i64, i64)> {
    fn one(s: &str) -> Option<i64> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Some(n);
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp())
    }
    Some((one(a)?, one(e)?))
}

fn ip_in(addr: &str, cidr: &str) -> Option<bool> {
    let addr: IpAddr = addr.trim().parse().ok()?;
    let net: ipnet::IpNet = cidr
        .trim()
        .parse()
        .ok()
        .or_else(|| cidr.trim().parse::<IpAddr>().ok().map(ipnet::IpNet::from))?;
    Some(net.contains(&addr))
}
