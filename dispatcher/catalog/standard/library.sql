-- name: insert_standard_job_handler
-- A standard handler, unless a handler of that name exists (an operator's version is kept).
INSERT INTO job_handlers (name, description, script_type, script_content, script_sha256,
                          permissions, default_args, created_by)
VALUES (%(name)s, %(description)s, 'bash', %(script_content)s, %(script_sha256)s, '700',
        '[]'::jsonb, %(created_by)s)
ON CONFLICT (name) DO NOTHING
RETURNING name, script_sha256;

-- name: insert_standard_job_template
-- A standard template, unless a template of that name exists (an operator's version is kept).
INSERT INTO job_templates (name, description, category, job_document, parameters, created_by)
VALUES (%(name)s, %(description)s, %(category)s, %(job_document)s, %(parameters)s,
        %(created_by)s)
ON CONFLICT (name) DO NOTHING
RETURNING id, name, category;
