-- name: create_job_events_months
-- The partitions of job_events for the month (UTC) of now and the months_ahead next ones,
-- each created when missing; answers the months created.
SELECT month_start
  FROM (SELECT (date_trunc('month', %(now)s::timestamptz AT TIME ZONE 'UTC')
                + make_interval(months => ahead)) AT TIME ZONE 'UTC' AS month_start
          FROM generate_series(0, %(months_ahead)s) AS ahead) months
 WHERE create_job_events_month(month_start);
