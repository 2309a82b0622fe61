-- Quotas per window. A plan's quota ("100 per hour") is now a count per fixed window aligned to
-- the period on the database clock (the clock hour, the UTC day): `X-RateLimit-Remaining`
-- counts down from the quota and the window's end is when it is whole again. The GCRA state of
-- 0006 stays, as a separate short-window limit per plan (the "burst" policy, e.g. 10 per second),
-- which protects the service from floods without eating into what a tenant may spend in a window.
--
-- The state is worth a request's quota, as before: every tenant starts the new scheme afresh.
TRUNCATE rate_limits;
ALTER TABLE rate_limits
  DROP COLUMN last_granted,
  -- Start of the window `quota_used` counts in, and that window's length, microseconds.
  ADD COLUMN quota_window bigint NOT NULL DEFAULT 0,
  ADD COLUMN quota_period bigint NOT NULL DEFAULT 0,
  ADD COLUMN quota_used integer NOT NULL DEFAULT 0;

-- The 0006 takes knew one limit; servers of this version call quota_take_many.
DROP FUNCTION rate_limit_take(uuid, integer, bigint, integer, bigint);
DROP FUNCTION rate_limit_take_many(uuid[], integer[], bigint[], integer[], bigint, integer[]);

-- The start of the window of `period` microseconds that `clock` falls in (floor, for any sign).
CREATE FUNCTION quota_window_start(clock bigint, period bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS $$
  SELECT clock - (((clock % period) + period) % period)
$$;

-- For each i, grants up to wanted[i] requests to tenants[i] under both of its plan's limits:
-- at most quotas[i] in the current window of periods[i] microseconds, and the burst limit, GCRA
-- with emissions[i] microseconds per request and bursts[i] back to back (gcra_base and
-- gcra_granted of 0006). A request is granted only when both have room, and spends one of each;
-- a refusal spends nothing. Returns per i the grant, the window's count after it and its start,
-- the new theoretical arrival time and the clock used (the database's, so that every process
-- agrees; `at_us` overrides it for tests of the arithmetic).
--
-- `returned[i]` gives back requests a server took earlier and did not spend. They go back to the
-- burst's TAT (at the current emission only, as before) and to the quota's count only when
-- `returned_windows[i]` is still the current window: requests leased in an earlier window were
-- counted there, and that window is over.
--
-- A change of period (another plan) starts the count afresh; a plan with the same period carries
-- the count over, so an upgrade mid-hour keeps what was spent. Rows are visited in tenant order
-- (for one tenant, in the order given), so two servers' batches lock them in the same order and
-- never deadlock. `RateLimitRow.swift` is the same arithmetic, kept equal by a test. A lock wait
-- over 250 ms is an error: the caller decides whether that admits the request.
CREATE FUNCTION quota_take_many(
  tenants uuid[], wanted integer[], quotas integer[], periods bigint[], emissions bigint[], bursts integer[],
  at_us bigint DEFAULT NULL, returned integer[] DEFAULT NULL, returned_windows bigint[] DEFAULT NULL)
  RETURNS TABLE (ord integer, granted integer, used integer, window_start bigint, tat_us bigint, now_us bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public SET lock_timeout = '250ms' AS $$
DECLARE
  i integer;
  clock bigint;
  current_window bigint;
  back integer;
  spent integer;
  base bigint;
  stored rate_limits%ROWTYPE;
BEGIN
  FOR i IN SELECT s FROM generate_subscripts(tenants, 1) AS s ORDER BY tenants[s], s LOOP
    IF wanted[i] < 1 OR quotas[i] < 1 OR periods[i] < 1 OR emissions[i] < 1 OR bursts[i] < 1 THEN
      RAISE EXCEPTION 'quota_take: wanted, quota, period, emission and burst must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    clock := coalesce(at_us, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    current_window := quota_window_start(clock, periods[i]);
    back := greatest(coalesce(returned[i], 0), 0);

    SELECT * INTO stored FROM rate_limits r WHERE r.tenant_id = tenants[i] FOR UPDATE;
    IF NOT FOUND THEN
      -- Never seen: an empty window and a TAT in the past. Another server may insert it first.
      INSERT INTO rate_limits (tenant_id, tat, emission_us, quota_window, quota_period, quota_used)
        VALUES (tenants[i], 0, emissions[i], current_window, periods[i], 0)
        ON CONFLICT (tenant_id) DO NOTHING;
      SELECT * INTO stored FROM rate_limits r WHERE r.tenant_id = tenants[i] FOR UPDATE;
    END IF;

    spent := CASE WHEN stored.quota_window = current_window AND stored.quota_period = periods[i] THEN stored.quota_used ELSE 0 END;
    IF back > 0 AND returned_windows[i] = current_window THEN
      spent := greatest(spent - back, 0);
    END IF;
    base := gcra_base(stored.tat - CASE WHEN stored.emission_us = emissions[i] THEN back::bigint * emissions[i] ELSE 0 END,
                      stored.emission_us, emissions[i], clock);
    granted := least(gcra_granted(base, clock, emissions[i], bursts[i], wanted[i]), greatest(quotas[i] - spent, 0));

    ord := i;
    used := spent + granted;
    window_start := current_window;
    tat_us := base + granted::bigint * emissions[i];
    now_us := clock;
    -- A refusal that changes nothing writes nothing: a flood of 429s costs no row versions.
    IF granted > 0 OR back > 0 OR stored.quota_window <> current_window OR stored.quota_period <> periods[i]
       OR stored.emission_us <> emissions[i] THEN
      UPDATE rate_limits r
         SET quota_window = current_window, quota_period = periods[i], quota_used = spent + granted,
             tat = base + granted::bigint * emissions[i], emission_us = emissions[i]
       WHERE r.tenant_id = tenants[i];
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;

REVOKE ALL ON FUNCTION quota_take_many(uuid[], integer[], integer[], bigint[], bigint[], integer[], bigint, integer[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION quota_take_many(uuid[], integer[], integer[], bigint[], bigint[], integer[], bigint, integer[], bigint[]) TO petstore_app;
