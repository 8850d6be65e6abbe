//! Function tags and the account's usage, on both databases.

use super::*;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn tags_are_kept_limited_and_go_with_the_function(db: &TestDb) {
    let s = db.open().await;
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert_eq!(s.function_tags("f").await.unwrap(), Tags::new());
    s.tag_function("f", &tags(&[("team", "a"), ("env", "dev")]), 3)
        .await
        .unwrap();
    // A key already there gets the new value.
    s.tag_function("f", &tags(&[("team", "b")]), 3)
        .await
        .unwrap();
    // Over the limit: nothing of the call is kept.
    assert!(matches!(
        s.tag_function("f", &tags(&[("x", "1"), ("y", "2")]), 3)
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.untag_function("f", &["env".into(), "absent".into()])
        .await
        .unwrap();
    assert!(matches!(
        s.tag_function("nope", &tags(&[("a", "b")]), 3).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.untag_function("nope", &["a".into()]).await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;

    // Durable: a store opened again has them.
    let s = db.open().await;
    assert_eq!(s.function_tags("f").await.unwrap(), tags(&[("team", "b")]));
    // Deleted with the function: a new function of that name has none.
    assert!(s.delete_function("f").await.unwrap());
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert_eq!(s.function_tags("f").await.unwrap(), Tags::new());
    db.finish(s).await;
}

async fn account_usage_counts_functions_and_code(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.account_usage().await.unwrap(), AccountUsage::default());
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.create_function("g", None, &cfg(128), "bbb", 7)
        .await
        .unwrap();
    s.publish("f", "v1").await.unwrap();
    assert_eq!(
        s.account_usage().await.unwrap(),
        AccountUsage {
            function_count: 2,
            total_code_size: 27,
        }
    );
    db.finish(s).await;
}

suite!(
    tags_are_kept_limited_and_go_with_the_function,
    account_usage_counts_functions_and_code,
);
