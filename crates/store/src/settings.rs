//! Function-level settings that are not part of any version (URL auth, reserved
//! concurrency, the Lambda API's `Role`) and aliases. Both tables cascade away
//! with their function.

use crate::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use updraft_core::{now_ms, UrlAuth};

pub(crate) const MIGRATION_SQLITE: &str = "
CREATE TABLE function_settings (
    function TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    url_auth TEXT,
    url_config BIGINT NOT NULL DEFAULT 0,
    url_cors TEXT,
    url_created_ms BIGINT NOT NULL DEFAULT 0,
    url_updated_ms BIGINT NOT NULL DEFAULT 0,
    reserved_concurrency BIGINT,
    role TEXT
);
CREATE TABLE aliases (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    extra_version BIGINT,
    extra_weight REAL,
    description TEXT NOT NULL DEFAULT '',
    revision_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (function, name)
);
";

pub(crate) const MIGRATION_POSTGRES: &str = r#"
CREATE TABLE function_settings (
    function TEXT COLLATE "C" PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    url_auth TEXT,
    url_config BIGINT NOT NULL DEFAULT 0,
    url_cors TEXT,
    url_created_ms BIGINT NOT NULL DEFAULT 0,
    url_updated_ms BIGINT NOT NULL DEFAULT 0,
    reserved_concurrency BIGINT,
    role TEXT
);
CREATE TABLE aliases (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    extra_version BIGINT,
    extra_weight DOUBLE PRECISION,
    description TEXT NOT NULL DEFAULT '',
    revision_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (function, name)
);
"#;

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

/// An alias: a name for a version, optionally sending a share of the traffic
/// to one more version.
#[derive(Clone, Debug, PartialEq)]
pub struct AliasRow {
    pub function: String,
    pub name: String,
    /// 0 = `$LATEST`.
    pub version: i64,
    /// The additional version and the share (0..=1) of invocations it gets.
    pub extra: Option<(i64, f64)>,
    pub description: String,
    pub revision_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A change to an alias; None fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct AliasUpdate {
    pub version: Option<i64>,
    pub extra: Option<Option<(i64, f64)>>,
    pub description: Option<String>,
    pub revision_id: String,
}

const SETTINGS_COLS: &str = "function, url_auth, url_config, url_cors, url_created_ms, \
     url_updated_ms, reserved_concurrency, role";
const ALIAS_COLS: &str = "function, name, version, extra_version, extra_weight, description, \
     revision_id, created_ms, updated_ms";

fn auth_text(a: UrlAuth) -> &'static str {
    match a {
        UrlAuth::Public => "public",
        UrlAuth::Private => "private",
    }
}

fn settings_from_row(row: &AnyRow) -> Result<FunctionSettings, StoreError> {
    let auth: Option<String> = row.try_get("url_auth")?;
    let url_auth = match auth.as_deref() {
        None => None,
        Some("public") => Some(UrlAuth::Public),
        Some("private") => Some(UrlAuth::Private),
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "url_auth {other:?} of function settings"
            )))
        }
    };
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

fn alias_from_row(row: &AnyRow) -> Result<AliasRow, StoreError> {
    let extra_version: Option<i64> = row.try_get("extra_version")?;
    let extra_weight: Option<f64> = row.try_get("extra_weight")?;
    Ok(AliasRow {
        function: row.try_get("function")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        extra: extra_version.zip(extra_weight),
        description: row.try_get("description")?,
        revision_id: row.try_get("revision_id")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// Makes sure the function exists (NotFound otherwise) and has a settings row.
async fn ensure_settings(conn: &mut AnyConnection, name: &str) -> Result<(), StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM functions WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
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
    let row = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => settings_from_row(&r)?,
        None => FunctionSettings {
            function: name.to_string(),
            ..Default::default()
        },
    })
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
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(settings_from_row).collect()
    }

    /// Sets who may call the function's URL (a manifest deploy, or the Lambda
    /// API's Update); the last writer wins.
    pub async fn set_url_auth(&self, name: &str, auth: UrlAuth) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        sqlx::query(
            "UPDATE function_settings SET url_auth = $2, url_updated_ms = $3, \
             url_created_ms = CASE WHEN url_created_ms = 0 THEN $3 ELSE url_created_ms END \
             WHERE function = $1",
        )
        .bind(name)
        .bind(auth_text(auth))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        sqlx::query(
            "UPDATE function_settings SET url_auth = 'private', url_config = 0, url_cors = NULL, \
             url_updated_ms = $2 WHERE function = $1",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (Some) or removes (None) the reserved concurrency.
    pub async fn set_reserved_concurrency(
        &self,
        name: &str,
        reserved: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        sqlx::query("UPDATE function_settings SET reserved_concurrency = $2 WHERE function = $1")
            .bind(name)
            .bind(reserved)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the Lambda API's `Role` of a function.
    pub async fn set_role(&self, name: &str, role: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, name).await?;
        sqlx::query("UPDATE function_settings SET role = $2 WHERE function = $1")
            .bind(name)
            .bind(role)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
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

    // ---- aliases ----

    /// Creates an alias; Conflict if the name is taken, NotFound without the function.
    pub async fn create_alias(&self, alias: &AliasRow) -> Result<AliasRow, StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, &alias.function).await?;
        let done = sqlx::query(&format!(
            "INSERT INTO aliases ({ALIAS_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (function, name) DO NOTHING"
        ))
        .bind(alias.function.as_str())
        .bind(alias.name.as_str())
        .bind(alias.version)
        .bind(alias.extra.map(|e| e.0))
        .bind(alias.extra.map(|e| e.1))
        .bind(alias.description.as_str())
        .bind(alias.revision_id.as_str())
        .bind(alias.created_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "Alias already exists: {}:{}",
                alias.function, alias.name
            )));
        }
        tx.commit().await?;
        Ok(AliasRow {
            updated_ms: alias.created_ms,
            ..alias.clone()
        })
    }

    pub async fn get_alias(
        &self,
        function: &str,
        name: &str,
    ) -> Result<Option<AliasRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 AND name = $2"
        ))
        .bind(function)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alias_from_row).transpose()
    }

    /// A function's aliases, by name.
    pub async fn list_aliases(&self, function: &str) -> Result<Vec<AliasRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 ORDER BY name"
        ))
        .bind(function)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alias_from_row).collect()
    }

    /// Changes an alias. `expected_revision`, when given, must match the
    /// stored one (`Conflict` otherwise, with the message starting "revision").
    pub async fn update_alias(
        &self,
        function: &str,
        name: &str,
        update: AliasUpdate,
        expected_revision: Option<&str>,
    ) -> Result<AliasRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 AND name = $2"
        ))
        .bind(function)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cur) = row.as_ref().map(alias_from_row).transpose()? else {
            return Err(StoreError::NotFound(format!(
                "Alias not found: {function}:{name}"
            )));
        };
        if let Some(rev) = expected_revision {
            if rev != cur.revision_id {
                return Err(StoreError::Conflict(format!(
                    "revision: the alias {function}:{name} has revision {}, not {rev}",
                    cur.revision_id
                )));
            }
        }
        let next = AliasRow {
            version: update.version.unwrap_or(cur.version),
            extra: update.extra.unwrap_or(cur.extra),
            description: update.description.unwrap_or(cur.description.clone()),
            revision_id: update.revision_id,
            updated_ms: now_ms(),
            ..cur
        };
        sqlx::query(
            "UPDATE aliases SET version = $3, extra_version = $4, extra_weight = $5, \
             description = $6, revision_id = $7, updated_ms = $8 WHERE function = $1 AND name = $2",
        )
        .bind(function)
        .bind(name)
        .bind(next.version)
        .bind(next.extra.map(|e| e.0))
        .bind(next.extra.map(|e| e.1))
        .bind(next.description.as_str())
        .bind(next.revision_id.as_str())
        .bind(next.updated_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Deletes an alias; false if there was none.
    pub async fn delete_alias(&self, function: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM aliases WHERE function = $1 AND name = $2")
            .bind(function)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            scaling: Default::default(),
            triggers: vec![],
            description: String::new(),
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
        s.set_url_auth("f", UrlAuth::Public).await.unwrap();
        s.set_role("f", "arn:aws:iam::1:role/r").await.unwrap();
        let st = s.function_settings("f").await.unwrap();
        assert_eq!(st.reserved_concurrency, Some(2));
        assert_eq!(st.url_auth, Some(UrlAuth::Public));
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
