//! Cases from AWS's EventBridge documentation ("Amazon EventBridge event
//! patterns", "Content filtering in Amazon EventBridge event patterns",
//! "Arrays in Amazon EventBridge event patterns") and its engine's README.

use serde_json::{json, Value};

use super::*;

fn parsed(pattern: &Value) -> Pattern {
    Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern} was refused: {e}"))
}

fn matches(pattern: Value, event: Value) -> bool {
    parsed(&pattern).matches(&event)
}

fn refused(pattern: Value) -> Invalid {
    match Pattern::parse(&pattern) {
        Ok(p) => panic!("{pattern} was accepted as {p:?}"),
        Err(e) => e,
    }
}

/// The documentation's EC2 event, with the engine README's detail fields.
fn ec2() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {
            "instance-id": "i-1234567890abcdef0",
            "state": "terminated",
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.33"
        }
    })
}

/// `{"detail": {field: [matcher]}}` against `{"detail": {field: value}}`.
fn detail(matcher: Value, value: Value) -> bool {
    matches(
        json!({"detail": {"f": [matcher]}}),
        json!({"detail": {"f": value}}),
    )
}

#[test]
fn the_documented_ec2_pattern_selects_terminations_only() {
    let pattern = json!({
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {"state": ["terminated"]}
    });
    assert!(matches(pattern.clone(), ec2()));
    let mut running = ec2();
    running["detail"]["state"] = json!("running");
    assert!(!matches(pattern, running));
}

#[test]
fn fields_are_and_values_are_or() {
    assert!(matches(
        json!({"detail": {"state": ["pending", "terminated"]}}),
        ec2()
    ));
    assert!(!matches(
        json!({"detail": {"state": ["pending", "running"]}}),
        ec2()
    ));
    assert!(!matches(
        json!({"source": ["aws.ec2"], "region": ["eu-west-1"]}),
        ec2()
    ));
    assert!(!matches(
        json!({"source": ["aws.ec2"], "missing": ["x"]}),
        ec2()
    ));
}

#[test]
fn a_nested_pattern_needs_an_object_there() {
    assert!(!matches(json!({"source": {"x": ["aws.ec2"]}}), ec2()));
    assert!(!matches(
        json!({"detail": {"state": {"name": ["terminated"]}}}),
        ec2()
    ));
}

#[test]
fn an_event_array_matches_when_any_element_does() {
    let pattern = json!({"resources": [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f"
    ]});
    let event = json!({"resources": [
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
    ]});
    assert!(matches(pattern.clone(), event));
    assert!(!matches(
        pattern.clone(),
        json!({"resources": ["arn:aws:s3:::b"]})
    ));
    assert!(!matches(pattern, json!({"resources": []})));
    assert!(
        matches(json!({"a": [1]}), json!({"a": [[0], [[1]]]})),
        "nested arrays flatten"
    );
}

#[test]
fn fields_of_one_pattern_object_match_within_one_array_element() {
    let event = json!({"employees": [
        {"firstName": "John", "lastName": "Doe"},
        {"firstName": "Anna", "lastName": "Smith"},
        {"firstName": "Peter", "lastName": "Jones"}
    ]});
    assert!(matches(
        json!({"employees": {"firstName": ["Anna"]}}),
        event.clone()
    ));
    assert!(matches(
        json!({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}),
        event.clone()
    ));
    assert!(!matches(
        json!({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}),
        event
    ));
    let nested = json!({"employees": [[{"firstName": "Anna"}], [{"firstName": "Peter"}]]});
    assert!(matches(
        json!({"employees": {"firstName": ["Peter"]}}),
        nested
    ));
}

#[test]
fn numbers_compare_by_value_and_never_equal_strings() {
    assert!(detail(json!(5), json!(5.0)));
    assert!(detail(json!(3.018e2), json!(301.8)));
    assert!(detail(json!(-0.5), json!(-5e-1)));
    assert!(!detail(json!(5), json!("5")));
    assert!(!detail(json!("5"), json!(5)));
    assert!(!detail(json!(5), json!(6)));
    assert!(detail(json!(u64::MAX), json!(u64::MAX)));
    assert!(
        !detail(json!(u64::MAX), json!(u64::MAX - 1)),
        "integers compare exactly"
    );
}

#[test]
fn booleans_null_and_empty_strings_match_exactly() {
    assert!(detail(json!(true), json!(true)));
    assert!(!detail(json!(true), json!("true")));
    assert!(!detail(json!(false), json!(true)));
    assert!(detail(json!(null), json!(null)));
    assert!(!detail(json!(null), json!("")));
    assert!(
        !matches(json!({"detail": {"f": [null]}}), json!({"detail": {}})),
        "null is not absence"
    );
    assert!(detail(json!(""), json!("")));
    assert!(!detail(json!(""), json!(null)));
}

#[test]
fn prefix_and_suffix_match_strings_only() {
    assert!(matches(json!({"time": [{"prefix": "2017-12-22"}]}), ec2()));
    assert!(matches(json!({"region": [{"prefix": "us-"}]}), ec2()));
    assert!(!matches(json!({"region": [{"prefix": "eu-"}]}), ec2()));
    assert!(detail(json!({"suffix": ".png"}), json!("photo.png")));
    assert!(!detail(json!({"suffix": ".png"}), json!("photo.png.txt")));
    assert!(!detail(json!({"prefix": "5"}), json!(55)));
    assert!(!detail(json!({"suffix": "5"}), json!(55)));
    assert!(detail(json!({"prefix": ""}), json!("anything")));
}

#[test]
fn equals_ignore_case_in_all_three_forms() {
    assert!(detail(
        json!({"equals-ignore-case": "alice"}),
        json!("ALICE")
    ));
    assert!(detail(
        json!({"equals-ignore-case": "Alice"}),
        json!("aLiCe")
    ));
    assert!(!detail(
        json!({"equals-ignore-case": "alice"}),
        json!("alice2")
    ));
    assert!(!detail(
        json!({"equals-ignore-case": "alice"}),
        json!("alic")
    ));
    assert!(
        detail(json!({"equals-ignore-case": "ΟΔΟΣ"}), json!("οδοσ")),
        "final sigma folds alike"
    );
    let prefix = json!({"prefix": {"equals-ignore-case": "EventB"}});
    assert!(detail(prefix.clone(), json!("eventbridge")));
    assert!(detail(prefix.clone(), json!("EVENTBRIDGE")));
    assert!(!detail(prefix, json!("Event")));
    let suffix = json!({"suffix": {"equals-ignore-case": "tbridge"}});
    assert!(detail(suffix.clone(), json!("EVENTBRIDGE")));
    assert!(!detail(suffix, json!("bridge")));
    assert!(!detail(json!({"equals-ignore-case": "1"}), json!(1)));
}

#[test]
fn anything_but_a_value_or_values() {
    let state = |but: Value, value: Value| detail(json!({"anything-but": but}), value);
    assert!(state(json!("initializing"), json!("running")));
    assert!(!state(json!("initializing"), json!("initializing")));
    assert!(!state(json!(["stopped", "overloaded"]), json!("stopped")));
    assert!(state(json!(["stopped", "overloaded"]), json!("running")));
    assert!(!state(json!(123), json!(123.0)));
    assert!(state(json!(123), json!(124)));
    assert!(!state(json!([100, 200, 300]), json!(200)));
    assert!(state(json!([100, 200, 300]), json!(250)));
    // Other kinds of value are not what is excluded.
    assert!(state(json!("5"), json!(5)));
    assert!(state(json!(5), json!("5")));
    assert!(state(json!("x"), json!(null)));
    // One element outside the exclusion is enough in an array.
    assert!(state(json!("a"), json!(["a", "b"])));
    assert!(!state(json!("a"), json!(["a", "a"])));
}

#[test]
fn anything_but_needs_a_value_to_be_there() {
    let pattern = json!({"detail": {"f": [{"anything-but": "x"}]}});
    assert!(!matches(pattern.clone(), json!({"detail": {}})));
    assert!(!matches(pattern.clone(), json!({"detail": {"f": []}})));
    assert!(!matches(pattern, json!({"detail": {"f": {"g": 1}}})));
}

#[test]
fn anything_but_prefix_suffix_ignore_case_and_wildcard() {
    let but = |inner: Value, value: Value| detail(json!({"anything-but": inner}), value);
    assert!(!but(json!({"prefix": "init"}), json!("initializing")));
    assert!(but(json!({"prefix": "init"}), json!("running")));
    assert!(!but(json!({"prefix": ["us-", "eu-"]}), json!("eu-west-1")));
    assert!(but(json!({"prefix": ["us-", "eu-"]}), json!("ap-south-1")));
    assert!(!but(json!({"suffix": ".png"}), json!("a.png")));
    assert!(but(json!({"suffix": ".png"}), json!("a.jpg")));
    assert!(!but(
        json!({"equals-ignore-case": "initializing"}),
        json!("INITIALIZING")
    ));
    assert!(!but(json!({"equals-ignore-case": ["a", "b"]}), json!("B")));
    assert!(but(json!({"equals-ignore-case": ["a", "b"]}), json!("c")));
    assert!(!but(json!({"wildcard": "*/lib/*"}), json!("/usr/lib/x.so")));
    assert!(but(json!({"wildcard": "*/lib/*"}), json!("/usr/bin/x")));
    assert!(
        but(json!({"prefix": "1"}), json!(10)),
        "a number has no string prefix"
    );
}

#[test]
fn numeric_ranges() {
    let count = |range: Value, value: Value| detail(json!({"numeric": range}), value);
    let between = json!([">", 0, "<=", 5]);
    assert!(count(between.clone(), json!(5)));
    assert!(count(between.clone(), json!(0.0001)));
    assert!(!count(between.clone(), json!(0)));
    assert!(!count(between.clone(), json!(5.0001)));
    assert!(count(json!([">=", 0, "<", 5]), json!(0)));
    assert!(!count(json!([">=", 0, "<", 5]), json!(5)));
    assert!(count(json!(["<", 10]), json!(-3)));
    assert!(!count(json!(["<", 10]), json!(10)));
    assert!(count(json!(["<=", 10]), json!(10)));
    assert!(count(json!([">", 10]), json!(10.5)));
    assert!(count(json!([">=", 10]), json!(10)));
    assert!(count(json!(["=", 3.018e2]), json!(301.8)));
    assert!(!count(json!(["=", 301.8]), json!(301.9)));
    // Non-numbers never match.
    assert!(!count(json!([">", 0]), json!("5")));
    assert!(!count(json!([">", 0]), json!(true)));
    assert!(!count(json!([">", 0]), json!(null)));
    let readme = json!({"detail": {
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"numeric": ["=", 3.018e2]}]
    }});
    assert!(matches(readme, ec2()));
}

#[test]
fn exists_on_leaves() {
    let has = |exists: bool, event: Value| {
        matches(json!({"detail": {"c-count": [{"exists": exists}]}}), event)
    };
    assert!(has(true, ec2()));
    assert!(!has(false, ec2()));
    assert!(has(false, json!({"detail": {"state": "x"}})));
    assert!(!has(true, json!({"detail": {"state": "x"}})));
    // No detail at all: the field is absent too.
    assert!(has(false, json!({"source": "x"})));
    assert!(!has(true, json!({"source": "x"})));
    // An object is not a leaf: c-count "does not exist" there.
    assert!(has(false, json!({"detail": {"c-count": {"c1": 100}}})));
    assert!(!has(true, json!({"detail": {"c-count": {"c1": 100}}})));
    // null is a value; an empty array holds none.
    assert!(has(true, json!({"detail": {"c-count": null}})));
    assert!(has(false, json!({"detail": {"c-count": []}})));
    assert!(has(true, json!({"detail": {"c-count": [1]}})));
    // Inside an array of objects, per element.
    let items = json!({"items": [{"id": 1, "gone": true}, {"id": 2}]});
    assert!(matches(
        json!({"items": {"id": [2], "gone": [{"exists": false}]}}),
        items.clone()
    ));
    assert!(!matches(
        json!({"items": {"id": [1], "gone": [{"exists": false}]}}),
        items
    ));
}

#[test]
fn exists_combines_with_other_alternatives() {
    let pattern = json!({"detail": {"f": ["x", {"exists": false}]}});
    assert!(matches(pattern.clone(), json!({"detail": {"f": "x"}})));
    assert!(matches(pattern.clone(), json!({"detail": {}})));
    assert!(!matches(pattern, json!({"detail": {"f": "y"}})));
}

#[test]
fn wildcards() {
    let w = |wildcard: &str, value: &str| detail(json!({"wildcard": wildcard}), json!(value));
    assert!(w("Simple*Service", "SimpleQueueService"));
    assert!(w("Simple*Service", "SimpleService"));
    assert!(!w("Simple*Service", "SimpleQueue"));
    assert!(w("*.png", ".png"));
    assert!(w("*.png", "a/b.png"));
    assert!(!w("*.png", "a.png.gz"));
    assert!(w("dir/*.png", "dir/x.png"));
    assert!(!w("dir/*.png", "other/x.png"));
    assert!(w("*Title*", "The Title Here"));
    assert!(w("a*b*c", "a-b-c"));
    assert!(!w("a*b*c", "a-c-b"));
    assert!(!w("ab*ba", "aba"), "the ends must not overlap");
    assert!(w("ab*ba", "abba"));
    assert!(
        !w("ab*b*ba", "abba"),
        "a middle segment lies between the ends"
    );
    assert!(w("ab*b*ba", "abbba"));
    assert!(w("*", ""));
    assert!(w("exact", "exact"));
    assert!(!w("exact", "exactly"));
    assert!(w(r"a\*b", "a*b"));
    assert!(!w(r"a\*b", "axb"));
    assert!(w(r"a\\*", r"a\anything"));
    assert!(w(r"\**", "*star"));
    assert!(!detail(json!({"wildcard": "*"}), json!(1)));
}

#[test]
fn cidr_blocks_v4_and_v6() {
    let ip = |cidr: &str, value: Value| detail(json!({"cidr": cidr}), value);
    assert!(matches(
        json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}),
        ec2()
    ));
    assert!(ip("10.0.0.0/24", json!("10.0.0.255")));
    assert!(!ip("10.0.0.0/24", json!("10.0.1.0")));
    assert!(ip("10.0.0.0/8", json!("10.200.3.4")));
    assert!(
        ip("10.0.0.7/24", json!("10.0.0.200")),
        "host bits are ignored"
    );
    assert!(ip("2001:db8::/32", json!("2001:db8:1::5")));
    assert!(!ip("2001:db8::/32", json!("2001:db9::1")));
    assert!(!ip("10.0.0.0/8", json!("::ffff:10.0.0.1")));
    assert!(!ip("0.0.0.0/0", json!("not an address")));
    assert!(!ip("0.0.0.0/0", json!(167772161)));
    assert!(ip("0.0.0.0/0", json!("192.168.1.1")));
}

#[test]
fn or_at_the_top_and_nested() {
    // "source" && ("metricName" || "namespace")
    let normal = json!({
        "source": ["aws.cloudwatch"],
        "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]
    });
    assert!(matches(
        normal.clone(),
        json!({"source": "aws.cloudwatch", "namespace": "AWS/ES"})
    ));
    assert!(matches(
        normal.clone(),
        json!({"source": "aws.cloudwatch", "metricName": "ReadLatency"})
    ));
    assert!(!matches(
        normal.clone(),
        json!({"source": "aws.cloudwatch", "metricName": "Other"})
    ));
    assert!(!matches(
        normal,
        json!({"source": "aws.ec2", "namespace": "AWS/ES"})
    ));

    // ("metricName" || "namespace") && ("detail.source" || "detail.detail-type")
    let parallel = json!({
        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        "detail": {"$or": [{"source": ["aws.cloudwatch"]}, {"detail-type": ["CloudWatch Alarm State Change"]}]}
    });
    let event =
        json!({"namespace": "AWS/EC2", "detail": {"detail-type": "CloudWatch Alarm State Change"}});
    assert!(matches(parallel.clone(), event));
    assert!(!matches(
        parallel,
        json!({"namespace": "AWS/EC2", "detail": {"source": "aws.ec2"}})
    ));

    // "source" && ("metricName" || ("metricType" && "namespace" && ("metricId" || "spaceId")) || "scope")
    let nested = json!({
        "source": ["aws.cloudwatch"],
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {
                "metricType": ["MetricType"],
                "namespace": ["AWS/EC2", "AWS/ES"],
                "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]
            },
            {"scope": ["Service"]}
        ]
    });
    let base =
        json!({"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2"});
    let mut with_space = base.clone();
    with_space["spaceId"] = json!(1000);
    assert!(matches(nested.clone(), with_space));
    assert!(!matches(nested.clone(), base.clone()));
    let mut scoped = base;
    scoped["scope"] = json!("Service");
    assert!(matches(nested, scoped));
}

#[test]
fn or_inside_an_array_of_objects_stays_within_one_element() {
    let pattern = json!({"a": {"x": [1], "$or": [{"b": [1]}, {"c": [2]}]}});
    assert!(matches(pattern.clone(), json!({"a": [{"x": 1, "c": 2}]})));
    assert!(!matches(pattern, json!({"a": [{"x": 1}, {"b": 1}]})));
}

#[test]
fn a_leaf_pattern_never_matches_a_whole_object() {
    assert!(!matches(json!({"detail": ["x"]}), ec2()));
    assert!(!matches(json!({"detail": [{"anything-but": "x"}]}), ec2()));
}

fn nested(levels: usize) -> Value {
    (1..levels).fold(json!({"leaf": [1]}), |inner, _| json!({"a": inner}))
}

#[test]
fn nesting_is_bounded_at_64_levels() {
    let deepest = nested(MAX_DEPTH);
    let event = (1..MAX_DEPTH).fold(json!({"leaf": 1}), |inner, _| json!({"a": inner}));
    assert!(matches(deepest, event));
    let e = refused(nested(MAX_DEPTH + 1));
    assert_eq!(e.field, format!("pattern{}", ".a".repeat(MAX_DEPTH)));
    assert_eq!(e.expected, "at most 64 nested object levels");
}

#[test]
fn errors_name_the_path_what_was_expected_and_what_came() {
    let e = refused(json!({"detail": {"price": [{"numeric": [">", "a"]}]}}));
    assert_eq!(e.field, "pattern.detail.price[0].numeric");
    assert_eq!(
        e.to_string(),
        "pattern.detail.price[0].numeric: expected [operator, number] with = < <= > >=, \
         or [\">\" or \">=\", low, \"<\" or \"<=\", high], numbers that a 64-bit float holds exactly, \
         got \"[\\\">\\\",\\\"a\\\"]\""
    );
    let e = refused(json!({"detail": {"c": [{"numeric": ["!=", 1]}]}}));
    assert_eq!(
        e.to_string(),
        "pattern.detail.c[0].numeric: expected an operator among = < <= > >= \
         (anything-but excludes a number), got \"[\\\"!=\\\",1]\""
    );
    let e = refused(json!({"detail": {"state": [{"exists": "yes"}]}}));
    assert_eq!(
        (e.field.as_str(), e.expected.as_str(), e.got.as_str()),
        ("pattern.detail.state[0].exists", "true or false", "yes")
    );
}

/// Each refused pattern with the field its error names.
#[test]
fn refuses_what_eventbridge_refuses() {
    let cases = [
        (json!(["source"]), "pattern"),
        (json!("source"), "pattern"),
        (json!({}), "pattern"),
        (json!({"detail": {}}), "pattern.detail"),
        (json!({"source": "aws.ec2"}), "pattern.source"),
        (json!({"source": 5}), "pattern.source"),
        (json!({"source": null}), "pattern.source"),
        (json!({"source": []}), "pattern.source"),
        (json!({"source": [["nested"]]}), "pattern.source[0]"),
        (json!({"source": ["a", {}]}), "pattern.source[1]"),
        (
            json!({"source": [{"prefix": "a", "suffix": "b"}]}),
            "pattern.source[0]",
        ),
        (
            json!({"source": [{"prefixx": "a"}]}),
            "pattern.source[0].prefixx",
        ),
        (
            json!({"source": [{"exactly": "a"}]}),
            "pattern.source[0].exactly",
        ),
        (
            json!({"source": [{"prefix": 5}]}),
            "pattern.source[0].prefix",
        ),
        (
            json!({"source": [{"prefix": {"equals-ignore-case": 5}}]}),
            "pattern.source[0].prefix.equals-ignore-case",
        ),
        (
            json!({"source": [{"prefix": {"wildcard": "a"}}]}),
            "pattern.source[0].prefix",
        ),
        (
            json!({"source": [{"suffix": {"equals-ignore-case": "a", "x": "b"}}]}),
            "pattern.source[0].suffix",
        ),
        (
            json!({"source": [{"suffix": ["a"]}]}),
            "pattern.source[0].suffix",
        ),
        (
            json!({"source": [{"equals-ignore-case": 1}]}),
            "pattern.source[0].equals-ignore-case",
        ),
        (
            json!({"source": [{"exists": "yes"}]}),
            "pattern.source[0].exists",
        ),
        (
            json!({"source": [{"exists": 1}]}),
            "pattern.source[0].exists",
        ),
        (
            json!({"n": [{"numeric": [">", "a"]}]}),
            "pattern.n[0].numeric",
        ),
        (json!({"n": [{"numeric": ">0"}]}), "pattern.n[0].numeric"),
        (json!({"n": [{"numeric": [">"]}]}), "pattern.n[0].numeric"),
        (
            json!({"n": [{"numeric": [">", 0, "<"]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [">", 0, "<", 5, "<", 6]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": ["!=", 0]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": ["=>", 0]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [0, ">"]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [">", 5, "<", 5]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [">", 6, "<", 5]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": ["<", 5, ">", 0]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": ["=", 0, "<", 5]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [">", 0, ">", 5]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"n": [{"numeric": [">", u64::MAX]}]}),
            "pattern.n[0].numeric",
        ),
        (
            json!({"s": [{"anything-but": null}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": true}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": []}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": ["a", 1]}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": [null]}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": [1, u64::MAX]}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"anything-but": {"prefix": ""}}]}),
            "pattern.s[0].anything-but.prefix",
        ),
        (
            json!({"s": [{"anything-but": {"suffix": ["a", ""]}}]}),
            "pattern.s[0].anything-but.suffix",
        ),
        (
            json!({"s": [{"anything-but": {"prefix": 1}}]}),
            "pattern.s[0].anything-but.prefix",
        ),
        (
            json!({"s": [{"anything-but": {"prefix": []}}]}),
            "pattern.s[0].anything-but.prefix",
        ),
        (
            json!({"s": [{"anything-but": {"equals-ignore-case": 1}}]}),
            "pattern.s[0].anything-but.equals-ignore-case",
        ),
        (
            json!({"s": [{"anything-but": {"wildcard": "a**"}}]}),
            "pattern.s[0].anything-but.wildcard",
        ),
        (
            json!({"s": [{"anything-but": {"numeric": [">", 1]}}]}),
            "pattern.s[0].anything-but.numeric",
        ),
        (
            json!({"s": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}),
            "pattern.s[0].anything-but",
        ),
        (
            json!({"s": [{"wildcard": "a**b"}]}),
            "pattern.s[0].wildcard",
        ),
        (json!({"s": [{"wildcard": "**"}]}), "pattern.s[0].wildcard"),
        (
            json!({"s": [{"wildcard": r"a\b"}]}),
            "pattern.s[0].wildcard",
        ),
        (json!({"s": [{"wildcard": "a\\"}]}), "pattern.s[0].wildcard"),
        (json!({"s": [{"wildcard": 1}]}), "pattern.s[0].wildcard"),
        (json!({"ip": [{"cidr": 10}]}), "pattern.ip[0].cidr"),
        (json!({"ip": [{"cidr": "nope"}]}), "pattern.ip[0].cidr"),
        (json!({"ip": [{"cidr": "10.0.0.1"}]}), "pattern.ip[0].cidr"),
        (
            json!({"ip": [{"cidr": "10.0.0.0/33"}]}),
            "pattern.ip[0].cidr",
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.1/32"}]}),
            "pattern.ip[0].cidr",
        ),
        (json!({"ip": [{"cidr": "::1/128"}]}), "pattern.ip[0].cidr"),
        (
            json!({"ip": [{"cidr": "10.0.0.0/-1"}]}),
            "pattern.ip[0].cidr",
        ),
        (json!({"$or": [{"a": [1]}]}), "pattern.$or"),
        (json!({"$or": []}), "pattern.$or"),
        (json!({"$or": {"a": [1]}}), "pattern.$or"),
        (json!({"$or": [{"a": [1]}, ["b"]]}), "pattern.$or[1]"),
        (json!({"$or": [{"a": [1]}, {}]}), "pattern.$or[1]"),
        (json!({"$or": [{"a": [1]}, {"b": []}]}), "pattern.$or[1].b"),
        (
            json!({"$or": [{"numeric": [123]}, {"prefix": ["abc"]}]}),
            "pattern.$or[0].numeric",
        ),
        (
            json!({"detail": {"$or": [{"a": [1]}, {"x": {"prefix": ["a"]}}]}}),
            "pattern.detail.$or[1].x.prefix",
        ),
    ];
    for (pattern, field) in cases {
        let e = refused(pattern.clone());
        assert_eq!(e.field, field, "{pattern}: {e}");
        assert!(!e.expected.is_empty(), "{pattern}: {e}");
    }
}

#[test]
fn operator_names_are_ordinary_fields_outside_or() {
    let pattern = json!({"detail": {"prefix": ["a"], "numeric": [1]}});
    assert!(matches(
        pattern,
        json!({"detail": {"prefix": "a", "numeric": 1}})
    ));
}

#[test]
fn a_parsed_pattern_keeps_matching_after_the_source_is_gone() {
    let pattern = {
        let value =
            json!({"source": [{"prefix": "shop"}], "detail": {"total": [{"numeric": [">", 100]}]}});
        Pattern::parse(&value).unwrap_or_else(|e| panic!("{e}"))
    };
    let copy = pattern.clone();
    let event = json!({"source": "shop.orders", "detail": {"total": 250}});
    assert!(copy.matches(&event));
    assert!(!pattern.matches(&json!({"source": "shop.orders", "detail": {"total": 50}})));
}
