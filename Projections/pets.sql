-- The pets read model: one row per pet, as the pet's events left it.
-- registered_seq is the tenant seq of the pet's registration: pages are cut on it, so a pet
-- registered while a client pages through the list shows up after everything already there
-- (no skips, no repeats).
CREATE TABLE pets (
  tenant_id      uuid NOT NULL,
  id             uuid NOT NULL,
  registered_seq bigint NOT NULL,
  name           text NOT NULL,
  species        text NOT NULL,
  breed          text,
  microchip_id   text,
  deleted        boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  version        integer NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX pets_list ON pets (tenant_id, registered_seq);
CREATE INDEX pets_by_species ON pets (tenant_id, species, registered_seq);
SELECT enable_tenant_rls('pets');
