//! Values a step takes from data at run time (DSL.md B2, B3): durations
//! written as templates (`timeout`, `retry.delay`, `retry.max_delay`,
//! `repeat.every`), and the verdict of a `repeat` round. Each is rendered
//! against the step's context, so a replay decides as the run did.

use std::borrow::Cow;

use serde_json::Value as Json;

use super::machine::{template_error, truthy, RunState};
use super::template::ValueTemplate;
use crate::dsl::duration::Duration;
use crate::dsl::model::RetryPolicies;
use crate::journal::entry::{ActionError, Item};

/// How a round of a `repeat` step ended.
pub(crate) enum Round {
    /// Its condition holds (or the step does not repeat): the unit succeeded.
    Done,
    /// Not yet: the next round is due then.
    Again { due: u64 },
    /// The step fails: rounds exhausted, or a template that does not render.
    Fail(ActionError),
}

impl RunState {
    /// A duration a template of step `s` gives; `field` names it in the error.
    pub(crate) fn duration_from(
        &self,
        t: &ValueTemplate,
        s: usize,
        item: Item,
        field: &str,
    ) -> Result<u64, ActionError> {
        let def = &self.wf.steps[s];
        let value =
            self.wf.templates.render(t, &self.context(Some(s), item), field).map_err(|f| template_error(def, &f))?;
        Duration::from_value(&value)
            .map(Duration::millis)
            .map_err(|why| ActionError::new("template", format!("step `{}`: `{field}` {why}", def.id)))
    }

    /// The bound on each attempt of a unit: its `timeout`, from data when written so.
    pub(crate) fn attempt_timeout(&self, s: usize, item: Item) -> Result<Option<u64>, ActionError> {
        let def = &self.wf.steps[s];
        match &def.timeout_from {
            Some(t) => self.duration_from(t, s, item, "timeout").map(Some),
            None => Ok(def.timeout_ms),
        }
    }

    /// A unit's retry policies with their durations from data filled in.
    pub(crate) fn retry_policies(&self, s: usize, item: Item) -> Result<Cow<'_, RetryPolicies>, ActionError> {
        let def = &self.wf.steps[s];
        if def.retry_from.is_empty() {
            return Ok(Cow::Borrowed(&def.retry));
        }
        let mut policies = def.retry.clone();
        for from in &def.retry_from {
            let Some(policy) = policies.0.get_mut(from.policy) else { continue };
            if let Some(t) = &from.delay {
                policy.delay = Duration(self.duration_from(t, s, item, "retry.delay")?);
            }
            if let Some(t) = &from.max_delay {
                let cap = Duration(self.duration_from(t, s, item, "retry.max_delay")?);
                policy.max_delay = Some(crate::dsl::span::Spanned::new(cap, Default::default()));
            }
        }
        Ok(Cow::Owned(policies))
    }

    /// The verdict on a round of a unit that gave `output` at `at` (DSL.md B2):
    /// done when `until` holds; past `max` rounds the step fails with
    /// `exhausted`; else the next round is due `every` later.
    pub(crate) fn round_ended(&self, s: usize, item: Item, output: &Json, at: u64) -> Round {
        let def = &self.wf.steps[s];
        let Some(repeat) = &def.repeat else { return Round::Done };
        let round = self.unit(s, item).map_or(1, |u| u.round.max(1));
        let mut ctx = self.context(Some(s), item);
        ctx["output"] = output.clone();
        match self.wf.templates.render(&repeat.until, &ctx, "repeat.until") {
            Err(f) => Round::Fail(template_error(def, &f)),
            Ok(v) if truthy(&v) => Round::Done,
            Ok(_) if round >= repeat.max => Round::Fail(ActionError::new(
                "exhausted",
                format!("step `{}`: `repeat.until` still did not hold after {round} rounds (its `max`)", def.id),
            )),
            Ok(_) => {
                let every = match &repeat.every_from {
                    Some(t) => match self.duration_from(t, s, item, "repeat.every") {
                        Ok(ms) => ms,
                        Err(e) => return Round::Fail(e),
                    },
                    None => repeat.every_ms,
                };
                Round::Again { due: at.saturating_add(every) }
            }
        }
    }
}
