//! The gateway's route table: which function answers `METHOD /path`, with the
//! matching rules of an Amazon API Gateway HTTP API.
//!
//! * The most specific route wins, segment by segment from the left: a literal
//!   segment beats a `{param}`, which beats a greedy `{proxy+}`.
//! * A `{param}` matches exactly one non-empty segment; a greedy `{proxy+}` matches
//!   one or more remaining segments (never an empty remainder, so `/{proxy+}`
//!   does not match `/`).
//! * Among routes of the same path, an exact method beats `ANY`. `HEAD` does not
//!   fall back to `GET` routes (API Gateway does not document such a fallback).
//! * Path parameter values are percent-decoded (`+` stays `+` in a path).
//! * A trailing slash is significant: `/a/` is not `/a`.
//! * A path that some route's pattern matches, but with none of the request's
//!   method, is [`RouteLookup::MethodNotAllowed`], listing the methods that
//!   would have matched.
//!
//! The routes are compiled into a segment trie once, so a lookup walks the
//! request path's segments instead of trying every route.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use percent_encoding::percent_decode_str;
use updraft_core::config::HttpRoute;
use updraft_core::PayloadFormat;

/// The outcome of [`RouteTable::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteLookup {
    /// The route that claims the request.
    Found {
        /// The function the route belongs to.
        function: String,
        /// The route key as API Gateway reports it, e.g. `"GET /hello/{name}"`.
        route_key: String,
        /// The route's path template (payload 1.0's `resource`).
        resource: String,
        /// The payload format the function gets.
        payload: PayloadFormat,
        /// Percent-decoded values of the route's `{param}` and `{proxy+}` segments.
        path_parameters: BTreeMap<String, String>,
    },
    /// Some route's path matches, but not with this method; `allowed` is sorted
    /// and holds the methods that would have matched.
    MethodNotAllowed { allowed: Vec<String> },
    /// No route's path matches.
    NotFound,
}

/// One route as the trie stores it at the node where its path ends.
#[derive(Debug)]
struct Entry {
    function: String,
    route_key: String,
    resource: String,
    payload: PayloadFormat,
    /// Names of the `{param}` segments, in path order.
    params: Vec<String>,
    /// Name of the trailing `{proxy+}` segment, if any.
    greedy: Option<String>,
}

/// The routes ending at one place of the trie, by upper-case method (`ANY` too).
#[derive(Debug, Default)]
struct Methods(BTreeMap<String, Entry>);

impl Methods {
    fn pick(&self, method: &str) -> Option<&Entry> {
        self.0.get(method).or_else(|| self.0.get("ANY"))
    }
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Routes whose path ends here with a `{proxy+}` segment.
    greedy: Methods,
    /// Routes whose path ends exactly here.
    end: Methods,
}

/// All manifest routes, compiled for lookup.
#[derive(Debug, Default)]
pub struct RouteTable {
    root: Node,
    len: usize,
}

/// What a successful walk found: the entry, the indices of the segments the
/// `{param}`s captured, and where the greedy remainder starts.
struct Hit<'t> {
    entry: &'t Entry,
    captures: Vec<usize>,
    greedy_from: Option<usize>,
}

impl RouteTable {
    /// Compiles `(route, function)` pairs. When two routes have the same shape and
    /// method (a conflict the manifest validation reports), the first one wins.
    pub fn new(routes: Vec<(HttpRoute, String)>) -> RouteTable {
        let mut table = RouteTable::default();
        for (route, function) in routes {
            let mut node = &mut table.root;
            let mut params = Vec::new();
            let mut greedy = None;
            for segment in route.path.split('/').skip(1) {
                match parameter_name(segment) {
                    Some(name) if name.ends_with('+') => {
                        greedy = Some(name.trim_end_matches('+').to_string());
                        // `HttpRoute::parse` guarantees a greedy segment is the last.
                        break;
                    }
                    Some(name) => {
                        params.push(name.to_string());
                        node = node.param.get_or_insert_with(Default::default);
                    }
                    None => node = node.literal.entry(segment.to_string()).or_default(),
                }
            }
            let methods = if greedy.is_some() {
                &mut node.greedy
            } else {
                &mut node.end
            };
            let entry = Entry {
                function,
                route_key: route.key(),
                resource: route.path.clone(),
                payload: route.payload,
                params,
                greedy,
            };
            if let std::collections::btree_map::Entry::Vacant(slot) =
                methods.0.entry(route.method.to_ascii_uppercase())
            {
                slot.insert(entry);
                table.len += 1;
            }
        }
        table
    }

    /// True when the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds the route for `method` (any case) and `path` (the request's path,
    /// still percent-encoded, without its query string).
    pub fn lookup(&self, method: &str, path: &str) -> RouteLookup {
        if self.len == 0 {
            return RouteLookup::NotFound;
        }
        let upper;
        let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
            upper = method.to_ascii_uppercase();
            upper.as_str()
        } else {
            method
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        // Each segment with its byte offset in `path`, for the greedy remainder.
        let mut segments: Vec<(usize, &str)> = Vec::with_capacity(8);
        let mut start = 0;
        for segment in path.split('/') {
            segments.push((start, segment));
            start += segment.len() + 1;
        }

        let mut captures = Vec::with_capacity(4);
        let mut allowed = Vec::new();
        match walk(
            &self.root,
            &segments,
            0,
            method,
            &mut captures,
            &mut allowed,
        ) {
            Some(hit) => {
                let mut path_parameters = BTreeMap::new();
                for (name, &i) in hit.entry.params.iter().zip(&hit.captures) {
                    path_parameters.insert(name.clone(), decode(segments[i].1).into_owned());
                }
                if let (Some(name), Some(from)) = (&hit.entry.greedy, hit.greedy_from) {
                    let rest = &path[segments[from].0..];
                    path_parameters.insert(name.clone(), decode(rest).into_owned());
                }
                RouteLookup::Found {
                    function: hit.entry.function.clone(),
                    route_key: hit.entry.route_key.clone(),
                    resource: hit.entry.resource.clone(),
                    payload: hit.entry.payload,
                    path_parameters,
                }
            }
            None if allowed.is_empty() => RouteLookup::NotFound,
            None => {
                allowed.sort_unstable();
                allowed.dedup();
                RouteLookup::MethodNotAllowed {
                    allowed: allowed.into_iter().map(str::to_string).collect(),
                }
            }
        }
    }
}

/// `{name}` → `name`, `{proxy+}` → `proxy+`, anything else → `None`.
fn parameter_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

fn decode(text: &str) -> Cow<'_, str> {
    percent_decode_str(text).decode_utf8_lossy()
}

/// Depth-first search in precedence order (literal, then `{param}`, then greedy)
/// from segment `i`; the first route matching both path and method wins. Paths
/// that match without the method add their methods to `allowed`.
fn walk<'t>(
    node: &'t Node,
    segments: &[(usize, &str)],
    i: usize,
    method: &str,
    captures: &mut Vec<usize>,
    allowed: &mut Vec<&'t str>,
) -> Option<Hit<'t>> {
    let Some(&(_, segment)) = segments.get(i) else {
        return pick(&node.end, method, captures, None, allowed);
    };
    if !node.literal.is_empty() {
        let child = node.literal.get(segment).or_else(|| {
            // A literal also matches its percent-encoded spelling.
            if segment.contains('%') {
                node.literal.get(decode(segment).as_ref())
            } else {
                None
            }
        });
        if let Some(child) = child {
            if let Some(hit) = walk(child, segments, i + 1, method, captures, allowed) {
                return Some(hit);
            }
        }
    }
    if let Some(child) = &node.param {
        if !segment.is_empty() {
            captures.push(i);
            if let Some(hit) = walk(child, segments, i + 1, method, captures, allowed) {
                return Some(hit);
            }
            captures.pop();
        }
    }
    if !node.greedy.0.is_empty() {
        // The remainder must hold at least one character: `/a/{p+}` matches
        // `/a/x` and `/a/x/` but neither `/a` nor `/a/`.
        let nonempty = segments.len() > i + 1 || !segment.is_empty();
        if nonempty {
            return pick(&node.greedy, method, captures, Some(i), allowed);
        }
    }
    None
}

fn pick<'t>(
    methods: &'t Methods,
    method: &str,
    captures: &[usize],
    greedy_from: Option<usize>,
    allowed: &mut Vec<&'t str>,
) -> Option<Hit<'t>> {
    if let Some(entry) = methods.pick(method) {
        return Some(Hit {
            entry,
            captures: captures.to_vec(),
            greedy_from,
        });
    }
    allowed.extend(methods.0.keys().map(String::as_str));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::new(
            routes
                .iter()
                .map(|(route, function)| (HttpRoute::parse(route).unwrap(), function.to_string()))
                .collect(),
        )
    }

    fn found(t: &RouteTable, method: &str, path: &str) -> (String, String, Vec<(String, String)>) {
        match t.lookup(method, path) {
            RouteLookup::Found {
                function,
                route_key,
                path_parameters,
                ..
            } => (function, route_key, path_parameters.into_iter().collect()),
            other => panic!("{method} {path}: expected a route, got {other:?}"),
        }
    }

    fn key(t: &RouteTable, method: &str, path: &str) -> String {
        found(t, method, path).1
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_table() {
        let t = RouteTable::new(Vec::new());
        assert!(t.is_empty());
        assert_eq!(t.lookup("GET", "/"), RouteLookup::NotFound);
        assert!(!table(&[("GET /", "f")]).is_empty());
    }

    #[test]
    fn literal_and_root() {
        let t = table(&[("GET /", "root"), ("GET /hello", "hello")]);
        assert_eq!(
            found(&t, "GET", "/"),
            ("root".into(), "GET /".into(), vec![])
        );
        assert_eq!(found(&t, "GET", "/hello").0, "hello");
        assert_eq!(t.lookup("GET", "/nope"), RouteLookup::NotFound);
        assert_eq!(t.lookup("GET", "/hello/x"), RouteLookup::NotFound);
    }

    #[test]
    fn parameters_are_captured_and_decoded() {
        let t = table(&[("GET /hello/{name}", "f"), ("GET /a/{x}/b/{y}", "g")]);
        assert_eq!(
            found(&t, "GET", "/hello/J%C3%BCrgen%20M%2Fx+y"),
            (
                "f".into(),
                "GET /hello/{name}".into(),
                params(&[("name", "Jürgen M/x+y")])
            )
        );
        assert_eq!(
            found(&t, "GET", "/a/1/b/2").2,
            params(&[("x", "1"), ("y", "2")])
        );
        // A parameter never matches an empty segment.
        assert_eq!(t.lookup("GET", "/hello/"), RouteLookup::NotFound);
        assert_eq!(t.lookup("GET", "/a//b/2"), RouteLookup::NotFound);
    }

    #[test]
    fn literal_beats_parameter_beats_greedy() {
        let t = table(&[
            ("GET /pets/dog/1", "exact"),
            ("GET /pets/dog/{id}", "param"),
            ("GET /pets/{proxy+}", "greedy"),
            ("ANY /{proxy+}", "catchall"),
        ]);
        assert_eq!(key(&t, "GET", "/pets/dog/1"), "GET /pets/dog/1");
        assert_eq!(key(&t, "GET", "/pets/dog/2"), "GET /pets/dog/{id}");
        assert_eq!(
            found(&t, "GET", "/pets/cat/1").2,
            params(&[("proxy", "cat/1")])
        );
        assert_eq!(key(&t, "GET", "/pets/dog/1/x"), "GET /pets/{proxy+}");
        assert_eq!(key(&t, "GET", "/pets"), "ANY /{proxy+}");
        assert_eq!(found(&t, "POST", "/pets/dog/1").0, "catchall");
        assert_eq!(
            found(&t, "GET", "/x/y%20z/").2,
            params(&[("proxy", "x/y z/")])
        );
    }

    #[test]
    fn precedence_backtracks_when_the_specific_branch_fails() {
        let t = table(&[("GET /a/b/c", "literal"), ("GET /a/{x}/d", "param")]);
        // `/a/b` matches the literal branch first, which dead-ends at `d`.
        assert_eq!(found(&t, "GET", "/a/b/d").2, params(&[("x", "b")]));
        // Precedence is decided at the leftmost differing segment.
        let t = table(&[
            ("GET /{x}/b", "param-first"),
            ("GET /a/{y}", "literal-first"),
        ]);
        assert_eq!(found(&t, "GET", "/a/b").0, "literal-first");
    }

    #[test]
    fn greedy_needs_one_or_more_segments() {
        let t = table(&[("ANY /files/{path+}", "f")]);
        assert_eq!(t.lookup("GET", "/files"), RouteLookup::NotFound);
        assert_eq!(t.lookup("GET", "/files/"), RouteLookup::NotFound);
        assert_eq!(found(&t, "GET", "/files/a").2, params(&[("path", "a")]));
        assert_eq!(
            found(&t, "GET", "/files/a/b%2Fc/d").2,
            params(&[("path", "a/b/c/d")])
        );
        let root = table(&[("ANY /{proxy+}", "f")]);
        assert_eq!(root.lookup("GET", "/"), RouteLookup::NotFound);
        assert_eq!(found(&root, "GET", "/x").2, params(&[("proxy", "x")]));
    }

    #[test]
    fn exact_method_beats_any() {
        let t = table(&[("ANY /items/{id}", "any"), ("DELETE /items/{id}", "delete")]);
        assert_eq!(found(&t, "DELETE", "/items/7").0, "delete");
        assert_eq!(found(&t, "delete", "/items/7").0, "delete");
        assert_eq!(found(&t, "GET", "/items/7").0, "any");
        assert_eq!(found(&t, "GET", "/items/7").1, "ANY /items/{id}");
    }

    #[test]
    fn path_specificity_beats_method_exactness() {
        let t = table(&[("ANY /a/b", "any-literal"), ("GET /a/{x}", "get-param")]);
        assert_eq!(found(&t, "GET", "/a/b").0, "any-literal");
        // A literal route without the method does not hide a matching parameter route.
        let t = table(&[("POST /a/b", "post"), ("GET /a/{x}", "get")]);
        assert_eq!(found(&t, "GET", "/a/b").0, "get");
        assert_eq!(found(&t, "POST", "/a/b").0, "post");
        assert_eq!(
            t.lookup("PUT", "/a/b"),
            RouteLookup::MethodNotAllowed {
                allowed: vec!["GET".into(), "POST".into()]
            }
        );
    }

    #[test]
    fn method_not_allowed_lists_methods() {
        let t = table(&[
            ("GET /hello/{name}", "f"),
            ("POST /hello/{who}", "g"),
            ("PUT /hello/x", "h"),
            ("GET /other", "i"),
        ]);
        assert_eq!(
            t.lookup("DELETE", "/hello/bob"),
            RouteLookup::MethodNotAllowed {
                allowed: vec!["GET".into(), "POST".into()]
            }
        );
        assert_eq!(
            t.lookup("DELETE", "/hello/x"),
            RouteLookup::MethodNotAllowed {
                allowed: vec!["GET".into(), "POST".into(), "PUT".into()]
            }
        );
        assert_eq!(t.lookup("DELETE", "/nowhere"), RouteLookup::NotFound);
    }

    #[test]
    fn head_does_not_fall_back_to_get() {
        let t = table(&[("GET /page", "f")]);
        assert_eq!(
            t.lookup("HEAD", "/page"),
            RouteLookup::MethodNotAllowed {
                allowed: vec!["GET".into()]
            }
        );
        let t = table(&[("GET /page", "f"), ("HEAD /page", "h")]);
        assert_eq!(found(&t, "HEAD", "/page").0, "h");
    }

    #[test]
    fn trailing_slash_is_significant() {
        let t = table(&[("GET /a", "no-slash"), ("GET /b/", "slash")]);
        assert_eq!(found(&t, "GET", "/a").0, "no-slash");
        assert_eq!(t.lookup("GET", "/a/"), RouteLookup::NotFound);
        assert_eq!(found(&t, "GET", "/b/").0, "slash");
        assert_eq!(t.lookup("GET", "/b"), RouteLookup::NotFound);
    }

    #[test]
    fn literal_matches_percent_encoded_spelling() {
        let t = table(&[("GET /caf\u{e9}", "f"), ("GET /a-b", "g")]);
        assert_eq!(found(&t, "GET", "/caf%C3%A9").0, "f");
        assert_eq!(found(&t, "GET", "/a%2Db").0, "g");
    }

    #[test]
    fn a_hit_carries_the_resource_and_payload_format() {
        let mut rest = HttpRoute::parse("ANY /api/{proxy+}").unwrap();
        rest.payload = PayloadFormat::V1;
        let t = RouteTable::new(vec![
            (rest, "rest".into()),
            (HttpRoute::parse("GET /v2/{id}").unwrap(), "http".into()),
        ]);
        match t.lookup("POST", "/api/pets/7") {
            RouteLookup::Found {
                resource, payload, ..
            } => assert_eq!(
                (resource.as_str(), payload),
                ("/api/{proxy+}", PayloadFormat::V1)
            ),
            other => panic!("{other:?}"),
        }
        match t.lookup("GET", "/v2/1") {
            RouteLookup::Found {
                resource, payload, ..
            } => assert_eq!(
                (resource.as_str(), payload),
                ("/v2/{id}", PayloadFormat::V2)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_of_conflicting_routes_wins() {
        let t = table(&[("GET /x/{a}", "first"), ("GET /x/{b}", "second")]);
        assert_eq!(
            found(&t, "GET", "/x/1"),
            ("first".into(), "GET /x/{a}".into(), params(&[("a", "1")]))
        );
    }

    #[test]
    fn parameter_names_follow_the_matched_route() {
        let t = table(&[
            ("GET /u/{id}/posts", "posts"),
            ("GET /u/{user}/likes/{n}", "likes"),
        ]);
        assert_eq!(found(&t, "GET", "/u/7/posts").2, params(&[("id", "7")]));
        assert_eq!(
            found(&t, "GET", "/u/7/likes/3").2,
            params(&[("n", "3"), ("user", "7")])
        );
    }
}
