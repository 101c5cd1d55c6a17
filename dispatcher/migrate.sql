-- name: lock_migrations
-- One migration run at a time: a second process waits here, then finds nothing left to do.
SELECT pg_advisory_lock(%(key)s);

-- name: unlock_migrations
SELECT pg_advisory_unlock(%(key)s);

-- name: create_schema_migrations
-- The record of applied migrations.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(name)s;

-- name: create_database
-- {name} is filled in as an identifier (psycopg.sql), which no parameter can be.
CREATE DATABASE {name};
