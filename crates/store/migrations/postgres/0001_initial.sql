-- Never edit this file once released: add a new pair of files. Its twin in
-- ../sqlite/ must leave the database equivalent.
-- `version_seq` never goes down, so deleted version numbers are never reused
-- (Lambda semantics); `last_published` tracks the highest surviving one.
-- COLLATE "C" makes ORDER BY name match SQLite's byte order.
CREATE TABLE functions (
    name TEXT COLLATE "C" PRIMARY KEY,
    app TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    last_published BIGINT NOT NULL DEFAULT 0,
    version_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE versions (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    config TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size BIGINT NOT NULL,
    revision TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (function, version)
);
CREATE TABLE invocations (
    request_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    billed_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    max_memory_mb BIGINT NOT NULL,
    init_us BIGINT,
    cold BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT
);
CREATE INDEX invocations_start_ms ON invocations (start_ms);
CREATE TABLE logs (
    id BIGSERIAL PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    function TEXT NOT NULL,
    request_id TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX logs_function_id ON logs (function, id);
CREATE INDEX logs_ts_ms ON logs (ts_ms);
