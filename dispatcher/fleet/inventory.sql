-- Device inventory: the device's own facts, apart from the operator's attributes.

-- name: device_inventory
-- A device's inventory as it is now (a report is merged into it, then stored only if it is
-- still what was read: store_device_inventory).
SELECT inventory FROM devices WHERE uuid = %(uuid)s;

-- name: store_device_inventory
-- Store a report in one statement, its own transaction: a sighting always, the inventory and
-- its time only when it changed, and only if the inventory is still the one the report was
-- merged into (no row: another report came first, merge again). ``follow``: whether a
-- continuous job runs that the change may move the device in or out of.
UPDATE devices
   SET last_seen_at = %(now)s,
       inventory = CASE WHEN %(changed)s THEN %(inventory)s::jsonb ELSE inventory END,
       inventory_updated_at = CASE WHEN %(changed)s THEN %(now)s ELSE inventory_updated_at END
 WHERE uuid = %(uuid)s AND inventory = %(read)s::jsonb
RETURNING inventory, inventory_updated_at,
          %(changed)s AND EXISTS (
              SELECT 1 FROM job_executions
               WHERE execution_type = 'continuous' AND status IN ('QUEUED', 'IN_PROGRESS')
                 AND fanout_status = 'DONE' AND (end_at IS NULL OR end_at > %(now)s)
                 AND target_type <> 'device') AS follow;
