-- Never edit this file once released: add a new pair of files. Its twin in
-- ../postgres/ must leave the database equivalent.
CREATE TABLE bus_subscriptions (
    function TEXT NOT NULL,
    idx BIGINT NOT NULL,
    bus TEXT NOT NULL,
    qualifier TEXT NOT NULL DEFAULT '',
    pattern TEXT NOT NULL,
    PRIMARY KEY (function, idx)
);
CREATE INDEX bus_subscriptions_bus ON bus_subscriptions (bus);
