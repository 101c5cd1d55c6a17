-- name: set_template_policies
-- A template's default execution policies (each NULL when the template sets none).
UPDATE job_templates
   SET execution_type = %(execution_type)s, schedule = %(schedule)s,
       scheduling_config = %(scheduling_config)s, rollout_config = %(rollout_config)s,
       abort_config = %(abort_config)s, timeout_config = %(timeout_config)s,
       retry_config = %(retry_config)s, stages = %(stages)s
 WHERE id = %(id)s;
