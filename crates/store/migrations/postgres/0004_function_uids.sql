-- Never edit this file once released: add a new pair of files. Its twin in
-- ../sqlite/ must leave the database equivalent.
CREATE TABLE function_uids (
    name TEXT COLLATE "C" PRIMARY KEY,
    uid BIGINT NOT NULL UNIQUE
);
