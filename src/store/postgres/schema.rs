//! The PostgreSQL store's schema, in schema `sagaflow`, and its migrations:
//! numbered, each applied once in a transaction of its own, the number kept
//! in `meta`. Several workers starting at once migrate one at a time (an
//! advisory lock). A database migrated by a newer sagaflow is refused.

use tokio_postgres::Client;

/// Each migration's SQL, in order; the schema's version is how many were applied.
const MIGRATIONS: &[&str] = &[
    // 1: the run store, the worker table and the fence.
    r#"
    CREATE TABLE sagaflow.workers (
      worker_id text PRIMARY KEY,
      generation bigint NOT NULL,
      state text NOT NULL,
      lease_until timestamptz NOT NULL,
      joined_at timestamptz NOT NULL DEFAULT now(),
      fenced_at timestamptz);
    CREATE TABLE sagaflow.runs (
      run_id text PRIMARY KEY,
      workflow text NOT NULL,
      hash text NOT NULL,
      status text NOT NULL,
      started_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      parent text,
      error json,
      owner text,
      owner_gen bigint);
    CREATE INDEX runs_by_start ON sagaflow.runs (started_at DESC, run_id DESC);
    CREATE INDEX runs_by_workflow ON sagaflow.runs (workflow, started_at DESC, run_id DESC);
    CREATE INDEX runs_by_status ON sagaflow.runs (status, started_at DESC, run_id DESC);
    CREATE INDEX runs_finished ON sagaflow.runs (updated_at, run_id)
      WHERE status IN ('succeeded', 'failed', 'compensated', 'compensation_failed');
    CREATE INDEX runs_owned ON sagaflow.runs (owner, owner_gen) WHERE owner IS NOT NULL;
    CREATE TABLE sagaflow.journal (
      run_id text NOT NULL,
      seq integer NOT NULL,
      entry json NOT NULL,
      PRIMARY KEY (run_id, seq));
    CREATE TABLE sagaflow.definitions (hash text PRIMARY KEY, source text NOT NULL);
    CREATE TABLE sagaflow.events (
      id text PRIMARY KEY,
      type text NOT NULL,
      key text NOT NULL,
      at bigint NOT NULL,
      event json NOT NULL);
    CREATE INDEX events_by_type_key ON sagaflow.events (type, key, at, id);
    CREATE INDEX events_by_at ON sagaflow.events (at, id);
    CREATE TABLE sagaflow.outbox (
      event_id text PRIMARY KEY,
      at bigint NOT NULL,
      next_due bigint,
      delivery json NOT NULL);
    CREATE INDEX outbox_due ON sagaflow.outbox (next_due, at);
    CREATE TABLE sagaflow.dead_letters (
      event_id text NOT NULL,
      subscriber text NOT NULL,
      event_at bigint NOT NULL,
      letter json NOT NULL,
      PRIMARY KEY (event_id, subscriber));
    CREATE INDEX dead_letters_by_at ON sagaflow.dead_letters (event_at, event_id, subscriber);
    CREATE TABLE sagaflow.schedules (key text PRIMARY KEY, last_tick bigint NOT NULL);
    -- Every group commit calls it first: a worker whose generation is no longer
    -- current (another took its runs over) writes nothing. FOR SHARE makes a
    -- takeover's UPDATE of the row wait for a commit in flight.
    CREATE FUNCTION sagaflow.fence(me text, gen bigint) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE current bigint;
    BEGIN
      SELECT generation INTO current FROM sagaflow.workers
        WHERE worker_id = me AND state = 'live' FOR SHARE;
      IF current IS DISTINCT FROM gen THEN
        RAISE EXCEPTION 'worker % generation % is fenced off (current: %)', me, gen, current
          USING ERRCODE = 'SF001';
      END IF;
    END $$;
    "#,
    // 2: the sandbox services' records, and a row a service to lock.
    r#"
    CREATE TABLE sagaflow.sandbox (
      service text NOT NULL,
      key text NOT NULL,
      value json NOT NULL,
      PRIMARY KEY (service, key));
    CREATE TABLE sagaflow.sandbox_locks (service text PRIMARY KEY);
    "#,
    // 3: deliveries leased to one relay at a time.
    r#"
    ALTER TABLE sagaflow.outbox ADD COLUMN leased_by text, ADD COLUMN leased_gen bigint,
      ADD COLUMN lease_until timestamptz;
    "#,
    // 4: requests for the worker that owns a run (cancels, operators' acts).
    r#"
    CREATE TABLE sagaflow.inbox (
      id bigserial PRIMARY KEY,
      run_id text NOT NULL,
      request json NOT NULL,
      at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX inbox_by_run ON sagaflow.inbox (run_id, id);
    "#,
    // 5: the units waiting for an event, on any worker (for `woke`).
    r#"
    CREATE TABLE sagaflow.waits (
      type text NOT NULL,
      key text NOT NULL,
      run_id text NOT NULL,
      step integer NOT NULL,
      item integer NOT NULL DEFAULT -1,
      PRIMARY KEY (type, key, run_id, step, item));
    CREATE INDEX waits_by_run ON sagaflow.waits (run_id);
    "#,
];

/// The schema version this sagaflow writes.
pub(super) const VERSION: usize = MIGRATIONS.len();

/// Brings the database's schema up to [`VERSION`]; answers the version it found.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // One migrator at a time, whoever else starts now.
    tx.execute("SELECT pg_advisory_xact_lock(7369676166)", &[]).await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS sagaflow;
         CREATE TABLE IF NOT EXISTS sagaflow.meta (key text PRIMARY KEY, value text NOT NULL);",
    )
    .await?;
    let found: usize = match tx.query_opt("SELECT value FROM sagaflow.meta WHERE key = 'schema'", &[]).await? {
        Some(row) => row.get::<_, String>(0).parse().unwrap_or(usize::MAX),
        None => 0,
    };
    for sql in MIGRATIONS.iter().skip(found) {
        tx.batch_execute(sql).await?;
    }
    if found < VERSION {
        tx.execute(
            "INSERT INTO sagaflow.meta (key, value) VALUES ('schema', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&VERSION.to_string()],
        )
        .await?;
        tx.execute(
            "INSERT INTO sagaflow.meta (key, value) VALUES ('format', 'sagaflow-store-1') ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}
