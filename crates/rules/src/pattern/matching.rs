//! Matching a parsed pattern against an event: a walk over the event that
//! reads it in place and allocates nothing.

use std::net::IpAddr;

use serde_json::{Map, Number, Value};

use super::{Bound, Exclusion, Field, Matcher, Node, Range, Wildcard, MAX_DEPTH};

impl Node {
    pub(super) fn matches(&self, value: Option<&Value>, depth: usize) -> bool {
        match value {
            Some(Value::Array(items)) if !items.is_empty() => {
                depth < MAX_DEPTH && items.iter().any(|item| self.matches(Some(item), depth + 1))
            }
            Some(Value::Object(object)) => self.matches_fields(Some(object)),
            _ => self.matches_fields(None),
        }
    }

    fn matches_fields(&self, object: Option<&Map<String, Value>>) -> bool {
        self.fields.iter().all(|(name, field)| {
            let value = object.and_then(|object| object.get(&**name));
            match field {
                Field::Nested(node) => node.matches(value, 0),
                Field::Leaf(matchers) => leaf_matches(matchers, value),
            }
        }) && self
            .any_of
            .as_deref()
            .is_none_or(|alternatives| alternatives.iter().any(|node| node.matches_fields(object)))
    }
}

/// A leaf matches when one of its matchers matches one of the event's
/// values there (array elements, flattened); with no value there (absent,
/// an object, or arrays of nothing else) only `{"exists": false}` matches.
fn leaf_matches(matchers: &[Matcher], value: Option<&Value>) -> bool {
    let mut present = false;
    let hit = value.is_some_and(|value| {
        any_leaf(value, 0, &mut |leaf| {
            present = true;
            matchers.iter().any(|m| m.matches(leaf))
        })
    });
    hit || (!present && matchers.iter().any(|m| matches!(m, Matcher::Exists(false))))
}

fn any_leaf(value: &Value, depth: usize, f: &mut impl FnMut(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => {
            depth < MAX_DEPTH && items.iter().any(|item| any_leaf(item, depth + 1, f))
        }
        Value::Object(_) => false,
        leaf => f(leaf),
    }
}

impl Matcher {
    /// Whether this matcher accepts one leaf value (never an array or object).
    fn matches(&self, leaf: &Value) -> bool {
        let text = leaf.as_str();
        match self {
            Matcher::Str(s) => text == Some(&**s),
            Matcher::Num(n) => leaf.as_number().is_some_and(|m| same_number(n, m)),
            Matcher::Bool(b) => leaf.as_bool() == Some(*b),
            Matcher::Null => leaf.is_null(),
            Matcher::Prefix(p) => text.is_some_and(|t| t.starts_with(&**p)),
            Matcher::Suffix(s) => text.is_some_and(|t| t.ends_with(&**s)),
            Matcher::PrefixIgnoreCase(p) => text.is_some_and(|t| starts_ignore_case(t, p)),
            Matcher::SuffixIgnoreCase(s) => text.is_some_and(|t| ends_ignore_case(t, s)),
            Matcher::EqualsIgnoreCase(s) => text.is_some_and(|t| eq_ignore_case(t, s)),
            Matcher::Wildcard(w) => text.is_some_and(|t| w.matches(t)),
            Matcher::AnythingBut(excluded) => !excluded.excludes(leaf),
            Matcher::Numeric(range) => leaf.as_f64().is_some_and(|x| range.contains(x)),
            Matcher::Exists(exists) => *exists,
            Matcher::Cidr(net) => text
                .and_then(|t| t.parse::<IpAddr>().ok())
                .is_some_and(|address| net.contains(&address)),
        }
    }
}

impl Exclusion {
    fn excludes(&self, leaf: &Value) -> bool {
        let text = leaf.as_str();
        match self {
            Exclusion::Strings(all) => text.is_some_and(|t| all.iter().any(|s| t == &**s)),
            Exclusion::Numbers(all) => leaf
                .as_number()
                .is_some_and(|n| all.iter().any(|m| same_number(n, m))),
            Exclusion::IgnoreCase(all) => {
                text.is_some_and(|t| all.iter().any(|s| eq_ignore_case(t, s)))
            }
            Exclusion::Prefixes(all) => {
                text.is_some_and(|t| all.iter().any(|p| t.starts_with(&**p)))
            }
            Exclusion::Suffixes(all) => text.is_some_and(|t| all.iter().any(|s| t.ends_with(&**s))),
            Exclusion::Wildcards(all) => text.is_some_and(|t| all.iter().any(|w| w.matches(t))),
        }
    }
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        let above = |b: Bound| {
            if b.inclusive {
                x >= b.value
            } else {
                x > b.value
            }
        };
        let below = |b: Bound| {
            if b.inclusive {
                x <= b.value
            } else {
                x < b.value
            }
        };
        self.low.is_none_or(above) && self.high.is_none_or(below)
    }
}

impl Wildcard {
    fn matches(&self, text: &str) -> bool {
        let (first, rest) = self.segments.split_first().expect("at least one segment");
        let Some((last, middle)) = rest.split_last() else {
            return text == &**first;
        };
        if text.len() < first.len() + last.len()
            || !text.starts_with(&**first)
            || !text.ends_with(&**last)
        {
            return false;
        }
        let mut between = &text[first.len()..text.len() - last.len()];
        middle.iter().all(|segment| match between.find(&**segment) {
            Some(at) => {
                between = &between[at + segment.len()..];
                true
            }
            None => false,
        })
    }
}

fn eq_ignore_case(text: &str, folded: &str) -> bool {
    text.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

fn starts_ignore_case(text: &str, folded: &str) -> bool {
    let mut text = text.chars().flat_map(char::to_lowercase);
    folded.chars().all(|c| text.next() == Some(c))
}

fn ends_ignore_case(text: &str, folded: &str) -> bool {
    let mut text = text.chars().rev().flat_map(|c| c.to_lowercase().rev());
    folded.chars().rev().all(|c| text.next() == Some(c))
}

/// Numbers compare by value (5 matches 5.0); integers exactly.
fn same_number(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}
