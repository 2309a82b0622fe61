-- Placements for real, and the registry of servers.
--
-- A `schema` tenant keeps its log in a partition of its own of `events` (created at onboarding,
-- see 0002) and its read models in schemas of its own:
--   t_<hex>            views named like the read-model tables, over the active versions
--   t_<hex>_<version>  one per installed version of each per-tenant projection, a copy of the
--                      version's tables (LIKE … INCLUDING ALL) under the same row-level security
-- Its sessions put t_<hex> first on the search path; the read functions below name their tables
-- unqualified, so the same SQL reads a shared tenant's rows from the public views and a schema
-- tenant's from its own. Projections whose rows are the platform's (analytics) stay shared.
--
-- Which per-tenant work is done is kept per tenant in tenant_migrations (the ledger `petstore
-- migrate` compares with what this build needs), so a run with nothing to do reads one table.

-- Servers: `main` is the server of DATABASE_URL; others are registered by name. The URL holds
-- credentials, so the application role can read neither it nor anything derived from it but
-- the display form (host, port and database, no user or password).
CREATE TABLE servers (
  name     text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,30}$'),
  url      text,
  display  text NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((name = 'main') = (url IS NULL))
);
INSERT INTO servers (name, display) VALUES ('main', 'DATABASE_URL');
GRANT SELECT (name, display, added_at) ON servers TO petstore_app;
GRANT INSERT (name, url, display) ON servers TO petstore_app;
GRANT DELETE ON servers TO petstore_app;

ALTER TABLE tenants ADD COLUMN server text NOT NULL DEFAULT 'main' REFERENCES servers (name) ON DELETE RESTRICT;

-- The per-tenant ledger. Items: 'projection:<name>:<version>' once that version's tables exist
-- for the tenant (and, for the active version, are filled and behind its views).
CREATE TABLE tenant_migrations (
  tenant_id  uuid NOT NULL REFERENCES tenants (id),
  item       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, item)
);
-- Written by the owner's functions below; read through tenant_ledger() and tenant_home().
SELECT enable_tenant_rls('tenant_migrations');
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_keeps_ledger ON tenant_migrations TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- The whole ledger: version names per tenant, no tenant data, for `petstore migrate`'s plan.
CREATE FUNCTION tenant_ledger() RETURNS TABLE (tenant_id uuid, item text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT m.tenant_id, m.item FROM tenant_migrations m
$$;
REVOKE ALL ON FUNCTION tenant_ledger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_ledger() TO petstore_app;

-- Whether a projection's rows live with each tenant or in the platform's shared tables.
ALTER TABLE projections ADD COLUMN scope text NOT NULL DEFAULT 'tenant' CHECK (scope IN ('tenant', 'platform'));
UPDATE projections SET scope = 'platform' WHERE name = 'analytics';

CREATE FUNCTION tenant_home_schema(tenant uuid) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$ SELECT 't_' || replace(tenant::text, '-', '') $$;

CREATE FUNCTION tenant_projection_schema(tenant uuid, p_version text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$ SELECT 't_' || replace(tenant::text, '-', '') || '_' || p_version $$;

-- Creates a schema tenant's copy of one projection version's tables, if missing. A new copy is
-- empty, so the tenant's checkpoint for that version starts again from 0. Views and the ledger
-- are left to finish_tenant_projection, once the copy is filled where that matters.
CREATE FUNCTION install_tenant_projection(tenant uuid, p_name text, p_version text) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  source projections%ROWTYPE;
  target text := tenant_projection_schema(tenant, p_version);
  table_name text;
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
    PERFORM enable_tenant_rls(format('%I.%I', target, table_name)::regclass);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO petstore_app', target, table_name);
  END LOOP;
  DELETE FROM projection_checkpoints c WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version;
  RETURN true;
END $$;
REVOKE ALL ON FUNCTION install_tenant_projection(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION install_tenant_projection(uuid, text, text) TO petstore_app;

-- Points a schema tenant's views at its copy of a version if that version is active, and records
-- the version in the tenant's ledger.
CREATE FUNCTION finish_tenant_projection(tenant uuid, p_name text, p_version text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  source projections%ROWTYPE;
  home text := tenant_home_schema(tenant);
  target text := tenant_projection_schema(tenant, p_version);
  table_name text;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT * INTO source FROM projections p WHERE p.name = p_name AND p.version = p_version;
  IF NOT FOUND OR source.scope <> 'tenant' THEN
    RETURN;
  END IF;
  IF to_regnamespace(target) IS NULL THEN
    RAISE EXCEPTION 'tenant % has no copy of projection % version %', tenant, p_name, p_version
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- A tenant onboarded before placements were real has its rows in the shared tables: they
  -- are its copy's now.
  FOREACH table_name IN ARRAY source.tables LOOP
    EXECUTE format('DELETE FROM %I.%I WHERE tenant_id = $1', source.schema_name, table_name) USING tenant;
  END LOOP;
  IF source.state = 'active' THEN
    FOREACH table_name IN ARRAY source.tables LOOP
      EXECUTE format('DROP VIEW IF EXISTS %I.%I', home, table_name);
      EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT * FROM %I.%I', home, table_name, target, table_name);
      EXECUTE format('GRANT SELECT ON %I.%I TO petstore_app', home, table_name);
    END LOOP;
  END IF;
  INSERT INTO tenant_migrations (tenant_id, item) VALUES (tenant, 'projection:' || p_name || ':' || p_version)
    ON CONFLICT DO NOTHING;
  -- Servers that refused the tenant as behind serve it again as soon as this commits.
  PERFORM pg_notify('petstore_catalog', tenant::text);
END $$;
REVOKE ALL ON FUNCTION finish_tenant_projection(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finish_tenant_projection(uuid, text, text) TO petstore_app;

-- Onboarding a schema tenant, in its first unit of work (after its catalog row is written):
-- its log partition, its home schema, and a copy of every per-tenant projection version that
-- is served or being built. The tenant has no events yet, so the copies are complete as made.
CREATE OR REPLACE FUNCTION provision_tenant_schema(tenant uuid) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  home text := tenant_home_schema(tenant);
  version projections%ROWTYPE;
BEGIN
  PERFORM assert_tenant(tenant);
  PERFORM create_tenant_partition(tenant);
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', home);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', home);
  IF EXISTS (SELECT 1 FROM tenants t WHERE t.id = tenant AND t.placement = 'schema') THEN
    FOR version IN SELECT * FROM projections p WHERE p.scope = 'tenant' AND p.state IN ('active', 'building') LOOP
      PERFORM install_tenant_projection(tenant, version.name, version.version);
      PERFORM finish_tenant_projection(tenant, version.name, version.version);
    END LOOP;
  END IF;
  RETURN home;
END $$;

-- Activation repoints the public views (0004) and, for per-tenant projections, the views of
-- every schema tenant that has a copy of the version. A schema tenant without one keeps its
-- views and is behind until `petstore migrate` gives it the copy; it is not served meanwhile.
CREATE OR REPLACE FUNCTION activate_projection(p_name text, p_version text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  target projections%ROWTYPE;
  table_name text;
  tenant uuid;
BEGIN
  SELECT * INTO target FROM projections WHERE name = p_name AND version = p_version FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'projection % version % is not installed', p_name, p_version;
  END IF;
  IF target.state = 'active' THEN
    RETURN;
  END IF;
  UPDATE projections SET state = 'retired' WHERE name = p_name AND state = 'active';
  FOREACH table_name IN ARRAY target.tables LOOP
    EXECUTE format('DROP VIEW IF EXISTS public.%I', table_name);
    EXECUTE format('CREATE VIEW public.%I WITH (security_invoker = true) AS SELECT * FROM %I.%I',
                   table_name, target.schema_name, table_name);
    EXECUTE format('GRANT SELECT ON public.%I TO petstore_app', table_name);
  END LOOP;
  UPDATE projections SET state = 'active', activated_at = now() WHERE name = p_name AND version = p_version;
  -- Which tenants are behind has changed: every server forgets where tenants stand.
  PERFORM pg_notify('petstore_catalog', '*');
  IF target.scope = 'tenant' THEN
    FOR tenant IN SELECT t.id FROM tenants t WHERE t.placement = 'schema'
                     AND to_regnamespace(tenant_projection_schema(t.id, p_version)) IS NOT NULL LOOP
      FOREACH table_name IN ARRAY target.tables LOOP
        EXECUTE format('DROP VIEW IF EXISTS %I.%I', tenant_home_schema(tenant), table_name);
        EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT * FROM %I.%I',
                       tenant_home_schema(tenant), table_name, tenant_projection_schema(tenant, p_version), table_name);
        EXECUTE format('GRANT SELECT ON %I.%I TO petstore_app', tenant_home_schema(tenant), table_name);
      END LOOP;
    END LOOP;
  END IF;
END $$;

-- The batch start of 0010, refusing a schema that lacks any of the version's tables: set on the
-- search path, a missing schema would be skipped in silence (and a missing table found further
-- along it), and the batch would write through the public views to the shared tables.
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
  PERFORM set_config('search_path', quote_ident(p_schema) || ', public', true);
  INSERT INTO projection_checkpoints (tenant_id, projection, version) VALUES (tenant, p_name, p_version) ON CONFLICT DO NOTHING;
  SELECT c.applied_seq INTO result FROM projection_checkpoints c
   WHERE c.tenant_id = tenant AND c.projection = p_name AND c.version = p_version FOR UPDATE;
  RETURN result;
END $$;

-- The reads of 0010 with their tables unqualified: the session's search path picks the shared
-- views or the tenant's own.
CREATE OR REPLACE FUNCTION read_pet(tenant uuid, pet uuid)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, include_deleted boolean)
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM assert_tenant(tenant);
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.deleted, p.created_at, p.updated_at, p.version,
           coalesce((SELECT c.value = 'true'::jsonb FROM tenant_config c
                      WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false)
      FROM pets p WHERE p.tenant_id = tenant AND p.id = pet;
END $$;

CREATE OR REPLACE FUNCTION read_pets(tenant uuid, after_seq bigint, only_species text, page_size integer)
  RETURNS TABLE (id uuid, name text, species text, breed text, microchip_id text, deleted boolean,
                 created_at timestamptz, updated_at timestamptz, version integer, registered_seq bigint)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  include_deleted boolean;
BEGIN
  PERFORM assert_tenant(tenant);
  SELECT coalesce((SELECT c.value = 'true'::jsonb FROM tenant_config c
                    WHERE c.tenant_id = tenant AND c.key = 'include_deleted_pets'), false) INTO include_deleted;
  RETURN QUERY
    SELECT p.id, p.name, p.species, p.breed, p.microchip_id, p.deleted, p.created_at, p.updated_at, p.version, p.registered_seq
      FROM pets p
     WHERE p.tenant_id = tenant AND p.registered_seq > after_seq
       AND (only_species IS NULL OR p.species = only_species)
       AND (include_deleted OR NOT p.deleted)
     ORDER BY p.registered_seq LIMIT page_size;
END $$;

-- Where each tenant lives and which of the per-tenant projection versions being served it has
-- no copy of: what a tenant session needs to route, and to refuse a tenant that is behind.
CREATE FUNCTION tenant_home(tenant uuid)
  RETURNS TABLE (placement text, server text, location text, status text, missing text[])
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT t.placement, t.server, t.location, t.status,
         CASE WHEN t.placement = 'schema' THEN ARRAY(
           SELECT p.name || ':' || p.version FROM projections p
            WHERE p.state = 'active' AND p.scope = 'tenant'
              AND NOT EXISTS (SELECT 1 FROM tenant_migrations m
                               WHERE m.tenant_id = t.id AND m.item = 'projection:' || p.name || ':' || p.version))
         ELSE '{}'::text[] END
    FROM tenants t WHERE t.id = tenant
$$;
REVOKE ALL ON FUNCTION tenant_home(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_home(uuid) TO petstore_app;
