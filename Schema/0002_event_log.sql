-- The event log: one table for every tenant's events, partitioned by tenant.
--
--   events                  LIST (tenant_id)
--   ├── events_t_<uuid>     a tenant with a partition of its own (create_tenant_partition)
--   └── events_shared       DEFAULT, HASH (tenant_id) into 16 partitions: every other tenant
--
-- tenant_seq is gap-free per tenant: appends lock the tenant's event_heads row, take the next
-- numbers, insert, and move the head in one transaction. Each row carries the SHA-256 chain
-- hash = SHA-256(prev_hash || canonical bytes); see Sources/EventLog/CanonicalEvent.swift.

CREATE TABLE event_heads (
  tenant_id  uuid PRIMARY KEY,
  last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  head_hash  bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
  tenant_id      uuid NOT NULL,
  seq            bigint NOT NULL CHECK (seq > 0),
  stream_type    text NOT NULL,
  stream_id      uuid NOT NULL,
  stream_version integer NOT NULL CHECK (stream_version > 0),
  event_type     text NOT NULL,
  schema_version smallint NOT NULL CHECK (schema_version > 0),
  data           jsonb NOT NULL,
  metadata       jsonb NOT NULL,
  recorded_at    timestamptz NOT NULL,
  prev_hash      bytea NOT NULL,
  hash           bytea NOT NULL,
  PRIMARY KEY (tenant_id, seq),
  UNIQUE (tenant_id, stream_type, stream_id, stream_version)
) PARTITION BY LIST (tenant_id);

CREATE TABLE events_shared PARTITION OF events DEFAULT PARTITION BY HASH (tenant_id);

DO $$
BEGIN
  FOR i IN 0..15 LOOP
    EXECUTE format('CREATE TABLE events_shared_%s PARTITION OF events_shared FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
  END LOOP;
END $$;

-- Row-level security keyed on the transaction's tenant. NULLIF turns an unset setting into NULL,
-- which matches nothing: a query that forgot the tenant sees no rows and can write none.
CREATE FUNCTION current_tenant_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Turns on FORCE'd row-level security with the tenant policy on a table that has tenant_id.
CREATE FUNCTION enable_tenant_rls(target regclass) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id())',
    target);
END $$;

SELECT enable_tenant_rls('event_heads');
SELECT enable_tenant_rls(c.oid::regclass)
  FROM pg_class c
 WHERE c.relkind IN ('r', 'p') AND (c.relname = 'events' OR c.relname LIKE 'events\_shared%');

-- The log is append-only for the application: no UPDATE, DELETE or TRUNCATE grant, and a
-- trigger that refuses them from anyone who has not switched it off on purpose.
CREATE FUNCTION refuse_event_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();

GRANT SELECT, INSERT ON events TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON event_heads TO petstore_app;

-- The owner (running the SECURITY DEFINER functions below) may read every head row; FORCE'd RLS
-- would otherwise hide them from it too. The application's role gets no such policy.
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_reads_heads ON event_heads FOR SELECT TO %I USING (true)', current_user);
END $$;

-- Platform reads across tenants go tenant by tenant, each under its own tenant setting; this
-- lists who has events without showing any event.
CREATE FUNCTION tenant_log_heads() RETURNS TABLE (tenant_id uuid, last_seq bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$ SELECT tenant_id, last_seq FROM event_heads WHERE last_seq > 0 $$;
REVOKE ALL ON FUNCTION tenant_log_heads() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_log_heads() TO petstore_app;

-- Gives a tenant a partition of its own. Allowed only before its first event, since moving
-- rows out of the shared partitions would need a table rewrite.
CREATE FUNCTION create_tenant_partition(tenant uuid) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  partition_name text := 'events_t_' || replace(tenant::text, '-', '');
BEGIN
  IF to_regclass(partition_name) IS NOT NULL THEN
    RETURN partition_name;
  END IF;
  IF EXISTS (SELECT 1 FROM event_heads h WHERE h.tenant_id = tenant AND h.last_seq > 0) THEN
    RAISE EXCEPTION 'tenant % already has events in the shared partitions', tenant
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES IN (%L)', partition_name, tenant);
  PERFORM enable_tenant_rls(partition_name::regclass);
  RETURN partition_name;
END $$;
REVOKE ALL ON FUNCTION create_tenant_partition(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_tenant_partition(uuid) TO petstore_app;

-- An append in one statement (and so, outside a caller's transaction, in one round trip):
-- enter the tenant (transaction-local setting and role), lock its head row (creating it on the
-- tenant's first append), read each stream's version, check the expected versions, then number,
-- hash and insert the events and move the head.
--
-- The client sends data, metadata and type already in canonical JSON; this splices in the
-- fields assigned here (seq, stream version, time) in the documented order and hashes:
--   hash = sha256(prev_hash || convert_to(canonical_event, 'UTF8'))
-- EventLog's ChainVerifier recomputes the same bytes independently in Swift.
--
-- plpgsql takes a new snapshot per statement, so the versions are read after the lock is held
-- and see every append that committed before it. expected[i]: -1 = any, 0 = no stream,
-- n = exactly n. A mismatch raises SQLSTATE PT409 with the stream's index in HINT and its
-- actual version in DETAIL; nothing is written.
CREATE FUNCTION append_events(
  tenant uuid, metadata text,
  stream_types text[], stream_ids uuid[], expected integer[],
  event_streams integer[], event_types text[], event_type_json text[], schema_versions smallint[], data text[],
  OUT first_seq bigint, OUT last_seq bigint, OUT head_hash bytea, OUT recorded_at text, OUT stream_versions integer[])
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  seq bigint;
  previous bytea;
  version integer;
  stream integer;
  canonical text;
  hash bytea;
  at_time timestamptz;
  tenant_text text := tenant::text;
BEGIN
  PERFORM set_config('app.tenant_id', tenant_text, true), set_config('role', 'petstore_app', true);
  SELECT h.last_seq, h.head_hash INTO seq, previous FROM event_heads h WHERE h.tenant_id = tenant FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO event_heads (tenant_id) VALUES (tenant) ON CONFLICT DO NOTHING;
    SELECT h.last_seq, h.head_hash INTO seq, previous FROM event_heads h WHERE h.tenant_id = tenant FOR UPDATE;
  END IF;
  SELECT array_agg(coalesce(v.version, 0) ORDER BY s.position) INTO stream_versions
    FROM unnest(stream_types, stream_ids) WITH ORDINALITY AS s(stream_type, stream_id, position)
    LEFT JOIN LATERAL (
      SELECT max(e.stream_version) AS version FROM events e
       WHERE e.tenant_id = tenant AND e.stream_type = s.stream_type AND e.stream_id = s.stream_id
    ) v ON true;
  FOR i IN 1 .. array_length(stream_types, 1) LOOP
    IF expected[i] >= 0 AND expected[i] <> stream_versions[i] THEN
      RAISE EXCEPTION 'stream %-% is at version %, not %', stream_types[i], stream_ids[i], stream_versions[i], expected[i]
        USING ERRCODE = 'PT409', DETAIL = stream_versions[i]::text, HINT = i::text;
    END IF;
  END LOOP;

  at_time := clock_timestamp();
  recorded_at := to_char(at_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
  first_seq := seq + 1;
  FOR i IN 1 .. array_length(data, 1) LOOP
    seq := seq + 1;
    stream := event_streams[i];
    version := stream_versions[stream] + 1;
    stream_versions[stream] := version;
    canonical := '{"data":' || data[i] || ',"metadata":' || metadata || ',"recorded_at":"' || recorded_at
      || '","schema_version":' || schema_versions[i] || ',"seq":' || seq || ',"stream_id":"' || stream_ids[stream]
      || '","stream_type":"' || stream_types[stream] || '","stream_version":' || version || ',"tenant_id":"' || tenant_text
      || '","type":' || event_type_json[i] || '}';
    hash := sha256(previous || convert_to(canonical, 'UTF8'));
    INSERT INTO events (tenant_id, seq, stream_type, stream_id, stream_version, event_type, schema_version,
                        data, metadata, recorded_at, prev_hash, hash)
    VALUES (tenant, seq, stream_types[stream], stream_ids[stream], version, event_types[i], schema_versions[i],
            data[i]::jsonb, metadata::jsonb, at_time, previous, hash);
    previous := hash;
  END LOOP;
  UPDATE event_heads h SET last_seq = seq, head_hash = previous, updated_at = at_time WHERE h.tenant_id = tenant;
  last_seq := seq;
  head_hash := previous;
END $$;
GRANT EXECUTE ON FUNCTION append_events(uuid, text, text[], uuid[], integer[], integer[], text[], text[], smallint[], text[]) TO petstore_app;
