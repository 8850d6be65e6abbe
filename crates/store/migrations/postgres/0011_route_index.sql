-- Never edit this file once released: add a new pair of files. Its twin in
-- the other backend's folder must leave the database equivalent.
-- Deploys and the route table read only the functions that declare HTTP
-- routes, and pruning reads only an app's functions, instead of every
-- function: has_routes is 1 when a version's config has an `http` trigger
-- (serialised as {"http":…}; the backfill may say 1 for a config that
-- merely mentions one, which costs a scan of that row, never a miss).
ALTER TABLE versions ADD COLUMN has_routes BIGINT NOT NULL DEFAULT 1;
UPDATE versions SET has_routes = 0 WHERE config NOT LIKE '%{"http":%';
CREATE INDEX versions_routes ON versions (version, has_routes);
CREATE INDEX functions_app ON functions (app);
