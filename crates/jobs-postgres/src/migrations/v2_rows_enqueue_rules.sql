-- jobs-postgres schema version 2 (helper `rows`): enqueue() enforces the rules of the Rust
-- enqueue (jobs::store::NewJob::validate), with the same constants:
--   kind and queue: 1 to 128 characters of [A-Za-z0-9_.:-]   (jobs::store::MAX_NAME_LEN)
--   priority: -32768 to 32767                                 (NewJob::priority is an i16)
--   max_attempts: 1 to 2147483647, default 20                 (MAX_ATTEMPTS_LIMIT, DEFAULT_MAX_ATTEMPTS)
--   args: arrays and objects nested at most 100 levels deep   (jobs::store::MAX_JSON_DEPTH)
-- Version 1 accepted any non-empty names (a job on a queue no pool can name waits forever),
-- any nesting (args deeper than the decoder reads fail at every claim) and defaulted
-- max_attempts to 25. CREATE OR REPLACE keeps the function's grants.
-- {s} is the quoted schema name, {channel} the NOTIFY channel (both validated identifiers).

CREATE OR REPLACE FUNCTION {s}.enqueue(
    kind         text,
    args         jsonb,
    queue        text        DEFAULT 'default',
    priority     integer     DEFAULT 0,
    max_attempts integer     DEFAULT 20,
    run_at       timestamptz DEFAULT now()
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
    INSERT INTO {s}.jobs (kind, queue, args, state, priority, max_attempts, run_at, created_at)
    VALUES (kind, queue, args,
            CASE WHEN coalesce(run_at, now()) > now() THEN 'scheduled' ELSE 'available' END,
            priority::smallint, max_attempts, coalesce(run_at, now()), now())
    RETURNING id INTO new_id;
    IF coalesce(run_at, now()) <= now() THEN
        PERFORM pg_notify('{channel}', queue);
    END IF;
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION {s}.enqueue(text, jsonb, text, integer, integer, timestamptz) IS
    'Enqueue a job: enqueue(kind, args, queue, priority, max_attempts, run_at) returns the job id. '
    'The rules of the Rust enqueue apply: kind and queue of 1 to 128 characters of [A-Za-z0-9_.:-], '
    'priority -32768..32767, max_attempts >= 1 (default 20), args nested at most 100 levels. '
    'GRANT USAGE ON SCHEMA and EXECUTE ON FUNCTION to let a role enqueue without table rights.';
