//! Function-level settings that are not part of any version (URL auth, reserved
//! concurrency, the Lambda API's `Role`). They cascade away with their
//! function, like its aliases (`aliases.rs`).

use crate::{fetch_all, fetch_optional, AnyQuery, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use updraft_core::{now_ms, UrlAuth};

/// Settings of a function as a whole; defaults when never written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionSettings {
    pub function: String,
    /// Who may call `/fn/{name}`; None = what the `$LATEST` config says
    /// (functions deployed before this setting existed).
    pub url_auth: Option<UrlAuth>,
    /// True once CreateFunctionUrlConfig ran (until DeleteFunctionUrlConfig).
    pub url_config: bool,
    /// The Lambda API's `Cors` object, as JSON, kept as given.
    pub url_cors: Option<String>,
    pub url_created_ms: i64,
    pub url_updated_ms: i64,
    /// Reserved concurrency (Lambda's `ReservedConcurrentExecutions`), if set.
    pub reserved_concurrency: Option<i64>,
    /// The Lambda API's `Role`, accepted and otherwise ignored.
    pub role: Option<String>,
}

const SETTINGS_COLS: &str = "function, url_auth, url_config, url_cors, url_created_ms, \
     url_updated_ms, reserved_concurrency, role";

fn auth_text(a: UrlAuth) -> &'static str {
    match a {
        UrlAuth::Public => "public",
        UrlAuth::Private => "private",
    }
}

/// A stored `url_auth`.
pub(crate) fn auth_from_text(auth: Option<&str>) -> Result<Option<UrlAuth>, StoreError> {
    match auth {
        None => Ok(None),
        Some("public") => Ok(Some(UrlAuth::Public)),
        Some("private") => Ok(Some(UrlAuth::Private)),
        Some(other) => Err(StoreError::Corrupt(format!(
            "url_auth {other:?} of function settings"
        ))),
    }
}

fn settings_from_row(row: &AnyRow) -> Result<FunctionSettings, StoreError> {
    let auth: Option<String> = row.try_get("url_auth")?;
    let url_auth = auth_from_text(auth.as_deref())?;
    Ok(FunctionSettings {
        function: row.try_get("function")?,
        url_auth,
        url_config: row.try_get::<i64, _>("url_config")? != 0,
        url_cors: row.try_get("url_cors")?,
        url_created_ms: row.try_get("url_created_ms")?,
        url_updated_ms: row.try_get("url_updated_ms")?,
        reserved_concurrency: row.try_get("reserved_concurrency")?,
        role: row.try_get("role")?,
    })
}

/// Whether the function exists.
pub(crate) async fn function_exists(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<bool, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM functions WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(exists.is_some())
}

/// Makes sure the function exists (NotFound otherwise) and has a settings row.
pub(crate) async fn ensure_settings(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<(), StoreError> {
    if !function_exists(&mut *conn, name).await? {
        return Err(StoreError::NotFound(format!("function {name}")));
    }
    sqlx::query(
        "INSERT INTO function_settings (function) VALUES ($1) ON CONFLICT (function) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn read_settings(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<FunctionSettings, StoreError> {
    let sql = format!("SELECT {SETTINGS_COLS} FROM function_settings WHERE function = $1");
    let found = fetch_optional(&mut *conn, &sql, &[name], settings_from_row).await?;
    Ok(found.unwrap_or_else(|| FunctionSettings {
        function: name.to_string(),
        ..Default::default()
    }))
}

impl Store {
    /// The settings of a function (defaults when none were written; the
    /// function's existence is not checked).
    pub async fn function_settings(&self, name: &str) -> Result<FunctionSettings, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_settings(&mut conn, name).await
    }

    /// Every function's settings that were ever written, by function name.
    pub async fn all_function_settings(&self) -> Result<Vec<FunctionSettings>, StoreError> {
        let sql = format!("SELECT {SETTINGS_COLS} FROM function_settings ORDER BY function");
        fetch_all(&self.pool, &sql, &[], settings_from_row).await
    }

    /// Runs `update` (`UPDATE function_settings SET … WHERE function = $1`) in
    /// a write transaction, once the function is known to exist (NotFound
    /// otherwise) and to have a settings row; `bind` binds $2 and on.
    async fn update_settings<'q>(
        &self,
        name: &'q str,
        update: &'q str,
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q> + Send,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        bind(sqlx::query(update).bind(name))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets who may call the function's URL and its CORS (the Lambda API's
    /// `Cors` as JSON; None: no CORS), as a manifest deploy does; the last
    /// writer (a deploy or the Lambda API) wins.
    pub async fn set_url(
        &self,
        name: &str,
        auth: UrlAuth,
        cors: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_settings(
            name,
            "UPDATE function_settings SET url_auth = $2, url_cors = $3, url_updated_ms = $4, \
             url_created_ms = CASE WHEN url_created_ms = 0 THEN $4 ELSE url_created_ms END \
             WHERE function = $1",
            |q| q.bind(auth_text(auth)).bind(cors).bind(now_ms()),
        )
        .await
    }

    /// Writes the URL config of the Lambda API. `create` fails with Conflict
    /// when a config was already created and not deleted since. `cors`:
    /// None = keep, Some(None) = clear.
    pub async fn put_url_config(
        &self,
        name: &str,
        create: bool,
        auth: Option<UrlAuth>,
        cors: Option<Option<String>>,
    ) -> Result<FunctionSettings, StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        let cur = read_settings(&mut tx, name).await?;
        if create && cur.url_config {
            return Err(StoreError::Conflict(format!(
                "Failed to create function url config for [functionArn = {name}]. Error message:  FunctionUrlConfig exists for this Lambda function"
            )));
        }
        let now = now_ms();
        let created = if create || cur.url_created_ms == 0 {
            now
        } else {
            cur.url_created_ms
        };
        let auth = auth.or(cur.url_auth);
        let cors = cors.unwrap_or(cur.url_cors);
        sqlx::query(
            "UPDATE function_settings SET url_auth = $2, url_config = 1, url_cors = $3, \
             url_created_ms = $4, url_updated_ms = $5 WHERE function = $1",
        )
        .bind(name)
        .bind(auth.map(auth_text))
        .bind(cors.as_deref())
        .bind(created)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let out = read_settings(&mut tx, name).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes the Lambda API's URL config: the URL itself always exists, so it
    /// becomes private (AWS_IAM).
    pub async fn delete_url_config(&self, name: &str) -> Result<(), StoreError> {
        self.update_settings(
            name,
            "UPDATE function_settings SET url_auth = 'private', url_config = 0, url_cors = NULL, \
             url_updated_ms = $2 WHERE function = $1",
            |q| q.bind(now_ms()),
        )
        .await
    }

    /// Sets (Some) or removes (None) the reserved concurrency.
    pub async fn set_reserved_concurrency(
        &self,
        name: &str,
        reserved: Option<i64>,
    ) -> Result<(), StoreError> {
        self.update_settings(
            name,
            "UPDATE function_settings SET reserved_concurrency = $2 WHERE function = $1",
            |q| q.bind(reserved),
        )
        .await
    }

    /// Records the Lambda API's `Role` of a function.
    pub async fn set_role(&self, name: &str, role: &str) -> Result<(), StoreError> {
        self.update_settings(
            name,
            "UPDATE function_settings SET role = $2 WHERE function = $1",
            |q| q.bind(role),
        )
        .await
    }

    /// Removes a function's settings and aliases (the foreign keys cascade
    /// too; this also covers databases where they are not enforced).
    pub async fn delete_function_settings(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for table in ["aliases", "function_settings"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE function = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AliasRow, AliasUpdate};
    use updraft_core::FunctionConfig;

    fn config() -> FunctionConfig {
        FunctionConfig {
            runtime: "python3".into(),
            handler: "app.handler".into(),
            memory_mb: 128,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            timeout_ms: 3000,
            env: Default::default(),
            url: UrlAuth::Private,
            cors: None,
            scaling: Default::default(),
            triggers: vec![],
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/u.db", dir.path().display());
        let s = Store::open(&url).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn settings_round_trip_and_cascade() {
        let (_d, s) = store().await;
        assert!(matches!(
            s.set_reserved_concurrency("f", Some(2)).await,
            Err(StoreError::NotFound(_))
        ));
        s.create_function("f", None, &config(), "ab", 1)
            .await
            .unwrap();
        assert_eq!(s.function_settings("f").await.unwrap().url_auth, None);
        s.set_reserved_concurrency("f", Some(2)).await.unwrap();
        s.set_url("f", UrlAuth::Public, Some(r#"{"MaxAge":5}"#))
            .await
            .unwrap();
        s.set_role("f", "arn:aws:iam::1:role/r").await.unwrap();
        let st = s.function_settings("f").await.unwrap();
        assert_eq!(st.reserved_concurrency, Some(2));
        assert_eq!(st.url_auth, Some(UrlAuth::Public));
        assert_eq!(st.url_cors.as_deref(), Some(r#"{"MaxAge":5}"#));
        assert!(!st.url_config);

        let st = s
            .put_url_config("f", true, Some(UrlAuth::Private), Some(Some("{}".into())))
            .await
            .unwrap();
        assert!(st.url_config);
        assert_eq!(st.url_cors.as_deref(), Some("{}"));
        assert!(matches!(
            s.put_url_config("f", true, None, None).await,
            Err(StoreError::Conflict(_))
        ));
        s.delete_url_config("f").await.unwrap();
        assert!(!s.function_settings("f").await.unwrap().url_config);
        assert_eq!(
            s.function_settings("f").await.unwrap().url_auth,
            Some(UrlAuth::Private)
        );

        let a = AliasRow {
            function: "f".into(),
            name: "live".into(),
            version: 0,
            extra: Some((2, 0.25)),
            description: "d".into(),
            revision_id: "r1".into(),
            created_ms: 5,
            updated_ms: 5,
        };
        s.create_alias(&a).await.unwrap();
        assert!(matches!(
            s.create_alias(&a).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.get_alias("f", "live").await.unwrap().unwrap(), a);
        let up = AliasUpdate {
            extra: Some(None),
            revision_id: "r2".into(),
            ..Default::default()
        };
        assert!(s
            .update_alias("f", "live", up.clone(), Some("nope"))
            .await
            .is_err());
        let b = s.update_alias("f", "live", up, Some("r1")).await.unwrap();
        assert_eq!(b.extra, None);
        assert_eq!(b.description, "d");
        assert_eq!(s.list_aliases("f").await.unwrap().len(), 1);

        s.delete_function("f").await.unwrap();
        s.create_function("f", None, &config(), "ab", 1)
            .await
            .unwrap();
        assert_eq!(s.list_aliases("f").await.unwrap(), vec![]);
        assert_eq!(
            s.function_settings("f").await.unwrap().reserved_concurrency,
            None
        );
    }
}
