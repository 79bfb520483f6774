//! The store's connections, opened when first needed and opened again when
//! the database ended them (a restart, a failover, a terminated backend): a
//! worker outlives a short outage of its database instead of failing every
//! call until it is restarted.
//!
//! [`Pool`] lends shared connections (statements are pipelined, so several
//! callers use one at once): an idle one if there is, else a new one while
//! the pool has room, else the least busy. [`Exclusive`] is one connection
//! a caller holds alone (a transaction), reopened on the next lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement};

use super::Dial;
use crate::store::{StoreError, StoreErrorKind};

/// Statements a connection keeps prepared, at most: past that a statement
/// is prepared for its one use (the store's statements are far fewer).
const PREPARED: usize = 256;

/// A connection, and the statements prepared on it, each parsed and planned
/// by the server once instead of at every use (and sent in one round trip
/// with its parameters instead of two).
pub(super) struct Conn {
    pub client: Client,
    prepared: Mutex<HashMap<String, Statement>>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    fn new(client: Client) -> Conn {
        Conn { client, prepared: Mutex::new(HashMap::new()) }
    }

    /// `sql` prepared on this connection, once.
    pub(super) async fn prepared(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.len() < PREPARED {
            prepared.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        self.client.query(&self.prepared(sql).await?, params).await
    }

    pub(super) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        self.client.query_one(&self.prepared(sql).await?, params).await
    }

    pub(super) async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        self.client.query_opt(&self.prepared(sql).await?, params).await
    }

    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        self.client.execute(&self.prepared(sql).await?, params).await
    }

    /// Statements as they are, without parameters (not prepared).
    pub(super) async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.client.batch_execute(sql).await
    }

    pub(super) async fn transaction(&mut self) -> Result<tokio_postgres::Transaction<'_>, Error> {
        self.client.transaction().await
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Where connections are opened: the address, and the runtime their tasks run on.
#[derive(Clone)]
pub(super) struct Opener {
    pub dial: Arc<Dial>,
    pub runtime: Handle,
}

impl Opener {
    /// A new connection driven on the store's runtime (whatever runtime, or
    /// none, the caller is on), `setup` run on it first.
    pub(super) async fn open(&self, setup: Option<&'static str>) -> Result<Conn, StoreError> {
        let dial = Arc::clone(&self.dial);
        let task = self.runtime.spawn(async move {
            let client = dial.connect().await?;
            if let Some(sql) = setup {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| super::pg_error(&dial.shown, "cannot set the session up", e))?;
            }
            Ok(Conn::new(client))
        });
        task.await.map_err(|e| StoreError::other(format!("{}: {e}", self.dial.shown)))?
    }
}

/// Up to a number of shared connections.
pub(super) struct Pool {
    opener: Opener,
    slots: Vec<Slot>,
}

struct Slot {
    client: Mutex<Option<Arc<Conn>>>,
    /// Callers using this connection now.
    busy: AtomicUsize,
    /// Held while the connection is being opened, so it is opened once.
    opening: tokio::sync::Mutex<()>,
}

/// A connection lent by the pool; it counts as busy until dropped.
pub(super) struct Lent<'a> {
    client: Arc<Conn>,
    slot: &'a Slot,
    _busy: Busy<'a>,
}

/// A slot counted busy while this lives.
struct Busy<'a>(&'a Slot);

impl<'a> Busy<'a> {
    fn of(slot: &'a Slot) -> Busy<'a> {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(slot)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lent<'_> {
    /// Takes `error` of a statement on this connection into account: one
    /// saying the connection is lost (it may not know yet) has it opened anew.
    pub(super) fn failed(&self, error: &StoreError) {
        if error.kind == StoreErrorKind::Unavailable {
            let mut client = self.slot.client.lock().unwrap_or_else(|p| p.into_inner());
            if client.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.client)) {
                *client = None;
            }
        }
    }
}

impl std::ops::Deref for Lent<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.client
    }
}

impl Pool {
    /// A pool of at most `size` connections (at least one), none open yet.
    pub(super) fn new(opener: Opener, size: usize) -> Pool {
        let slot =
            || Slot { client: Mutex::new(None), busy: AtomicUsize::new(0), opening: tokio::sync::Mutex::new(()) };
        Pool { opener, slots: (0..size.max(1)).map(|_| slot()).collect() }
    }

    /// The database, as messages name it.
    pub(super) fn shown(&self) -> &str {
        &self.opener.dial.shown
    }

    /// A connection to use now: an idle open one, else a new one while there
    /// is room, else the least busy.
    pub(super) async fn get(&self) -> Result<Lent<'_>, StoreError> {
        let open: Vec<Option<Arc<Conn>>> = self.slots.iter().map(Slot::open).collect();
        let idle = (0..self.slots.len()).find(|&i| open[i].is_some() && self.slots[i].busy() == 0);
        let room = || (0..self.slots.len()).find(|&i| open[i].is_none());
        let least_busy = || (0..self.slots.len()).min_by_key(|&i| self.slots[i].busy()).unwrap_or(0);
        let chosen = idle.or_else(room).unwrap_or_else(least_busy);
        let slot = &self.slots[chosen];
        // Busy from now: counted off when dropped, even if this call is.
        let busy = Busy::of(slot);
        let client = match &open[chosen] {
            Some(client) => Arc::clone(client),
            None => slot.reopen(&self.opener).await?,
        };
        Ok(Lent { client, slot, _busy: busy })
    }
}

impl Slot {
    /// Its connection, if it has one the database has not ended.
    fn open(&self) -> Option<Arc<Conn>> {
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        client.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Opens its connection, unless another caller did meanwhile.
    async fn reopen(&self, opener: &Opener) -> Result<Arc<Conn>, StoreError> {
        let _opening = self.opening.lock().await;
        if let Some(client) = self.open() {
            return Ok(client);
        }
        let client = Arc::new(opener.open(None).await?);
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// One connection its caller holds alone, opened again when it was lost.
pub(super) struct Exclusive {
    opener: Opener,
    /// Run on every new connection (session settings).
    setup: Option<&'static str>,
    client: tokio::sync::Mutex<Option<Conn>>,
}

/// The connection of an [`Exclusive`], held.
pub(super) struct Held<'a>(tokio::sync::MutexGuard<'a, Option<Conn>>);

impl Held<'_> {
    /// Takes `error` of a statement on this connection into account: one
    /// saying the connection is lost (it may not know yet) has it opened anew.
    pub(super) fn failed(&mut self, error: &StoreError) {
        if error.kind == StoreErrorKind::Unavailable {
            *self.0 = None;
        }
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Some: `lock` answers only once it holds a connection.
        self.0.as_ref().unwrap_or_else(|| unreachable!("a held connection is open"))
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.0.as_mut().unwrap_or_else(|| unreachable!("a held connection is open"))
    }
}

impl Exclusive {
    /// A connection that opens when first locked.
    pub(super) fn new(opener: Opener, setup: Option<&'static str>) -> Exclusive {
        Exclusive { opener, setup, client: tokio::sync::Mutex::new(None) }
    }

    /// The connection, the caller's alone until dropped; a new one if the last was lost.
    pub(super) async fn lock(&self) -> Result<Held<'_>, StoreError> {
        let mut held = self.client.lock().await;
        if held.as_ref().is_none_or(Conn::is_closed) {
            *held = Some(self.opener.open(self.setup).await?);
        }
        Ok(Held(held))
    }
}
