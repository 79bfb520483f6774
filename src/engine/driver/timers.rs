//! The timer queue: retry backoffs, sleeps, wait timeouts and run deadlines, by due time.

use super::*;

impl Driver {
    pub(super) fn next_due(&self) -> Option<u64> {
        self.timers.keys().next().map(|(due, _)| *due)
    }
    pub(super) fn fire_timers(&mut self) {
        let now = self.clock.now_ms();
        let due: Vec<(u64, u64)> = self.timers.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
        for key in due {
            if let Some((run_id, entry)) = self.timers.remove(&key) {
                self.ready.push((run_id, entry));
            }
        }
    }
    pub(super) fn rearm(&mut self, run_id: &str) {
        let Some(active) = self.runs.get_mut(run_id) else { return };
        for key in active.timers.drain(..) {
            self.timers.remove(&key);
        }
        for (due, entry) in active.state.timers() {
            self.timer_seq += 1;
            let key = (due, self.timer_seq);
            self.timers.insert(key, (run_id.to_owned(), entry));
            active.timers.push(key);
        }
    }
}
