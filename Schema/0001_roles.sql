-- The application's role: it owns nothing, is no superuser and cannot bypass row-level security.
-- Migrations run as the owner of the schema; the server's queries run as petstore_app, either
-- because it logs in as that role or because each transaction switches to it (set_config('role')).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'petstore_app') THEN
    CREATE ROLE petstore_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT pg_has_role(current_user, 'petstore_app', 'MEMBER') THEN
    EXECUTE format('GRANT petstore_app TO %I', current_user);
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO petstore_app;
GRANT SELECT ON schema_migrations TO petstore_app;
