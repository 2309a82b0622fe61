-- Tenants placed in a database of their own. The main database keeps their catalog rows (a
-- mirror of the record kept in their database) and nothing of their log, so the platform's
-- loops that walk the main log's heads walk these tenants too, in their own databases.

CREATE FUNCTION database_tenants() RETURNS TABLE (tenant_id uuid, server text, location text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.id, t.server, t.location FROM tenants t WHERE t.placement = 'database' AND t.status <> 'provisioning'
$$;
REVOKE ALL ON FUNCTION database_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION database_tenants() TO petstore_app;

-- A tenant in a database of its own is always due: signing keeps the checkpoint it has when its
-- head has not moved, and its head is not in this database to compare.
CREATE OR REPLACE FUNCTION checkpoints_due() RETURNS TABLE (tenant_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT h.tenant_id FROM event_heads h
   WHERE h.last_seq > coalesce((SELECT max(c.seq) FROM checkpoints c WHERE c.tenant_id = h.tenant_id), 0)
  UNION ALL
  SELECT d.tenant_id FROM database_tenants() d
$$;

-- Records in a tenant's ledger that its database of its own was brought to a build
-- (`database:<fingerprint>`), from a session entered into that tenant.
CREATE FUNCTION record_tenant_database(tenant uuid, p_fingerprint text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM assert_tenant(tenant);
  IF p_fingerprint !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'not a build fingerprint: %', p_fingerprint;
  END IF;
  INSERT INTO tenant_migrations (tenant_id, item) VALUES (tenant, 'database:' || p_fingerprint) ON CONFLICT DO NOTHING;
END $$;
REVOKE ALL ON FUNCTION record_tenant_database(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_tenant_database(uuid, text) TO petstore_app;
