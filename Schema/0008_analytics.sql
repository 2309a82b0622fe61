-- What the platform's analytics need beyond the logs: requests refused for a tenant's quota
-- (they leave no event: a flood of 429s must not grow the log), and functions through which the
-- owner reads every tenant's figures for platform admins, without the application role ever
-- holding a cross-tenant policy.

CREATE TABLE rate_limited_requests (
  tenant_id uuid NOT NULL,
  day       date NOT NULL,
  requests  bigint NOT NULL CHECK (requests >= 0),
  PRIMARY KEY (tenant_id, day)
);
SELECT enable_tenant_rls('rate_limited_requests');
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_counts_rate_limited ON rate_limited_requests TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- Adds counts gathered by a server process: one call per flush, for all its tenants.
CREATE FUNCTION rate_limited_add(tenants uuid[], days date[], counts bigint[]) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  INSERT INTO rate_limited_requests (tenant_id, day, requests)
  SELECT t, d, sum(c) FROM unnest(tenants, days, counts) AS u(t, d, c) GROUP BY t, d
  ON CONFLICT (tenant_id, day) DO UPDATE SET requests = rate_limited_requests.requests + EXCLUDED.requests
$$;
REVOKE ALL ON FUNCTION rate_limited_add(uuid[], date[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rate_limited_add(uuid[], date[], bigint[]) TO petstore_app;

-- Each tenant's pets by species, from the active analytics projection. PL/pgSQL, so the views
-- it reads need only exist when it runs (projections are installed after the migrations).
CREATE FUNCTION analytics_species()
  RETURNS TABLE (tenant_id uuid, species text, active bigint, removed bigint)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  RETURN QUERY SELECT s.tenant_id, s.species, s.active, s.removed FROM analytics_species s WHERE s.active > 0 OR s.removed > 0;
END $$;
REVOKE ALL ON FUNCTION analytics_species() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_species() TO petstore_app;

-- Each tenant's activity by UTC day in [from_day, to_day]: commands and events from the
-- projection, refused requests from the counters above, cross-tenant attempts against it from
-- the security log. Only days with something to count.
CREATE FUNCTION analytics_activity(from_day date, to_day date)
  RETURNS TABLE (tenant_id uuid, day date, commands bigint, events bigint, rate_limited bigint, cross_tenant bigint)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  RETURN QUERY
  SELECT k.tenant_id, k.day, sum(k.commands)::bigint, sum(k.events)::bigint, sum(k.rate_limited)::bigint, sum(k.cross_tenant)::bigint
    FROM (
      SELECT a.tenant_id, a.day, a.commands, a.events, 0::bigint AS rate_limited, 0::bigint AS cross_tenant
        FROM analytics_daily a WHERE a.day BETWEEN from_day AND to_day
      UNION ALL
      SELECT r.tenant_id, r.day, 0, 0, r.requests, 0
        FROM rate_limited_requests r WHERE r.day BETWEEN from_day AND to_day
      UNION ALL
      SELECT s.target_tenant, (s.window_start AT TIME ZONE 'UTC')::date, 0, 0, 0, s.attempts
        FROM security_events s
       WHERE s.kind = 'cross_tenant' AND s.target_tenant IS NOT NULL
         AND s.window_start >= (from_day::timestamp AT TIME ZONE 'UTC')
         AND s.window_start < ((to_day + 1)::timestamp AT TIME ZONE 'UTC')
    ) k
   GROUP BY k.tenant_id, k.day;
END $$;
REVOKE ALL ON FUNCTION analytics_activity(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_activity(date, date) TO petstore_app;

-- Requests that named no known tenant, by UTC day: probing the platform rather than a tenant.
CREATE FUNCTION analytics_unknown_tenant(from_day date, to_day date) RETURNS TABLE (day date, attempts bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT (s.window_start AT TIME ZONE 'UTC')::date, sum(s.attempts)::bigint
    FROM security_events s
   WHERE s.kind = 'unknown_tenant'
     AND s.window_start >= (from_day::timestamp AT TIME ZONE 'UTC')
     AND s.window_start < ((to_day + 1)::timestamp AT TIME ZONE 'UTC')
   GROUP BY 1
$$;
REVOKE ALL ON FUNCTION analytics_unknown_tenant(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics_unknown_tenant(date, date) TO petstore_app;
