-- Device inventory: the facts a device reports about itself (os-release, kernel, disk, its
-- inventory.d scripts), kept apart from the operator's attributes so that a device can never
-- change what an operator set. Exact matches in target filters are JSON containment, served by
-- a GIN index as on attributes.
ALTER TABLE devices
    ADD COLUMN inventory jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT devices_inventory_check CHECK (jsonb_typeof(inventory) = 'object'),
    ADD COLUMN inventory_updated_at timestamptz;

CREATE INDEX devices_inventory_gin ON devices USING gin (inventory jsonb_path_ops);

-- Continuous jobs now match devices with the compiled filter language
-- (dispatcher.fleet.filters), one job at a time.
DROP FUNCTION device_matches_target(text, jsonb, text, jsonb);
