-- Rate limits: one GCRA state per tenant, shared by every server process on this database.
-- UNLOGGED: the state is worth a request's quota, not a WAL write; after a crash every tenant
-- starts with a full burst, which is what a long idle gives them anyway.
CREATE UNLOGGED TABLE rate_limits (
  tenant_id uuid PRIMARY KEY,
  -- Theoretical arrival time, microseconds since the epoch.
  tat bigint NOT NULL,
  -- The emission interval the TAT was counted in: when the plan changes, the requests still
  -- outstanding are carried over, re-priced at the new plan's interval.
  emission_us bigint NOT NULL
);

-- GCRA: grants up to `wanted` requests of `emission` microseconds each to `tenant`, allowing `burst` of
-- them back to back after an idle spell. Returns how many were granted, the new theoretical
-- arrival time and the clock it used (the database's, so that every process agrees; `at_us`
-- overrides it for tests of the algorithm). `GCRA.swift` is the same algorithm, kept equal by a
-- test. A lock wait over 250 ms is an error: the caller decides whether that admits the request.
CREATE FUNCTION rate_limit_take(tenant uuid, wanted integer, emission bigint, burst integer, at_us bigint DEFAULT NULL)
  RETURNS TABLE (granted integer, tat_us bigint, now_us bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public SET lock_timeout = '250ms' AS $$
DECLARE
  clock bigint := coalesce(at_us, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
  current_tat bigint;
  current_emission bigint;
  base bigint;
  room bigint;
  given integer;
BEGIN
  IF wanted < 1 OR emission < 1 OR burst < 1 THEN
    RAISE EXCEPTION 'rate_limit_take: wanted, emission and burst must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Creates the row or locks the existing one, and reads it, in one statement.
  INSERT INTO rate_limits AS r (tenant_id, tat, emission_us) VALUES (tenant, clock, emission)
    ON CONFLICT (tenant_id) DO UPDATE SET tat = r.tat
    RETURNING r.tat, r.emission_us INTO current_tat, current_emission;
  IF current_emission <> emission AND current_tat > clock THEN
    current_tat := clock + ((current_tat - clock)::numeric * emission / current_emission)::bigint;
  END IF;
  base := greatest(current_tat, clock);
  room := (burst::bigint * emission - (base - clock)) / emission;
  given := least(greatest(room, 0), wanted)::integer;
  IF given > 0 THEN
    UPDATE rate_limits r SET tat = base + given * emission, emission_us = emission WHERE r.tenant_id = tenant;
  ELSIF current_emission <> emission THEN
    UPDATE rate_limits r SET tat = base, emission_us = emission WHERE r.tenant_id = tenant;
  END IF;
  RETURN QUERY SELECT given, base + given * emission, clock;
END $$;

GRANT EXECUTE ON FUNCTION rate_limit_take(uuid, integer, bigint, integer, bigint) TO petstore_app;

-- Only the function above touches the table; like every table with a tenant_id it has forced
-- row-level security, with the owner (running the function) allowed through.
SELECT enable_tenant_rls('rate_limits');
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_limits ON rate_limits TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- Idempotency keys: the first successful response to a keyed command, written in the same
-- transaction as the events it appended, so a retry after any crash either finds it or finds
-- that nothing happened.
CREATE TABLE idempotency_keys (
  tenant_id uuid NOT NULL,
  api_key_id uuid NOT NULL,
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  -- SHA-256 of the method, path and body: the same key with another request is refused.
  fingerprint bytea NOT NULL,
  status smallint NOT NULL,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, api_key_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

SELECT enable_tenant_rls('idempotency_keys');
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO petstore_app;

-- Expired keys go in batches, across tenants.
CREATE FUNCTION idempotency_expire(batch integer) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH gone AS (
    DELETE FROM idempotency_keys WHERE ctid IN (
      SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT batch)
    RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;
GRANT EXECUTE ON FUNCTION idempotency_expire(integer) TO petstore_app;

DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_expires_keys ON idempotency_keys TO %I USING (true) WITH CHECK (true)', current_user);
END $$;
