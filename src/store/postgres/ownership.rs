//! Which worker runs which run (`../shared/design/scale-out.md` 4.1): a run is
//! owned by a worker's generation; a worker keeps its lease alive in the
//! database's clock; a lease that ran out makes its worker dead (a new
//! generation), and its runs orphans that any live worker claims, each run to
//! one claimer (`FOR UPDATE SKIP LOCKED`), fenced by the claimer's own
//! generation. A worker that leaves (drains) hands its runs over at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pool::Pool;
use super::runs::meta_of;
use super::{block_on, PgStore, Worker};
use crate::store::{RunMeta, StoreError};

/// How long a lease runs unless `--lease` says: a worker silent this long is taken for dead.
pub(crate) const LEASE: Duration = Duration::from_secs(3);
/// A worker stops itself this long before its lease could have run out.
const MARGIN: Duration = Duration::from_millis(500);

/// What a worker knows of its own lease, on its monotonic clock: when the
/// last renewal the database acknowledged was sent. Past that plus the lease
/// less a margin, another worker may be declaring this one dead: it fences
/// itself off (writes nothing, launches nothing) without waiting to hear so.
pub(super) struct Lease {
    pub length: Duration,
    origin: Instant,
    /// Milliseconds from `origin` to the send of the last acknowledged renewal.
    acked: AtomicU64,
    /// The database said this generation is over (a renewal or a commit was refused).
    fenced: AtomicBool,
    /// It left: its lease is no longer renewed.
    pub left: AtomicBool,
    /// `SAGAFLOW_TEST_IGNORE_LEASE=1`: the own clock is not trusted, so tests
    /// see the database's fence alone stop a worker that was paused.
    ignore_own_clock: bool,
}

impl Lease {
    /// A lease just granted (by a join sent at `sent`).
    pub(super) fn new(length: Duration, sent: Instant) -> Lease {
        Lease {
            length,
            origin: sent,
            acked: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
            left: AtomicBool::new(false),
            ignore_own_clock: std::env::var("SAGAFLOW_TEST_IGNORE_LEASE").is_ok_and(|v| v == "1"),
        }
    }

    pub(super) fn acknowledged(&self, sent: Instant) {
        let at = sent.saturating_duration_since(self.origin).as_millis() as u64;
        self.acked.fetch_max(at, Ordering::Relaxed);
    }

    /// The database refused this generation.
    pub(super) fn fence(&self) {
        self.fenced.store(true, Ordering::Relaxed);
    }

    /// Whether this worker must no longer write: told so, or its lease may
    /// have run out. For good once so: another worker may be taking its runs
    /// over, so it must not go on with them even if a late renewal lands.
    pub(super) fn is_fenced(&self) -> bool {
        if self.fenced.load(Ordering::Relaxed) {
            return true;
        }
        let acked = self.origin + Duration::from_millis(self.acked.load(Ordering::Relaxed));
        let lapsed = !self.ignore_own_clock && acked.elapsed() + MARGIN >= self.length;
        if lapsed {
            tracing::warn!("no renewal of this worker's lease was acknowledged in time: it fences itself off");
            self.fence();
        }
        lapsed
    }
}

/// Moves the lease's end a lease from now, on the database's clock; answers
/// whether the generation is still live.
async fn renew(connection: &Pool, worker: &Worker, length: Duration) -> Result<u64, StoreError> {
    let client = connection.get().await?;
    let sql = "UPDATE sagaflow.workers SET lease_until = now() + make_interval(secs => $3)
               WHERE worker_id = $1 AND generation = $2 AND state = 'live'";
    let renewed = client.execute(sql, &[&worker.id, &worker.generation, &length.as_secs_f64()]).await;
    renewed.map_err(|e| super::pg_error(connection.shown(), "cannot renew the lease", e))
}

/// Declares dead the other workers whose lease ran out, and tells every
/// worker their runs are orphans; sweeps workers and letters gone an hour.
const DECLARE_DEAD: &str = "WITH dead AS (
      UPDATE sagaflow.workers SET generation = generation + 1, state = 'dead', fenced_at = clock_timestamp()
      WHERE state = 'live' AND lease_until < now() AND worker_id <> $1 RETURNING worker_id),
    -- Workers gone an hour that own nothing leave the table (each CLI command is one).
    swept AS (
      DELETE FROM sagaflow.workers w WHERE w.state <> 'live' AND w.fenced_at < now() - interval '1 hour'
        AND NOT EXISTS (SELECT 1 FROM sagaflow.runs r WHERE r.owner = w.worker_id)),
    -- Letters no owner took in an hour (their run ended first) go too.
    stale AS (DELETE FROM sagaflow.inbox WHERE at < now() - interval '1 hour')
    SELECT worker_id, pg_notify('sagaflow_orphans', '') FROM dead";
/// Ends a worker's generation, telling every worker its runs are orphans.
const LEAVE: &str = "WITH gone AS (
      UPDATE sagaflow.workers SET generation = generation + 1, state = 'gone', fenced_at = clock_timestamp()
      WHERE worker_id = $1 AND generation = $2 RETURNING 1)
    SELECT pg_notify('sagaflow_orphans', '') FROM gone";
/// Leaves a letter for a run's owner, and tells the workers.
const POST: &str =
    "WITH posted AS (INSERT INTO sagaflow.inbox (run_id, request) VALUES ($1, $2::text::json) RETURNING id)
    SELECT pg_notify('sagaflow_inbox', '') FROM posted";

/// The statuses of a run that has not ended, as SQL lists them (the status index serves them).
const UNFINISHED: &str = "('running', 'waiting', 'paused', 'compensating')";

/// Keeps a worker's lease alive, every third of it, until the worker leaves;
/// a renewal that finds the generation taken over fences it.
pub(super) fn keep_lease(connection: Arc<Pool>, worker: Worker, lease: Arc<Lease>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(lease.length / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Gone, or fenced off: its lease runs out, and the others take its runs.
            if lease.left.load(Ordering::Relaxed) || lease.is_fenced() {
                return;
            }
            let sent = Instant::now();
            match renew(&connection, &worker, lease.length).await {
                Ok(0) => {
                    tracing::warn!(worker = %worker.id, generation = worker.generation, "this worker's runs were taken over: it is fenced off");
                    lease.fence();
                    return;
                }
                Ok(_) => lease.acknowledged(sent),
                Err(e) => tracing::warn!(error = %e, "the lease could not be renewed; it is tried again"),
            }
        }
    });
}

impl PgStore {
    /// Refuses to write once this worker is fenced off (or may be: its lease
    /// may have run out while no renewal was acknowledged).
    pub(super) fn unless_fenced(&self) -> Result<(), StoreError> {
        if !self.lease.is_fenced() {
            return Ok(());
        }
        let id = self.worker.as_ref().map_or("", |w| w.id.as_str());
        let message = format!("worker `{id}` is fenced off: its lease may have run out, so its runs may be another's");
        Err(StoreError::new(crate::store::StoreErrorKind::Conflict, message))
    }

    /// Declares dead every other worker whose lease ran out; answers their ids.
    /// Workers that left or died an hour ago and own no run are removed, and
    /// letters no owner took in an hour.
    fn expire_workers(&self) -> Result<Vec<String>, StoreError> {
        let me = self.worker.as_ref().map_or("", |w| w.id.as_str());
        let rows = self.read("cannot check the workers' leases", async |c| c.query(DECLARE_DEAD, &[&me]).await)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Takes up to `limit` unfinished runs that no live generation owns (one
    /// of them: `only`), fenced by this worker's own generation. A claim
    /// whose answer was lost may have landed, its runs this generation's
    /// though never resumed here: the next claim answers this worker's own
    /// runs too (the engine leaves those it has already).
    fn claim_orphans(&self, limit: usize, only: Option<&str>) -> Result<Vec<RunMeta>, StoreError> {
        let Some(worker) = &self.worker else { return Ok(Vec::new()) };
        self.unless_fenced()?;
        let sql = format!(
            "WITH orphans AS (
               SELECT r.run_id FROM sagaflow.runs r LEFT JOIN sagaflow.workers w ON w.worker_id = r.owner
               WHERE r.status IN {UNFINISHED} AND ($4::text IS NULL OR r.run_id = $4)
                 AND (r.owner IS NULL OR w.worker_id IS NULL OR w.state <> 'live' OR w.generation <> r.owner_gen
                      OR ($5 AND r.owner = $1 AND r.owner_gen = $2))
               ORDER BY r.started_at LIMIT $3 FOR UPDATE OF r SKIP LOCKED)
             UPDATE sagaflow.runs SET owner = $1, owner_gen = $2 FROM orphans WHERE runs.run_id = orphans.run_id
             RETURNING runs.run_id, workflow, hash, status, started_at, updated_at, parent, error::text"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Until a claim of any run (not of one) came short: all of them were answered.
        let mine = only.is_none() && self.claim_unsure.load(Ordering::Relaxed);
        let rows = self.write_with("cannot claim runs", async |client| {
            let claimed = async {
                let tx = client.transaction().await?;
                tx.execute("SELECT sagaflow.fence($1, $2)", &[&worker.id, &worker.generation]).await?;
                let rows = tx.query(&sql, &[&worker.id, &worker.generation, &limit, &only, &mine]).await?;
                tx.commit().await?;
                Ok(rows)
            };
            claimed.await.inspect_err(|_| self.claim_unsure.store(true, Ordering::Relaxed))
        })?;
        if mine && rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            self.claim_unsure.store(false, Ordering::Relaxed);
        }
        rows.iter().map(meta_of).collect()
    }

    /// Whether this worker may run `run_id` now: it owns it, or just claimed it,
    /// or the run has ended (no one owns it). False: a live worker owns it.
    fn claim_one(&self, run_id: &str) -> Result<bool, StoreError> {
        let Some(worker) = &self.worker else { return Ok(false) };
        if !self.claim_orphans(1, Some(run_id))?.is_empty() {
            return Ok(true);
        }
        let row = self.read("cannot read the run index", async |c| {
            c.query_opt("SELECT owner, owner_gen FROM sagaflow.runs WHERE run_id = $1", &[&run_id]).await
        })?;
        Ok(match row {
            None => true,
            Some(r) => {
                let owner: Option<String> = r.get(0);
                let generation: Option<i64> = r.get(1);
                owner.is_none()
                    || (owner.as_deref() == Some(worker.id.as_str()) && generation == Some(worker.generation))
            }
        })
    }

    /// How many unfinished runs the worker `worker_id` owns now (benchmarks).
    pub(crate) fn owned_by(&self, worker_id: &str) -> Result<usize, StoreError> {
        let sql = format!("SELECT count(*) FROM sagaflow.runs WHERE owner = $1 AND status IN {UNFINISHED}");
        let row = self.read("cannot count runs", async |c| c.query_one(&sql, &[&worker_id]).await)?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }

    /// Leaves: this generation ends and its unfinished runs are anyone's at once.
    fn leave(&self) -> Result<(), StoreError> {
        let Some(worker) = &self.worker else { return Ok(()) };
        self.lease.left.store(true, Ordering::Relaxed);
        self.read("cannot leave", async |c| c.execute(LEAVE, &[&worker.id, &worker.generation]).await).map(drop)
    }
}

impl crate::store::Ownership for PgStore {
    fn claim(&self, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        self.claim_orphans(limit, None)
    }
    fn claim_run(&self, run_id: &str) -> Result<bool, StoreError> {
        self.claim_one(run_id)
    }
    fn expire_workers(&self) -> Result<Vec<String>, StoreError> {
        PgStore::expire_workers(self)
    }
    fn leave(&self) -> Result<(), StoreError> {
        PgStore::leave(self)
    }
    fn is_fenced(&self) -> bool {
        self.worker.is_some() && self.lease.is_fenced()
    }
    fn is_shared(&self) -> bool {
        true
    }
    fn events_since(&self, since: u64, limit: usize) -> Result<Vec<crate::store::EventRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read("cannot read events", async |c| {
            c.query(
                "SELECT event::text FROM sagaflow.events WHERE at >= $1 ORDER BY at, id LIMIT $2",
                &[&(since as i64), &limit],
            )
            .await
        })?;
        rows.iter().map(|r| super::json_column(r, 0, "event")).collect()
    }
    fn is_elsewhere(&self, run_id: &str) -> Result<bool, StoreError> {
        let Some(me) = &self.worker else { return Ok(true) };
        let row = self.read("cannot read who owns a run", async |c| {
            c.query_opt(
                &format!(
                    "SELECT 1 FROM sagaflow.runs r JOIN sagaflow.workers w ON w.worker_id = r.owner
                 WHERE r.run_id = $1 AND r.status IN {UNFINISHED} AND w.state = 'live' AND w.generation = r.owner_gen
                   AND NOT (r.owner = $2 AND r.owner_gen = $3)"
                ),
                &[&run_id, &me.id, &me.generation],
            )
            .await
        })?;
        Ok(row.is_some())
    }
    fn post(&self, run_id: &str, request: &serde_json::Value) -> Result<(), StoreError> {
        let request = super::json_text(request)?;
        // Sent once, not again on a new connection: a letter whose answer was lost may be in the inbox.
        let post = async |c: &super::pool::Conn| c.execute(POST, &[&run_id, &request]).await;
        block_on(self.read_once("cannot leave a request for a run's worker", &post)).map(drop)
    }
    fn letters(&self, limit: usize) -> Result<Vec<crate::store::Letter>, StoreError> {
        let Some(me) = &self.worker else { return Ok(Vec::new()) };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read("cannot read this worker's requests", async |c| {
            c.query(
                "SELECT i.id, i.run_id, i.request::text, (extract(epoch FROM i.at) * 1000)::int8
             FROM sagaflow.inbox i JOIN sagaflow.runs r ON r.run_id = i.run_id
             WHERE r.owner = $1 AND r.owner_gen = $2 ORDER BY i.id LIMIT $3",
                &[&me.id, &me.generation, &limit],
            )
            .await
        })?;
        rows.iter()
            .map(|r| {
                let request = super::json_column(r, 2, "request")?;
                let at = r.get::<_, i64>(3).max(0) as u64;
                Ok(crate::store::Letter { id: r.get(0), run_id: r.get(1), request, at })
            })
            .collect()
    }
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<crate::store::Change>> {
        self.worker.as_ref().map(|_| self.changes.subscribe())
    }
    fn waiting(&self, kind: &str, key: &str) -> Result<Vec<String>, StoreError> {
        // Of runs still going (a worker of an older sagaflow leaves no end of a wait).
        let sql = format!(
            "SELECT DISTINCT w.run_id FROM sagaflow.waits w JOIN sagaflow.runs r ON r.run_id = w.run_id
             WHERE w.type = $1 AND w.key = $2 AND r.status IN {UNFINISHED} ORDER BY w.run_id"
        );
        let rows = self.read("cannot read the waiting runs", async |c| c.query(&sql, &[&kind, &key]).await)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
    fn drop_letter(&self, id: i64) -> Result<(), StoreError> {
        self.read("cannot remove a request", async |c| {
            c.execute("DELETE FROM sagaflow.inbox WHERE id = $1", &[&id]).await
        })
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Change;

    #[test]
    fn each_notification_goes_to_the_channel_its_change_is_heard_on() {
        let heard = |change| format!("pg_notify('{}'", super::super::listen::channel(change));
        for (sql, change) in
            [(super::DECLARE_DEAD, Change::Orphans), (super::LEAVE, Change::Orphans), (super::POST, Change::Letters)]
        {
            assert!(sql.contains(&heard(change)), "{sql}");
        }
    }

    #[test]
    fn the_unfinished_list_names_every_status_that_has_not_ended() {
        for status in crate::store::RunStatus::ALL {
            let listed = super::UNFINISHED.contains(&format!("'{}'", status.as_str()));
            assert_eq!(listed, !status.is_finished(), "{status}");
        }
    }
}
