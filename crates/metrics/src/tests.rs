use super::*;

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn an_invocation_counts_in_every_family_it_belongs_to() {
    let m = Metrics::new();
    let cold = Finished {
        function: "hello",
        version: 2,
        trigger: "http",
        outcome: "success",
        duration: Duration::from_millis(30),
        init: Some(Duration::from_millis(200)),
        billed_ms: 30,
        memory_mb: 1024,
    };
    m.invocation(&cold);
    m.invocation(&Finished {
        outcome: "timeout",
        init: None,
        billed_ms: 1000,
        duration: Duration::from_secs(1),
        ..cold.clone()
    });
    m.throttle("hello", 2, "invoke");
    let text = m.encode(&Snapshot::default()).unwrap();
    let l = lines(&text);
    for want in [
        r#"updraft_invocations_total{function="hello",version="2",trigger="http",outcome="success"} 1"#,
        r#"updraft_invocations_total{function="hello",version="2",trigger="http",outcome="timeout"} 1"#,
        r#"updraft_invocations_total{function="hello",version="2",trigger="invoke",outcome="throttled"} 1"#,
        r#"updraft_errors_total{function="hello",version="2",outcome="timeout"} 1"#,
        r#"updraft_starts_total{function="hello",version="2",start="cold"} 1"#,
        r#"updraft_starts_total{function="hello",version="2",start="warm"} 1"#,
        r#"updraft_throttles_total{function="hello",version="2",trigger="invoke"} 1"#,
        r#"updraft_invocation_duration_seconds_count{function="hello",version="2"} 2"#,
        r#"updraft_invocation_duration_seconds_bucket{function="hello",version="2",le="0.05"} 1"#,
        r#"updraft_init_duration_seconds_count{function="hello",version="2"} 1"#,
        r#"updraft_billed_gb_seconds_total{function="hello",version="2"} 1.03"#,
    ] {
        assert!(l.contains(&want), "missing {want} in\n{text}");
    }
    assert!(
        !text.contains(r#"updraft_errors_total{function="hello",version="2",outcome="success"}"#),
        "a success is no error"
    );
    assert!(text.contains("# TYPE updraft_invocation_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
    assert!(text.contains("# TYPE process_start_time_seconds gauge\n"));
}

#[test]
fn scrape_time_gauges_replace_the_last_scrapes() {
    let m = Metrics::new();
    let first = Snapshot {
        instances: vec![("a".into(), 3, 1)],
        async_events: vec![("a".into(), "bus".into(), 4, Duration::from_millis(2500))],
        dead_letters: vec![("a".into(), 1)],
        queues: vec![QueueDepth {
            name: "jobs".into(),
            visible: 5,
            in_flight: 1,
            delayed: 0,
            oldest: Some(Duration::from_secs(7)),
            dead_letters: 2,
        }],
    };
    let text = m.encode(&first).unwrap();
    let l = lines(&text);
    for want in [
        r#"updraft_instances{function="a",state="live"} 3"#,
        r#"updraft_instances{function="a",state="idle"} 1"#,
        r#"updraft_async_events{function="a",source="bus"} 4"#,
        r#"updraft_async_oldest_age_seconds{function="a",source="bus"} 2.5"#,
        r#"updraft_dead_letters{function="a"} 1"#,
        r#"updraft_queue_messages{queue="jobs",state="visible"} 5"#,
        r#"updraft_queue_messages{queue="jobs",state="in_flight"} 1"#,
        r#"updraft_queue_messages{queue="jobs",state="delayed"} 0"#,
        r#"updraft_queue_oldest_age_seconds{queue="jobs"} 7.0"#,
        r#"updraft_queue_dead_letters{queue="jobs"} 2"#,
    ] {
        assert!(l.contains(&want), "missing {want} in\n{text}");
    }
    // A function gone, a queue emptied: their series go too.
    let second = Snapshot {
        queues: vec![QueueDepth {
            name: "jobs".into(),
            visible: 0,
            in_flight: 0,
            delayed: 0,
            oldest: None,
            dead_letters: 0,
        }],
        ..Snapshot::default()
    };
    let text = m.encode(&second).unwrap();
    assert!(!text.contains("function=\"a\""), "{text}");
    assert!(
        !text.contains("updraft_queue_oldest_age_seconds{"),
        "{text}"
    );
    assert!(lines(&text).contains(&r#"updraft_queue_messages{queue="jobs",state="visible"} 0"#));
}
