//! Cron triggers. Each schedule keeps the last tick it fired in the store; a
//! tick's run has an id made from the schedule and the tick, so it starts at
//! most once even across restarts; the latest tick missed while the server was
//! down fires once at start. Schedules are read in UTC, or in their `timezone:`.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::App;
use crate::base::clock::now_ms;
use crate::engine::compiled::{CompiledWorkflow, ScheduleTrigger};

/// The scheduler wakes at least this often, to notice the clock moving.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// One schedule of one active workflow version.
struct Schedule {
    wf: Arc<CompiledWorkflow>,
    key: String,
    cron: croner::Cron,
    zone: TimeZone,
    input: serde_json::Value,
}

pub(crate) fn spawn(app: Arc<App>) {
    tokio::spawn(async move {
        let mut changed = app.catalog.subscribe();
        loop {
            let next = fire_due(&app).await;
            let sleep = next.map_or(MAX_SLEEP, |at| Duration::from_millis(at.saturating_sub(now_ms())).min(MAX_SLEEP));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = changed.changed() => {}
                _ = app.shutdown.cancelled() => return,
            }
        }
    });
}

/// Fires every schedule whose tick has come; answers when the next one is due.
async fn fire_due(app: &App) -> Option<u64> {
    if app.is_draining() {
        return None;
    }
    let mut next: Option<u64> = None;
    for schedule in schedules(app) {
        match fire(app, &schedule).await {
            Ok(Some(at)) => next = Some(next.map_or(at, |n| n.min(at))),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(workflow = %schedule.wf.name, error = %e, "a schedule could not fire; it tries again")
            }
        }
    }
    next
}

fn schedules(app: &App) -> Vec<Schedule> {
    let snapshot = app.catalog.snapshot();
    let mut out = Vec::new();
    for wf in snapshot.all_active() {
        for (i, trigger) in wf.schedules.iter().enumerate() {
            match parse(trigger) {
                Ok((cron, zone)) => out.push(Schedule {
                    key: format!("{}#{i}#{}#{}", wf.name, trigger.cron, trigger.timezone.as_deref().unwrap_or("UTC")),
                    wf: wf.clone(),
                    cron,
                    zone,
                    input: trigger.input.clone(),
                }),
                Err(e) => {
                    tracing::warn!(workflow = %wf.name, cron = %trigger.cron, error = %e, "a schedule cannot be read")
                }
            }
        }
    }
    out
}

fn parse(trigger: &ScheduleTrigger) -> Result<(croner::Cron, TimeZone), String> {
    let cron = crate::validate::steps::parse_cron(&trigger.cron)?;
    let zone = match &trigger.timezone {
        Some(name) => crate::dsl::zone::time_zone(name)?,
        None => TimeZone::UTC,
    };
    Ok((cron, zone))
}

/// Starts the run of the latest tick not yet fired, if one has come; answers
/// the next tick's time.
async fn fire(app: &App, s: &Schedule) -> Result<Option<u64>, crate::store::StoreError> {
    let now = now_ms();
    let Some(last) = app.store.last_tick(&s.key)? else {
        // A new schedule starts counting now: no ticks from before it existed.
        app.store.set_last_tick(&s.key, now)?;
        return Ok(next_tick(&s.cron, &s.zone, now));
    };
    if let Some(tick) = latest_tick(&s.cron, &s.zone, now).filter(|t| *t > last) {
        let run_id = tick_run_id(&s.key, tick);
        let started = app.engine.start_run_as(run_id.clone(), s.wf.clone(), s.input.clone()).await?;
        app.store.set_last_tick(&s.key, tick)?;
        if started {
            tracing::info!(workflow = %s.wf.name, run_id, tick, "a schedule started a run");
        }
    }
    Ok(next_tick(&s.cron, &s.zone, now.max(last)))
}

/// The run of one tick: the same id every time it is asked for.
pub(crate) fn tick_run_id(key: &str, tick: u64) -> String {
    crate::base::ids::derived_run_id(tick, key)
}

/// A time (milliseconds since the epoch) in a zone.
fn at(ms: u64, zone: &TimeZone) -> Option<jiff::Zoned> {
    let t = jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(t.to_zoned(zone.clone()))
}

fn millis(t: &jiff::Zoned) -> Option<u64> {
    u64::try_from(t.timestamp().as_millisecond()).ok()
}

/// The latest tick at or before `now`.
fn latest_tick(cron: &croner::Cron, zone: &TimeZone, now: u64) -> Option<u64> {
    millis(&cron.find_previous_occurrence(&at(now, zone)?, true).ok()?)
}

/// The first tick after `after`.
fn next_tick(cron: &croner::Cron, zone: &TimeZone, after: u64) -> Option<u64> {
    millis(&cron.find_next_occurrence(&at(after, zone)?, false).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(text: &str) -> croner::Cron {
        crate::validate::steps::parse_cron(text).expect("cron")
    }

    #[test]
    fn ticks_of_a_six_field_cron_are_seconds() {
        let c = cron("*/5 * * * * *");
        let now = 1_700_000_001_234;
        assert_eq!(latest_tick(&c, &TimeZone::UTC, now), Some(1_700_000_000_000));
        assert_eq!(next_tick(&c, &TimeZone::UTC, now), Some(1_700_000_005_000));
    }

    /// 09:00 every day in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    #[test]
    fn a_time_zone_moves_the_ticks_with_daylight_saving() {
        let c = cron("0 9 * * *");
        let berlin = crate::dsl::zone::time_zone("Europe/Berlin").expect("zone");
        let jan_1 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let jul_1 = 1_782_864_000_000; // 2026-07-01T00:00:00Z
        assert_eq!(next_tick(&c, &berlin, jan_1), Some(jan_1 + 8 * 3_600_000));
        assert_eq!(next_tick(&c, &berlin, jul_1), Some(jul_1 + 7 * 3_600_000));
        assert_eq!(next_tick(&c, &TimeZone::UTC, jan_1), Some(jan_1 + 9 * 3_600_000));
    }

    #[test]
    fn a_tick_has_one_run_id() {
        assert_eq!(tick_run_id("w#0#* * * * *", 60_000), tick_run_id("w#0#* * * * *", 60_000));
        assert_ne!(tick_run_id("w#0#* * * * *", 60_000), tick_run_id("w#0#* * * * *", 120_000));
        assert_eq!(tick_run_id("w#0#* * * * *", 60_000).len(), 20);
    }
}
