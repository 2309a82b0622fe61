-- Signed checkpoints: the platform's signature over a tenant's (seq, head hash, time). A hash
-- chain alone cannot show that its tail was cut or the whole chain rewritten consistently; a
-- checkpoint held outside the database can, since nobody without the signing key can make one.
CREATE TABLE checkpoints (
  id         bigserial PRIMARY KEY,
  tenant_id  uuid NOT NULL,
  seq        bigint NOT NULL CHECK (seq > 0),
  head_hash  bytea NOT NULL,
  signed_at  text NOT NULL,
  key_id     text NOT NULL,
  signature  bytea NOT NULL,
  UNIQUE (tenant_id, seq)
);

SELECT enable_tenant_rls('checkpoints');
GRANT SELECT, INSERT ON checkpoints TO petstore_app;
GRANT USAGE ON SEQUENCE checkpoints_id_seq TO petstore_app;

-- The owner (running the function below) reads every tenant's checkpoints.
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_reads_checkpoints ON checkpoints FOR SELECT TO %I USING (true)', current_user);
END $$;

-- Tenants whose log has grown since their latest checkpoint, for the scheduled signing.
CREATE FUNCTION checkpoints_due() RETURNS TABLE (tenant_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT h.tenant_id FROM event_heads h
   WHERE h.last_seq > coalesce((SELECT max(c.seq) FROM checkpoints c WHERE c.tenant_id = h.tenant_id), 0)
$$;
GRANT EXECUTE ON FUNCTION checkpoints_due() TO petstore_app;
