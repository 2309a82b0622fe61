-- Read models may now derive columns in their own SQL (a trigger beside the table: see
-- Projections/pets.sql). A schema tenant's copy of a version is made with LIKE … INCLUDING ALL,
-- which copies no triggers: it now gets the source table's triggers too, calling the same
-- functions in the version's schema.
CREATE OR REPLACE FUNCTION install_tenant_projection(tenant uuid, p_name text, p_version text) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  source projections%ROWTYPE;
  target text := tenant_projection_schema(tenant, p_version);
  table_name text;
  definition text;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO source FROM projections p WHERE p.name = p_name AND p.version = p_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'projection % version % is not installed', p_name, p_version;
  END IF;
  IF source.scope <> 'tenant' OR NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = tenant AND t.placement = 'schema') THEN
    RETURN false;
  END IF;
  IF to_regnamespace(target) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE SCHEMA %I', target);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', target);
  FOREACH table_name IN ARRAY source.tables LOOP
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)', target, table_name, source.schema_name, table_name);
    -- pg_get_triggerdef names the table qualified ("… ON proj_x.pets …"): the copy's goes there.
    FOR definition IN SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
                       WHERE t.tgrelid = format('%I.%I', source.schema_name, table_name)::regclass AND NOT t.tgisinternal LOOP
      EXECUTE regexp_replace(definition, ' ON \S+ ', format(' ON %I.%I ', target, table_name));
    END LOOP;
    PERFORM enable_tenant_rls(format('%I.%I', target, table_name)::regclass);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO petstore_app', target, table_name);
  END LOOP;
  DELETE FROM projection_checkpoints c WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version;
  RETURN true;
END $$;

-- The pets reads with microchip_registered_at. The reads of 0011 stay as they were: servers of
-- the previous build call them until they stop, and a function's result cannot change in place.
-- plpgsql, so that this migration applies before the projection version with the column is
-- installed: the body is resolved when it runs, by servers of a build that serves that version.
CREATE FUNCTION read_pet_v2(tenant uuid, pet uuid)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, microchip_registered_at timestamptz,
                 deleted boolean, created_at timestamptz, updated_at timestamptz, version integer, include_deleted boolean)
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM assert_tenant(tenant);
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.microchip_registered_at, p.deleted, p.created_at,
           p.updated_at, p.version,
           coalesce((SELECT c.value = 'true'::jsonb FROM tenant_config c
                      WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false)
      FROM pets p WHERE p.tenant_id = tenant AND p.id = pet;
END $$;

CREATE FUNCTION read_pets_v2(tenant uuid, after_seq bigint, only_species text, page_size integer)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, microchip_registered_at timestamptz,
                 deleted boolean, created_at timestamptz, updated_at timestamptz, version integer, registered_seq bigint)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  include_deleted boolean;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT coalesce((SELECT c.value = 'true'::jsonb FROM tenant_config c
                    WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false) INTO include_deleted;
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.microchip_registered_at, p.deleted, p.created_at,
           p.updated_at, p.version, p.registered_seq
      FROM pets p
     WHERE p.tenant_id = tenant AND p.registered_seq > after_seq
       AND (only_species IS NULL OR p.species = only_species)
       AND (include_deleted OR NOT p.deleted)
     ORDER BY p.registered_seq LIMIT page_size;
END $$;

GRANT EXECUTE ON FUNCTION read_pet_v2(uuid, uuid), read_pets_v2(uuid, bigint, text, integer) TO petstore_app;
