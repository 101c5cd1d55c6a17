-- part: template_columns
-- A template as every query answers it.
id, name, description, category, job_document, parameters, created_by, is_active,
       created_at, updated_at, execution_type, schedule,
       scheduling_config, rollout_config, abort_config, timeout_config, retry_config, stages

-- part: template_list_filter
-- The list's filters: a category, active or not (NULL: any).
(%(category)s::text IS NULL OR category = %(category)s)
   AND (%(is_active)s::boolean IS NULL OR is_active = %(is_active)s)

-- name: insert_job_template
-- A new job template with its default policies; the name is unique.
INSERT INTO job_templates (name, description, category, job_document, parameters, created_by,
                           is_active, execution_type, schedule, scheduling_config,
                           rollout_config, abort_config, timeout_config, retry_config,
                           stages)
VALUES (%(name)s, %(description)s, %(category)s, %(job_document)s, %(parameters)s,
        %(created_by)s, %(is_active)s, %(execution_type)s, %(schedule)s, %(scheduling_config)s,
        %(rollout_config)s, %(abort_config)s, %(timeout_config)s, %(retry_config)s,
        %(stages)s)
RETURNING {{part:template_columns}};

-- name: get_job_template
-- One template by id.
SELECT {{part:template_columns}}
  FROM job_templates WHERE id = %(id)s;

-- name: lock_job_template
-- One template, locked until the end of the transaction for an update or delete.
SELECT {{part:template_columns}}
  FROM job_templates WHERE id = %(id)s FOR UPDATE;

-- name: list_job_templates
-- A page of templates, optionally of one category and/or activity, oldest first.
SELECT {{part:template_columns}}
  FROM job_templates
 WHERE {{part:template_list_filter}}
 ORDER BY id
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_job_templates
-- How many templates list_job_templates pages through.
SELECT count(*) AS n
  FROM job_templates
 WHERE {{part:template_list_filter}};

-- name: update_job_template
-- Replace every editable field of a template.
UPDATE job_templates
   SET name = %(name)s, description = %(description)s, category = %(category)s,
       job_document = %(job_document)s, parameters = %(parameters)s, is_active = %(is_active)s,
       updated_at = now()
 WHERE id = %(id)s
RETURNING {{part:template_columns}};

-- name: delete_job_template
-- Remove a template; executions made from it keep their own copy of the document.
DELETE FROM job_templates WHERE id = %(id)s;

-- name: search_job_templates
-- A page of templates whose name contains a text (case-insensitive), with the list's filters.
SELECT id, name, description, category, parameters, is_active, created_by, created_at,
       updated_at
  FROM job_templates
 WHERE name ILIKE '%%' || %(name_contains)s || '%%'
   AND {{part:template_list_filter}}
 ORDER BY name
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_search_job_templates
-- How many templates search_job_templates pages through.
SELECT count(*) AS n
  FROM job_templates
 WHERE name ILIKE '%%' || %(name_contains)s || '%%'
   AND {{part:template_list_filter}};
