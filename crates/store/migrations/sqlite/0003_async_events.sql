-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'invoke',
    payload BLOB NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    runs BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT,
    lease_until BIGINT,
    last_error_type TEXT,
    last_error BLOB,
    last_version TEXT
);
CREATE INDEX events_due ON events (status, next_attempt_ms);
CREATE INDEX events_function ON events (function);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    request_id TEXT NOT NULL,
    failed_ms BIGINT NOT NULL,
    condition TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX dead_letters_function ON dead_letters (function, id);
CREATE TABLE event_invoke_configs (
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    max_retry_attempts BIGINT,
    max_event_age_s BIGINT,
    on_success TEXT,
    on_failure TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (function, qualifier)
);
