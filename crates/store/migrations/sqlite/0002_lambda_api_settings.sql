-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
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
