-- Finding devices by part of their name (the portal's device search on an execution) reads a
-- trigram index instead of every device. pg_trgm ships with PostgreSQL and is a trusted
-- extension: the database's owner may create it without superuser rights.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX devices_name_trgm_idx ON devices USING gin (device_name gin_trgm_ops);
