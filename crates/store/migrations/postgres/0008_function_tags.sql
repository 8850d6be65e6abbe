-- Never edit this file once released: add a new pair of files. Its twin in
-- ../sqlite/ must leave the database equivalent.
-- The Lambda API's tags of a function (TagResource); they go with it.
CREATE TABLE function_tags (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function, key)
);
