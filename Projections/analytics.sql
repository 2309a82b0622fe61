-- scope: platform
-- The analytics read model: per tenant, the figures platform admins add up across tenants.
-- Each tenant has its own checkpoint in it like any read model, so a tenant whose commit lands
-- late is counted when it lands, never skipped. Platform admins read it through the owner's
-- functions in Schema/0008_analytics.sql; the application role sees one tenant at a time.

-- Commands (appends of the tenant's own doing, security records excluded) and events per UTC day.
CREATE TABLE analytics_daily (
  tenant_id uuid NOT NULL,
  day       date NOT NULL,
  commands  bigint NOT NULL,
  events    bigint NOT NULL,
  PRIMARY KEY (tenant_id, day)
);

-- Pets by species now: active and removed.
CREATE TABLE analytics_species (
  tenant_id uuid NOT NULL,
  species   text NOT NULL,
  active    bigint NOT NULL,
  removed   bigint NOT NULL,
  PRIMARY KEY (tenant_id, species)
);

-- What the projector must remember of each pet to move it between the counts above.
CREATE TABLE analytics_pets (
  tenant_id uuid NOT NULL,
  id        uuid NOT NULL,
  species   text NOT NULL,
  removed   boolean NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- The recorded_at of the last event counted: an append's events share it, so an event with
-- another one starts the next append.
CREATE TABLE analytics_cursor (
  tenant_id   uuid PRIMARY KEY,
  last_append text NOT NULL
);

SELECT enable_tenant_rls('analytics_daily');
SELECT enable_tenant_rls('analytics_species');
SELECT enable_tenant_rls('analytics_pets');
SELECT enable_tenant_rls('analytics_cursor');
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_reads ON analytics_daily FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY owner_reads ON analytics_species FOR SELECT TO %I USING (true)', current_user);
END $$;
