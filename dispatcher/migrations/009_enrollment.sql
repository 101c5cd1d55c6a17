-- Enrollment: a device trades an enrollment token for its own identity
-- (POST /api/v1/devices/enroll), or waits for an operator when the token asks for that.
CREATE TABLE enrollment_tokens (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    expires_at timestamptz,
    max_uses integer CHECK (max_uses > 0),
    uses integer NOT NULL DEFAULT 0,
    device_type text NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    requires_acceptance boolean NOT NULL DEFAULT false,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- What identifies the hardware a device enrolled from (a hash of /etc/machine-id or the
-- Raspberry Pi's serial): the same hardware enrolling again gets the same device back.
ALTER TABLE devices ADD COLUMN hardware_id text;
CREATE UNIQUE INDEX devices_hardware_id_idx ON devices (hardware_id) WHERE hardware_id IS NOT NULL;

-- Devices that enrolled with a token requiring acceptance: not devices yet (no job reaches
-- them) until an operator accepts; the uuid and token hash they were given become the device's.
CREATE TABLE pending_enrollments (
    uuid uuid PRIMARY KEY,
    hardware_id text NOT NULL UNIQUE,
    device_name text NOT NULL,
    device_type text NOT NULL,
    attributes jsonb NOT NULL,
    token_hash bytea NOT NULL,
    enrollment_token_id bigint REFERENCES enrollment_tokens (id) ON DELETE SET NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
