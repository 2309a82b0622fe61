-- A page of the pets list as read_pets_page_v2 makes it, with a validator that changes whenever
-- anything the page is made from may have: the tenant's checkpoint rows of the pets and
-- tenant_config read models (every change to those read models commits with an update of its
-- projection's checkpoint row: the batches, inline or not, rebuilds and moves alike, so the
-- row's xmin changes with it) and the state of those projections' versions. A caller that
-- holds the page made under the validator it passes as `known` gets only the validator back
-- when it still holds: the page is not made again.
--
-- STABLE, so the validator and the page come from one snapshot.
CREATE FUNCTION read_pets_page_v3(tenant uuid, after_seq bigint, only_species text, page_size integer, known text)
  RETURNS TABLE (validator text, items text, last_seq bigint, more boolean)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  current text;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT string_agg(c.projection || ':' || c.version || ':' || c.applied_seq || ':' || c.xmin::text, ',' ORDER BY c.projection, c.version)
         || '|' || (SELECT string_agg(p.name || ':' || p.version || ':' || p.state, ',' ORDER BY p.name, p.version)
                      FROM projections p WHERE p.name IN ('pets', 'tenant_config'))
    INTO current
    FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection IN ('pets', 'tenant_config');
  IF current IS NOT NULL AND current = known THEN
    RETURN QUERY SELECT current, NULL::text, NULL::bigint, NULL::boolean;
    RETURN;
  END IF;
  RETURN QUERY SELECT current, p.items, p.last_seq, p.more FROM read_pets_page_v2(tenant, after_seq, only_species, page_size) p;
END $$;

GRANT EXECUTE ON FUNCTION read_pets_page_v3(uuid, bigint, text, integer, text) TO petstore_app;
