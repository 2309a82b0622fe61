-- An append that answers a wrong expected version instead of raising it. A command decides
-- again on a conflict, and a raised error ends the transaction: the command had to wrap its
-- append in a savepoint to go on, two of the ten round trips a command cost. It also returns
-- the hash of every event it wrote, so that a command projecting its own events in its
-- transaction has them as recorded without reading them back.
--
-- On a conflict nothing is written (the head row is locked, as by any append), conflict_stream
-- is the 1-based index of the first stream whose version was not the expected one, and
-- stream_versions holds the versions found. Otherwise conflict_stream is null, prev_hash is the
-- head before the append and hashes the events' hashes, 32 bytes each, in seq order.
CREATE FUNCTION append_events_checked(
  tenant uuid, metadata text,
  stream_types text[], stream_ids uuid[], expected integer[],
  event_streams integer[], event_types text[], event_type_json text[], schema_versions smallint[], data text[],
  OUT first_seq bigint, OUT last_seq bigint, OUT head_hash bytea, OUT recorded_at text, OUT stream_versions integer[],
  OUT conflict_stream integer, OUT prev_hash bytea, OUT hashes bytea)
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
      conflict_stream := i;
      RETURN;
    END IF;
  END LOOP;

  at_time := clock_timestamp();
  recorded_at := to_char(at_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
  first_seq := seq + 1;
  prev_hash := previous;
  hashes := '\x'::bytea;
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
    hashes := hashes || hash;
    previous := hash;
  END LOOP;
  UPDATE event_heads h SET last_seq = seq, head_hash = previous, updated_at = at_time WHERE h.tenant_id = tenant;
  last_seq := seq;
  head_hash := previous;
END $$;

-- The append of 0010, now one body with the checked one: it raises the conflict as before.
CREATE OR REPLACE FUNCTION append_events(
  tenant uuid, metadata text,
  stream_types text[], stream_ids uuid[], expected integer[],
  event_streams integer[], event_types text[], event_type_json text[], schema_versions smallint[], data text[],
  OUT first_seq bigint, OUT last_seq bigint, OUT head_hash bytea, OUT recorded_at text, OUT stream_versions integer[])
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  appended record;
  i integer;
BEGIN
  SELECT * INTO appended FROM append_events_checked(tenant, metadata, stream_types, stream_ids, expected,
                                                    event_streams, event_types, event_type_json, schema_versions, data);
  i := appended.conflict_stream;
  IF i IS NOT NULL THEN
    RAISE EXCEPTION 'stream %-% is at version %, not %', stream_types[i], stream_ids[i], appended.stream_versions[i], expected[i]
      USING ERRCODE = 'PT409', DETAIL = appended.stream_versions[i]::text, HINT = i::text;
  END IF;
  first_seq := appended.first_seq;
  last_seq := appended.last_seq;
  head_hash := appended.head_hash;
  recorded_at := appended.recorded_at;
  stream_versions := appended.stream_versions;
END $$;

GRANT EXECUTE ON FUNCTION append_events_checked(uuid, text, text[], uuid[], integer[], integer[], text[], text[], smallint[], text[]) TO petstore_app;
