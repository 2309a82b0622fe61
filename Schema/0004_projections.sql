-- Projections: each read model's SQL file (Projections/NAME.sql) is installed, per content
-- hash, into a schema of its own (proj_NAME_HASH). Views in public point at the active version;
-- a new version is built beside it and swapped in atomically (blue-green).

CREATE TABLE projections (
  name         text NOT NULL,
  version      text NOT NULL,
  schema_name  text NOT NULL UNIQUE,
  tables       text[] NOT NULL,
  state        text NOT NULL CHECK (state IN ('building', 'active', 'retired')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX one_active_version ON projections (name) WHERE state = 'active';

-- Where each projection version stands in each tenant's log. Advanced in the same transaction
-- as the read-model writes of the events it covers.
CREATE TABLE projection_checkpoints (
  tenant_id  uuid NOT NULL,
  projection text NOT NULL,
  version    text NOT NULL,
  applied_seq   bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, projection, version)
);
SELECT enable_tenant_rls('projection_checkpoints');
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_reads_checkpoints ON projection_checkpoints FOR SELECT TO %I USING (true)', current_user);
END $$;

GRANT SELECT ON projections TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO petstore_app;

-- Every tenant with events and how far one projection version has come in its log: positions
-- only, no data, so the runtime can find the work without a tenant of its own.
CREATE FUNCTION projection_positions(p_name text, p_version text)
  RETURNS TABLE (tenant_id uuid, applied_seq bigint, head bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT h.tenant_id, coalesce(c.applied_seq, 0), h.last_seq
    FROM event_heads h
    LEFT JOIN projection_checkpoints c
      ON c.tenant_id = h.tenant_id AND c.projection = p_name AND c.version = p_version
   WHERE h.last_seq > 0
$$;
REVOKE ALL ON FUNCTION projection_positions(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION projection_positions(text, text) TO petstore_app;

-- Points the public views of a projection at one version, retiring the version they showed.
-- One transaction: readers see the old tables or the new ones, never a mix or nothing.
CREATE FUNCTION activate_projection(p_name text, p_version text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  target projections%ROWTYPE;
  table_name text;
BEGIN
  SELECT * INTO target FROM projections WHERE name = p_name AND version = p_version FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'projection % version % is not installed', p_name, p_version;
  END IF;
  IF target.state = 'active' THEN
    RETURN;
  END IF;
  UPDATE projections SET state = 'retired' WHERE name = p_name AND state = 'active';
  FOREACH table_name IN ARRAY target.tables LOOP
    EXECUTE format('DROP VIEW IF EXISTS public.%I', table_name);
    EXECUTE format('CREATE VIEW public.%I WITH (security_invoker = true) AS SELECT * FROM %I.%I',
                   table_name, target.schema_name, table_name);
    EXECUTE format('GRANT SELECT ON public.%I TO petstore_app', table_name);
  END LOOP;
  UPDATE projections SET state = 'active', activated_at = now() WHERE name = p_name AND version = p_version;
END $$;
REVOKE ALL ON FUNCTION activate_projection(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activate_projection(text, text) TO petstore_app;

-- The start of every projection batch, in one round trip: enter the tenant, serialize with any
-- other worker on this (projection, version, tenant), put the version's schema first on the
-- search path, and lock and return the checkpoint (created at 0 on first use).
CREATE FUNCTION begin_projection_batch(tenant uuid, p_name text, p_version text, p_schema text)
  RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  result bigint;
BEGIN
  PERFORM set_config('app.tenant_id', tenant::text, true), set_config('role', 'petstore_app', true);
  PERFORM pg_advisory_xact_lock(hashtextextended(p_name || '/' || p_version || '/' || tenant::text, 0));
  PERFORM set_config('search_path', quote_ident(p_schema) || ', public', true);
  INSERT INTO projection_checkpoints (tenant_id, projection, version) VALUES (tenant, p_name, p_version) ON CONFLICT DO NOTHING;
  SELECT c.applied_seq INTO result FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version FOR UPDATE;
  RETURN result;
END $$;
GRANT EXECUTE ON FUNCTION begin_projection_batch(uuid, text, text, text) TO petstore_app;
