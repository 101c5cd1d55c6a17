-- A signed execution keeps the exact text its signature covers (schemas.document_signing): its
-- job id, validity window, device list and document with pins. Stored as text, never as jsonb,
-- so the device receives the very bytes that were signed (jsonb rewrites numbers such as 1e16).
-- job_document_signature now signs this text. NULL: unsigned.
ALTER TABLE job_executions ADD COLUMN signed_job text;
