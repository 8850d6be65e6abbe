//! EventBridge event patterns: which events a bus subscriber receives.
//! [`Pattern::parse`] checks a pattern once and refuses what EventBridge
//! refuses; [`Pattern::matches`] then walks each event without copying it.
//!
//! The rules are EventBridge's: the fields of a pattern must all match (AND),
//! the values in one leaf array are alternatives (OR), an event array matches
//! when any element does, and `"$or": [pattern, pattern, …]` gives
//! alternatives at any level. A nested pattern object is matched against one
//! element of an event array at a time, so two of its fields never match in
//! two different elements (EventBridge's array-consistent matching).

use ipnet::IpNet;
use serde_json::{Map, Number, Value};
use updraft_core::Invalid;

/// Object levels a pattern may nest, `$or` alternatives included; also how
/// deep an event's arrays are followed when matching.
const MAX_DEPTH: usize = 64;

/// The matcher operators, as the error for an unknown one lists them.
const OPERATORS: &str =
    "anything-but, cidr, equals-ignore-case, exists, numeric, prefix, suffix or wildcard";

/// Names EventBridge's engine reserves inside `$or` alternatives: its
/// operators, and names it keeps for operators to come.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

/// A parsed, checked event pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    root: Node,
}

// The bus matches from several tasks at once and keeps patterns in shared state.
const _: () = {
    const fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Pattern>();
};

/// One object level: every field must match, and one alternative of `$or`.
#[derive(Clone, Debug)]
struct Node {
    fields: Box<[(Box<str>, Field)]>,
    any_of: Option<Box<[Node]>>,
}

#[derive(Clone, Debug)]
enum Field {
    Nested(Node),
    /// Alternatives: the leaf matches when one of them does.
    Leaf(Box<[Matcher]>),
}

#[derive(Clone, Debug)]
enum Matcher {
    Str(Box<str>),
    Num(Number),
    Bool(bool),
    Null,
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// The case-folded text, here and in the two below.
    PrefixIgnoreCase(Box<str>),
    SuffixIgnoreCase(Box<str>),
    EqualsIgnoreCase(Box<str>),
    Wildcard(Wildcard),
    AnythingBut(Exclusion),
    Numeric(Range),
    Exists(bool),
    Cidr(IpNet),
}

/// What `anything-but` leaves out; every other value (numbers and `null`
/// beside strings, too) matches.
#[derive(Clone, Debug)]
enum Exclusion {
    Strings(Box<[Box<str>]>),
    Numbers(Box<[Number]>),
    IgnoreCase(Box<[Box<str>]>),
    Prefixes(Box<[Box<str>]>),
    Suffixes(Box<[Box<str>]>),
    Wildcards(Box<[Wildcard]>),
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    value: f64,
    inclusive: bool,
}

#[derive(Clone, Copy, Debug)]
struct Range {
    low: Option<Bound>,
    high: Option<Bound>,
}

/// A `wildcard` value split at its unescaped stars: the text must start with
/// the first segment, end with the last, and hold the others in order.
#[derive(Clone, Debug)]
struct Wildcard {
    segments: Box<[Box<str>]>,
}

impl Pattern {
    /// Parses and checks a pattern. Errors are [`Invalid`] whose field is the
    /// path inside the pattern, e.g. `pattern.detail.price[0].numeric`
    /// (callers prefix it with the manifest key), with what was expected and
    /// what came.
    pub fn parse(pattern: &Value) -> Result<Pattern, Invalid> {
        Ok(Pattern {
            root: parse_node(pattern, "pattern", 1, false)?,
        })
    }

    /// Whether an event (the full EventBridge event JSON: version, id,
    /// detail-type, source, account, time, region, resources, detail) matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(Some(event), 0)
    }
}

fn parse_node(value: &Value, path: &str, depth: usize, in_or: bool) -> Result<Node, Invalid> {
    let Value::Object(object) = value else {
        return Err(Invalid::new(path, "an object of fields", shown(value)));
    };
    if depth > MAX_DEPTH {
        return Err(Invalid::new(
            path,
            format!("at most {MAX_DEPTH} nested object levels"),
            "a deeper pattern",
        ));
    }
    if object.is_empty() {
        return Err(Invalid::new(
            path,
            "an object with at least one field",
            "{}",
        ));
    }
    let mut fields = Vec::with_capacity(object.len());
    let mut any_of = None;
    for (name, value) in object {
        let path = format!("{path}.{name}");
        if name == "$or" {
            any_of = Some(parse_or(value, &path, depth)?);
            continue;
        }
        if in_or && RESERVED_IN_OR.contains(&name.as_str()) {
            return Err(Invalid::new(
                path,
                "a field name (operator names are reserved inside $or)",
                name,
            ));
        }
        let field = match value {
            Value::Object(_) => Field::Nested(parse_node(value, &path, depth + 1, in_or)?),
            Value::Array(items) => Field::Leaf(parse_leaf(items, &path)?),
            _ => {
                return Err(Invalid::new(
                    path,
                    "an array of values or matchers, or an object of fields",
                    shown(value),
                ))
            }
        };
        fields.push((name.as_str().into(), field));
    }
    Ok(Node {
        fields: fields.into(),
        any_of,
    })
}

fn parse_or(value: &Value, path: &str, depth: usize) -> Result<Box<[Node]>, Invalid> {
    match value {
        Value::Array(alternatives) if alternatives.len() >= 2 => alternatives
            .iter()
            .enumerate()
            .map(|(i, alternative)| {
                parse_node(alternative, &format!("{path}[{i}]"), depth + 1, true)
            })
            .collect(),
        _ => Err(Invalid::new(
            path,
            "an array of at least two pattern objects",
            shown(value),
        )),
    }
}

fn parse_leaf(items: &[Value], path: &str) -> Result<Box<[Matcher]>, Invalid> {
    if items.is_empty() {
        return Err(Invalid::new(
            path,
            "a non-empty array of values or matchers",
            "[]",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            Ok(match item {
                Value::String(s) => Matcher::Str(s.as_str().into()),
                Value::Number(n) => Matcher::Num(n.clone()),
                Value::Bool(b) => Matcher::Bool(*b),
                Value::Null => Matcher::Null,
                Value::Object(matcher) => parse_matcher(matcher, &path)?,
                Value::Array(_) => {
                    return Err(Invalid::new(
                        path,
                        "a string, number, boolean, null or matcher object",
                        shown(item),
                    ))
                }
            })
        })
        .collect()
}

fn parse_matcher(matcher: &Map<String, Value>, path: &str) -> Result<Matcher, Invalid> {
    let mut entries = matcher.iter();
    let (Some((op, operand)), None) = (entries.next(), entries.next()) else {
        return Err(Invalid::new(
            path,
            format!("an object with exactly one operator: {OPERATORS}"),
            shown(&Value::Object(matcher.clone())),
        ));
    };
    let field = format!("{path}.{op}");
    Ok(match op.as_str() {
        "prefix" | "suffix" => {
            let expected = "a string or {\"equals-ignore-case\": string}";
            let (text, ignore_case) = match operand {
                Value::String(text) => (text.as_str(), false),
                Value::Object(inner) => match (inner.len(), inner.get("equals-ignore-case")) {
                    (1, Some(text)) => {
                        let field = format!("{field}.equals-ignore-case");
                        (string(text, &field, "a string")?, true)
                    }
                    _ => return Err(Invalid::new(field, expected, shown(operand))),
                },
                _ => return Err(Invalid::new(field, expected, shown(operand))),
            };
            match (op.as_str(), ignore_case) {
                ("prefix", false) => Matcher::Prefix(text.into()),
                ("prefix", true) => Matcher::PrefixIgnoreCase(fold_case(text)),
                (_, false) => Matcher::Suffix(text.into()),
                (_, true) => Matcher::SuffixIgnoreCase(fold_case(text)),
            }
        }
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(fold_case(string(operand, &field, "a string")?))
        }
        "wildcard" => Matcher::Wildcard(Wildcard::parse(
            string(operand, &field, "a string")?,
            &field,
        )?),
        "exists" => match operand {
            Value::Bool(exists) => Matcher::Exists(*exists),
            _ => return Err(Invalid::new(field, "true or false", shown(operand))),
        },
        "cidr" => Matcher::Cidr(parse_cidr(operand, &field)?),
        "numeric" => Matcher::Numeric(parse_range(operand, &field)?),
        "anything-but" => Matcher::AnythingBut(parse_exclusion(operand, &field)?),
        _ => {
            return Err(Invalid::new(
                field,
                format!("one of the operators {OPERATORS}"),
                op,
            ))
        }
    })
}

/// What came, for an error: a string as it is, anything else as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn string<'a>(value: &'a Value, field: &str, expected: &str) -> Result<&'a str, Invalid> {
    value
        .as_str()
        .ok_or_else(|| Invalid::new(field, expected, shown(value)))
}

/// A number EventBridge can compare: one that an f64 holds exactly.
fn comparable(value: &Value) -> Option<f64> {
    let n = value.as_number()?;
    let float = n.as_f64().filter(|f| f.is_finite())?;
    let exact = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => float as i128 == i128::from(i),
        (None, Some(u)) => float as i128 == i128::from(u),
        (None, None) => true,
    };
    exact.then_some(float)
}

const COMPARABLE: &str = "numbers that a 64-bit float holds exactly";

fn parse_range(operand: &Value, field: &str) -> Result<Range, Invalid> {
    let got = || shown(operand);
    let shape =
        "[operator, number] with = < <= > >=, or [\">\" or \">=\", low, \"<\" or \"<=\", high]";
    let Value::Array(items) = operand else {
        return Err(Invalid::new(field, shape, got()));
    };
    let comparison = |i: usize| -> Result<(&str, Bound), Invalid> {
        let op = items[i]
            .as_str()
            .ok_or_else(|| Invalid::new(field, shape, got()))?;
        let value = comparable(&items[i + 1])
            .ok_or_else(|| Invalid::new(field, format!("{shape}, {COMPARABLE}"), got()))?;
        let inclusive = matches!(op, "=" | "<=" | ">=");
        Ok((op, Bound { value, inclusive }))
    };
    let range = match items.len() {
        2 => match comparison(0)? {
            ("=", bound) => Range {
                low: Some(bound),
                high: Some(bound),
            },
            (">" | ">=", low) => Range {
                low: Some(low),
                high: None,
            },
            ("<" | "<=", high) => Range {
                low: None,
                high: Some(high),
            },
            _ => {
                return Err(Invalid::new(
                    field,
                    "an operator among = < <= > >= (anything-but excludes a number)",
                    got(),
                ))
            }
        },
        4 => match (comparison(0)?, comparison(2)?) {
            ((">" | ">=", low), ("<" | "<=", high)) if low.value < high.value => Range {
                low: Some(low),
                high: Some(high),
            },
            ((">" | ">=", _), ("<" | "<=", _)) => {
                return Err(Invalid::new(
                    field,
                    "a low bound below the high bound",
                    got(),
                ))
            }
            _ => {
                return Err(Invalid::new(
                    field,
                    "a low bound (> or >=) then a high bound (< or <=)",
                    got(),
                ))
            }
        },
        _ => return Err(Invalid::new(field, shape, got())),
    };
    Ok(range)
}

fn parse_cidr(operand: &Value, field: &str) -> Result<IpNet, Invalid> {
    let expected = "a CIDR block such as 10.0.0.0/24 or 2001:db8::/32 \
                    (prefix 0-31 for IPv4, 0-127 for IPv6; a single address is a plain string)";
    let net: IpNet = string(operand, field, expected)?
        .parse()
        .map_err(|_| Invalid::new(field, expected, shown(operand)))?;
    if net.prefix_len() == net.max_prefix_len() {
        return Err(Invalid::new(field, expected, shown(operand)));
    }
    Ok(net)
}

fn parse_exclusion(operand: &Value, field: &str) -> Result<Exclusion, Invalid> {
    let expected = "a string, a number, a non-empty array of only strings or only numbers, \
                    or one of {\"prefix\"|\"suffix\"|\"equals-ignore-case\"|\"wildcard\": …}";
    let numbers = |items: &[Value]| -> Result<Box<[Number]>, Invalid> {
        items
            .iter()
            .map(|item| match (item, comparable(item)) {
                (Value::Number(n), Some(_)) => Ok(n.clone()),
                _ => Err(Invalid::new(
                    field,
                    format!("{expected}; {COMPARABLE}"),
                    shown(operand),
                )),
            })
            .collect()
    };
    Ok(match operand {
        Value::String(s) => Exclusion::Strings([s.as_str().into()].into()),
        Value::Number(_) => Exclusion::Numbers(numbers(std::slice::from_ref(operand))?),
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {
            Exclusion::Strings(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(Into::into)
                    .collect(),
            )
        }
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            Exclusion::Numbers(numbers(items)?)
        }
        Value::Object(inner) if inner.len() == 1 => {
            let (op, values) = inner.iter().next().expect("one entry");
            let field = format!("{field}.{op}");
            let texts = exclusion_texts(
                values,
                &field,
                op != "equals-ignore-case" && op != "wildcard",
            )?;
            match op.as_str() {
                "prefix" => Exclusion::Prefixes(texts.iter().map(|t| (*t).into()).collect()),
                "suffix" => Exclusion::Suffixes(texts.iter().map(|t| (*t).into()).collect()),
                "equals-ignore-case" => {
                    Exclusion::IgnoreCase(texts.iter().map(|t| fold_case(t)).collect())
                }
                "wildcard" => Exclusion::Wildcards(
                    texts
                        .iter()
                        .map(|t| Wildcard::parse(t, &field))
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(Invalid::new(
                        field,
                        "one of prefix, suffix, equals-ignore-case or wildcard inside anything-but",
                        op,
                    ))
                }
            }
        }
        _ => return Err(Invalid::new(field, expected, shown(operand))),
    })
}

/// The strings of an `anything-but` sub-operator: one, or a non-empty array.
fn exclusion_texts<'a>(
    values: &'a Value,
    field: &str,
    non_empty: bool,
) -> Result<Vec<&'a str>, Invalid> {
    let expected = if non_empty {
        "a non-empty string or a non-empty array of them"
    } else {
        "a string or a non-empty array of strings"
    };
    let texts: Option<Vec<&str>> = match values {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items.iter().map(Value::as_str).collect(),
        _ => None,
    };
    texts
        .filter(|texts| !non_empty || texts.iter().all(|t| !t.is_empty()))
        .ok_or_else(|| Invalid::new(field, expected, shown(values)))
}

/// Case folding as the matcher applies it, one character at a time (so a
/// final sigma folds the same on both sides).
fn fold_case(text: &str) -> Box<str> {
    text.chars()
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .into()
}

impl Wildcard {
    fn parse(text: &str, field: &str) -> Result<Wildcard, Invalid> {
        let refuse = |why: &str| Invalid::new(field, why, text);
        let mut segments = Vec::new();
        let mut segment = String::new();
        let mut chars = text.chars();
        let mut after_star = false;
        while let Some(c) = chars.next() {
            match c {
                '*' if after_star => {
                    return Err(refuse(
                        "a wildcard without consecutive * (\\* is a literal star)",
                    ));
                }
                '*' => {
                    segments.push(std::mem::take(&mut segment).into());
                    after_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => segment.push(escaped),
                    _ => return Err(refuse("a wildcard where \\ comes only before * or \\")),
                },
                c => segment.push(c),
            }
            after_star = false;
        }
        segments.push(segment.into());
        Ok(Wildcard {
            segments: segments.into(),
        })
    }
}

mod matching;
#[cfg(test)]
mod tests;
