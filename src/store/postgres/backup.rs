//! The PostgreSQL store read as [`Record`]s (export, check) and written from
//! them (import), in the order sled's keys give, so an export reads the same
//! line for line from either store and a backup moves between them.
//!
//! An export reads one snapshot (a read-only repeatable-read transaction),
//! through a cursor per table, a thousand rows at a time. An import goes into
//! an empty database in one transaction: all of it or nothing. Unfinished runs
//! arrive without an owner, for a worker to take up.

use tokio_postgres::Row;

use super::{block_on, json_column, json_text, PgStore};
use crate::store::backup::{Damage, Record, EXPORT_FORMAT};
use crate::store::StoreError;

/// Each table as export records, in sled's key order: `d/ j/ k\0 o/ r/ s/ x/`, then the sandbox.
const TABLES: &[(&str, &str)] = &[
    ("definition", "SELECT hash, source FROM sagaflow.definitions ORDER BY hash COLLATE \"C\""),
    ("entry", "SELECT run_id, seq, entry::text FROM sagaflow.journal ORDER BY run_id COLLATE \"C\", seq"),
    (
        "event",
        "SELECT event::text FROM sagaflow.events ORDER BY type COLLATE \"C\", key COLLATE \"C\", at, id COLLATE \"C\"",
    ),
    ("delivery", "SELECT delivery::text FROM sagaflow.outbox ORDER BY at, event_id COLLATE \"C\""),
    (
        "run",
        "SELECT run_id, workflow, hash, status, started_at, updated_at, parent, error::text FROM sagaflow.runs
         ORDER BY run_id COLLATE \"C\"",
    ),
    ("schedule", "SELECT key, last_tick FROM sagaflow.schedules ORDER BY key COLLATE \"C\""),
    (
        "dead_letter",
        "SELECT letter::text FROM sagaflow.dead_letters
         ORDER BY event_at, event_id COLLATE \"C\", subscriber COLLATE \"C\"",
    ),
    (
        "sandbox",
        "SELECT service, key, value::text FROM sagaflow.sandbox ORDER BY service COLLATE \"C\", key COLLATE \"C\"",
    ),
];

/// Rows a cursor fetches at a time.
const FETCH: usize = 1000;

/// Column `i`, JSON text, read as a `T`.
fn decoded<T: serde::de::DeserializeOwned>(row: &Row, i: usize, what: &str) -> Result<T, String> {
    json_column(row, i, what).map_err(|e| e.message)
}

fn record(kind: &str, row: &Row) -> Result<Record, String> {
    Ok(match kind {
        "definition" => Record::Definition { hash: row.get(0), source: row.get(1) },
        "entry" => Record::Entry {
            run_id: row.get(0),
            seq: row.get::<_, i32>(1) as u32,
            entry: decoded(row, 2, "journal entry")?,
        },
        "event" => Record::Event { event: decoded(row, 0, "event")? },
        "delivery" => Record::Delivery { delivery: decoded(row, 0, "delivery")? },
        "run" => Record::Run { run: super::runs::meta_of(row).map_err(|e| e.message)? },
        "schedule" => Record::Schedule { schedule: row.get(0), last_tick: row.get::<_, i64>(1) as u64 },
        "dead_letter" => Record::DeadLetter { dead_letter: decoded(row, 0, "dead letter")? },
        _ => Record::Sandbox {
            tree: format!("sandbox.{}", row.get::<_, String>(0)),
            key: row.get(1),
            value: decoded(row, 2, "sandbox record")?,
        },
    })
}

impl PgStore {
    /// Every record of the database, each handed to `each` as it is read; a row
    /// that cannot be read is a [`Damage`] in its place. Stops at the first
    /// error `each` returns.
    pub(crate) fn records<E>(&self, mut each: impl FnMut(Result<Record, Damage>) -> Result<(), E>) -> Result<(), E> {
        each(Ok(Record::Header { format: EXPORT_FORMAT.into() }))?;
        let broken = |e: tokio_postgres::Error| Damage { place: self.shown.clone(), problem: e.to_string() };
        let client = match block_on(self.write.lock()) {
            Ok(client) => client,
            Err(e) => return each(Err(Damage { place: self.shown.clone(), problem: e.message })),
        };
        if let Err(e) = block_on(client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) {
            return each(Err(broken(e)));
        }
        let result = (|| {
            for (kind, sql) in TABLES {
                if let Err(e) = block_on(client.batch_execute(&format!("DECLARE export NO SCROLL CURSOR FOR {sql}"))) {
                    return each(Err(broken(e)));
                }
                // Not kept prepared: each table's cursor answers rows of its own shape.
                loop {
                    let rows = match block_on(client.client.query(&format!("FETCH {FETCH} FROM export"), &[])) {
                        Ok(rows) => rows,
                        Err(e) => return each(Err(broken(e))),
                    };
                    for row in &rows {
                        let place = || format!("{} ({kind})", self.shown);
                        each(record(kind, row).map_err(|problem| Damage { place: place(), problem }))?;
                    }
                    if rows.len() < FETCH {
                        break;
                    }
                }
                if let Err(e) = block_on(client.batch_execute("CLOSE export")) {
                    return each(Err(broken(e)));
                }
            }
            Ok(())
        })();
        let _ = block_on(client.batch_execute("COMMIT"));
        result
    }

    /// Whether the database holds no record yet (a new one).
    pub(crate) fn is_empty(&self) -> Result<bool, StoreError> {
        let sql = "SELECT NOT (EXISTS (SELECT 1 FROM sagaflow.runs) OR EXISTS (SELECT 1 FROM sagaflow.journal)
            OR EXISTS (SELECT 1 FROM sagaflow.definitions) OR EXISTS (SELECT 1 FROM sagaflow.events)
            OR EXISTS (SELECT 1 FROM sagaflow.outbox) OR EXISTS (SELECT 1 FROM sagaflow.dead_letters)
            OR EXISTS (SELECT 1 FROM sagaflow.schedules) OR EXISTS (SELECT 1 FROM sagaflow.sandbox))";
        let row = self.read("cannot read the store", async |c| c.query_one(sql, &[]).await)?;
        Ok(row.get(0))
    }

    /// Writes records read from an export into this database, which must be
    /// empty, in one transaction; answers how many were written.
    pub(crate) fn import(&self, records: impl Iterator<Item = Result<Record, StoreError>>) -> Result<u64, StoreError> {
        if !self.is_empty()? {
            return Err(StoreError::other(format!(
                "{} already holds data; import into a new, empty database",
                self.shown
            )));
        }
        let mut client = block_on(self.write.lock())?;
        let tx = block_on(client.transaction()).map_err(|e| self.error("cannot begin the import", e))?;
        let mut count = 0u64;
        for record in records {
            let record = record?;
            if let Record::Header { format } = &record {
                if format != EXPORT_FORMAT {
                    return Err(StoreError::other(format!(
                        "the export is of format {format}; this sagaflow reads {EXPORT_FORMAT}"
                    )));
                }
                continue;
            }
            block_on(insert(&tx, &record)).map_err(|e| match e {
                Insert::Db(e) => self.error(&format!("cannot import a {} record", record.kind()), e),
                Insert::Store(e) => e,
            })?;
            count += 1;
        }
        block_on(tx.commit()).map_err(|e| self.error("cannot commit the import", e))?;
        Ok(count)
    }
}

enum Insert {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Insert {
    fn from(e: tokio_postgres::Error) -> Self {
        Insert::Db(e)
    }
}

impl From<StoreError> for Insert {
    fn from(e: StoreError) -> Self {
        Insert::Store(e)
    }
}

/// One record's row; unfinished runs come without an owner.
async fn insert(tx: &tokio_postgres::Transaction<'_>, record: &Record) -> Result<(), Insert> {
    match record {
        Record::Header { .. } => {}
        Record::Definition { hash, source } => {
            tx.execute("INSERT INTO sagaflow.definitions (hash, source) VALUES ($1, $2)", &[hash, source]).await?;
        }
        Record::Run { run } => {
            let error = run.error.as_ref().map(json_text).transpose()?;
            tx.execute(
                "INSERT INTO sagaflow.runs (run_id, workflow, hash, status, started_at, updated_at, parent, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::json)",
                &[
                    &run.run_id,
                    &run.workflow,
                    &run.hash,
                    &run.status.as_str(),
                    &(run.started_at as i64),
                    &(run.updated_at as i64),
                    &run.parent,
                    &error,
                ],
            )
            .await?;
        }
        Record::Entry { run_id, seq, entry } => {
            let sql = "INSERT INTO sagaflow.journal (run_id, seq, entry) VALUES ($1, $2, $3::text::json)";
            tx.execute(sql, &[run_id, &(*seq as i32), &json_text(entry)?]).await?;
        }
        Record::Event { event } => {
            let sql = "INSERT INTO sagaflow.events (id, type, key, at, event) VALUES ($1, $2, $3, $4, $5::text::json)";
            tx.execute(sql, &[&event.id, &event.kind, &event.key, &(event.at as i64), &json_text(event)?]).await?;
        }
        Record::Delivery { delivery } => {
            let sql =
                "INSERT INTO sagaflow.outbox (event_id, at, next_due, delivery) VALUES ($1, $2, $3, $4::text::json)";
            let due = delivery.next_due().map(|d| d as i64);
            tx.execute(sql, &[&delivery.event.id, &(delivery.event.at as i64), &due, &json_text(delivery)?]).await?;
        }
        Record::DeadLetter { dead_letter: d } => {
            let sql = "INSERT INTO sagaflow.dead_letters (event_id, subscriber, event_at, letter) VALUES ($1, $2, $3, $4::text::json)";
            tx.execute(sql, &[&d.event.id, &d.subscriber, &(d.event.at as i64), &json_text(d)?]).await?;
        }
        Record::Schedule { schedule, last_tick } => {
            let sql = "INSERT INTO sagaflow.schedules (key, last_tick) VALUES ($1, $2)";
            tx.execute(sql, &[schedule, &(*last_tick as i64)]).await?;
        }
        Record::Sandbox { tree, key, value } => {
            let Some(service) = tree.strip_prefix("sandbox.") else {
                return Err(StoreError::other(format!("`{tree}` is not a sandbox tree")).into());
            };
            let sql = "INSERT INTO sagaflow.sandbox (service, key, value) VALUES ($1, $2, $3::text::json)";
            tx.execute(sql, &[&service, key, &json_text(value)?]).await?;
        }
    }
    Ok(())
}
