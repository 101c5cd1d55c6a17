-- Target filters: the bound on a search no index serves.

-- name: bound_filter_time
-- A search runs in a transaction of its own with a time limit: a filter no index serves
-- (a range on inventory, say) reads every device and is stopped rather than left running.
SELECT set_config('statement_timeout', %(timeout_ms)s::text, true);
