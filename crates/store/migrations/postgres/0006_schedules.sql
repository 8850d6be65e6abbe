-- Never edit this file once released: add a new pair of files. Its twin in
-- ../sqlite/ must leave the database equivalent.
-- What started each invocation (`http`, `invoke`, `event`, `schedule`,
-- `queue`, `bus`); '' for records written before it was recorded.
ALTER TABLE invocations ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT '';
-- One row per schedule trigger of a function's $LATEST (`idx`: its place in
-- the function's triggers). A tick fires by moving `next_due_ms` on with a
-- compare-and-set in the transaction that enqueues its event, so a tick
-- fires once even with several servers on one database.
CREATE TABLE schedules (
    function TEXT COLLATE "C" NOT NULL,
    idx BIGINT NOT NULL,
    spec TEXT NOT NULL,
    description TEXT NOT NULL,
    next_due_ms BIGINT,
    last_due_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (function, idx)
);
CREATE INDEX schedules_due ON schedules (next_due_ms);
