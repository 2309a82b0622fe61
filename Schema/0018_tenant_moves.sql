-- Moving a tenant between placements while it serves: here between the shared tables and a
-- schema of its own, the fence, and the record of moves; 0019 adds databases of their own
-- (Sources/Operations/Tenants/TenantMove.swift runs the steps, as the owner, in the tenant).
--
-- 1. prepare: the target's tables, empty. Shared → schema: a table for the log beside the
--    shared partitions (events_t_<hex>, not yet a partition) and the schemas of 0011.
-- 2. copy: the log in seq order into that table, in batches, while the tenant keeps writing.
-- 3. switch, one transaction: the tenant's head row locked (its commands wait), the tail
--    copied, the copy checked against the head (seq, hash, every link), the read models
--    copied, the rows left in the shared partitions deleted and the table attached as the
--    tenant's partition, the catalog row changed, the move recorded; then the commit lets
--    the waiting commands go on, each of which the fence below sends to the new home.
-- 4. cleanup, after servers have heard of the switch: the source's read models removed.
-- Schema → shared keeps the tenant's log partition (a partition of its own isolates more,
-- never less), so only the read models are copied, in the switch.

CREATE TABLE tenant_moves (
  tenant_id      uuid NOT NULL REFERENCES tenants (id),
  id             bigint GENERATED ALWAYS AS IDENTITY,
  from_placement text NOT NULL CHECK (from_placement IN ('shared', 'schema', 'database')),
  to_placement   text NOT NULL CHECK (to_placement IN ('shared', 'schema', 'database')),
  -- `frozen`: a move out of a database of its own whose source refuses appends, before the
  -- main database has switched (0019).
  phase          text NOT NULL CHECK (phase IN ('copying', 'frozen', 'switched', 'done')),
  -- Where a tenant in a database of its own was or goes: the server and the database's name.
  from_server    text,
  from_location  text,
  to_server      text,
  to_location    text,
  started_at     timestamptz NOT NULL DEFAULT now(),
  switched_at    timestamptz,
  finished_at    timestamptz,
  last_seq       bigint,
  head_hash      bytea,
  PRIMARY KEY (tenant_id, id)
);
-- At most one move of a tenant under way.
CREATE UNIQUE INDEX tenant_moves_one_open ON tenant_moves (tenant_id) WHERE phase <> 'done';
SELECT enable_tenant_rls('tenant_moves');

-- The fence. A session records the home it entered the tenant in (petstore.home, set with
-- app.tenant_id by the tenant session: placement ':' location). An append, and a projection
-- batch, from a session whose home is no longer the tenant's is refused (SQLSTATE PT410): it
-- entered before a move switched, or from a home remembered too long. The tenant session
-- enters again and retries. Sessions that record no home (the owner's maintenance) pass.
CREATE FUNCTION assert_tenant_home(tenant uuid) RETURNS void
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
  entered text := nullif(current_setting('petstore.home', true), '');
  actual text;
BEGIN
  IF entered IS NULL THEN
    RETURN;
  END IF;
  SELECT t.placement || ':' || coalesce(t.location, '') INTO actual FROM tenants t WHERE t.id = tenant;
  IF FOUND AND actual IS DISTINCT FROM entered THEN
    RAISE EXCEPTION 'tenant % was entered in % but lives in %: enter it again', tenant, entered, actual
      USING ERRCODE = 'PT410';
  END IF;
END $$;
REVOKE ALL ON FUNCTION assert_tenant_home(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION assert_tenant_home(uuid) TO petstore_app;

CREATE FUNCTION fence_tenant_home() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM assert_tenant_home(NEW.tenant_id);
  RETURN NEW;
END $$;

CREATE TRIGGER event_heads_fence BEFORE INSERT OR UPDATE ON event_heads
  FOR EACH ROW EXECUTE FUNCTION fence_tenant_home();

-- The batch start of 0015, fenced too: an asynchronous batch entered in the old home would
-- write the tenant's read models where nobody reads them any more.
CREATE OR REPLACE FUNCTION begin_projection_batch(tenant uuid, p_name text, p_version text, p_schema text)
  RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  result bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  IF to_regnamespace(p_schema) IS NULL OR EXISTS (
       SELECT 1 FROM projections p, unnest(p.tables) AS t(name)
        WHERE p.name = p_name AND p.version = p_version AND to_regclass(format('%I.%I', p_schema, t.name)) IS NULL) THEN
    RAISE EXCEPTION 'projection schema % is missing or incomplete: the tenant has no copy of it yet (run petstore migrate)', p_schema
      USING ERRCODE = 'PT503';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(p_name || '/' || p_version || '/' || tenant::text, 0));
  IF NOT EXISTS (SELECT 1 FROM event_heads h WHERE h.tenant_id = tenant)
     AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = tenant) THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM projections p WHERE p.name = p_name AND p.version = p_version AND p.scope = 'tenant') THEN
    PERFORM assert_tenant_home(tenant);
  END IF;
  PERFORM set_config('search_path', quote_ident(p_schema) || ', public', true);
  INSERT INTO projection_checkpoints (tenant_id, projection, version) VALUES (tenant, p_name, p_version) ON CONFLICT DO NOTHING;
  SELECT c.applied_seq INTO result FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version FOR UPDATE;
  RETURN result;
END $$;

-- The log stays append-only for everyone but a purge of the tenant, or a move removing the
-- tenant's rows from the shared partitions in the transaction that gives it its own.
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND (OLD.tenant_id::text = current_setting('petstore.purging', true)
                           OR OLD.tenant_id::text = current_setting('petstore.moving', true)) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

-- Begins a move of the entered tenant, or returns the one under way (its id): between the
-- shared tables and a schema of its own, from either into a database of its own on a
-- registered server, and from one back to the shared tables. The target's tables in this
-- database are made empty; a target database is made by the caller once the move is recorded.
-- A rerun finds them made.
CREATE FUNCTION move_prepare(tenant uuid, p_to text, p_server text) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  record tenants%ROWTYPE;
  open_move tenant_moves%ROWTYPE;
  home text := tenant_home_schema(tenant);
  log_table text := 'events_t_' || replace(tenant::text, '-', '');
  version projections%ROWTYPE;
  target text;
  table_name text;
  move_id bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO record FROM tenants t WHERE t.id = tenant;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no tenant %', tenant USING ERRCODE = 'PT404';
  END IF;
  SELECT * INTO open_move FROM tenant_moves m WHERE m.tenant_id = tenant AND m.phase <> 'done';
  IF FOUND THEN
    IF open_move.to_placement <> p_to OR (p_to = 'database' AND open_move.to_server IS DISTINCT FROM p_server) THEN
      RAISE EXCEPTION 'tenant % is being moved to %: finish that move (run it again) or abort it first', record.slug,
        open_move.to_placement || coalesce(' on ' || open_move.to_server, '') USING ERRCODE = 'PT409';
    END IF;
    RETURN open_move.id;
  END IF;
  IF record.placement = p_to AND (p_to <> 'database' OR record.server = p_server) THEN
    RETURN NULL;
  END IF;
  IF p_to = 'database' AND record.placement = 'database' THEN
    RAISE EXCEPTION 'tenant % is in a database of its own on %: move it to the shared tables first', record.slug, record.server
      USING ERRCODE = 'PT422';
  END IF;
  IF p_to = 'schema' AND record.placement = 'database' THEN
    RAISE EXCEPTION 'tenant % is in a database of its own: move it to the shared tables first', record.slug USING ERRCODE = 'PT422';
  END IF;
  IF p_to = 'database' AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.name = p_server) THEN
    RAISE EXCEPTION 'no server is named %', p_server USING ERRCODE = 'PT422';
  END IF;
  IF record.status NOT IN ('active', 'suspended') THEN
    RAISE EXCEPTION 'tenant % is %: only a tenant in service is moved', record.slug, record.status USING ERRCODE = 'PT409';
  END IF;
  IF record.placement = 'schema' AND EXISTS (SELECT 1 FROM tenant_home(tenant) h WHERE cardinality(h.missing) > 0) THEN
    RAISE EXCEPTION 'tenant % is behind this build: run petstore migrate before moving it', record.slug USING ERRCODE = 'PT409';
  END IF;
  IF p_to = 'schema' THEN
    IF to_regclass(log_table) IS NULL THEN
      EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING ALL)', log_table);
      -- Lets the attach skip scanning the copy: its rows are the tenant's by construction.
      EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (tenant_id = %L)', log_table, log_table || '_tenant', tenant);
      PERFORM enable_tenant_rls(log_table::regclass);
    END IF;
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', home);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', home);
    FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') ORDER BY p.name, p.version LOOP
      target := tenant_projection_schema(tenant, version.version);
      EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', target);
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', target);
      FOREACH table_name IN ARRAY version.tables LOOP
        IF to_regclass(format('%I.%I', target, table_name)) IS NULL THEN
          EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)', target, table_name, version.schema_name, table_name);
          PERFORM enable_tenant_rls(format('%I.%I', target, table_name)::regclass);
          EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO petstore_app', target, table_name);
        END IF;
      END LOOP;
    END LOOP;
  END IF;
  INSERT INTO tenant_moves (tenant_id, from_placement, to_placement, phase, from_server, from_location, to_server, to_location)
  VALUES (tenant, record.placement, p_to, 'copying',
          record.server, CASE WHEN record.placement = 'database' THEN record.location END,
          CASE WHEN p_to = 'database' THEN p_server ELSE 'main' END, CASE WHEN p_to = 'database' THEN home END)
  RETURNING id INTO move_id;
  RETURN move_id;
END $$;
REVOKE ALL ON FUNCTION move_prepare(uuid, text, text) FROM PUBLIC;

-- Copies up to `batch` events of the entered tenant's log after those copied already, in seq
-- order, into the table that becomes its partition. Returns the last seq copied (0 for none).
CREATE FUNCTION move_copy_events(tenant uuid, batch bigint) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  log_table text := 'events_t_' || replace(tenant::text, '-', '');
  copied bigint;
BEGIN
  PERFORM assert_tenant(tenant);
  EXECUTE format('SELECT coalesce(max(seq), 0) FROM %I', log_table) INTO copied;
  EXECUTE format('INSERT INTO %I SELECT * FROM events_shared e WHERE e.tenant_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3', log_table)
    USING tenant, copied, batch;
  EXECUTE format('SELECT coalesce(max(seq), 0) FROM %I', log_table) INTO copied;
  RETURN copied;
END $$;
REVOKE ALL ON FUNCTION move_copy_events(uuid, bigint) FROM PUBLIC;

-- The switch, in the caller's transaction (which commits it or, on any error, leaves the
-- tenant where it was). Returns what it checked and copied.
CREATE FUNCTION move_switch(tenant uuid) RETURNS jsonb
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  move tenant_moves%ROWTYPE;
  head_seq bigint;
  head bytea;
  home text := tenant_home_schema(tenant);
  log_table text := 'events_t_' || replace(tenant::text, '-', '');
  version projections%ROWTYPE;
  source text;
  target text;
  table_name text;
  n bigint;
  tail bigint := 0;
  rows_copied bigint := 0;
  checked record;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO move FROM tenant_moves m WHERE m.tenant_id = tenant AND m.phase = 'copying' FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tenant % has no move waiting to switch', tenant USING ERRCODE = 'PT409';
  END IF;
  -- From here until the commit the tenant's appends wait on this lock. Taken before the
  -- projection locks, in the order a command takes them (its append, then its inline batch).
  SELECT h.last_seq, h.head_hash INTO head_seq, head FROM event_heads h WHERE h.tenant_id = tenant FOR UPDATE;
  IF NOT FOUND THEN
    head_seq := 0;
  END IF;
  -- Batches under way finish first; later ones wait, then meet the fence.
  PERFORM pg_advisory_xact_lock(hashtextextended(p.name || '/' || p.version || '/' || tenant::text, 0))
     FROM projections p ORDER BY p.name, p.version;

  IF move.to_placement = 'schema' THEN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = to_regclass(log_table)) THEN
      EXECUTE format('SELECT coalesce(max(seq), 0) FROM %I', log_table) INTO n;
      EXECUTE format('INSERT INTO %I SELECT * FROM events_shared e WHERE e.tenant_id = $1 AND e.seq > $2 ORDER BY e.seq', log_table)
        USING tenant, n;
      GET DIAGNOSTICS tail = ROW_COUNT;
      -- The copy is the log: every seq once, each event linked to the one before, ending in the head.
      EXECUTE format($q$
        SELECT count(*) AS events, coalesce(max(e.seq), 0) AS last,
               (SELECT c.hash FROM %1$I c WHERE c.seq = $1) AS last_hash,
               count(*) FILTER (WHERE e.seq > 1 AND e.prev_hash IS DISTINCT FROM e.previous) AS broken
          FROM (SELECT x.seq, x.hash, x.prev_hash, lag(x.hash) OVER (ORDER BY x.seq) AS previous FROM %1$I x) e$q$, log_table)
        INTO checked USING head_seq;
      IF checked.events <> head_seq OR checked.last <> head_seq OR checked.broken <> 0
         OR (head_seq > 0 AND checked.last_hash IS DISTINCT FROM head) THEN
        RAISE EXCEPTION 'the copy of tenant %''s log does not match its head (% events to seq % against seq %, % broken links)',
          tenant, checked.events, checked.last, head_seq, checked.broken USING ERRCODE = 'PT500';
      END IF;
      PERFORM set_config('petstore.moving', tenant::text, true);
      DELETE FROM events_shared e WHERE e.tenant_id = tenant;
      EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES IN (%L)', log_table, tenant);
    END IF;
    FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') ORDER BY p.name, p.version LOOP
      target := tenant_projection_schema(tenant, version.version);
      FOREACH table_name IN ARRAY version.tables LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', target, table_name) USING tenant;
        EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.%I WHERE tenant_id = $1', target, table_name, version.schema_name, table_name)
          USING tenant;
        GET DIAGNOSTICS n = ROW_COUNT;
        rows_copied := rows_copied + n;
        IF version.state = 'active' THEN
          EXECUTE format('DROP VIEW IF EXISTS %I.%I', home, table_name);
          EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT * FROM %I.%I', home, table_name, target, table_name);
          EXECUTE format('GRANT SELECT ON %I.%I TO petstore_app', home, table_name);
        END IF;
      END LOOP;
      INSERT INTO tenant_migrations (tenant_id, item) VALUES (tenant, 'projection:' || version.name || ':' || version.version)
        ON CONFLICT DO NOTHING;
    END LOOP;
    UPDATE tenants t SET placement = 'schema', location = home, updated_at = now() WHERE t.id = tenant;
  ELSE
    FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') ORDER BY p.name, p.version LOOP
      source := tenant_projection_schema(tenant, version.version);
      FOREACH table_name IN ARRAY version.tables LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', version.schema_name, table_name) USING tenant;
        IF to_regclass(format('%I.%I', source, table_name)) IS NOT NULL THEN
          EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.%I WHERE tenant_id = $1', version.schema_name, table_name, source, table_name)
            USING tenant;
          GET DIAGNOSTICS n = ROW_COUNT;
          rows_copied := rows_copied + n;
        ELSIF version.state = 'active' THEN
          RAISE EXCEPTION 'tenant % has no copy of projection % version %', tenant, version.name, version.version USING ERRCODE = 'PT409';
        ELSE
          -- A version being built that the tenant had no copy of: built again from its log.
          DELETE FROM projection_checkpoints c WHERE c.tenant_id = tenant AND c.projection = version.name AND c.version = version.version;
        END IF;
      END LOOP;
    END LOOP;
    DELETE FROM tenant_migrations m WHERE m.tenant_id = tenant AND m.item LIKE 'projection:%';
    UPDATE tenants t SET placement = 'shared', location = NULL, updated_at = now() WHERE t.id = tenant;
  END IF;
  UPDATE tenant_moves m SET phase = 'switched', switched_at = now(), last_seq = head_seq, head_hash = head
   WHERE m.tenant_id = tenant AND m.id = move.id;
  -- Every server forgets where the tenant lives, as soon as this commits.
  PERFORM pg_notify('petstore_catalog', tenant::text);
  RETURN jsonb_build_object('move', move.id, 'from', move.from_placement, 'to', move.to_placement, 'last_seq', head_seq,
                            'head_hash', encode(coalesce(head, ''::bytea), 'hex'), 'tail_events', tail, 'read_model_rows', rows_copied);
END $$;
REVOKE ALL ON FUNCTION move_switch(uuid) FROM PUBLIC;

-- Drops the tenant's home schema and its projection copies (t_<hex>, t_<hex>_<version>).
CREATE FUNCTION move_drop_schemas(tenant uuid) RETURNS void
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  home text := tenant_home_schema(tenant);
  found_schema text;
BEGIN
  FOR found_schema IN SELECT ns.nspname FROM pg_namespace ns
                       WHERE ns.nspname = home OR ns.nspname LIKE home || '\_%' ORDER BY ns.nspname LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', found_schema);
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION move_drop_schemas(uuid) FROM PUBLIC;

-- Removes the source's copy of the read models once the switch is known everywhere, and ends
-- the move. Returns the move's id, or NULL when no switched move is left to finish.
CREATE FUNCTION move_cleanup(tenant uuid) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  move tenant_moves%ROWTYPE;
  version projections%ROWTYPE;
  table_name text;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO move FROM tenant_moves m WHERE m.tenant_id = tenant AND m.phase = 'switched' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF move.to_placement = 'schema' THEN
    FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' ORDER BY p.name, p.version LOOP
      FOREACH table_name IN ARRAY version.tables LOOP
        IF to_regclass(format('%I.%I', version.schema_name, table_name)) IS NOT NULL THEN
          EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', version.schema_name, table_name) USING tenant;
        END IF;
      END LOOP;
    END LOOP;
  ELSE
    PERFORM move_drop_schemas(tenant);
  END IF;
  UPDATE tenant_moves m SET phase = 'done', finished_at = now() WHERE m.tenant_id = tenant AND m.id = move.id;
  RETURN move.id;
END $$;
REVOKE ALL ON FUNCTION move_cleanup(uuid) FROM PUBLIC;

-- Gives up a move that has not switched: the target's tables are dropped, the tenant stays
-- where it is. Returns the move's id, or NULL when none was waiting to switch.
CREATE FUNCTION move_abort(tenant uuid) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  move tenant_moves%ROWTYPE;
  log_table text := 'events_t_' || replace(tenant::text, '-', '');
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO move FROM tenant_moves m WHERE m.tenant_id = tenant AND m.phase = 'copying' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF move.to_placement = 'schema' THEN
    IF to_regclass(log_table) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = to_regclass(log_table)) THEN
      EXECUTE format('DROP TABLE %I', log_table);
    END IF;
    PERFORM move_drop_schemas(tenant);
  END IF;
  DELETE FROM tenant_moves m WHERE m.tenant_id = tenant AND m.id = move.id;
  RETURN move.id;
END $$;
REVOKE ALL ON FUNCTION move_abort(uuid) FROM PUBLIC;
