-- A tenant with a database of its own is behind this build when its ledger has no record that
-- its database was brought to it (`database:<fingerprint>`): `tenant_home` gives a serving
-- process the builds recorded, which compares them with its own, as it compares a schema
-- tenant's projection copies. The result gains a column, so the function is made anew.
DROP FUNCTION tenant_home(uuid);
CREATE FUNCTION tenant_home(tenant uuid)
  RETURNS TABLE (placement text, server text, location text, status text, missing text[], builds text[])
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.placement, t.server, t.location, t.status,
         CASE WHEN t.placement = 'schema' THEN ARRAY(
           SELECT p.name || ':' || p.version FROM projections p
            WHERE p.state = 'active' AND p.scope = 'tenant'
              AND NOT EXISTS (SELECT 1 FROM tenant_migrations m
                               WHERE m.tenant_id = t.id AND m.item = 'projection:' || p.name || ':' || p.version))
         ELSE '{}'::text[] END,
         CASE WHEN t.placement = 'database' THEN ARRAY(
           SELECT substr(m.item, length('database:') + 1) FROM tenant_migrations m
            WHERE m.tenant_id = t.id AND m.item LIKE 'database:%')
         ELSE '{}'::text[] END
    FROM tenants t WHERE t.id = tenant
$$;
REVOKE ALL ON FUNCTION tenant_home(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_home(uuid) TO petstore_app;

-- Servers that refused the tenant as behind serve it again as soon as the record commits.
CREATE OR REPLACE FUNCTION record_tenant_database(tenant uuid, p_fingerprint text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM assert_tenant(tenant);
  IF p_fingerprint !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'not a build fingerprint: %', p_fingerprint;
  END IF;
  INSERT INTO tenant_migrations (tenant_id, item) VALUES (tenant, 'database:' || p_fingerprint) ON CONFLICT DO NOTHING;
  PERFORM pg_notify('petstore_catalog', tenant::text);
END $$;
