//! Blazar's host queries (`hypervisor_properties`, `resource_properties`): a JSON
//! list `[op, args...]` where an argument `"$name"` is the host's property `name`
//! (its hypervisor fields and extra capabilities) and anything else is a literal.
//! Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in` (the first argument among the
//! rest), and `and`, `or`, `not` over nested queries. Values compare as numbers when
//! both sides read as numbers, else as text. An empty query matches every host.

use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Query(Option<Value>);

impl Query {
    /// Parses and checks a query as sent: a JSON text (or an already parsed list).
    pub fn parse(raw: &Value) -> Result<Self, String> {
        let v = match raw {
            Value::Null => return Ok(Self(None)),
            Value::String(s) if s.trim().is_empty() => return Ok(Self(None)),
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("the query {s:?} is not JSON: {e}"))?,
            other => other.clone(),
        };
        if v.as_array().is_some_and(Vec::is_empty) {
            return Ok(Self(None));
        }
        check(&v)?;
        Ok(Self(Some(v)))
    }

    /// Whether a host with these properties matches.
    pub fn matches(&self, props: &HashMap<String, Value>) -> bool {
        self.0.as_ref().is_none_or(|q| eval(q, props))
    }

    /// The query as Blazar shows it: the JSON text, or empty.
    pub fn text(&self) -> String {
        self.0.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

fn check(q: &Value) -> Result<(), String> {
    let list = q.as_array().ok_or_else(|| format!("a query must be a list [op, args...], not {q}"))?;
    let op =
        list.first().and_then(Value::as_str).ok_or_else(|| format!("a query must start with its operator: {q}"))?;
    let args = &list[1..];
    match op {
        "and" | "or" => {
            if args.is_empty() {
                return Err(format!("{op} needs at least one query"));
            }
            args.iter().try_for_each(check)
        }
        "not" => match args {
            [inner] => check(inner),
            _ => Err("not takes one query".into()),
        },
        "==" | "!=" | "<" | "<=" | ">" | ">=" => match args {
            [a, b] if !a.is_array() && !b.is_array() => Ok(()),
            _ => Err(format!("{op} takes two values")),
        },
        "in" => match args {
            [first, rest @ ..] if !rest.is_empty() && !first.is_array() => Ok(()),
            _ => Err("in takes a value and at least one candidate".into()),
        },
        other => Err(format!("unknown operator {other:?} (use ==, !=, <, <=, >, >=, in, and, or, not)")),
    }
}

/// An argument's value for this host: `$name` reads the property (absent: None).
fn resolve<'a>(arg: &'a Value, props: &'a HashMap<String, Value>) -> Option<&'a Value> {
    match arg.as_str().and_then(|s| s.strip_prefix('$')) {
        Some(name) => props.get(name),
        None => Some(arg),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    let (ta, tb) = (text(a), text(b));
    match (ta.trim().parse::<f64>(), tb.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => ta.cmp(&tb),
    }
}

fn eval(q: &Value, props: &HashMap<String, Value>) -> bool {
    let Some(list) = q.as_array() else { return false };
    let op = list.first().and_then(Value::as_str).unwrap_or_default();
    let args = &list[1..];
    use std::cmp::Ordering::*;
    match op {
        "and" => args.iter().all(|a| eval(a, props)),
        "or" => args.iter().any(|a| eval(a, props)),
        "not" => !args.first().is_some_and(|a| eval(a, props)),
        "in" => match resolve(&args[0], props) {
            Some(v) => args[1..].iter().filter_map(|c| resolve(c, props)).any(|c| compare(v, c) == Equal),
            None => false,
        },
        _ => {
            let (Some(a), Some(b)) = (resolve(&args[0], props), resolve(&args[1], props)) else { return false };
            let ord = compare(a, b);
            match op {
                "==" => ord == Equal,
                "!=" => ord != Equal,
                "<" => ord == Less,
                "<=" => ord != Greater,
                ">" => ord == Greater,
                ">=" => ord != Less,
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn blazar_queries_select_hosts() {
        let sky = host(&[("node_type", json!("compute_skylake")), ("memory_mb", json!(8192)), ("gpu", json!("2"))]);
        let cas = host(&[("node_type", json!("compute_cascadelake")), ("memory_mb", json!(4096))]);
        let q = |s: &str| Query::parse(&json!(s)).unwrap();
        assert!(q("").matches(&sky) && q("").matches(&cas));
        assert!(Query::parse(&Value::Null).unwrap().matches(&sky));
        let by_type = q(r#"["==", "$node_type", "compute_skylake"]"#);
        assert!(by_type.matches(&sky) && !by_type.matches(&cas));
        let big = q(r#"[">=", "$memory_mb", "8000"]"#);
        assert!(big.matches(&sky) && !big.matches(&cas), "numbers compare as numbers");
        let either = q(r#"["or", ["==", "$node_type", "x"], ["<", "$memory_mb", 5000]]"#);
        assert!(!either.matches(&sky) && either.matches(&cas));
        let both = q(r#"["and", ["in", "$node_type", "compute_skylake", "y"], ["not", ["==", "$gpu", 0]]]"#);
        assert!(both.matches(&sky) && !both.matches(&cas));
        let missing = q(r#"["==", "$gpu", "2"]"#);
        assert!(!missing.matches(&cas), "a property the host lacks matches nothing");
        assert_eq!(by_type.text(), r#"["==","$node_type","compute_skylake"]"#);
    }

    #[test]
    fn malformed_queries_are_refused_with_a_reason() {
        for bad in [r#"["~", "$a", 1]"#, r#"{"a": 1}"#, r#"["==", "$a"]"#, r#"["and"]"#, "[1, 2]", "not json"] {
            assert!(Query::parse(&json!(bad)).is_err(), "{bad}");
        }
    }
}
