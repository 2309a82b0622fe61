-- Offboarding ends in a purge: every row of the tenant, in every table, goes; its log partition,
-- schemas (and, done by the caller, its database) are dropped; a signed receipt stays.
--
-- The receipt is the one record of a purged tenant kept on purpose: it names the tenant and its
-- slug, says where its log ended (last seq and head hash: what an export taken before the purge
-- can be checked against) and counts what was removed. It also reserves the slug: no one can
-- onboard under a purged tenant's name and inherit the links, bookmarks and mail that point to
-- it, until the slug is released on purpose.
-- A platform record, not a tenant's: its key is not named tenant_id, the column that puts a
-- table under row-level security and in the purge's reach.
CREATE TABLE purge_receipts (
  purged_tenant    uuid PRIMARY KEY,
  slug             text NOT NULL,
  placement        text NOT NULL,
  server           text NOT NULL,
  last_seq         bigint NOT NULL,
  head_hash        bytea,
  started_at       timestamptz NOT NULL DEFAULT now(),
  -- Set when the purge has finished: the signed part.
  purged_at        text,
  removed          jsonb,
  key_id           text,
  signature        bytea,
  slug_released_at timestamptz
);
CREATE UNIQUE INDEX purge_receipts_reserved_slug ON purge_receipts (slug) WHERE slug_released_at IS NULL;

-- A reserved slug is refused like a taken one (the same error, a unique violation on a
-- constraint about the slug), wherever a tenant row is written: its onboarding included.
CREATE FUNCTION refuse_reserved_slug() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM purge_receipts r WHERE r.slug = NEW.slug AND r.slug_released_at IS NULL AND r.purged_tenant <> NEW.id) THEN
    RAISE EXCEPTION 'the slug % belonged to a purged tenant and is reserved', NEW.slug
      USING ERRCODE = 'unique_violation', CONSTRAINT = 'tenants_slug_reserved';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tenants_slug_reserved BEFORE INSERT OR UPDATE OF slug ON tenants
  FOR EACH ROW EXECUTE FUNCTION refuse_reserved_slug();

-- The log stays append-only for everyone but a purge of the tenant the rows belong to, which
-- says so in its transaction (petstore.purging) and runs as the owner: the application role
-- has no DELETE grant on events either way.
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.tenant_id::text = current_setting('petstore.purging', true) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

-- Removes every row of `tenant` from this database, in one transaction with the caller's
-- receipt. Every table with a tenant_id column is emptied of the tenant, in any schema (so a
-- table added later is purged without changing this function); tables that refer to others
-- are taken first by trying again those a foreign key held back. Then the security log's rows
-- about it (as actor or target, by id or slug), the platform's idempotency records of commands
-- on it (onboarding's response names it), its catalog row, and its own log partition and
-- schemas. Returns the rows removed per table and what was dropped; NULL when the tenant is
-- not in this database's catalog (purged already, or never here).
-- A projection batch for a tenant that is gone does nothing: one that began before its
-- tenant's purge holds the pair's lock, which the purge waits for; one that begins after
-- finds neither the tenant nor its log (the tenants row is looked for too: a platform
-- projection of a tenant in a database of its own runs where its log is not) and returns NULL
-- without writing its checkpoint back.
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
  PERFORM set_config('search_path', quote_ident(p_schema) || ', public', true);
  INSERT INTO projection_checkpoints (tenant_id, projection, version) VALUES (tenant, p_name, p_version) ON CONFLICT DO NOTHING;
  SELECT c.applied_seq INTO result FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version FOR UPDATE;
  RETURN result;
END $$;

CREATE FUNCTION purge_tenant_rows(tenant uuid) RETURNS jsonb
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  platform constant uuid := '00000000-0000-0000-0000-000000000000';
  tenant_slug text;
  removed jsonb := '{}'::jsonb;
  dropped text[] := '{}';
  home text := tenant_home_schema(tenant);
  partition_name text := 'events_t_' || replace(tenant::text, '-', '');
  target regclass;
  found_schema text;
  n bigint;
  held_back integer;
  pass integer := 0;
BEGIN
  PERFORM set_config('app.tenant_id', tenant::text, true);
  -- Projection batches under way hold their pair's lock: they finish first, and what they
  -- wrote is removed below. One that begins later waits for this transaction, then finds no
  -- tenant (begin_projection_batch).
  PERFORM pg_advisory_xact_lock(hashtextextended(p.name || '/' || p.version || '/' || tenant::text, 0))
     FROM projections p ORDER BY p.name, p.version;
  SELECT t.slug INTO tenant_slug FROM tenants t WHERE t.id = tenant FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('petstore.purging', tenant::text, true);
  LOOP
    pass := pass + 1;
    held_back := 0;
    FOR target IN
      SELECT c.oid::regclass
        FROM pg_class c
        JOIN pg_namespace ns ON ns.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname NOT LIKE 'pg\_%'
       ORDER BY c.oid::regclass::text
    LOOP
      BEGIN
        EXECUTE format('DELETE FROM %s WHERE tenant_id = $1', target) USING tenant;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
          removed := removed || jsonb_build_object(target::text, coalesce((removed ->> target::text)::bigint, 0) + n);
        END IF;
      EXCEPTION WHEN foreign_key_violation THEN
        held_back := held_back + 1;
      END;
    END LOOP;
    EXIT WHEN held_back = 0;
    IF pass = 10 THEN
      RAISE EXCEPTION 'the rows of tenant % are held by foreign keys that no order of deletes frees', tenant;
    END IF;
  END LOOP;

  DELETE FROM security_events s WHERE s.actor_tenant = tenant OR s.target_tenant = tenant OR s.target_slug = tenant_slug;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN removed := removed || jsonb_build_object('security_events', n); END IF;

  PERFORM set_config('app.tenant_id', platform::text, true);
  DELETE FROM idempotency_keys k
   WHERE k.tenant_id = platform
     AND (position(convert_to(tenant::text, 'UTF8') IN k.body) > 0 OR position(convert_to('"' || tenant_slug || '"', 'UTF8') IN k.body) > 0);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN removed := removed || jsonb_build_object('idempotency_keys (platform)', n); END IF;
  PERFORM set_config('app.tenant_id', tenant::text, true);

  DELETE FROM tenants t WHERE t.id = tenant;
  removed := removed || jsonb_build_object('tenants', 1);

  IF to_regclass(partition_name) IS NOT NULL THEN
    EXECUTE format('DROP TABLE %I', partition_name);
    dropped := dropped || ('table ' || partition_name);
  END IF;
  FOR found_schema IN SELECT ns.nspname FROM pg_namespace ns
                       WHERE ns.nspname = home OR ns.nspname LIKE home || '\_%' ORDER BY ns.nspname LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', found_schema);
    dropped := dropped || ('schema ' || found_schema);
  END LOOP;
  PERFORM pg_notify('petstore_catalog', tenant::text);
  RETURN jsonb_build_object('rows', removed, 'dropped', to_jsonb(dropped));
END $$;
REVOKE ALL ON FUNCTION purge_tenant_rows(uuid) FROM PUBLIC;
