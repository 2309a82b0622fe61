-- Rate limits: one GCRA state per tenant, shared by every server process on this database.
-- UNLOGGED: the state is worth a request's quota, not a WAL write; after a crash every tenant
-- starts with a full burst, which is what a long idle gives them anyway.
CREATE UNLOGGED TABLE rate_limits (
  tenant_id uuid PRIMARY KEY,
  -- Theoretical arrival time, microseconds since the epoch.
  tat bigint NOT NULL,
  -- The emission interval the TAT was counted in: when the plan changes, the requests still
  -- outstanding are carried over, re-priced at the new plan's interval.
  emission_us bigint NOT NULL,
  -- What the last take granted, so that one UPDATE can both decide and report.
  last_granted integer NOT NULL DEFAULT 0
);

-- GCRA, in two inlinable steps. The base is the TAT, or now if that is later; a TAT counted in
-- another plan's interval (the plan changed) is re-priced: the requests outstanding carry over.
CREATE FUNCTION gcra_base(tat bigint, tat_emission bigint, emission bigint, clock bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS $$
  SELECT greatest(CASE WHEN tat_emission <> emission AND tat > clock
                       THEN clock + ((tat - clock)::numeric * emission / tat_emission)::bigint
                       ELSE tat END, clock)
$$;

-- How many of `wanted` requests fit: the TAT may run ahead of the clock by at most burst intervals.
CREATE FUNCTION gcra_granted(base bigint, clock bigint, emission bigint, burst integer, wanted integer) RETURNS integer
  LANGUAGE sql IMMUTABLE AS $$
  SELECT least(greatest((burst::bigint * emission - (base - clock)) / emission, 0), wanted)::integer
$$;

-- Grants up to wanted[i] requests of emissions[i] microseconds to tenants[i], allowing bursts[i]
-- of them back to back after an idle spell, for each i; returns per i how many were granted,
-- the new theoretical arrival time and the clock used (the database's, so that every process
-- agrees; `at_us` overrides it for tests of the algorithm). `returned` gives back requests a
-- server took earlier and did not spend (counted at the current interval only: after a plan
-- change they are forgotten). One statement for many takes: a
-- server batches the takes its requests wait for. Rows are visited in tenant order (for one
-- tenant, in the order given), so two servers' batches lock them in the same order and never
-- deadlock. `GCRA.swift` is the same algorithm, kept equal by a test. A lock wait over 250 ms is
-- an error: the caller decides whether that admits the request.
CREATE FUNCTION rate_limit_take_many(
  tenants uuid[], wanted integer[], emissions bigint[], bursts integer[], at_us bigint DEFAULT NULL, returned integer[] DEFAULT NULL)
  RETURNS TABLE (ord integer, granted integer, tat_us bigint, now_us bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public SET lock_timeout = '250ms' AS $$
DECLARE
  i integer;
  clock bigint;
  back bigint;
BEGIN
  FOR i IN SELECT s FROM generate_subscripts(tenants, 1) AS s ORDER BY tenants[s], s LOOP
    back := greatest(coalesce(returned[i], 0), 0)::bigint * emissions[i];
    IF wanted[i] < 1 OR emissions[i] < 1 OR bursts[i] < 1 THEN
      RAISE EXCEPTION 'rate_limit_take: wanted, emission and burst must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    clock := coalesce(at_us, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    ord := i;
    now_us := clock;
    LOOP
      UPDATE rate_limits r
         SET last_granted = gcra_granted(gcra_base(r.tat - CASE WHEN r.emission_us = emissions[i] THEN back ELSE 0 END, r.emission_us, emissions[i], clock),
                                         clock, emissions[i], bursts[i], wanted[i]),
             tat = gcra_base(r.tat - CASE WHEN r.emission_us = emissions[i] THEN back ELSE 0 END, r.emission_us, emissions[i], clock)
                   + gcra_granted(gcra_base(r.tat - CASE WHEN r.emission_us = emissions[i] THEN back ELSE 0 END, r.emission_us, emissions[i], clock),
                                  clock, emissions[i], bursts[i], wanted[i]) * emissions[i],
             emission_us = emissions[i]
       WHERE r.tenant_id = tenants[i]
      RETURNING r.last_granted, r.tat INTO granted, tat_us;
      EXIT WHEN FOUND;
      granted := least(bursts[i], wanted[i]);
      tat_us := clock + granted * emissions[i];
      INSERT INTO rate_limits (tenant_id, tat, emission_us, last_granted) VALUES (tenants[i], tat_us, emissions[i], granted)
        ON CONFLICT (tenant_id) DO NOTHING;
      -- Another server inserted the row first: take from it like any other.
      EXIT WHEN FOUND;
    END LOOP;
    RETURN NEXT;
  END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION rate_limit_take_many(uuid[], integer[], bigint[], integer[], bigint, integer[]) TO petstore_app;

-- One take.
CREATE FUNCTION rate_limit_take(tenant uuid, wanted integer, emission bigint, burst integer, at_us bigint DEFAULT NULL)
  RETURNS TABLE (granted integer, tat_us bigint, now_us bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.granted, t.tat_us, t.now_us FROM rate_limit_take_many(ARRAY[tenant], ARRAY[wanted], ARRAY[emission], ARRAY[burst], at_us) AS t
$$;

GRANT EXECUTE ON FUNCTION rate_limit_take(uuid, integer, bigint, integer, bigint) TO petstore_app;

-- Only the functions above touch the table; like every table with a tenant_id it has forced
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
