-- name: handler_hashes
-- What decides how each of these handlers runs, to pin an execution's runHandler steps: its
-- content's sha256, its interpreter and its default arguments.
SELECT name, script_sha256, script_type, default_args FROM job_handlers
 WHERE name = ANY(%(names)s);
