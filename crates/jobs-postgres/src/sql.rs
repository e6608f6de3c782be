//! The store's SQL, built once per schema. Every value is a bind parameter; only the validated,
//! quoted schema name is spliced in.
//!
//! Time crosses the boundary as `int8` microseconds since the Unix epoch and is stored as
//! `timestamptz`; both conversions are exact over PostgreSQL's whole `timestamptz` range
//! (see [`ts`] and [`micros`]).

use crate::schema_name::SchemaName;

/// SQL turning an `int8` microsecond count into a `timestamptz`, exactly: the count is split
/// into multiples of 2^40 µs and a remainder, so each interval multiplication is exact in
/// the `float8` arithmetic PostgreSQL uses for `interval * number`.
pub(crate) fn ts(micros: &str) -> String {
    format!(
        "(timestamptz 'epoch' + ({micros} >> 40) * interval '1099511627776 microseconds' \
         + ({micros} & 1099511627775) * interval '1 microsecond')"
    )
}

/// SQL turning a `timestamptz` into `int8` microseconds since the epoch, exactly: the
/// difference from the epoch is an interval of whole days and microseconds, whose `epoch`
/// PostgreSQL extracts as an exact `numeric` (extracting from the timestamp itself rounds at
/// the very top of the range).
pub(crate) fn micros(column: &str) -> String {
    format!("(extract(epoch from {column} - timestamptz 'epoch') * 1000000)::int8")
}

/// The column list every query returning whole jobs uses, in the order `row::job_record`
/// reads them.
fn job_columns(alias: &str) -> String {
    let a = |c: &str| format!("{alias}.{c}");
    [
        a("id"),
        a("kind"),
        a("queue"),
        a("args"),
        a("state"),
        a("priority"),
        a("attempts"),
        a("max_attempts"),
        a("rescues"),
        a("claims"),
        format!("{} AS run_at", micros(&a("run_at"))),
        format!("{} AS created_at", micros(&a("created_at"))),
        format!("{} AS attempted_at", micros(&a("attempted_at"))),
        format!("{} AS finalized_at", micros(&a("finalized_at"))),
        a("lease_owner"),
        format!("{} AS lease_expires_at", micros(&a("lease_expires_at"))),
        a("checkpoint"),
        a("errors"),
    ]
    .join(", ")
}

/// Every statement the store runs, for one schema.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) channel: String,
    pub(crate) insert_unnest: String,
    pub(crate) next_ids: String,
    pub(crate) copy_in: String,
    pub(crate) claim: String,
    pub(crate) finish: String,
    pub(crate) heartbeat: String,
    pub(crate) checkpoint: String,
    pub(crate) rescue: String,
    pub(crate) promote: String,
    pub(crate) get: String,
    pub(crate) list: String,
    pub(crate) retry: String,
    pub(crate) cancel: String,
    pub(crate) prune: String,
    pub(crate) stats: String,
}

impl Queries {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        let t = format!("{}.jobs", schema.quoted());
        Queries {
            channel: schema.channel(),
            insert_unnest: insert_unnest(&t),
            next_ids: format!(
                "SELECT nextval('{}.jobs_id_seq') FROM generate_series(1, $1::int8)",
                schema.quoted()
            ),
            copy_in: format!(
                "COPY {t} (id, kind, queue, args, state, priority, max_attempts, run_at, created_at) \
                 FROM STDIN (FORMAT binary)"
            ),
            claim: claim(&t),
            finish: finish(&t),
            heartbeat: heartbeat(&t),
            checkpoint: checkpoint(&t),
            rescue: rescue(&t),
            promote: promote(&t),
            get: format!("SELECT {} FROM {t} j WHERE j.id = $1", job_columns("j")),
            list: list(&t),
            retry: retry(&t),
            cancel: format!(
                "UPDATE {t} SET state = 'cancelled', finalized_at = {} \
                 WHERE id = $1 AND state IN ('scheduled', 'available')",
                ts("$2::int8")
            ),
            prune: prune(&t),
            stats: stats(&t),
        }
    }
}

/// `$1` kinds, `$2` queues, `$3` args (JSON text), `$4` states, `$5` priorities,
/// `$6` max attempts, `$7` run_at µs, `$8` now µs. Returns ids in insertion order.
fn insert_unnest(t: &str) -> String {
    format!(
        "INSERT INTO {t} (kind, queue, args, state, priority, max_attempts, run_at, created_at) \
         SELECT u.kind, u.queue, u.args::jsonb, u.state, u.priority, u.max_attempts, {run_at}, {now} \
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::int4[], $7::int8[]) \
                WITH ORDINALITY AS u(kind, queue, args, state, priority, max_attempts, run_at, ord) \
          ORDER BY u.ord \
         RETURNING id",
        run_at = ts("u.run_at"),
        now = ts("$8::int8"),
    )
}

/// `$1` queue, `$2` limit, `$3` now µs, `$4` owner, `$5` lease expiry µs.
fn claim(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'available' AND queue = $1 \
              ORDER BY priority DESC, run_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED) \
         UPDATE {t} j \
            SET state = 'running', claims = j.claims + 1, attempted_at = {now}, \
                lease_owner = $4, lease_expires_at = {expires} \
           FROM c WHERE j.id = c.id \
         RETURNING {cols}",
        now = ts("$3::int8"),
        expires = ts("$5::int8"),
        cols = job_columns("j"),
    )
}

/// `$1` ids, `$2` tokens, `$3` new states, `$4` new run_at µs (NULL: keep), `$5` charge an
/// attempt, `$6` error JSON text (NULL: none), `$7` now µs, `$8` channel.
/// Rows are locked in id order first, so concurrent batches (a heartbeat and a finish of the
/// same jobs) cannot deadlock. Returns the (id, claims) pairs that applied.
fn finish(t: &str) -> String {
    format!(
        "WITH f AS ( \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::bool[], $6::text[]) \
                 AS f(id, token, state, run_at, charge, error)), \
         l AS ( \
             SELECT j.id FROM {t} j JOIN f ON j.id = f.id AND j.claims = f.token \
              WHERE j.state = 'running' ORDER BY j.id FOR UPDATE OF j), \
         u AS ( \
             UPDATE {t} j \
                SET state = f.state, \
                    run_at = CASE WHEN f.run_at IS NULL THEN j.run_at ELSE {run_at} END, \
                    attempts = j.attempts + CASE WHEN f.charge THEN 1 ELSE 0 END, \
                    errors = CASE WHEN f.error IS NULL THEN j.errors \
                                  ELSE j.errors || jsonb_build_array(f.error::jsonb) END, \
                    finalized_at = CASE WHEN f.state IN ('completed', 'dead') THEN {now} END, \
                    checkpoint = CASE WHEN f.state = 'completed' THEN NULL ELSE j.checkpoint END, \
                    lease_owner = NULL, lease_expires_at = NULL \
               FROM f JOIN l ON l.id = f.id \
              WHERE j.id = f.id AND j.claims = f.token AND j.state = 'running' \
             RETURNING j.id, j.claims, j.queue, j.state), \
         n AS (SELECT pg_notify($8, d.queue) FROM (SELECT DISTINCT queue FROM u WHERE state = 'available') d) \
         SELECT coalesce((SELECT array_agg(id) FROM u), '{{}}') AS ids, \
                coalesce((SELECT array_agg(claims) FROM u), '{{}}') AS tokens, \
                (SELECT count(*) FROM n) AS notified",
        run_at = ts("f.run_at"),
        now = ts("$7::int8"),
    )
}

/// `$1` ids, `$2` tokens, `$3` new expiry µs. Locks in id order (see [`finish`]).
fn heartbeat(t: &str) -> String {
    format!(
        "WITH h AS (SELECT * FROM UNNEST($1::int8[], $2::int8[]) AS h(id, token)), \
         l AS ( \
             SELECT j.id FROM {t} j JOIN h ON j.id = h.id AND j.claims = h.token \
              WHERE j.state = 'running' ORDER BY j.id FOR UPDATE OF j) \
         UPDATE {t} j SET lease_expires_at = {expires} \
           FROM h JOIN l ON l.id = h.id \
          WHERE j.id = h.id AND j.claims = h.token AND j.state = 'running' \
         RETURNING j.id, j.claims",
        expires = ts("$3::int8"),
    )
}

/// `$1` id, `$2` token, `$3` checkpoint JSON, `$4` new expiry µs.
fn checkpoint(t: &str) -> String {
    format!(
        "UPDATE {t} SET checkpoint = $3, lease_expires_at = {expires} \
          WHERE id = $1 AND claims = $2 AND state = 'running'",
        expires = ts("$4::int8"),
    )
}

/// `$1` now µs, `$2` limit, `$3` max rescues, `$4` channel. Skips rows another rescuer (or a
/// heartbeat) holds, so two rescuers never return the same job.
fn rescue(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'running' AND lease_expires_at < {now} \
              ORDER BY lease_expires_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED), \
         u AS ( \
             UPDATE {t} j \
                SET state = CASE WHEN j.rescues >= $3::int4 THEN 'dead' ELSE 'available' END, \
                    rescues = j.rescues + 1, \
                    finalized_at = CASE WHEN j.rescues >= $3 THEN {now} END, \
                    errors = CASE WHEN j.rescues >= $3 THEN j.errors || jsonb_build_array(jsonb_build_object( \
                                 'attempt', 0, 'at', $1::int8, \
                                 'message', format('lease of worker %s expired after %s rescues: poison pill, moved to the dead set', \
                                                   coalesce(j.lease_owner, '?'), j.rescues))) \
                                  ELSE j.errors END, \
                    lease_owner = NULL, lease_expires_at = NULL \
               FROM c WHERE j.id = c.id \
             RETURNING {cols}), \
         n AS (SELECT pg_notify($4, d.queue) FROM (SELECT DISTINCT queue FROM u WHERE state = 'available') d) \
         SELECT u.*, (SELECT count(*) FROM n) AS notified FROM u",
        now = ts("$1::int8"),
        cols = job_columns("j"),
    )
}

/// `$1` now µs, `$2` limit, `$3` channel. Returns how many became available.
fn promote(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'scheduled' AND run_at <= {now} \
              ORDER BY run_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED), \
         u AS (UPDATE {t} j SET state = 'available' FROM c WHERE j.id = c.id RETURNING j.queue), \
         n AS (SELECT pg_notify($3, d.queue) FROM (SELECT DISTINCT queue FROM u) d) \
         SELECT (SELECT count(*) FROM u) AS promoted, (SELECT count(*) FROM n) AS notified",
        now = ts("$1::int8"),
    )
}

/// `$1` state or NULL, `$2` queue or NULL, `$3` after id, `$4` limit.
fn list(t: &str) -> String {
    format!(
        "SELECT {cols} FROM {t} j \
          WHERE ($1::text IS NULL OR j.state = $1) AND ($2::text IS NULL OR j.queue = $2) AND j.id > $3 \
          ORDER BY j.id LIMIT $4",
        cols = job_columns("j"),
    )
}

/// `$1` id, `$2` now µs, `$3` channel.
fn retry(t: &str) -> String {
    format!(
        "WITH u AS ( \
             UPDATE {t} SET state = 'available', run_at = {now}, attempts = 0, rescues = 0, \
                            finalized_at = NULL, lease_owner = NULL, lease_expires_at = NULL \
              WHERE id = $1 AND state IN ('dead', 'cancelled') \
             RETURNING queue), \
         n AS (SELECT pg_notify($3, queue) FROM u) \
         SELECT (SELECT count(*) FROM u) AS retried, (SELECT count(*) FROM n) AS notified",
        now = ts("$2::int8"),
    )
}

/// `$1` states, `$2` finalized-before µs, `$3` limit.
fn prune(t: &str) -> String {
    format!(
        "WITH d AS ( \
             SELECT id FROM {t} \
              WHERE state = ANY($1::text[]) AND finalized_at < {before} \
              ORDER BY finalized_at \
              LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
         DELETE FROM {t} j USING d WHERE j.id = d.id",
        before = ts("$2::int8"),
    )
}

fn stats(t: &str) -> String {
    let count = |state: &str| format!("count(*) FILTER (WHERE state = '{state}')::int8 AS {state}");
    format!(
        "SELECT queue, {}, {}, {}, {}, {}, {}, \
                {} AS oldest_available_at \
           FROM {t} GROUP BY queue ORDER BY queue",
        count("scheduled"),
        count("available"),
        count("running"),
        count("completed"),
        count("dead"),
        count("cancelled"),
        micros("min(run_at) FILTER (WHERE state = 'available')"),
    )
}
