//! The outbox in PostgreSQL: deliveries written with their step's commit
//! (`runs.rs`), taken by relays under a lease of their worker's generation,
//! settled by the lease's holder alone, and dead letters.

use super::{json_column, json_text, PgStore, Worker};
use crate::store::{DeadLetter, Delivery, OutboxTable, StoreError};

/// How long a relay holds the deliveries it took, unless its worker dies first.
const DELIVERY_LEASE: &str = "interval '5 minutes'";

impl OutboxTable for PgStore {
    fn due(&self, now: u64, limit: usize) -> Result<(Vec<Delivery>, Option<u64>), StoreError> {
        let now = now as i64;
        let due = match &self.worker {
            Some(worker) => self.lease_due(worker, now, limit)?,
            None => {
                let sql =
                    "SELECT delivery::text FROM sagaflow.outbox WHERE next_due <= $1 ORDER BY at, event_id LIMIT $2";
                let rows = self.query("cannot read the outbox", sql, &[&now, &(limit as i64)])?;
                rows.iter().map(|r| json_column(r, 0, "delivery")).collect::<Result<_, _>>()?
            }
        };
        let later = self.query(
            "cannot read the outbox",
            "SELECT min(next_due) FROM sagaflow.outbox WHERE next_due > $1",
            &[&now],
        )?;
        Ok((due, later.first().and_then(|r| r.get::<_, Option<i64>>(0)).map(|t| t as u64)))
    }

    fn settle(&self, delivery: &Delivery, dead: &[DeadLetter]) -> Result<(), StoreError> {
        let id = &delivery.event.id;
        let letters: Vec<String> = dead.iter().map(json_text).collect::<Result<_, _>>()?;
        let subscribers: Vec<&str> = dead.iter().map(|d| d.subscriber.as_str()).collect();
        let at = delivery.event.at as i64;
        let body = json_text(delivery)?;
        let due = delivery.next_due().map(|n| n as i64);
        let (me, gen) = self.worker.as_ref().map_or((None, None), |w| (Some(w.id.as_str()), Some(w.generation)));
        let settled = self.write_with("cannot write the outbox", async |client| {
            let tx = client.transaction().await?;
            // Only the lease's holder settles (none held: a process alone on its store).
            let lease = "($2::text IS NULL OR (leased_by = $2 AND leased_gen = $3))";
            let written = if delivery.pending.is_empty() {
                let sql = format!("DELETE FROM sagaflow.outbox WHERE event_id = $1 AND {lease}");
                tx.execute(&sql, &[id, &me, &gen]).await?
            } else {
                let sql = format!(
                    "UPDATE sagaflow.outbox SET delivery = $4::text::json, next_due = $5,
                       leased_by = NULL, leased_gen = NULL, lease_until = NULL
                     WHERE event_id = $1 AND {lease}"
                );
                tx.execute(&sql, &[id, &me, &gen, &body, &due]).await?
            };
            if written == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO sagaflow.dead_letters (event_id, subscriber, event_at, letter)
                 SELECT $1, s, $2, l::json FROM unnest($3::text[], $4::text[]) AS t(s, l)
                 ON CONFLICT (event_id, subscriber) DO UPDATE SET letter = EXCLUDED.letter",
                &[id, &at, &subscribers, &letters],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })?;
        if !settled {
            let message = format!("the delivery of event {id} is no longer this relay's: another relay delivers it");
            return Err(StoreError::new(crate::store::StoreErrorKind::Conflict, message));
        }
        Ok(())
    }

    fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.query(
            "cannot read the outbox",
            "SELECT delivery::text FROM sagaflow.outbox ORDER BY at, event_id",
            &[],
        )?;
        rows.iter().map(|r| json_column(r, 0, "delivery")).collect()
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self.query(
            "cannot read the dead letters",
            "SELECT letter::text FROM sagaflow.dead_letters ORDER BY event_at, event_id, subscriber",
            &[],
        )?;
        rows.iter().map(|r| json_column(r, 0, "dead letter")).collect()
    }
}

impl PgStore {
    /// Leases to this worker up to `limit` due deliveries no live relay holds:
    /// none leased, the lease run out, or its worker's generation over.
    fn lease_due(&self, worker: &Worker, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.unless_fenced()?;
        let sql = format!(
            "WITH free AS (
               SELECT o.event_id FROM sagaflow.outbox o LEFT JOIN sagaflow.workers w ON w.worker_id = o.leased_by
               WHERE o.next_due <= $1 AND (o.leased_by IS NULL OR o.lease_until < now() OR w.worker_id IS NULL
                 OR w.state <> 'live' OR w.generation <> o.leased_gen)
               ORDER BY o.at, o.event_id LIMIT $2 FOR UPDATE OF o SKIP LOCKED)
             UPDATE sagaflow.outbox o SET leased_by = $3, leased_gen = $4, lease_until = now() + {DELIVERY_LEASE}
             FROM free WHERE o.event_id = free.event_id
             RETURNING o.at, o.event_id, o.delivery::text"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = self.query("cannot lease deliveries", &sql, &[&now, &limit, &worker.id, &worker.generation])?;
        rows.sort_by(|a, b| (a.get::<_, i64>(0), a.get::<_, &str>(1)).cmp(&(b.get::<_, i64>(0), b.get::<_, &str>(1))));
        rows.iter().map(|r| json_column(r, 2, "delivery")).collect()
    }
}
