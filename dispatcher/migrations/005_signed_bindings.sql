-- A signed execution keeps the exact text its signature covers (schemas.document_signing): its
-- job id, validity window and document with pins. Stored as text, never as jsonb, so the
-- device receives the very bytes that were signed (jsonb rewrites numbers such as 1e16).
-- job_document_signature now signs this text for any device. NULL: unsigned.
ALTER TABLE job_executions ADD COLUMN signed_job text;

-- A signed device-list execution has one signature per device instead, each valid on its own
-- device only; the poll hands each device its own.
CREATE TABLE job_device_signatures (
    job_id      uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    device_uuid uuid NOT NULL,
    signature   text NOT NULL,
    PRIMARY KEY (job_id, device_uuid)
);
