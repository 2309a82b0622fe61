-- The purge checks the tenant instead of entering it, as every tenant function does since 0010:
-- the owner's purge transaction enters the tenant (Sources/Operations/Tenants/TenantPurge.swift,
-- through the tenant session's one way in), and purge_tenant_rows asserts it. The platform's
-- idempotency records about the tenant are not the tenant's rows: purge_platform_records
-- removes them under the platform's id, in the same transaction, before the tenant is entered.

CREATE OR REPLACE FUNCTION purge_tenant_rows(tenant uuid) RETURNS jsonb
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
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
  PERFORM assert_tenant(tenant);
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

-- The platform's idempotency records of commands on `tenant` (onboarding's response names it by
-- id and slug). Returns how many were removed.
CREATE FUNCTION purge_platform_records(tenant uuid, tenant_slug text) RETURNS bigint
  LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM assert_tenant('00000000-0000-0000-0000-000000000000');
  DELETE FROM idempotency_keys k
   WHERE k.tenant_id = '00000000-0000-0000-0000-000000000000'
     AND (position(convert_to(tenant::text, 'UTF8') IN k.body) > 0
          OR position(convert_to('"' || tenant_slug || '"', 'UTF8') IN k.body) > 0);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION purge_platform_records(uuid, text) FROM PUBLIC;
