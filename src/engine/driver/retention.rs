//! Retention in the loop: finished runs leave the store in a turn's commit,
//! so a run an operator reopens in the same turn, or one still in memory, is
//! never removed under it.

use super::*;

/// Runs asked to leave, and who waits for how many did.
pub(super) type Forget = (Vec<RunMeta>, oneshot::Sender<usize>);

impl Driver {
    /// Adds to the commit the asked runs that may still leave: not in memory,
    /// and their index row unchanged since they were chosen. Answers, for each
    /// ask, how many leave.
    pub(super) fn take_forgets(
        &mut self,
        asks: Vec<Forget>,
        commit: &mut Commit,
    ) -> Vec<(usize, oneshot::Sender<usize>)> {
        let mut answers = Vec::with_capacity(asks.len());
        for (runs, reply) in asks {
            let before = commit.forget.len();
            for meta in runs {
                if self.still_leaves(&meta) {
                    self.metrics.run_left(&meta.workflow, meta.status.as_str());
                    commit.forget.push(meta);
                }
            }
            answers.push((commit.forget.len() - before, reply));
        }
        answers
    }

    fn still_leaves(&self, meta: &RunMeta) -> bool {
        let here = self.runs.contains_key(&meta.run_id) || self.evicted.contains_key(&meta.run_id);
        !here && meta.is_finished() && matches!(self.store.run(&meta.run_id), Ok(Some(now)) if now == *meta)
    }
}

impl Driver {
    /// Takes out of a turn the runs it meant to create that another worker
    /// created first: their entries, rows and state go, and who started them
    /// hears that the run existed (as a second start with the same id does).
    pub(super) fn drop_existing(&mut self, turn: &mut Turn, existing: &[String]) {
        let gone = |id: &String| existing.contains(id);
        for meta in turn.commit.runs.iter().filter(|m| gone(&m.run_id)) {
            self.metrics.run_left(&meta.workflow, meta.status.as_str());
        }
        turn.commit.entries.retain(|(id, ..)| !gone(id));
        turn.commit.runs.retain(|m| !gone(&m.run_id));
        turn.commit.created.retain(|id| !gone(id));
        turn.transitions.retain(|t| !gone(&t.run_id));
        turn.touched.retain(|id| !gone(id));
        for (id, new, _) in turn.started.iter_mut() {
            if gone(id) {
                *new = false;
            }
        }
        for id in existing {
            self.runs.remove(id);
        }
        warn!(runs = existing.len(), "runs this worker meant to create exist already; another worker has them");
    }
}
