-- The portal's fleet numbers (devices registered, devices online), counted by a periodic sweep
-- (dispatcher.devices.count_fleet) so that a page never counts the whole fleet itself.
CREATE TABLE fleet_counts (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    total bigint NOT NULL,
    online bigint NOT NULL,
    online_within_s integer NOT NULL,
    counted_at timestamptz NOT NULL
);
