-- Never edit this file once released: add a new pair of files. Its twin in
-- the other backend's folder must leave the database equivalent.
-- The trace context (a W3C traceparent) an asynchronous event or a queued
-- message was accepted in: its consumer's invocation continues that trace.
ALTER TABLE events ADD COLUMN trace TEXT;
ALTER TABLE messages ADD COLUMN trace TEXT;
