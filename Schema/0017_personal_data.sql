-- Crypto-shredding. Personal fields in events (a user's email) are sealed with a key per data
-- subject, kept here, beside the log but outside it. Erasing the subject destroys the key in the
-- transaction that records the erasure: the sealed bytes stay in the log, so its hash chain
-- still verifies, and nothing can open them again. In every database that holds a tenant's log,
-- so a tenant placed in a database of its own keeps its keys there.

CREATE TABLE subject_keys (
  tenant_id  uuid NOT NULL,
  subject_id uuid NOT NULL,
  key        bytea CHECK (key IS NULL OR octet_length(key) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  erased_at  timestamptz,
  PRIMARY KEY (tenant_id, subject_id),
  CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
SELECT enable_tenant_rls('subject_keys');
GRANT SELECT, INSERT, UPDATE ON subject_keys TO petstore_app;

-- An erased user's row stays (their revoked keys name it) without the email.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
