-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    visibility_timeout_ms BIGINT NOT NULL,
    delay_ms BIGINT NOT NULL,
    max_message_bytes BIGINT NOT NULL,
    dead_letter_queue TEXT,
    max_receive_count BIGINT,
    origin TEXT NOT NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    md5_of_body TEXT NOT NULL,
    attributes TEXT,
    md5_of_attributes TEXT,
    sent_ms BIGINT NOT NULL,
    visible_ms BIGINT NOT NULL,
    receive_count BIGINT NOT NULL DEFAULT 0,
    first_receive_ms BIGINT,
    receipt_handle TEXT,
    source_queue TEXT
);
CREATE INDEX messages_visible ON messages (queue, visible_ms, seq);
CREATE UNIQUE INDEX messages_receipt ON messages (receipt_handle);
CREATE INDEX messages_source ON messages (source_queue);
CREATE TABLE event_source_mappings (
    uuid TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL DEFAULT '',
    batch_size BIGINT NOT NULL,
    batch_window_ms BIGINT NOT NULL,
    report_batch_item_failures BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    origin TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (queue, function, qualifier)
);
CREATE INDEX event_source_mappings_function ON event_source_mappings (function);
