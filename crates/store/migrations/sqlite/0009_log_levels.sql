-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
-- A log line's level (TRACE…FATAL) when its text carries one, for
-- `updraft logs --level`; lines written before have none. The request id
-- index serves `--request-id` without walking a function's lines.
ALTER TABLE logs ADD COLUMN level TEXT;
CREATE INDEX logs_request_id ON logs (request_id);
