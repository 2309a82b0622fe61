-- Tenant functions check the tenant, they never enter it. Until now append_events,
-- begin_projection_batch, read_pet and read_pets set app.tenant_id (and the role) from their own
-- argument, so a caller holding any tenant's id was that tenant for the rest of its transaction.
-- Now only the application's tenant session enters a tenant (Sources/Database/TenantSession.swift),
-- the serving connections are the application role from the moment they connect, and each of
-- these functions refuses a tenant other than the one the transaction entered.

CREATE FUNCTION assert_tenant(tenant uuid) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF tenant IS NULL OR tenant IS DISTINCT FROM current_tenant_id() THEN
    RAISE EXCEPTION 'tenant % is not the tenant this transaction entered', tenant
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END $$;
GRANT EXECUTE ON FUNCTION assert_tenant(uuid) TO petstore_app;

-- The append of 0002, checking the tenant instead of entering it.
CREATE OR REPLACE FUNCTION append_events(
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
  PERFORM assert_tenant(tenant);
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

-- The batch start of 0004, likewise; the search path is still its to set.
CREATE OR REPLACE FUNCTION begin_projection_batch(tenant uuid, p_name text, p_version text, p_schema text)
  RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  result bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  PERFORM pg_advisory_xact_lock(hashtextextended(p_name || '/' || p_version || '/' || tenant::text, 0));
  PERFORM set_config('search_path', quote_ident(p_schema) || ', public', true);
  INSERT INTO projection_checkpoints (tenant_id, projection, version) VALUES (tenant, p_name, p_version) ON CONFLICT DO NOTHING;
  SELECT c.applied_seq INTO result FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version FOR UPDATE;
  RETURN result;
END $$;

-- The reads of 0005, likewise, and STABLE now that they change nothing: PostgreSQL refuses any
-- write inside them.
CREATE OR REPLACE FUNCTION read_pet(tenant uuid, pet uuid)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, include_deleted boolean)
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM assert_tenant(tenant);
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.deleted, p.created_at, p.updated_at, p.version,
           coalesce((SELECT c.value = 'true'::jsonb FROM public.tenant_config c
                      WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false)
      FROM public.pets p WHERE p.tenant_id = tenant AND p.id = pet;
END $$;

CREATE OR REPLACE FUNCTION read_pets(tenant uuid, after_seq bigint, only_species text, page_size integer)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, registered_seq bigint)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  include_deleted boolean;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT coalesce((SELECT c.value = 'true'::jsonb FROM public.tenant_config c
                    WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false) INTO include_deleted;
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.deleted, p.created_at, p.updated_at, p.version, p.registered_seq
      FROM public.pets p
     WHERE p.tenant_id = tenant AND p.registered_seq > after_seq
       AND (only_species IS NULL OR p.species = only_species)
       AND (include_deleted OR NOT p.deleted)
     ORDER BY p.registered_seq LIMIT page_size;
END $$;

-- Provisioning a tenant's own schema happens inside that tenant's unit of work.
CREATE OR REPLACE FUNCTION provision_tenant_schema(tenant uuid) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  schema_name text := 't_' || replace(tenant::text, '-', '');
BEGIN
  PERFORM assert_tenant(tenant);
  PERFORM create_tenant_partition(tenant);
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', schema_name);
  RETURN schema_name;
END $$;
