-- An execution's job document may be signed (SIGNING_KEY_FILE): the base64 Ed25519 signature
-- of the document as stored, handler pins included. NULL: unsigned.
ALTER TABLE job_executions ADD COLUMN job_document_signature text;
