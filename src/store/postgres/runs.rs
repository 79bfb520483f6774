//! The store traits on PostgreSQL: reads on the read connection, each group
//! commit one fenced transaction whose statements go out pipelined.

use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use std::sync::atomic::Ordering;

use super::pool::Conn;

use super::{block_on, json_column, json_text, listen, PgStore, Worker};
use crate::journal::entry::Entry;
use crate::store::{
    decode, Change, Commit, Committing, EventRecord, MetaError, ReadRuns, RunFilter, RunMeta, RunPage, RunStatus,
    ScheduleTable, StoreError, StoreErrorKind, WriteRuns,
};

/// The statuses a run has ended with, as SQL lists them.
const FINISHED: &str = "('succeeded', 'failed', 'compensated', 'compensation_failed')";

const RUN_COLUMNS: &str = "run_id, workflow, hash, status, started_at, updated_at, parent, error::text";

pub(super) fn meta_of(row: &Row) -> Result<RunMeta, StoreError> {
    let status: String = row.get(3);
    let error: Option<String> = row.get(7);
    Ok(RunMeta {
        run_id: row.get(0),
        workflow: row.get(1),
        hash: row.get(2),
        status: status.parse::<RunStatus>().map_err(|e| StoreError::other(format!("a run row: {e}")))?,
        started_at: row.get::<_, i64>(4) as u64,
        updated_at: row.get::<_, i64>(5) as u64,
        parent: row.get(6),
        error: error.map(|e| decode::<MetaError>(e.as_bytes(), "run error")).transpose()?,
    })
}

impl PgStore {
    pub(super) fn query(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        self.read(what, async |c| c.query(sql, params).await)
    }

    fn metas(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<RunMeta>, StoreError> {
        self.query(what, sql, params)?.iter().map(meta_of).collect()
    }

    /// One group commit: fenced, then every part of it, pipelined; all or
    /// nothing. A commit whose answer was lost (its connection with it) may
    /// have landed: when it comes again it is looked for first, and not
    /// written twice.
    async fn commit_async(&self, commit: &Commit) -> Result<(), StoreError> {
        let Some(worker) = &self.worker else {
            return Err(StoreError::other(format!("{} was opened to read: this process writes nothing", self.shown)));
        };
        self.unless_fenced()?;
        super::again_if_lost(|| self.commit_once(commit, worker)).await
    }

    async fn commit_once(&self, commit: &Commit, worker: &Worker) -> Result<(), StoreError> {
        let mut client = self.write.lock().await?;
        let unsure = self.unsure.load(Ordering::Relaxed);
        if unsure && self.landed(&client, commit, worker).await.inspect_err(|e| client.failed(e))? {
            self.unsure.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let sent = self.send_commit(&mut client, commit, worker).await.inspect_err(|e| client.failed(e));
        // The database answered (refused it, rolled back): nothing landed. No
        // answer (the connection lost): it may have, after the COMMIT.
        let lost = |e: &StoreError| e.kind == StoreErrorKind::Unavailable;
        self.unsure.store(sent.as_ref().is_err_and(lost), Ordering::Relaxed);
        sent
    }

    /// Whether `commit` is in the database already: its first journal entry
    /// is, as written (a commit lands whole or not at all); fenced like a commit.
    async fn landed(&self, client: &Conn, commit: &Commit, worker: &Worker) -> Result<bool, StoreError> {
        let Some((run, seq, entry)) = commit.entries.first() else { return Ok(false) };
        let sql = "SELECT sagaflow.fence($1, $2)::text, EXISTS (SELECT 1 FROM sagaflow.journal
                     WHERE run_id = $3 AND seq = $4 AND entry::text = $5)";
        let entry = json_text(entry)?;
        let params: [&(dyn ToSql + Sync); 5] = [&worker.id, &worker.generation, run, &(*seq as i32), &entry];
        let row = client.query_one(sql, &params).await.map_err(|e| self.error("cannot check a commit", e))?;
        Ok(row.get(1))
    }

    /// The statements of one commit, in one transaction: `BEGIN`, each part
    /// and `COMMIT` sent one after another without waiting (one round trip;
    /// a part that fails aborts the transaction, and its `COMMIT` rolls back).
    async fn send_commit(&self, conn: &mut Conn, commit: &Commit, worker: &Worker) -> Result<(), StoreError> {
        let parts = Parts::of(commit, &worker.id)?;
        let gen = worker.generation;
        let fail = |e| self.error("cannot commit", e);
        let creates = !commit.created.is_empty();
        type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;
        let p = &parts;
        let fence: Params = vec![&worker.id, &gen];
        let runs: Params = vec![
            &p.run_ids,
            &p.workflows,
            &p.hashes,
            &p.statuses,
            &p.started,
            &p.updated,
            &p.parents,
            &p.errors,
            &p.owners,
            &gen,
        ];
        let journal: Params = vec![&p.entry_runs, &p.entry_seqs, &p.entries];
        let events: Params = vec![&p.event_ids, &p.event_types, &p.event_keys, &p.event_ats, &p.events];
        let outbox: Params = vec![&p.delivery_ids, &p.delivery_ats, &p.delivery_dues, &p.deliveries];
        let forget: Params = vec![&p.forget];
        let forget_events: Params = vec![&p.forget_events];
        let letters: Params = vec![&commit.letters];
        let begun: Params = vec![&p.begun.kinds, &p.begun.keys, &p.begun.runs, &p.begun.steps, &p.begun.items];
        let ended: Params = vec![&p.ended.kinds, &p.ended.keys, &p.ended.runs, &p.ended.steps, &p.ended.items];
        let done: Params = vec![&p.done];
        let none: Params = vec![];
        let wanted = [
            // The fence first, unless the new runs' insert came after it already.
            (!creates, FENCE, &fence),
            (!p.run_ids.is_empty(), UPSERT_RUNS, &runs),
            (!p.entries.is_empty(), APPEND_JOURNAL, &journal),
            (!p.events.is_empty(), INSERT_EVENTS, &events),
            (!p.deliveries.is_empty(), UPSERT_OUTBOX, &outbox),
            (!p.forget.is_empty(), FORGET_JOURNALS, &forget),
            (!p.forget.is_empty(), FORGET_RUNS, &forget),
            (!p.forget_events.is_empty(), FORGET_DEAD_LETTERS, &forget_events),
            (!p.forget_events.is_empty(), FORGET_EVENTS, &forget_events),
            (!commit.letters.is_empty(), ANSWER_LETTERS, &letters),
            // Begun before ended: one commit may hold both ends of a wait.
            (!p.begun.runs.is_empty(), BEGIN_WAITS, &begun),
            (!p.ended.runs.is_empty(), END_WAITS, &ended),
            (!p.done.is_empty(), END_RUNS_WAITS, &done),
            // Other workers hear of it once it is committed.
            (!p.events.is_empty(), listen::notify(Change::Events), &none),
            (!p.deliveries.is_empty(), listen::notify(Change::Outbox), &none),
        ];
        let wanted: Vec<(&str, &Params)> =
            wanted.into_iter().filter(|(any, ..)| *any).map(|(_, q, v)| (q, v)).collect();
        // Prepared first (once a connection: no round trip after), so they go
        // out in order, and none can fail once the transaction began.
        let prepared = try_join_all(wanted.iter().map(|(sql, _)| conn.prepared(sql))).await.map_err(fail)?;
        if creates {
            self.create_runs(conn, commit, worker).await?;
        }
        let client = &conn.client;
        let begin = async {
            match creates {
                true => Ok(()),
                false => client.batch_execute("BEGIN").await,
            }
        };
        let statements = prepared.iter().zip(&wanted).map(|(statement, (_, params))| client.execute(statement, params));
        let (begun, parts, committed) = tokio::join!(begin, try_join_all(statements), client.batch_execute("COMMIT"));
        begun.map_err(fail)?;
        parts.map_err(fail)?;
        committed.map_err(fail)
    }

    /// Begins the commit with its new runs, fenced: a run id another worker
    /// created already refuses it ([`StoreErrorKind::Exists`]), rolled back.
    async fn create_runs(&self, conn: &Conn, commit: &Commit, worker: &Worker) -> Result<(), StoreError> {
        let fail = |e| self.error("cannot commit", e);
        let (fence, create) = tokio::try_join!(conn.prepared(FENCE), conn.prepared(CREATE_RUNS)).map_err(fail)?;
        let fence_params: [&(dyn ToSql + Sync); 2] = [&worker.id, &worker.generation];
        let create_params: [&(dyn ToSql + Sync); 3] = [&commit.created, &worker.id, &worker.generation];
        let (begun, fenced, created) = tokio::join!(
            conn.client.batch_execute("BEGIN"),
            conn.client.execute(&fence, &fence_params),
            conn.client.query(&create, &create_params)
        );
        let created = begun.and(fenced).and(created).map_err(fail);
        let existing: Vec<String> = match &created {
            Ok(rows) => {
                let created: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                commit.created.iter().filter(|id| !created.contains(id)).cloned().collect()
            }
            Err(_) => Vec::new(),
        };
        if created.is_ok() && existing.is_empty() {
            return Ok(());
        }
        let _ = conn.batch_execute("ROLLBACK").await;
        created?;
        let mut e = StoreError::new(
            StoreErrorKind::Exists,
            format!("runs {} exist already: another worker created them", existing.join(", ")),
        );
        e.existing = existing;
        Err(e)
    }
}

const FENCE: &str = "SELECT sagaflow.fence($1, $2)";
/// A placeholder row for each run the commit creates; the upsert below fills it in.
const CREATE_RUNS: &str =
    "INSERT INTO sagaflow.runs (run_id, workflow, hash, status, started_at, updated_at, owner, owner_gen)
    SELECT r, '', '', 'running', 0, 0, $2, $3 FROM unnest($1::text[]) AS t(r)
    ON CONFLICT (run_id) DO NOTHING RETURNING run_id";
const UPSERT_RUNS: &str = "INSERT INTO sagaflow.runs
      (run_id, workflow, hash, status, started_at, updated_at, parent, error, owner, owner_gen)
    SELECT r, w, h, s, st, up, p, e::json, o, CASE WHEN o IS NULL THEN NULL ELSE $10::int8 END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::text[])
      AS t(r, w, h, s, st, up, p, e, o)
    ON CONFLICT (run_id) DO UPDATE SET workflow = EXCLUDED.workflow, hash = EXCLUDED.hash,
      status = EXCLUDED.status, started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at,
      parent = EXCLUDED.parent, error = EXCLUDED.error, owner = EXCLUDED.owner, owner_gen = EXCLUDED.owner_gen";
const APPEND_JOURNAL: &str = "INSERT INTO sagaflow.journal (run_id, seq, entry)
    SELECT r, s, e::json FROM unnest($1::text[], $2::int4[], $3::text[]) AS t(r, s, e)";
const INSERT_EVENTS: &str = "INSERT INTO sagaflow.events (id, type, key, at, event)
    SELECT i, ty, k, a, e::json FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[]) AS t(i, ty, k, a, e)
    ON CONFLICT (id) DO NOTHING";
/// A delivery written again (its subscribers retried) is anyone's to take.
const UPSERT_OUTBOX: &str = "INSERT INTO sagaflow.outbox (event_id, at, next_due, delivery)
    SELECT i, a, n, d::json FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[]) AS t(i, a, n, d)
    ON CONFLICT (event_id) DO UPDATE SET next_due = EXCLUDED.next_due, delivery = EXCLUDED.delivery,
      leased_by = NULL, leased_gen = NULL, lease_until = NULL";
const FORGET_JOURNALS: &str = "DELETE FROM sagaflow.journal WHERE run_id = ANY($1)";
const FORGET_RUNS: &str = "DELETE FROM sagaflow.runs WHERE run_id = ANY($1)";
const FORGET_DEAD_LETTERS: &str = "DELETE FROM sagaflow.dead_letters WHERE event_id = ANY($1)";
const FORGET_EVENTS: &str = "DELETE FROM sagaflow.events WHERE id = ANY($1)";
const ANSWER_LETTERS: &str = "DELETE FROM sagaflow.inbox WHERE id = ANY($1)";
const BEGIN_WAITS: &str = "INSERT INTO sagaflow.waits (type, key, run_id, step, item)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[]) ON CONFLICT DO NOTHING";
const END_WAITS: &str = "DELETE FROM sagaflow.waits w
    USING unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[]) AS t(ty, k, r, s, i)
    WHERE w.type = t.ty AND w.key = t.k AND w.run_id = t.r AND w.step = t.s AND w.item = t.i";
/// A run that ended, or was forgotten, waits for nothing.
const END_RUNS_WAITS: &str = "DELETE FROM sagaflow.waits WHERE run_id = ANY($1)";

/// A commit's rows as the arrays its statements take.
#[derive(Default)]
struct Parts {
    run_ids: Vec<String>,
    workflows: Vec<String>,
    hashes: Vec<String>,
    statuses: Vec<String>,
    started: Vec<i64>,
    updated: Vec<i64>,
    parents: Vec<Option<String>>,
    errors: Vec<Option<String>>,
    /// The owner of an unfinished run; none once it finished.
    owners: Vec<Option<String>>,
    entry_runs: Vec<String>,
    entry_seqs: Vec<i32>,
    entries: Vec<String>,
    event_ids: Vec<String>,
    event_types: Vec<String>,
    event_keys: Vec<String>,
    event_ats: Vec<i64>,
    events: Vec<String>,
    delivery_ids: Vec<String>,
    delivery_ats: Vec<i64>,
    delivery_dues: Vec<Option<i64>>,
    deliveries: Vec<String>,
    forget: Vec<String>,
    forget_events: Vec<String>,
    begun: Waits,
    ended: Waits,
    /// Runs this commit ends or forgets.
    done: Vec<String>,
}

/// Waits as the arrays their statements take (a step's own unit is item -1).
#[derive(Default)]
struct Waits {
    kinds: Vec<String>,
    keys: Vec<String>,
    runs: Vec<String>,
    steps: Vec<i32>,
    items: Vec<i32>,
}

impl Waits {
    fn of(waits: &[crate::store::Wait]) -> Waits {
        let mut w = Waits::default();
        for wait in waits {
            w.kinds.push(wait.kind.clone());
            w.keys.push(wait.key.clone());
            w.runs.push(wait.run_id.clone());
            w.steps.push(wait.step as i32);
            w.items.push(wait.item.map_or(-1, |i| i as i32));
        }
        w
    }
}

impl Parts {
    fn of(commit: &Commit, worker: &str) -> Result<Parts, StoreError> {
        let mut p = Parts::default();
        for m in &commit.runs {
            p.run_ids.push(m.run_id.clone());
            p.workflows.push(m.workflow.clone());
            p.hashes.push(m.hash.clone());
            p.statuses.push(m.status.as_str().to_owned());
            p.started.push(m.started_at as i64);
            p.updated.push(m.updated_at as i64);
            p.parents.push(m.parent.clone());
            p.errors.push(m.error.as_ref().map(json_text).transpose()?);
            p.owners.push((!m.is_finished()).then(|| worker.to_owned()));
        }
        for (run, seq, entry) in &commit.entries {
            p.entry_runs.push(run.clone());
            p.entry_seqs.push(*seq as i32);
            p.entries.push(json_text(entry)?);
        }
        for e in &commit.events {
            p.event_ids.push(e.id.clone());
            p.event_types.push(e.kind.clone());
            p.event_keys.push(e.key.clone());
            p.event_ats.push(e.at as i64);
            p.events.push(json_text(e)?);
        }
        for d in &commit.deliveries {
            p.delivery_ids.push(d.event.id.clone());
            p.delivery_ats.push(d.event.at as i64);
            p.delivery_dues.push(d.next_due().map(|n| n as i64));
            p.deliveries.push(json_text(d)?);
        }
        p.forget = commit.forget.iter().map(|m| m.run_id.clone()).collect();
        p.forget_events = commit.forget_events.iter().map(|e| e.id.clone()).collect();
        p.begun = Waits::of(&commit.waits_begun);
        p.ended = Waits::of(&commit.waits_ended);
        let ended = commit.runs.iter().filter(|m| m.is_finished()).map(|m| m.run_id.clone());
        p.done = ended.chain(p.forget.iter().cloned()).collect();
        Ok(p)
    }
}

impl ReadRuns for PgStore {
    fn runs_page(&self, filter: &RunFilter, cursor: Option<&str>, limit: usize) -> Result<RunPage, StoreError> {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        // The cursor is sled's: 16 hex digits of the start time, then the run id.
        let before_at: Option<i64> =
            cursor.map(|c| c.get(..16).and_then(|h| i64::from_str_radix(h, 16).ok()).unwrap_or(0));
        let before_id = cursor.and_then(|c| c.get(16..)).unwrap_or_default().to_owned();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM sagaflow.runs
             WHERE ($1::text IS NULL OR workflow = $1) AND (cardinality($2::text[]) = 0 OR status = ANY($2))
               AND ($3::int8 IS NULL OR (started_at, run_id) < ($3, $4))
             ORDER BY started_at DESC, run_id DESC LIMIT $5"
        );
        let take = (limit + 1) as i64;
        let mut runs =
            self.metas("cannot list runs", &sql, &[&filter.workflow, &statuses, &before_at, &before_id, &take])?;
        let next = (runs.len() > limit).then(|| {
            runs.truncate(limit);
            runs.last().map(crate::store::run_cursor)
        });
        Ok(RunPage { runs, next: next.flatten() })
    }

    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError> {
        let rows = self.query(
            "cannot read the journal",
            "SELECT entry::text FROM sagaflow.journal WHERE run_id = $1 ORDER BY seq",
            &[&run_id],
        )?;
        rows.iter().map(|r| json_column(r, 0, "journal entry")).collect()
    }

    fn journals(&self, run_ids: &[String]) -> Result<std::collections::HashMap<String, Vec<Entry>>, StoreError> {
        let rows = self.query(
            "cannot read the journals",
            "SELECT run_id, entry::text FROM sagaflow.journal WHERE run_id = ANY($1) ORDER BY run_id, seq",
            &[&run_ids],
        )?;
        let mut journals: std::collections::HashMap<String, Vec<Entry>> =
            run_ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        for row in &rows {
            let entry = json_column(row, 1, "journal entry")?;
            journals.entry(row.get(0)).or_default().push(entry);
        }
        Ok(journals)
    }

    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM sagaflow.runs WHERE run_id = $1");
        Ok(self.metas("cannot read the run index", &sql, &[&run_id])?.pop())
    }

    fn runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM sagaflow.runs ORDER BY started_at, run_id");
        self.metas("cannot read the run index", &sql, &[])
    }

    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let rows = self.query(
            "cannot read a definition",
            "SELECT source FROM sagaflow.definitions WHERE hash = $1",
            &[&hash],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError> {
        let rows = self.query(
            "cannot read events",
            "SELECT event::text FROM sagaflow.events WHERE type = $1 AND key = $2 AND at >= $3 ORDER BY at, id",
            &[&kind, &key, &(since as i64)],
        )?;
        rows.iter().map(|r| json_column(r, 0, "event")).collect()
    }

    fn finished_before(&self, before: u64, after: Option<&RunMeta>, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        let (after_at, after_id) = after.map_or((-1, String::new()), |m| (m.updated_at as i64, m.run_id.clone()));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM sagaflow.runs
             WHERE status IN {FINISHED} AND updated_at < $1 AND (updated_at, run_id) > ($2, $3)
             ORDER BY updated_at, run_id LIMIT $4"
        );
        self.metas("cannot read finished runs", &sql, &[&(before as i64), &after_at, &after_id, &(limit as i64)])
    }

    fn events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let rows = self.query(
            "cannot read events",
            "SELECT event::text FROM sagaflow.events WHERE at < $1 ORDER BY at, id LIMIT $2",
            &[&(before as i64), &(limit as i64)],
        )?;
        rows.iter().map(|r| json_column(r, 0, "event")).collect()
    }

    fn unfinished(&self) -> Result<Vec<RunMeta>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM sagaflow.runs WHERE status NOT IN {FINISHED} ORDER BY started_at, run_id"
        );
        self.metas("cannot read the run index", &sql, &[])
    }

    fn status_counts(&self) -> Result<Vec<(String, RunStatus, u64)>, StoreError> {
        let rows = self.query(
            "cannot count runs",
            "SELECT workflow, status, count(*) FROM sagaflow.runs GROUP BY workflow, status ORDER BY workflow, status",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let status = r
                    .get::<_, &str>(1)
                    .parse::<RunStatus>()
                    .map_err(|e| StoreError::other(format!("a run row: {e}")))?;
                Ok((r.get::<_, String>(0), status, r.get::<_, i64>(2) as u64))
            })
            .collect()
    }

    fn unfinished_since(&self) -> Result<Option<u64>, StoreError> {
        let sql = format!("SELECT min(started_at) FROM sagaflow.runs WHERE status NOT IN {FINISHED}");
        let rows = self.query("cannot read the run index", &sql, &[])?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)).map(|t| t as u64))
    }
}

impl WriteRuns for PgStore {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        block_on(self.commit_async(commit))
    }

    fn commit_turn<'a>(&'a self, commit: &'a Commit) -> Committing<'a> {
        Box::pin(async move {
            if commit.is_empty() {
                return Ok(());
            }
            self.commit_async(commit).await
        })
    }

    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.read("cannot write a definition", async |c| {
            c.execute(
                "INSERT INTO sagaflow.definitions (hash, source) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                &[&hash, &source],
            )
            .await
        })
        .map(drop)
    }
}

impl ScheduleTable for PgStore {
    fn last_tick(&self, schedule: &str) -> Result<Option<u64>, StoreError> {
        let rows = self.query(
            "cannot read a schedule",
            "SELECT last_tick FROM sagaflow.schedules WHERE key = $1",
            &[&schedule],
        )?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64))
    }

    /// Never back: two workers moving one schedule leave it at the later tick.
    fn set_last_tick(&self, schedule: &str, at: u64) -> Result<(), StoreError> {
        self.read("cannot write a schedule", async |c| {
            c.execute(
                "INSERT INTO sagaflow.schedules (key, last_tick) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET last_tick = GREATEST(sagaflow.schedules.last_tick, EXCLUDED.last_tick)",
                &[&schedule, &(at as i64)],
            )
            .await
        })
        .map(drop)
    }
}
