-- Moving a tenant into a database of its own (on any registered server) and back to the shared
-- tables, while it serves (Sources/Operations/Tenants/TenantMove.swift).
--
-- The log is copied in seq order, in batches, from the database that holds it to the one that
-- will; the rest of what the tenant's home holds (its home tables below, its read models, its
-- projection checkpoints) is copied in the switch, as one JSON document exported on one side and
-- imported on the other, so the two databases need not reach each other.
--
-- Into a database of its own: the switch is one transaction of the main database, which holds
-- the tenant's head row (its commands wait) while the target's copy is finished and checked,
-- then changes the catalog row; the fence of 0018 sends the waiting commands to the new home.
-- Out of one: the source database is frozen first, in a transaction of its own (its catalog
-- record's location changes, so the fence refuses every append there), then one transaction of
-- the main database copies the tail, checks it and switches. A move stopped between the two
-- leaves the tenant's writes refused (503 after a short wait) until the move is run again or
-- given up (which thaws the source).

-- The tables a tenant's home holds for it besides its log and read models, in an order their
-- foreign keys allow inserting.
CREATE FUNCTION move_home_tables() RETURNS text[]
  LANGUAGE sql IMMUTABLE AS $$
  SELECT ARRAY['users', 'api_keys', 'subject_keys', 'tenant_provisioning', 'outbox', 'idempotency_keys', 'checkpoints', 'event_heads']
$$;

-- Up to `batch` events of the entered tenant's log after `after`, in seq order, as a JSON array.
CREATE FUNCTION move_export_events(tenant uuid, after bigint, batch bigint) RETURNS text
  LANGUAGE plpgsql STABLE SET search_path = public AS $$
DECLARE
  result text;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.seq), '[]'::jsonb)::text INTO result
    FROM (SELECT * FROM events e WHERE e.tenant_id = tenant AND e.seq > after ORDER BY e.seq LIMIT batch) e;
  RETURN result;
END $$;
REVOKE ALL ON FUNCTION move_export_events(uuid, bigint, bigint) FROM PUBLIC;

-- Appends exported events to the entered tenant's log here, each exactly as it was (seq, time,
-- hashes), and returns the last seq this database holds. Events it holds already are skipped.
CREATE FUNCTION move_import_events(tenant uuid, rows text) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  last bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT coalesce(max(e.seq), 0) INTO last FROM events e WHERE e.tenant_id = tenant;
  INSERT INTO events SELECT * FROM jsonb_populate_recordset(NULL::events, rows::jsonb) r WHERE r.tenant_id = tenant AND r.seq > last ORDER BY r.seq;
  SELECT coalesce(max(e.seq), 0) INTO last FROM events e WHERE e.tenant_id = tenant;
  RETURN last;
END $$;
REVOKE ALL ON FUNCTION move_import_events(uuid, text) FROM PUBLIC;

-- Everything of the entered tenant's home but its log, as one JSON object: its home tables,
-- its projection checkpoints and the rows of every per-tenant projection version served or
-- being built, from wherever its placement keeps them.
CREATE FUNCTION move_export_home(tenant uuid) RETURNS text
  LANGUAGE plpgsql STABLE SET search_path = public AS $$
DECLARE
  own_schemas boolean := EXISTS (SELECT 1 FROM tenants t WHERE t.id = tenant AND t.placement = 'schema');
  result jsonb := '{}'::jsonb;
  table_name text;
  version projections%ROWTYPE;
  source text;
  found jsonb;
BEGIN
  PERFORM assert_tenant(tenant);
  FOREACH table_name IN ARRAY move_home_tables() LOOP
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(r)), ''[]''::jsonb) FROM %I r WHERE r.tenant_id = $1', table_name) INTO found USING tenant;
    result := result || jsonb_build_object(table_name, found);
  END LOOP;
  SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb) INTO found FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND EXISTS (SELECT 1 FROM projections p WHERE p.name = c.projection AND p.version = c.version AND p.scope = 'tenant');
  result := result || jsonb_build_object('projection_checkpoints', found);
  FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') ORDER BY p.name, p.version LOOP
    source := CASE WHEN own_schemas THEN tenant_projection_schema(tenant, version.version) ELSE version.schema_name END;
    FOREACH table_name IN ARRAY version.tables LOOP
      IF to_regclass(format('%I.%I', source, table_name)) IS NOT NULL THEN
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(r)), ''[]''::jsonb) FROM %I.%I r WHERE r.tenant_id = $1', source, table_name)
          INTO found USING tenant;
        result := result || jsonb_build_object('projection:' || version.name || ':' || version.version || ':' || table_name, found);
      END IF;
    END LOOP;
  END LOOP;
  RETURN result::text;
END $$;
REVOKE ALL ON FUNCTION move_export_home(uuid) FROM PUBLIC;

-- Writes rows over the entered tenant's in `target`. Columns numbered by a sequence are left to
-- this database's own: their values are not the tenant's, and another database's would collide.
CREATE FUNCTION move_import_rows(tenant uuid, target regclass, rows jsonb) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  columns text;
  n bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO columns
    FROM pg_attribute a
   WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = ''
     AND NOT EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum
                                                  AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%');
  EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1) r WHERE r.tenant_id = $2',
                 target, columns, columns, target) USING coalesce(rows, '[]'::jsonb), tenant;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION move_import_rows(uuid, regclass, jsonb) FROM PUBLIC;

-- Replaces what this database holds of the entered tenant's home (but its log and catalog
-- record) with an export of it. The read models go to the shared tables of their versions: the
-- main database's for a tenant in the shared tables, its own database's for one placed there.
-- Returns the rows written.
CREATE FUNCTION move_import_home(tenant uuid, home text) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  document jsonb := home::jsonb;
  tables text[] := move_home_tables();
  version projections%ROWTYPE;
  table_name text;
  total bigint := 0;
BEGIN
  PERFORM assert_tenant(tenant);
  FOR i IN REVERSE array_length(tables, 1) .. 1 LOOP
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', tables[i]) USING tenant;
  END LOOP;
  FOREACH table_name IN ARRAY tables LOOP
    total := total + move_import_rows(tenant, table_name::regclass, document -> table_name);
  END LOOP;
  DELETE FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND EXISTS (SELECT 1 FROM projections p WHERE p.name = c.projection AND p.version = c.version AND p.scope = 'tenant');
  INSERT INTO projection_checkpoints
  SELECT r.* FROM jsonb_populate_recordset(NULL::projection_checkpoints, document -> 'projection_checkpoints') r
   WHERE r.tenant_id = tenant AND EXISTS (SELECT 1 FROM projections p WHERE p.name = r.projection AND p.version = r.version);
  FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') ORDER BY p.name, p.version LOOP
    FOREACH table_name IN ARRAY version.tables LOOP
      EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', version.schema_name, table_name) USING tenant;
      IF document ? ('projection:' || version.name || ':' || version.version || ':' || table_name) THEN
        total := total + move_import_rows(tenant, format('%I.%I', version.schema_name, table_name)::regclass,
                                          document -> ('projection:' || version.name || ':' || version.version || ':' || table_name));
      ELSE
        -- A version the source had no copy of is built again from the log here.
        DELETE FROM projection_checkpoints c WHERE c.tenant_id = tenant AND c.projection = version.name AND c.version = version.version;
      END IF;
    END LOOP;
  END LOOP;
  RETURN total;
END $$;
REVOKE ALL ON FUNCTION move_import_home(uuid, text) FROM PUBLIC;

-- Checks the entered tenant's log here against a head: every seq once, each event linked to the
-- one before, the last hash the head's. Raises PT500 when it does not hold.
CREATE FUNCTION move_check_log(tenant uuid, head_seq bigint, head bytea) RETURNS void
  LANGUAGE plpgsql STABLE SET search_path = public AS $$
DECLARE
  checked record;
BEGIN
  PERFORM assert_tenant(tenant);
  -- One pass in seq order: each event's prev_hash against the hash before it (a lookup per
  -- event would be planned as a scan per event on rows just copied, which have no statistics).
  SELECT count(*) AS events, coalesce(max(e.seq), 0) AS last,
         (SELECT c.hash FROM events c WHERE c.tenant_id = tenant AND c.seq = head_seq) AS last_hash,
         count(*) FILTER (WHERE e.seq > 1 AND e.prev_hash IS DISTINCT FROM e.previous) AS broken
    INTO checked
    FROM (SELECT x.seq, x.hash, x.prev_hash, lag(x.hash) OVER (ORDER BY x.seq) AS previous
            FROM events x WHERE x.tenant_id = tenant) e;
  IF checked.events <> head_seq OR checked.last <> head_seq OR checked.broken <> 0
     OR (head_seq > 0 AND checked.last_hash IS DISTINCT FROM head) THEN
    RAISE EXCEPTION 'the copy of tenant %''s log does not match its head (% events to seq % against seq %, % broken links)',
      tenant, checked.events, checked.last, head_seq, checked.broken USING ERRCODE = 'PT500';
  END IF;
END $$;
REVOKE ALL ON FUNCTION move_check_log(uuid, bigint, bytea) FROM PUBLIC;

-- Removes what this database holds of the entered tenant's home, its log included (a source the
-- tenant has left), but its catalog record and the rows the control plane keeps of it.
CREATE FUNCTION move_remove_home(tenant uuid) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  tables text[] := move_home_tables();
  version projections%ROWTYPE;
  table_name text;
  n bigint;
  total bigint := 0;
  partition_name text := 'events_t_' || replace(tenant::text, '-', '');
BEGIN
  PERFORM assert_tenant(tenant);
  FOR i IN REVERSE array_length(tables, 1) .. 1 LOOP
    -- The mirror of users and keys stays in the main database: resolution and key checks read it.
    CONTINUE WHEN tables[i] IN ('users', 'api_keys');
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', tables[i]) USING tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;
  END LOOP;
  DELETE FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND EXISTS (SELECT 1 FROM projections p WHERE p.name = c.projection AND p.version = c.version AND p.scope = 'tenant');
  FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' ORDER BY p.name, p.version LOOP
    FOREACH table_name IN ARRAY version.tables LOOP
      IF to_regclass(format('%I.%I', version.schema_name, table_name)) IS NOT NULL THEN
        EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', version.schema_name, table_name) USING tenant;
      END IF;
    END LOOP;
  END LOOP;
  PERFORM set_config('petstore.moving', tenant::text, true);
  DELETE FROM events e WHERE e.tenant_id = tenant;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  IF to_regclass(partition_name) IS NOT NULL THEN
    EXECUTE format('DROP TABLE %I', partition_name);
  END IF;
  PERFORM move_drop_schemas(tenant);
  DELETE FROM tenant_migrations m WHERE m.tenant_id = tenant AND m.item LIKE 'projection:%';
  RETURN total;
END $$;
REVOKE ALL ON FUNCTION move_remove_home(uuid) FROM PUBLIC;

-- Switches the catalog of the entered tenant to the home its move went to, in the main
-- database's switch transaction, once the target's copy is checked. `fingerprint` is the build
-- a database of its own was brought to (its ledger records it, or the tenant reads as behind).
CREATE FUNCTION move_switch_catalog(tenant uuid, head_seq bigint, head bytea, fingerprint text) RETURNS void
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  move tenant_moves%ROWTYPE;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO move FROM tenant_moves m WHERE m.tenant_id = tenant AND m.phase IN ('copying', 'frozen') FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tenant % has no move waiting to switch', tenant USING ERRCODE = 'PT409';
  END IF;
  IF move.to_placement = 'database' THEN
    UPDATE tenants t SET placement = 'database', location = move.to_location, server = move.to_server, updated_at = now() WHERE t.id = tenant;
    PERFORM record_tenant_database(tenant, fingerprint);
  ELSE
    UPDATE tenants t SET placement = move.to_placement, location = NULL, server = 'main', updated_at = now() WHERE t.id = tenant;
    DELETE FROM tenant_migrations m WHERE m.tenant_id = tenant AND m.item LIKE 'database:%';
  END IF;
  UPDATE tenant_moves m SET phase = 'switched', switched_at = now(), last_seq = head_seq, head_hash = head WHERE m.id = move.id;
  PERFORM pg_notify('petstore_catalog', tenant::text);
END $$;
REVOKE ALL ON FUNCTION move_switch_catalog(uuid, bigint, bytea, text) FROM PUBLIC;

-- Ends the entered tenant's switched move, once its source's copy is removed. Returns the
-- move's id, or NULL when none was switched.
CREATE FUNCTION move_finish(tenant uuid) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  finished bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  UPDATE tenant_moves m SET phase = 'done', finished_at = now() WHERE m.tenant_id = tenant AND m.phase = 'switched'
  RETURNING m.id INTO finished;
  RETURN finished;
END $$;
REVOKE ALL ON FUNCTION move_finish(uuid) FROM PUBLIC;
