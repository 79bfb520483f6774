//! Child runs (DSL.md B1), the driver's side: a `workflow.run` attempt starts
//! its child (unless a run of that id exists: a resume finds the same child)
//! and waits for the `run.finished` event the child's end commits; a parent
//! that rolls back cancels the children it waits for; the undoing of a
//! succeeded child reopens it and waits for its `run.undone`.

use super::events::Reads;
use super::*;
use crate::engine::child::{ChildStart, FINISHED, UNDONE};

impl Driver {
    /// Starts a child run (in the next turn) unless it exists, and waits for its end.
    pub(super) fn begin_child(&mut self, run_id: &str, at: AttemptKey, child: ChildStart) -> Option<Outcome> {
        let exists = match self.exists(&child.run_id) {
            Ok(exists) => exists,
            Err(e) => return Some(Outcome::Err(ActionError::new("unavailable", e.message))),
        };
        if !exists {
            let wf = match self.library.active(&child.workflow) {
                Ok(wf) => wf,
                Err(message) => return Some(Outcome::Err(ActionError::new("not_found", message))),
            };
            if let Err(e) = self.definitions.keep(self.store.as_ref(), &wf) {
                return Some(Outcome::Err(ActionError::new("unavailable", e.message)));
            }
            let input = wf.with_defaults(child.input);
            self.spawns.push(NewRun {
                run_id: Some(child.run_id.clone()),
                wf,
                input,
                inject: child.inject,
                parent: Some(child.parent),
                timeout_ms: child.timeout_ms,
                rerun_of: None,
                // The child's run hangs under the attempt that starts it.
                trace: self.runs.get(run_id).and_then(|a| crate::engine::spans::attempt_parent(&a.state, &at)),
            });
        }
        self.begin_wait(run_id, at, FINISHED.to_owned(), child.run_id, 0, Reads::Child)
    }

    /// Undoes a succeeded child: reopens it (in the next turn) while it stands
    /// `succeeded`, and waits for the end of its undoing.
    /// A child with nothing to compensate is left as it is, at once.
    pub(super) fn begin_undo(&mut self, run_id: &str, at: AttemptKey, child: String) -> Option<Outcome> {
        if !self.runs.contains_key(&child) {
            match self.store.run(&child) {
                Ok(Some(_)) => {}
                Ok(None) => return Some(crate::engine::child::nothing_to_undo(&child)),
                Err(e) => return Some(Outcome::Err(ActionError::new("unavailable", e.message))),
            }
            if !self.reopen(&child) {
                return Some(Outcome::Err(ActionError::new("unavailable", "the child run cannot be read back")));
            }
        }
        let state = self.runs.get(&child).map(|a| &a.state)?;
        if run_status(state) == RunStatus::Succeeded {
            if !state.anything_to_undo() {
                self.forget_finished(&child);
                return Some(crate::engine::child::nothing_to_undo(&child));
            }
            self.ready.push((child.clone(), Entry::UndoRequested { at: self.clock.now_ms() }));
        } else {
            // Undone already (a resumed parent asks again): its end's event answers.
            self.forget_finished(&child);
        }
        self.begin_wait(run_id, at, UNDONE.to_owned(), child, 0, Reads::Undo)
    }

    /// A finished run read back only to be judged leaves memory again.
    pub(super) fn forget_finished(&mut self, run_id: &str) {
        if self.runs.get(run_id).is_some_and(|a| a.state.phase == Phase::Done) {
            self.runs.remove(run_id);
        }
    }

    /// Brings a finished run back into memory from the store, to be undone.
    pub(super) fn reopen(&mut self, run_id: &str) -> bool {
        let meta = match self.store.run(run_id) {
            Ok(Some(meta)) => meta,
            _ => return false,
        };
        let wf = {
            let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            versions.get(self.store.as_ref(), &meta.hash, &self.registry)
        };
        let (Ok(wf), Ok(entries)) = (wf, self.store.entries(run_id)) else {
            warn!(run_id, "cannot read a finished child run back to undo it");
            return false;
        };
        self.runs.insert(run_id.to_owned(), Active::replayed(run_id, wf, &entries));
        true
    }
}
