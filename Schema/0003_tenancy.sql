-- The control plane: tenants, their users and API keys, platform admins, and the security log.
-- Tenants are looked up before anyone is authenticated (resolution by slug), so the catalog row
-- itself is readable by the application; everything that belongs to a tenant carries tenant_id
-- and sits behind the same FORCE'd row-level security as the event log.

CREATE TABLE tenants (
  id          uuid PRIMARY KEY,
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  plan        text NOT NULL CHECK (plan IN ('free', 'basic', 'premium', 'enterprise')),
  status      text NOT NULL CHECK (status IN ('provisioning', 'active', 'suspended', 'offboarding')),
  placement   text NOT NULL CHECK (placement IN ('shared', 'schema', 'database')),
  -- Where the tenant's data lives: NULL for shared; the schema or database name otherwise.
  location    text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  removal_scheduled_at timestamptz
);

-- Provisioning runs as recorded steps so that it resumes after a crash where it stopped.
CREATE TABLE tenant_provisioning (
  tenant_id    uuid NOT NULL REFERENCES tenants (id),
  step         text NOT NULL,
  completed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, step)
);

CREATE TABLE users (
  tenant_id  uuid NOT NULL REFERENCES tenants (id),
  id         uuid NOT NULL,
  email      text NOT NULL,
  role       text NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, email)
);

-- Keys are stored as SHA-256 of the whole key; the prefix (public, shown in listings) finds
-- the row, and the hash is then compared in constant time.
CREATE TABLE api_keys (
  tenant_id    uuid NOT NULL REFERENCES tenants (id),
  id           uuid NOT NULL,
  prefix       text NOT NULL UNIQUE,
  key_hash     bytea NOT NULL,
  user_id      uuid NOT NULL,
  role         text NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE TABLE platform_keys (
  id           uuid PRIMARY KEY,
  prefix       text NOT NULL UNIQUE,
  key_hash     bytea NOT NULL,
  name         text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz
);

-- The platform's security log: cross-tenant attempts and requests for unknown tenants.
-- Repeats of one actor against one target, method and route within a minute are one row with a count.
CREATE TABLE security_events (
  id               bigserial PRIMARY KEY,
  kind             text NOT NULL,
  window_start     timestamptz NOT NULL,
  first_seen       timestamptz NOT NULL,
  last_seen        timestamptz NOT NULL,
  attempts         integer NOT NULL DEFAULT 1,
  actor_tenant     uuid,
  actor_user       uuid,
  actor_key        uuid,
  target_tenant    uuid,
  target_slug      text,
  method           text NOT NULL,
  route            text NOT NULL,
  client_address   text,
  request_id       text,
  UNIQUE NULLS NOT DISTINCT (kind, window_start, actor_key, target_tenant, target_slug, method, route)
);

SELECT enable_tenant_rls('users');
SELECT enable_tenant_rls('api_keys');
SELECT enable_tenant_rls('tenant_provisioning');

DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_reads_keys ON api_keys FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY owner_touches_keys ON api_keys FOR UPDATE TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

GRANT SELECT, INSERT, UPDATE ON tenants TO petstore_app;
GRANT SELECT, INSERT ON tenant_provisioning TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON users TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON api_keys TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON platform_keys TO petstore_app;
GRANT SELECT, INSERT, UPDATE ON security_events TO petstore_app;
GRANT USAGE ON SEQUENCE security_events_id_seq TO petstore_app;

-- Authentication happens before the caller's tenant is trusted: the key's prefix names the row,
-- whatever tenant it belongs to, so that a key of tenant A used against tenant B is recognized
-- (and answered 404, and audited) rather than taken for a bad key. Returns no secret material
-- beyond the stored hash, which the caller compares in constant time.
CREATE FUNCTION find_api_key(key_prefix text)
  RETURNS TABLE (id uuid, tenant_id uuid, user_id uuid, role text, key_hash bytea, revoked boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT k.id, k.tenant_id, k.user_id, k.role, k.key_hash, k.revoked_at IS NOT NULL
    FROM api_keys k WHERE k.prefix = key_prefix
$$;
REVOKE ALL ON FUNCTION find_api_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION find_api_key(text) TO petstore_app;

-- Records that a key was used, at most once a minute per key.
CREATE FUNCTION touch_api_key(key_id uuid) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE api_keys SET last_used_at = now()
   WHERE id = key_id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
$$;
REVOKE ALL ON FUNCTION touch_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION touch_api_key(uuid) TO petstore_app;

-- A welcome message and other notifications to deliver after commit (transactional outbox).
CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  tenant_id    uuid REFERENCES tenants (id),
  kind         text NOT NULL,
  payload      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  attempts     integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX outbox_once ON outbox (tenant_id, kind) WHERE kind = 'welcome';
SELECT enable_tenant_rls('outbox');
GRANT INSERT ON outbox TO petstore_app;
GRANT USAGE ON SEQUENCE outbox_id_seq TO petstore_app;
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_dispatches ON outbox TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- The dispatcher works across tenants: it takes a batch of undelivered messages (skipping rows
-- another dispatcher holds) and marks them delivered in the same transaction.
CREATE FUNCTION outbox_pending(batch integer)
  RETURNS TABLE (id bigint, tenant_id uuid, kind text, payload text, attempts integer)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  SELECT o.id, o.tenant_id, o.kind, o.payload::text, o.attempts FROM outbox o
   WHERE o.delivered_at IS NULL ORDER BY o.id LIMIT batch FOR UPDATE SKIP LOCKED
$$;
CREATE FUNCTION outbox_settle(message bigint, delivered boolean) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE outbox SET delivered_at = CASE WHEN delivered THEN now() END, attempts = attempts + 1 WHERE id = message
$$;
REVOKE ALL ON FUNCTION outbox_pending(integer), outbox_settle(bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION outbox_pending(integer), outbox_settle(bigint, boolean) TO petstore_app;

-- The placement step of provisioning for a tenant with a schema of its own: its events get a
-- partition of their own and its read models a schema named after it.
CREATE FUNCTION provision_tenant_schema(tenant uuid) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  schema_name text := 't_' || replace(tenant::text, '-', '');
BEGIN
  PERFORM create_tenant_partition(tenant);
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO petstore_app', schema_name);
  RETURN schema_name;
END $$;
REVOKE ALL ON FUNCTION provision_tenant_schema(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION provision_tenant_schema(uuid) TO petstore_app;
