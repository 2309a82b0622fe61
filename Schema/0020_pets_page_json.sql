-- Pets as the API's JSON, built where the rows are: decoding a hundred rows of eleven
-- columns and encoding them again was most of what a list cost the server (bench/RESULTS.md).
-- The text is byte for byte what the server's JSON writer makes of the same pets (keys sorted,
-- times as RFC 3339 UTC with microseconds, strings escaped as CanonicalJSON.writeString does,
-- which is also how PostgreSQL's to_json escapes them); PetsPageTests compares the two.

CREATE FUNCTION utc_text(at timestamptz) RETURNS text
  LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
  SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION pet_json(id uuid, name text, species text, breed text, microchip_id text,
                         microchip_registered_at timestamptz, deleted boolean, created_at timestamptz,
                         updated_at timestamptz, version integer) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT '{"breed":' || coalesce(to_json(breed)::text, 'null')
      || ',"created_at":"' || utc_text(created_at)
      || '","deleted":' || deleted::text
      || ',"id":"' || id::text
      || '","microchip_id":' || coalesce(to_json(microchip_id)::text, 'null')
      || ',"microchip_registered_at":' || coalesce('"' || utc_text(microchip_registered_at) || '"', 'null')
      || ',"name":' || to_json(name)::text
      || ',"species":' || to_json(species)::text
      || ',"updated_at":"' || utc_text(updated_at)
      || '","version":' || version::text || '}'
$$;

-- Up to page_size pets after after_seq as the items of a JSON array (without its brackets), the
-- registration seq of the last of them, and whether more follow. read_pets_v2 asserts the tenant
-- and applies include_deleted_pets.
CREATE FUNCTION read_pets_page_v2(tenant uuid, after_seq bigint, only_species text, page_size integer)
  RETURNS TABLE (items text, last_seq bigint, more boolean)
  LANGUAGE sql STABLE AS $$
  SELECT coalesce(string_agg(pet_json(p.id, p.name, p.species, p.breed, p.microchip_id, p.microchip_registered_at,
                                      p.deleted, p.created_at, p.updated_at, p.version), ',' ORDER BY p.registered_seq)
                    FILTER (WHERE p.n <= page_size), ''),
         max(p.registered_seq) FILTER (WHERE p.n <= page_size),
         count(*) > page_size
    FROM (SELECT r.*, row_number() OVER (ORDER BY r.registered_seq) AS n
            FROM read_pets_v2(tenant, after_seq, only_species, page_size + 1) r) p
$$;

-- One pet as the API's JSON, with what the server decides on: whether it is removed and the
-- tenant shows removed pets, and its version (the ETag).
CREATE FUNCTION read_pet_json_v2(tenant uuid, pet uuid)
  RETURNS TABLE (body text, deleted boolean, version integer, include_deleted boolean)
  LANGUAGE sql STABLE AS $$
  SELECT pet_json(r.id, r.name, r.species, r.breed, r.microchip_id, r.microchip_registered_at, r.deleted,
                  r.created_at, r.updated_at, r.version),
         r.deleted, r.version, r.include_deleted
    FROM read_pet_v2(tenant, pet) r
$$;

GRANT EXECUTE ON FUNCTION read_pet_json_v2(uuid, uuid) TO petstore_app;
GRANT EXECUTE ON FUNCTION utc_text(timestamptz), pet_json(uuid, text, text, text, text, timestamptz, boolean, timestamptz, timestamptz, integer),
  read_pets_page_v2(uuid, bigint, text, integer) TO petstore_app;
