-- name: handler_hashes
-- The sha256 of each of these handlers that exists, to pin an execution's runHandler steps.
SELECT name, script_sha256 FROM job_handlers WHERE name = ANY(%(names)s);
