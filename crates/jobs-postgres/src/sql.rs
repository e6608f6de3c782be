//! The store's SQL, built once per schema. Every value is a bind parameter; only the validated,
//! quoted schema name is spliced in. Times are bound and read as `timestamptz`
//! ([`PgTime`](crate::pg_time::PgTime)), exactly.

use crate::lease_commit::gate;
use crate::schema_name::SchemaName;

/// The columns every query returning whole jobs selects, in `row::job_record`'s names.
fn job_columns(alias: &str) -> String {
    columns(alias, true)
}

/// The columns a claim sets to values it knows (queue, state and lease), which
/// `row::claimed_record` fills in instead of reading them back.
const LEASE_COLUMNS: [&str; 5] = [
    "queue",
    "state",
    "attempted_at",
    "lease_owner",
    "lease_expires_at",
];

/// The columns the claim returns: all but [`LEASE_COLUMNS`].
fn claimed_columns(alias: &str) -> String {
    columns(alias, false)
}

/// Every job column, [`LEASE_COLUMNS`] included only `with_lease`.
fn columns(alias: &str, with_lease: bool) -> String {
    [
        "id",
        "kind",
        "queue",
        "args",
        "state",
        "priority",
        "attempts",
        "max_attempts",
        "rescues",
        "suspect",
        "claims",
        "run_at",
        "created_at",
        "attempted_at",
        "finalized_at",
        "lease_owner",
        "lease_expires_at",
        "checkpoint",
        "errors",
        "metadata",
    ]
    .iter()
    .filter(|c| with_lease || !LEASE_COLUMNS.contains(c))
    .map(|c| format!("{alias}.{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// `SELECT pg_notify(channel, queue)` once per distinct queue of the CTE `rows` whose state
/// is available, as a CTE named `n` (reference it, or it does not run).
fn notify_cte(rows: &str, channel_param: &str) -> String {
    format!(
        "n AS (SELECT pg_notify({channel_param}, d.queue) \
                 FROM (SELECT DISTINCT queue FROM {rows} WHERE state = 'available') d)"
    )
}

/// Every statement the store runs, for one schema.
///
/// Array parameters are unnested as `UNNEST((SELECT $n))`, not `UNNEST($n)`: PostgreSQL
/// estimates the row count of a plain parameter array from its length, so a small batch
/// always looked cheaper planned for itself, and each execution was planned anew (about
/// 0.1 ms). Hidden behind a subquery, every batch has the same estimate and the prepared
/// statement settles on its generic plan (nested loop over the primary key), right for any
/// batch size.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) channel: String,
    pub(crate) insert_unnest: String,
    pub(crate) next_ids: String,
    pub(crate) copy_in: String,
    pub(crate) claim: String,
    pub(crate) claim_suspects: String,
    pub(crate) finish: String,
    pub(crate) complete: String,
    pub(crate) heartbeat: String,
    pub(crate) checkpoint: String,
    pub(crate) rescue: String,
    pub(crate) expire_unknown_kinds: String,
    pub(crate) waiting_unknown_kinds: String,
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
            // `$1` ids wanted; also notifies `$2` for each queue in `$3` (delivered at commit,
            // with the rows the same transaction copies in).
            next_ids: format!(
                "SELECT ARRAY(SELECT nextval('{}.jobs_id_seq') FROM generate_series(1, $1::int8)) \
                  WHERE (SELECT count(pg_notify($2, q)) FROM unnest($3::text[]) AS q) >= 0",
                schema.quoted()
            ),
            copy_in: format!(
                "COPY {t} (id, kind, queue, args, state, priority, max_attempts, run_at, created_at, metadata) \
                 FROM STDIN (FORMAT binary)"
            ),
            claim: claim(&t, false),
            claim_suspects: claim(&t, true),
            finish: finish(&t),
            complete: complete(&t),
            heartbeat: heartbeat(&t),
            checkpoint: format!(
                "UPDATE {t} SET checkpoint = $3, lease_expires_at = $4 \
                  WHERE id = $1 AND claims = $2 AND lease_owner = $6 AND state = 'running' \
                    AND {gate}",
                gate = gate("$5"),
            ),
            rescue: rescue(&t),
            expire_unknown_kinds: expire_unknown_kinds(&t),
            // `$1` known kinds.
            waiting_unknown_kinds: format!(
                "SELECT count(*) FROM {t} WHERE state = 'available' AND kind <> ALL($1::text[])"
            ),
            promote: promote(&t),
            get: format!("SELECT {} FROM {t} j WHERE j.id = $1", job_columns("j")),
            list: list(&t),
            retry: retry(&t),
            cancel: format!(
                "UPDATE {t} SET state = 'cancelled', finalized_at = $2 \
                  WHERE id = $1 AND state IN ('scheduled', 'available')"
            ),
            prune: prune(&t),
            stats: stats(&t),
        }
    }
}

/// `$1` kinds, `$2` queues, `$3` args (JSON text), `$4` states, `$5` priorities,
/// `$6` max attempts, `$7` run_at, `$8` now, `$9` channel, `$10` metadata (JSON text, NULL
/// for none). Returns the ids (in insertion order, which is input order) and notifies the
/// queues that got available jobs.
fn insert_unnest(t: &str) -> String {
    format!(
        "WITH i AS ( \
             INSERT INTO {t} (kind, queue, args, state, priority, max_attempts, run_at, created_at, metadata) \
             SELECT u.kind, u.queue, u.args::jsonb, u.state, u.priority, u.max_attempts, u.run_at, $8, \
                    u.metadata::jsonb \
               FROM UNNEST((SELECT $1::text[]), (SELECT $2::text[]), (SELECT $3::text[]), \
                           (SELECT $4::text[]), (SELECT $5::int2[]), (SELECT $6::int4[]), \
                           (SELECT $7::timestamptz[]), (SELECT $10::text[])) WITH ORDINALITY \
                        AS u(kind, queue, args, state, priority, max_attempts, run_at, metadata, ord) \
              ORDER BY u.ord \
             RETURNING id, queue, state), \
         {notify} \
         SELECT i.id FROM i WHERE (SELECT count(*) FROM n) >= 0",
        notify = notify_cte("i", "$9"),
    )
}

/// `$1` queue, `$2` limit, `$3` now, `$4` owner, `$5` lease expiry, `$6` asynchronous commit,
/// `$7` the kinds to take (NULL: any).
///
/// The update finds the locked rows by `ctid` (a direct fetch, no primary-key lookup): a row
/// locked by this statement cannot move before this statement updates it.
///
/// The normal claim (`suspects` false) walks the claim index and skips suspects and other
/// kinds as it locks rows (both are heap columns `FOR UPDATE` reads anyway); the quarantine
/// claim (`suspects` true) walks the small partial index of available suspects.
fn claim(t: &str, suspects: bool) -> String {
    let suspect = if suspects {
        "suspect > 0"
    } else {
        "suspect = 0"
    };
    format!(
        "WITH c AS ( \
             SELECT ctid FROM {t} \
              WHERE state = 'available' AND queue = $1 AND {suspect} \
                AND ($7::text[] IS NULL OR kind = ANY($7::text[])) \
              ORDER BY priority DESC, run_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED) \
         UPDATE {t} j \
            SET state = 'running', claims = j.claims + 1, attempted_at = $3, \
                lease_owner = $4, lease_expires_at = $5 \
           FROM c WHERE j.ctid = c.ctid AND {gate} \
         RETURNING {cols}",
        cols = claimed_columns("j"),
        gate = gate("$6"),
    )
}

/// `$1` ids, `$2` tokens, `$3` new states, `$4` new run_at (NULL: keep), `$5` charge
/// an attempt, `$6` error JSON text (NULL: none), `$7` now, `$8` channel, `$9` asynchronous
/// commit, `$10` the owner of the leases.
///
/// Returns the (id, claims) pairs that applied. Rows are locked as the plan meets them (no
/// separate locking pass, which cost a fifth of the statement): a finish can only wait for a
/// heartbeat, a checkpoint or a rescue of the same jobs, and none of those ever waits for a
/// row lock while holding another (heartbeats and rescues skip locked rows, a checkpoint locks
/// one row), so no cycle of waits, no deadlock, can form. One pool finishes one batch at a
/// time, and a stale owner's finish does not match the current version of a rescued job.
fn finish(t: &str) -> String {
    format!(
        "WITH f AS ( \
             SELECT * FROM UNNEST((SELECT $1::int8[]), (SELECT $2::int8[]), (SELECT $3::text[]), \
                                  (SELECT $4::timestamptz[]), (SELECT $5::bool[]), \
                                  (SELECT $6::text[])) \
                 AS f(id, token, state, run_at, charge, error)), \
         u AS ( \
             UPDATE {t} j \
                SET state = f.state, \
                    run_at = coalesce(f.run_at, j.run_at), \
                    attempts = j.attempts + f.charge::int, \
                    errors = CASE WHEN f.error IS NULL THEN j.errors \
                        WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors || f.error::jsonb \
                        ELSE jsonb_build_array(f.error::jsonb) END, \
                    finalized_at = CASE WHEN f.state IN ('completed', 'dead') THEN $7::timestamptz END, \
                    checkpoint = CASE WHEN f.state = 'completed' THEN NULL ELSE j.checkpoint END, \
                    suspect = CASE WHEN f.state = 'available' AND f.run_at IS NULL THEN j.suspect ELSE 0 END, \
                    lease_owner = NULL, lease_expires_at = NULL \
               FROM f \
              WHERE j.id = f.id AND j.claims = f.token AND j.lease_owner = $10 \
                AND j.state = 'running' AND {gate} \
             RETURNING j.id, j.claims, j.queue, j.state), \
         {notify} \
         SELECT coalesce((SELECT array_agg(id) FROM u), '{{}}') AS ids, \
                coalesce((SELECT array_agg(claims) FROM u), '{{}}') AS tokens, \
                (SELECT count(*) FROM n) AS notified",
        notify = notify_cte("u", "$8"),
        gate = gate("$9"),
    )
}

/// [`finish`] for a batch that only completes jobs (the common case): `$1` ids, `$2` tokens,
/// `$3` now, `$4` asynchronous commit, `$5` the owner of the leases. Returns the (id, claims) pairs that applied. Nothing
/// to notify, no per-job outcome arrays.
fn complete(t: &str) -> String {
    format!(
        "UPDATE {t} j \
            SET state = 'completed', finalized_at = $3, checkpoint = NULL, suspect = 0, \
                lease_owner = NULL, lease_expires_at = NULL \
           FROM UNNEST((SELECT $1::int8[]), (SELECT $2::int8[])) AS f(id, token) \
          WHERE j.id = f.id AND j.claims = f.token AND j.lease_owner = $5 \
            AND j.state = 'running' AND {gate} \
         RETURNING j.id, j.claims",
        gate = gate("$4"),
    )
}

/// `$1` ids, `$2` tokens, `$3` new expiry, `$4` asynchronous commit, `$5` the owner of the
/// leases. Returns the (id, claims) pairs that still hold.
///
/// Never waits for a row lock (see [`finish`]): it renews the leases whose rows it can lock
/// (in id order, skipping locked ones) and reports a skipped lease as held if the
/// statement's snapshot shows it held. A row is locked by its owner's finish (the run is over)
/// or checkpoint (which renews the lease itself), or by a rescuer of an expired lease (the
/// next heartbeat reports it lost).
fn heartbeat(t: &str) -> String {
    format!(
        "WITH h AS (SELECT * FROM UNNEST((SELECT $1::int8[]), (SELECT $2::int8[])) AS h(id, token)), \
         l AS ( \
             SELECT j.id FROM {t} j JOIN h ON j.id = h.id AND j.claims = h.token \
              WHERE j.state = 'running' AND j.lease_owner = $5 \
              ORDER BY j.id FOR UPDATE OF j SKIP LOCKED), \
         u AS ( \
             UPDATE {t} j SET lease_expires_at = $3 \
               FROM h JOIN l ON l.id = h.id \
              WHERE j.id = h.id AND j.claims = h.token AND j.lease_owner = $5 \
                AND j.state = 'running' AND {gate} \
             RETURNING j.id, j.claims) \
         SELECT id, claims FROM u \
         UNION ALL \
         SELECT j.id, j.claims FROM {t} j JOIN h ON j.id = h.id AND j.claims = h.token \
          WHERE j.state = 'running' AND j.lease_owner = $5 AND j.id NOT IN (SELECT id FROM l)",
        gate = gate("$4"),
    )
}

/// `$1` now, `$2` limit, `$3` max rescues, `$4` channel, `$5` now as µs (for the error JSON),
/// `$6` asynchronous commit, `$7` [`jobs::store::POISON_PILL_MESSAGE`].
/// Skips rows another rescuer (or a heartbeat) holds, so two rescuers never return the same
/// job.
fn rescue(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'running' AND lease_expires_at < $1 \
              ORDER BY lease_expires_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED), \
         u AS ( \
             UPDATE {t} j \
                SET state = CASE WHEN j.suspect > $3::int4 THEN 'dead' ELSE 'available' END, \
                    rescues = j.rescues + 1, \
                    suspect = j.suspect + 1, \
                    finalized_at = CASE WHEN j.suspect > $3::int4 THEN $1::timestamptz END, \
                    errors = CASE WHEN j.suspect > $3::int4 \
                        THEN j.errors || jsonb_build_object( \
                                 'attempt', 0, 'at', $5::int8, \
                                 'message', replace(replace(replace($7::text, \
                                     '{{owner}}', coalesce(j.lease_owner, '?')), \
                                     '{{rescues}}', j.suspect::text), \
                                     '{{max_rescues}}', $3::int4::text)) \
                        ELSE j.errors END, \
                    lease_owner = NULL, lease_expires_at = NULL \
               FROM c WHERE j.id = c.id AND {gate} \
             RETURNING {cols}), \
         {notify} \
         SELECT u.*, (SELECT count(*) FROM n) AS notified FROM u",
        cols = job_columns("j"),
        notify = notify_cte("u", "$4"),
        gate = gate("$6"),
    )
}

/// `$1` now, `$2` known kinds, `$3` waiting since, `$4` limit, `$5` now as µs (for the error
/// JSON). Skips locked rows (a claim taking one now knows its kind).
fn expire_unknown_kinds(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'available' AND run_at < $3 AND kind <> ALL($2::text[]) \
              ORDER BY run_at, id \
              LIMIT $4 \
                FOR UPDATE SKIP LOCKED) \
         UPDATE {t} j \
            SET state = 'dead', finalized_at = $1, \
                errors = (CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors ELSE '[]'::jsonb END) || jsonb_build_object( \
                    'attempt', 0, 'at', $5::int8, \
                    'message', format('no running process has a worker for kind %s: the job waited \
                                       longer than the pool''s unknown_kind_ttl without being \
                                       claimed, so it was moved to the dead set (deploy a worker \
                                       for the kind and retry it)', to_json(j.kind))) \
           FROM c WHERE j.id = c.id \
         RETURNING {cols}",
        cols = job_columns("j"),
    )
}

/// `$1` now, `$2` limit, `$3` channel, `$4` asynchronous commit. Returns how many became
/// available.
fn promote(t: &str) -> String {
    format!(
        "WITH c AS ( \
             SELECT id FROM {t} \
              WHERE state = 'scheduled' AND run_at <= $1 \
              ORDER BY run_at, id \
              LIMIT $2 \
                FOR UPDATE SKIP LOCKED), \
         u AS (UPDATE {t} j SET state = 'available' FROM c WHERE j.id = c.id AND {gate} \
               RETURNING j.queue, j.state), \
         {notify} \
         SELECT (SELECT count(*) FROM u) AS promoted, (SELECT count(*) FROM n) AS notified",
        notify = notify_cte("u", "$3"),
        gate = gate("$4"),
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

/// `$1` id, `$2` now, `$3` channel.
fn retry(t: &str) -> String {
    format!(
        "WITH u AS ( \
             UPDATE {t} SET state = 'available', run_at = $2, attempts = 0, rescues = 0, \
                            suspect = least(suspect, 1), \
                            finalized_at = NULL, lease_owner = NULL, lease_expires_at = NULL \
              WHERE id = $1 AND state IN ('dead', 'cancelled') \
             RETURNING queue, state), \
         {notify} \
         SELECT (SELECT count(*) FROM u) AS retried, (SELECT count(*) FROM n) AS notified",
        notify = notify_cte("u", "$3"),
    )
}

/// `$1` states, `$2` finalized-before, `$3` limit.
fn prune(t: &str) -> String {
    format!(
        "WITH d AS ( \
             SELECT id FROM {t} \
              WHERE state = ANY($1::text[]) AND finalized_at < $2 \
              ORDER BY finalized_at \
              LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
         DELETE FROM {t} j USING d WHERE j.id = d.id"
    )
}

fn stats(t: &str) -> String {
    let count = |state: &str| format!("count(*) FILTER (WHERE state = '{state}') AS {state}");
    format!(
        "SELECT queue, {}, {}, {}, {}, {}, {}, \
                min(run_at) FILTER (WHERE state = 'available') AS oldest_available_at \
           FROM {t} GROUP BY queue ORDER BY queue",
        count("scheduled"),
        count("available"),
        count("running"),
        count("completed"),
        count("dead"),
        count("cancelled"),
    )
}
