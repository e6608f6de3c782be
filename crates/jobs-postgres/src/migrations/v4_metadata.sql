-- jobs-postgres schema version 4 (issue 8): job metadata, a JSON object of strings beside the
-- args (the W3C trace context of the enqueue among it), NULL for none. enqueue() takes it as
-- an optional trailing parameter, with the rules of the Rust enqueue
-- (jobs::Metadata::validate), with the same constants:
--   keys: 1 to 128 characters of [A-Za-z0-9_.:-]                (jobs::store::MAX_NAME_LEN)
--   values: strings
--   at most 32 entries, at most 4096 bytes of keys and values    (MAX_METADATA_ENTRIES, MAX_METADATA_BYTES)
-- An empty object is stored as NULL, as the Rust enqueue stores no metadata.
-- Adding a parameter makes a new function (an overload that would make every existing call
-- ambiguous), so the old one is dropped and the new one created under the same name; the
-- roles that could execute the old one are granted the new one, so existing callers keep
-- working unchanged. {s} is the quoted schema name, {channel} the NOTIFY channel (both
-- validated identifiers).

ALTER TABLE {s}.jobs ADD COLUMN metadata jsonb;

-- The roles granted EXECUTE on the old function (quoted names, comma-separated), kept for the
-- rest of this transaction.
SELECT set_config('jobs.enqueue_grantees', coalesce(string_agg(DISTINCT a.grantee::regrole::text, ','), ''), true)
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.oid = '{s}.enqueue(text, jsonb, text, integer, integer, timestamptz)'::regprocedure
   AND a.privilege_type = 'EXECUTE'
   AND a.grantee <> 0
   AND a.grantee <> p.proowner;

DROP FUNCTION {s}.enqueue(text, jsonb, text, integer, integer, timestamptz);

CREATE FUNCTION {s}.enqueue(
    kind         text,
    args         jsonb,
    queue        text        DEFAULT 'default',
    priority     integer     DEFAULT 0,
    max_attempts integer     DEFAULT 20,
    run_at       timestamptz DEFAULT now(),
    metadata     jsonb       DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    new_id bigint;
BEGIN
    IF kind IS NULL OR length(kind) > 128 OR kind !~ '^[A-Za-z0-9_.:-]+$' THEN
        RAISE EXCEPTION 'enqueue: invalid job kind %: use 1 to 128 characters of letters, digits, ''_'', ''.'', '':'' or ''-''', coalesce(quote_literal(kind), 'NULL') USING ERRCODE = '22023';
    END IF;
    IF args IS NULL THEN
        RAISE EXCEPTION 'enqueue: args must be a JSON value (use ''null''::jsonb for none)' USING ERRCODE = '22023';
    END IF;
    -- A container at level 100 (the root is level 0) means more than 100 levels. The jsonpath
    -- walk runs in C and stops at the first one.
    IF jsonb_path_exists(args, 'strict $.**{100} ? (@.type() == "array" || @.type() == "object")') THEN
        RAISE EXCEPTION 'enqueue: args nested more than 100 levels deep: at most 100 levels of arrays and objects can be stored and read back; flatten the args' USING ERRCODE = '22023';
    END IF;
    IF queue IS NULL OR length(queue) > 128 OR queue !~ '^[A-Za-z0-9_.:-]+$' THEN
        RAISE EXCEPTION 'enqueue: invalid queue name %: use 1 to 128 characters of letters, digits, ''_'', ''.'', '':'' or ''-''', coalesce(quote_literal(queue), 'NULL') USING ERRCODE = '22023';
    END IF;
    IF priority IS NULL OR priority < -32768 OR priority > 32767 THEN
        RAISE EXCEPTION 'enqueue: invalid priority %: use -32768 to 32767', coalesce(priority::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION 'enqueue: invalid max_attempts %: use 1 to 2147483647', coalesce(max_attempts::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF run_at IS NOT NULL AND NOT isfinite(run_at) THEN
        RAISE EXCEPTION 'enqueue: run_at must be a finite time, got %', run_at USING ERRCODE = '22023';
    END IF;
    IF metadata IS NOT NULL THEN
        IF jsonb_typeof(metadata) <> 'object' THEN
            RAISE EXCEPTION 'enqueue: metadata must be a JSON object of strings, got a JSON %', jsonb_typeof(metadata) USING ERRCODE = '22023';
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_each(metadata) e WHERE jsonb_typeof(e.value) <> 'string') THEN
            RAISE EXCEPTION 'enqueue: metadata values must be JSON strings' USING ERRCODE = '22023';
        END IF;
        IF EXISTS (SELECT 1 FROM jsonb_object_keys(metadata) k WHERE length(k) > 128 OR k !~ '^[A-Za-z0-9_.:-]+$') THEN
            RAISE EXCEPTION 'enqueue: invalid metadata key %: use 1 to 128 characters of letters, digits, ''_'', ''.'', '':'' or ''-''',
                (SELECT quote_literal(k) FROM jsonb_object_keys(metadata) k WHERE length(k) > 128 OR k !~ '^[A-Za-z0-9_.:-]+$' LIMIT 1) USING ERRCODE = '22023';
        END IF;
        IF (SELECT count(*) FROM jsonb_object_keys(metadata)) > 32 THEN
            RAISE EXCEPTION 'enqueue: metadata has % entries, more than the 32 a job may carry', (SELECT count(*) FROM jsonb_object_keys(metadata)) USING ERRCODE = '22023';
        END IF;
        IF (SELECT coalesce(sum(octet_length(e.key) + octet_length(e.value #>> '{}')), 0) FROM jsonb_each(metadata) e) > 4096 THEN
            RAISE EXCEPTION 'enqueue: metadata holds more than the 4096 bytes of keys and values a job may carry; keep large data in the args' USING ERRCODE = '22023';
        END IF;
        IF metadata = '{}'::jsonb THEN
            metadata := NULL;
        END IF;
    END IF;
    INSERT INTO {s}.jobs (kind, queue, args, state, priority, max_attempts, run_at, created_at, metadata)
    VALUES (kind, queue, args,
            CASE WHEN coalesce(run_at, now()) > now() THEN 'scheduled' ELSE 'available' END,
            priority::smallint, max_attempts, coalesce(run_at, now()), now(), metadata)
    RETURNING id INTO new_id;
    IF coalesce(run_at, now()) <= now() THEN
        PERFORM pg_notify('{channel}', queue);
    END IF;
    RETURN new_id;
END
$$;

REVOKE ALL ON FUNCTION {s}.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb) FROM PUBLIC;

DO $$
BEGIN
    IF current_setting('jobs.enqueue_grantees', true) <> '' THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION {s}.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb) TO %s',
                       current_setting('jobs.enqueue_grantees', true));
    END IF;
END
$$;

COMMENT ON FUNCTION {s}.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb) IS
    'Enqueue a job: enqueue(kind, args, queue, priority, max_attempts, run_at, metadata) returns the job id. '
    'The rules of the Rust enqueue apply: kind and queue of 1 to 128 characters of [A-Za-z0-9_.:-], '
    'priority -32768..32767, max_attempts >= 1 (default 20), args nested at most 100 levels, '
    'metadata a JSON object of at most 32 string values (keys named as kinds, 4096 bytes in all). '
    'GRANT USAGE ON SCHEMA and EXECUTE ON FUNCTION to let a role enqueue without table rights.';
