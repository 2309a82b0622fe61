# write_log URL TENANT EVENTS: appends EVENTS PetRegistered events to TENANT's log through
# append_events itself (1 000 pets a call, a transaction each), so the log is a real hash chain.
write_log() {
  psql -q "$1" <<SQL >/dev/null
DO \$\$
DECLARE
  ids uuid[];
  payloads text[];
BEGIN
  FOR batch IN 1 .. ceil($3 / 1000.0)::int LOOP
    SELECT array_agg(gen_random_uuid()) INTO ids FROM generate_series(1, 1000);
    SELECT array_agg(format('{"at":"2026-11-29T00:00:00.000000Z","name":"Pet %s","pet_id":"%s","species":"%s"}',
                            batch * 1000 + n, ids[n], CASE WHEN n % 2 = 0 THEN 'dog' ELSE 'cat' END) ORDER BY n)
      INTO payloads FROM generate_series(1, 1000) AS n;
    PERFORM append_events('$2', '{}', array_fill('pet'::text, ARRAY[1000]), ids, array_fill(0, ARRAY[1000]),
                          ARRAY(SELECT generate_series(1, 1000)), array_fill('PetRegistered'::text, ARRAY[1000]),
                          array_fill('"PetRegistered"'::text, ARRAY[1000]), array_fill(1::smallint, ARRAY[1000]), payloads);
    COMMIT;
  END LOOP;
END \$\$;
SQL
}
