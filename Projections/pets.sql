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
  -- When the current microchip number was recorded on the pet: by the registration or the
  -- change that set it; null while it has none.
  microchip_registered_at timestamptz,
  deleted        boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  version        integer NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX pets_list ON pets (tenant_id, registered_seq);
CREATE INDEX pets_by_species ON pets (tenant_id, species, registered_seq);
SELECT enable_tenant_rls('pets');

-- microchip_registered_at is derived here, beside the table, rather than by the projector:
-- while a new version is built and after it is switched to, servers of the previous build keep
-- projecting into it until they stop, and they know nothing of the column. Derived in SQL, it
-- is right whichever build writes the row. Pet.evolve folds the same rule for reads of the past.
CREATE FUNCTION pets_microchip_registered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.microchip_id IS DISTINCT FROM OLD.microchip_id THEN
    NEW.microchip_registered_at := CASE WHEN NEW.microchip_id IS NULL THEN NULL ELSE NEW.updated_at END;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER pets_microchip_registered BEFORE INSERT OR UPDATE OF microchip_id ON pets
  FOR EACH ROW EXECUTE FUNCTION pets_microchip_registered();
