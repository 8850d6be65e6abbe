//! Functions and their versions: `$LATEST` (version 0), which deploys and
//! updates overwrite, and published versions (1, 2, …), which never change.

use crate::{fetch_all, fetch_optional, Backend, Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use updraft_core::{now_ms, FunctionConfig};

/// One function; its content lives in its versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    pub app: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The highest published version that still exists, 0 if none.
    pub last_published: i64,
}

/// `$LATEST` (version 0) or a published, immutable version (1, 2, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    pub function: String,
    /// 0 = `$LATEST`.
    pub version: i64,
    pub config: FunctionConfig,
    pub code_sha256: String,
    pub code_size: i64,
    /// Hex sha256 over the config JSON and the code hash: same content, same revision.
    pub revision: String,
    /// For `$LATEST`, when it was last written.
    pub created_ms: i64,
    pub description: String,
}

/// A function as [`Store::list_with_latest`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFunction {
    pub function: FunctionRow,
    pub latest: VersionRow,
    /// The revision of version `last_published`, if there is one.
    pub published_revision: Option<String>,
    /// The function URL's auth as set through the Lambda API or a deploy
    /// (`function_settings.url_auth`), if set.
    pub url_auth: Option<updraft_core::UrlAuth>,
}

/// What [`Store::deploy`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployOutcome {
    /// The published version now matching `$LATEST`.
    pub version: VersionRow,
    /// False when the deploy changed nothing at all.
    pub changed: bool,
}

const VERSION_COLS: &str =
    "function, version, config, code_sha256, code_size, revision, created_ms, description";
const FUNCTION_COLS: &str = "name, app, created_ms, updated_ms, last_published";

impl Store {
    /// Creates the function with its `$LATEST`; Conflict if the name exists.
    pub async fn create_function(
        &self,
        name: &str,
        app: Option<&str>,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<VersionRow, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        self.set_latest(name, Some(app), &content).await
    }

    /// Replaces `$LATEST`; NotFound if the function does not exist.
    pub async fn update_latest(
        &self,
        name: &str,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<VersionRow, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        self.set_latest(name, None, &content).await
    }

    /// Writes `$LATEST` of a new function (`create` = Some(app); Conflict if
    /// the name is taken) or of an existing one (None; NotFound without it).
    async fn set_latest(
        &self,
        name: &str,
        create: Option<Option<&str>>,
        content: &Content,
    ) -> Result<VersionRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        match create {
            Some(app) => {
                if !insert_function(&mut tx, name, app, now).await? {
                    return Err(StoreError::Conflict(format!(
                        "function {name} already exists"
                    )));
                }
            }
            None => {
                if !lock_function(&mut tx, name, Some(now)).await? {
                    return Err(not_found(name));
                }
            }
        }
        let row = write_latest(&mut tx, name, content, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Publishes `$LATEST` as a new version, unless the last published version
    /// already has its revision: then that one is returned unchanged.
    pub async fn publish(&self, name: &str, description: &str) -> Result<VersionRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !lock_function(&mut tx, name, None).await? {
            return Err(not_found(name));
        }
        let (row, _) = publish_locked(&mut tx, name, Some(description), now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Creates or updates the function of `app` and publishes it when its
    /// content differs from the last published version, all in one transaction.
    pub async fn deploy(
        &self,
        name: &str,
        app: &str,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<DeployOutcome, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let created = insert_function(&mut tx, name, Some(app), now).await?;
        let mut changed = created;
        if created {
            write_latest(&mut tx, name, &content, now).await?;
        } else {
            lock_function(&mut tx, name, None).await?;
            let owner: Option<String> =
                sqlx::query_scalar("SELECT app FROM functions WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if owner.as_deref() != Some(app) {
                let owner = owner.map_or_else(
                    || "no app (it was created through the API)".to_string(),
                    |o| format!("app {o}"),
                );
                return Err(StoreError::Conflict(format!(
                    "function {name} belongs to {owner}, not to app {app}; rename it or delete it first"
                )));
            }
            let latest = read_version(&mut tx, name, 0).await?;
            if latest.as_ref().map(|l| l.revision.as_str()) != Some(content.revision.as_str()) {
                write_latest(&mut tx, name, &content, now).await?;
                changed = true;
            }
        }
        let (version, published) = publish_locked(&mut tx, name, None, now).await?;
        changed |= published;
        if changed {
            sqlx::query("UPDATE functions SET updated_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(DeployOutcome { version, changed })
    }

    pub async fn get_function(&self, name: &str) -> Result<Option<FunctionRow>, StoreError> {
        let sql = format!("SELECT {FUNCTION_COLS} FROM functions WHERE name = $1");
        fetch_optional(&self.pool, &sql, &[name], function_from_row).await
    }

    /// All functions, ordered by name.
    pub async fn list_functions(&self) -> Result<Vec<FunctionRow>, StoreError> {
        let sql = format!("SELECT {FUNCTION_COLS} FROM functions ORDER BY name");
        fetch_all(&self.pool, &sql, &[], function_from_row).await
    }

    pub async fn get_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<VersionRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_version(&mut conn, name, version).await
    }

    /// `$LATEST` first, then published versions ascending.
    pub async fn list_versions(&self, name: &str) -> Result<Vec<VersionRow>, StoreError> {
        let sql =
            format!("SELECT {VERSION_COLS} FROM versions WHERE function = $1 ORDER BY version");
        fetch_all(&self.pool, &sql, &[name], version_from_row).await
    }

    /// Removes the function and its versions; invocation records and logs stay
    /// (they are billing and audit history). False if there was no such function.
    pub async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Explicit rather than relying on ON DELETE CASCADE, which SQLite only
        // honours with foreign_keys=ON.
        for table in ["versions", "function_tags"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE function = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let gone = sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Deletes one published version (`$LATEST` cannot be deleted alone: Conflict).
    /// Its number is never reused.
    pub async fn delete_version(&self, name: &str, version: i64) -> Result<bool, StoreError> {
        if version < 1 {
            return Err(StoreError::Conflict(format!(
                "cannot delete version {version} of {name}: only published versions (1 and up) can be deleted; \
                 delete the function to remove $LATEST"
            )));
        }
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM versions WHERE function = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            sqlx::query(
                "UPDATE functions SET last_published = \
                 (SELECT COALESCE(MAX(version), 0) FROM versions WHERE function = $1 AND version >= 1), \
                 updated_ms = $2 WHERE name = $1",
            )
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// `$LATEST` of every function, ordered by name.
    pub async fn all_latest(&self) -> Result<Vec<VersionRow>, StoreError> {
        let sql =
            format!("SELECT {VERSION_COLS} FROM versions WHERE version = 0 ORDER BY function");
        fetch_all(&self.pool, &sql, &[], version_from_row).await
    }

    /// `$LATEST` of the functions that declare HTTP routes, ordered by name
    /// (the input of the route table; it reads none of the others).
    pub async fn routed_latest(&self) -> Result<Vec<VersionRow>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLS} FROM versions WHERE version = 0 AND has_routes = 1 ORDER BY function"
        );
        fetch_all(&self.pool, &sql, &[], version_from_row).await
    }

    /// The names of `app`'s functions, ordered.
    pub async fn app_functions(&self, app: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM functions WHERE app = $1 ORDER BY name")
                .bind(app)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Every function with its `$LATEST`, the revision of its last
    /// published version and its URL's auth setting, ordered by name: what a
    /// listing shows. One query
    /// that returns one value, a JSON array with a row per function (with
    /// 10,000 functions, moving 120,000 values one by one from the driver
    /// cost more than the query).
    pub async fn list_with_latest(&self) -> Result<Vec<ListedFunction>, StoreError> {
        let cols = "f.name, f.app, f.created_ms, f.updated_ms, f.last_published, l.config, \
                    l.code_sha256, l.code_size, l.revision, l.created_ms, l.description, p.revision, s.url_auth";
        let from = "FROM functions f JOIN versions l ON l.function = f.name AND l.version = 0 \
                    LEFT JOIN versions p ON p.function = f.name AND p.version = f.last_published \
                    AND f.last_published > 0 LEFT JOIN function_settings s ON s.function = f.name";
        let sql = match self.backend {
            // Unordered: sorting here costs a temporary b-tree, in Rust a sort
            // of names.
            Backend::Sqlite => format!("SELECT json_group_array(json_array({cols})) {from}"),
            Backend::Postgres => {
                format!("SELECT COALESCE(json_agg(json_build_array({cols})), '[]')::text {from}")
            }
        };
        let json: String = sqlx::query_scalar(&sql).fetch_one(&self.pool).await?;
        type Row = (
            String,
            Option<String>,
            i64,
            i64,
            i64,
            String,
            String,
            i64,
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
        );
        let mut rows: Vec<Row> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("the function listing: {e}")))?;
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter()
            .map(
                |(
                    name,
                    app,
                    created_ms,
                    updated_ms,
                    last_published,
                    config,
                    code_sha256,
                    code_size,
                    revision,
                    latest_ms,
                    description,
                    published_revision,
                    url_auth,
                )| {
                    let config = serde_json::from_str(&config).map_err(|e| {
                        StoreError::Corrupt(format!("config of function {name} version 0: {e}"))
                    })?;
                    Ok(ListedFunction {
                        latest: VersionRow {
                            function: name.clone(),
                            version: 0,
                            config,
                            code_sha256,
                            code_size,
                            revision,
                            created_ms: latest_ms,
                            description,
                        },
                        function: FunctionRow {
                            name,
                            app,
                            created_ms,
                            updated_ms,
                            last_published,
                        },
                        published_revision,
                        url_auth: crate::settings::auth_from_text(url_auth.as_deref())?,
                    })
                },
            )
            .collect()
    }
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("function {name}"))
}

/// A version's content, serialised once.
struct Content {
    config: FunctionConfig,
    config_json: String,
    code_sha256: String,
    code_size: i64,
    revision: String,
}

impl Content {
    fn new(
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<Content, StoreError> {
        let config_json = serde_json::to_string(config)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the function config: {e}")))?;
        let revision = revision(&config_json, code_sha256);
        Ok(Content {
            config: config.clone(),
            config_json,
            code_sha256: code_sha256.to_string(),
            code_size,
            revision,
        })
    }
}

/// Hex sha256 of the config JSON then the code hash; the JSON always ends in
/// `}`, so the concatenation is unambiguous.
fn revision(config_json: &str, code_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(config_json.as_bytes());
    h.update(code_sha256.as_bytes());
    hex::encode(h.finalize())
}

/// Inserts a function row; false if the name is taken.
async fn insert_function(
    conn: &mut AnyConnection,
    name: &str,
    app: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO functions (name, app, created_ms, updated_ms, last_published, version_seq) \
         VALUES ($1, $2, $3, $3, 0, 0) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(app)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Row-locks the function (PostgreSQL; SQLite already holds the write lock)
/// so concurrent publishes cannot pick the same version number. With `touch`,
/// also sets updated_ms. False if the function does not exist.
async fn lock_function(
    conn: &mut AnyConnection,
    name: &str,
    touch: Option<i64>,
) -> Result<bool, StoreError> {
    let done = match touch {
        Some(now) => {
            sqlx::query("UPDATE functions SET updated_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&mut *conn)
                .await?
        }
        None => {
            sqlx::query("UPDATE functions SET updated_ms = updated_ms WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

async fn write_latest(
    conn: &mut AnyConnection,
    name: &str,
    c: &Content,
    now: i64,
) -> Result<VersionRow, StoreError> {
    sqlx::query(
        "INSERT INTO versions (function, version, config, code_sha256, code_size, revision, created_ms, description, has_routes) \
         VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (function, version) DO UPDATE SET config = excluded.config, \
         code_sha256 = excluded.code_sha256, code_size = excluded.code_size, revision = excluded.revision, \
         created_ms = excluded.created_ms, description = excluded.description, has_routes = excluded.has_routes",
    )
    .bind(name)
    .bind(c.config_json.as_str())
    .bind(c.code_sha256.as_str())
    .bind(c.code_size)
    .bind(c.revision.as_str())
    .bind(now)
    .bind(c.config.description.as_str())
    .bind(i64::from(c.config.routes().next().is_some()))
    .execute(&mut *conn)
    .await?;
    Ok(VersionRow {
        function: name.to_string(),
        version: 0,
        config: c.config.clone(),
        code_sha256: c.code_sha256.clone(),
        code_size: c.code_size,
        revision: c.revision.clone(),
        created_ms: now,
        description: c.config.description.clone(),
    })
}

/// Publishes `$LATEST` of a function locked by the caller, or returns the last
/// published version when it already has the same revision. The bool says
/// whether a version was created. `description` None = the config's.
async fn publish_locked(
    conn: &mut AnyConnection,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<(VersionRow, bool), StoreError> {
    let latest = read_version(conn, name, 0)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("function {name} has no $LATEST version")))?;
    let sql = format!(
        "SELECT {VERSION_COLS} FROM versions WHERE function = $1 AND version >= 1 ORDER BY version DESC LIMIT 1"
    );
    if let Some(last) = fetch_optional(&mut *conn, &sql, &[name], version_from_row).await? {
        if last.revision == latest.revision {
            return Ok((last, false));
        }
    }
    let seq: i64 = sqlx::query_scalar("SELECT version_seq FROM functions WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    let version = seq + 1;
    let description = description
        .unwrap_or(&latest.config.description)
        .to_string();
    sqlx::query(
        "INSERT INTO versions (function, version, config, code_sha256, code_size, revision, created_ms, description, has_routes) \
         SELECT function, $2, config, code_sha256, code_size, revision, $3, $4, has_routes FROM versions \
         WHERE function = $1 AND version = 0",
    )
    .bind(name)
    .bind(version)
    .bind(now)
    .bind(description.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE functions SET version_seq = $2, last_published = $2, updated_ms = $3 WHERE name = $1")
        .bind(name)
        .bind(version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok((
        VersionRow {
            version,
            created_ms: now,
            description,
            ..latest
        },
        true,
    ))
}

async fn read_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<Option<VersionRow>, StoreError> {
    let sql = format!("SELECT {VERSION_COLS} FROM versions WHERE function = $1 AND version = $2");
    let row = sqlx::query(&sql)
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(version_from_row).transpose()
}

fn function_from_row(row: &AnyRow) -> Result<FunctionRow, StoreError> {
    Ok(FunctionRow {
        name: row.try_get("name")?,
        app: row.try_get("app")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        last_published: row.try_get("last_published")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<VersionRow, StoreError> {
    let function: String = row.try_get("function")?;
    let version: i64 = row.try_get("version")?;
    let json: String = row.try_get("config")?;
    let config = serde_json::from_str(&json).map_err(|e| {
        StoreError::Corrupt(format!(
            "config of function {function} version {version}: {e}"
        ))
    })?;
    Ok(VersionRow {
        function,
        version,
        config,
        code_sha256: row.try_get("code_sha256")?,
        code_size: row.try_get("code_size")?,
        revision: row.try_get("revision")?,
        created_ms: row.try_get("created_ms")?,
        description: row.try_get("description")?,
    })
}
