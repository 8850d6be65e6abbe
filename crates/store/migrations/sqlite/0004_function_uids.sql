-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
CREATE TABLE function_uids (
    name TEXT PRIMARY KEY,
    uid BIGINT NOT NULL UNIQUE
);
