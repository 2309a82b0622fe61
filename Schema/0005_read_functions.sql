-- The hot reads of the pets API, each one statement (and so one round trip in autocommit):
-- enter the tenant (transaction-local setting and role, as every tenant transaction does),
-- then read the public views of the active projection versions. Row-level security applies
-- as in any tenant transaction; the tenant comes from the authenticated request.

-- One pet, with the tenant's include_deleted_pets setting.
CREATE FUNCTION read_pet(tenant uuid, pet uuid)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, include_deleted boolean)
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('app.tenant_id', tenant::text, true), set_config('role', 'petstore_app', true);
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.deleted, p.created_at, p.updated_at, p.version,
           coalesce((SELECT c.value = 'true'::jsonb FROM public.tenant_config c
                      WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false)
      FROM public.pets p WHERE p.tenant_id = tenant AND p.id = pet;
END $$;

-- A page of pets after a registration seq, optionally of one species, hiding removed pets
-- unless the tenant's include_deleted_pets is true.
CREATE FUNCTION read_pets(tenant uuid, after_seq bigint, only_species text, page_size integer)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, registered_seq bigint)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  include_deleted boolean;
BEGIN
  PERFORM set_config('app.tenant_id', tenant::text, true), set_config('role', 'petstore_app', true);
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

GRANT EXECUTE ON FUNCTION read_pet(uuid, uuid), read_pets(uuid, bigint, text, integer) TO petstore_app;
