-- Device inventory: the device's own facts, apart from the operator's attributes.

-- name: lock_device_inventory
-- A device's inventory, locked until its report is stored.
SELECT inventory FROM devices WHERE uuid = %(uuid)s FOR UPDATE;

-- name: store_device_inventory
-- Store a report: a sighting always, the inventory and its time only when it changed.
UPDATE devices
   SET last_seen_at = %(now)s,
       inventory = CASE WHEN %(changed)s THEN %(inventory)s::jsonb ELSE inventory END,
       inventory_updated_at = CASE WHEN %(changed)s THEN %(now)s ELSE inventory_updated_at END
 WHERE uuid = %(uuid)s
RETURNING inventory, inventory_updated_at;
