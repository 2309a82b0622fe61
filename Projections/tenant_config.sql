-- The tenant configuration read model: the values set for each key.
CREATE TABLE tenant_config (
  tenant_id  uuid NOT NULL,
  key        text NOT NULL,
  value      jsonb NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
SELECT enable_tenant_rls('tenant_config');
