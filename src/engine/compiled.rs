//! A workflow version ready to run: the checked model with every template
//! compiled, needs resolved to positions, and the content hash that names it.

use std::sync::Arc;

use serde_json::Value as Json;

use super::template::{Templates, ValueTemplate};
use crate::actions::{Registry, CHILD_ACTION};
use crate::dsl::diagnostic::FileReport;
use crate::dsl::model::{OnError, RetryPolicies, Section, Step, TriggerKind, Workflow};
use crate::validate::{check_text, Checked};

/// One step, compiled.
pub(crate) struct CompiledStep {
    pub id: String,
    pub action: String,
    pub kind: StepKind,
    pub section: Section,
    /// Positions of the steps it needs.
    pub needs: Vec<usize>,
    pub with: ValueTemplate,
    pub when: Option<ValueTemplate>,
    pub for_each: Option<ValueTemplate>,
    pub concurrency: usize,
    pub retry: RetryPolicies,
    /// Policies whose `delay` or `max_delay` come from data: by the policy's place.
    pub retry_from: Vec<RetryFrom>,
    pub timeout_ms: Option<u64>,
    /// `timeout` from data: rendered when an attempt starts (DSL.md B3).
    pub timeout_from: Option<ValueTemplate>,
    pub repeat: Option<CompiledRepeat>,
    pub on_error: OnError,
    pub compensate: Option<CompiledCompensate>,
}

impl CompiledStep {
    /// The workflow a `workflow.run` step runs, when written out (not a template).
    pub(crate) fn child_workflow(&self) -> Option<String> {
        if self.kind != StepKind::Child {
            return None;
        }
        let literal = |v: &Json| v.get("workflow").and_then(Json::as_str).map(str::to_owned);
        match &self.with {
            ValueTemplate::Literal(v) => literal(v),
            ValueTemplate::Map(fields) => fields.iter().find(|(k, _)| k == "workflow").and_then(|(_, v)| match v {
                ValueTemplate::Literal(Json::String(name)) => Some(name.clone()),
                _ => None,
            }),
            _ => None,
        }
    }
}

/// A retry policy's durations that come from data (DSL.md B3).
pub(crate) struct RetryFrom {
    pub policy: usize,
    pub delay: Option<ValueTemplate>,
    pub max_delay: Option<ValueTemplate>,
}

/// `repeat:` compiled (DSL.md B2).
pub(crate) struct CompiledRepeat {
    pub until: ValueTemplate,
    pub every_ms: u64,
    pub every_from: Option<ValueTemplate>,
    pub max: u32,
}

/// How the engine carries out an action: most are calls to the registry; the
/// engine's own are a durable timer, a wait for an event, and an outbox write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    Call,
    /// `sleep`: a timer in the journal, no task held.
    Sleep,
    /// `event.wait`: parked until its event or its timeout.
    Wait,
    /// `event.emit`: the event is written to the outbox with the step's outcome.
    Emit,
    /// `fail`: the step fails with the code and message it is given, never retried.
    Fail,
    /// `workflow.run`: a child run of another workflow, waited for without a task.
    Child,
    /// The undoing of a succeeded `workflow.run` step that has no `compensate`
    /// of its own: its child run is compensated (DSL.md B1).
    UndoChild,
}

impl StepKind {
    pub(crate) fn of(action: &str) -> StepKind {
        match action {
            "sleep" => StepKind::Sleep,
            "event.wait" => StepKind::Wait,
            "event.emit" => StepKind::Emit,
            "fail" => StepKind::Fail,
            CHILD_ACTION => StepKind::Child,
            _ => StepKind::Call,
        }
    }
}

/// How deep workflows may call each other: a top-level run's children are at
/// depth 1, theirs at 2, and a call past this fails with `too_deep`.
pub(crate) const MAX_CALL_DEPTH: u32 = 16;

pub(crate) struct CompiledCompensate {
    pub action: String,
    pub kind: StepKind,
    pub with: ValueTemplate,
    pub retry: RetryPolicies,
    pub timeout_ms: Option<u64>,
    /// Also undo the step when it failed after an attempt started.
    pub also_when_failed: bool,
}

/// A workflow version: what a run starts with and keeps to its end.
pub(crate) struct CompiledWorkflow {
    pub name: String,
    /// SHA-256 of the source text, hex.
    pub hash: String,
    pub source: String,
    pub input_schema: Option<jsonschema::Validator>,
    pub description: Option<String>,
    /// `input:` as written (for forms and the API).
    pub input_json: Option<Json>,
    pub timeout_ms: Option<u64>,
    pub steps: Vec<CompiledStep>,
    pub output: Option<ValueTemplate>,
    pub templates: Templates,
    /// Secret names the templates read (`secrets.NAME`).
    pub secrets: Vec<String>,
    /// Event types whose every event starts a run (`triggers: - event: TYPE`).
    pub event_triggers: Vec<String>,
    /// `triggers: - schedule: CRON`, in file order.
    pub schedules: Vec<ScheduleTrigger>,
}

/// A `schedule` trigger: its cron text (5 fields, or 6 with seconds), time
/// zone, and the input of the runs it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleTrigger {
    pub cron: String,
    pub timezone: Option<String>,
    pub input: Json,
}

/// Why a workflow cannot run: its diagnostics.
pub(crate) struct NotRunnable(pub FileReport);

impl CompiledWorkflow {
    /// Checks and compiles a workflow's source text. Warnings do not stop it.
    pub(crate) fn compile(path: &std::path::Path, source: &str, registry: &Registry) -> Result<Arc<Self>, NotRunnable> {
        let checked = check_text(path, source.as_bytes(), registry);
        let errors = checked.has_errors();
        let Checked { report, workflow } = checked;
        let workflow = match workflow {
            Some(w) if !errors => w,
            _ => return Err(NotRunnable(report)),
        };
        let compiled = Self::from_model(&workflow, source).map_err(|message| {
            let d = crate::dsl::diagnostic::Diagnostic::new(
                crate::dsl::diagnostic::Code::TemplateSyntax,
                crate::dsl::span::Span::default(),
                message,
            );
            NotRunnable(FileReport { file: report.file.clone(), diagnostics: vec![d] })
        })?;
        Ok(Arc::new(compiled))
    }

    fn from_model(w: &Workflow, source: &str) -> Result<Self, String> {
        let mut templates = Templates::new();
        let all: Vec<&Step> = w.all_steps().collect();
        let positions: std::collections::HashMap<&str, usize> =
            all.iter().enumerate().map(|(i, s)| (s.id.value.as_str(), i)).collect();
        let position = |id: &str| positions.get(id).copied();
        let default_retry = w.defaults.retry.clone().unwrap_or_default();
        let default_timeout = w.defaults.timeout.as_ref().map(|t| t.value.millis());
        let mut steps = Vec::with_capacity(all.len());
        for s in &all {
            let retry = s.retry.clone().unwrap_or_else(|| default_retry.clone());
            let compensate = match &s.compensate {
                None if s.action.value == CHILD_ACTION => Some(CompiledCompensate::undo_child()),
                Some(c) => Some(CompiledCompensate {
                    action: c.action.value.clone(),
                    kind: StepKind::of(&c.action.value),
                    with: compile_opt(&mut templates, c.with.as_ref())?,
                    retry: c.retry.clone().unwrap_or_else(|| default_retry.clone()),
                    timeout_ms: c.timeout.as_ref().map(|t| t.value.millis()).or(default_timeout),
                    also_when_failed: c.also_when_failed,
                }),
                None => None,
            };
            steps.push(CompiledStep {
                id: s.id.value.clone(),
                action: s.action.value.clone(),
                kind: StepKind::of(&s.action.value),
                section: s.section,
                needs: s.needs.ids().into_iter().filter_map(position).collect(),
                with: compile_opt(&mut templates, s.with.as_ref())?,
                when: s.when.as_ref().map(|n| templates.compile(n)).transpose()?,
                for_each: s.for_each.as_ref().map(|n| templates.compile(n)).transpose()?,
                concurrency: s.concurrency.as_ref().map_or(1, |c| c.value.max(1) as usize),
                retry_from: retry_from(&mut templates, &retry)?,
                retry,
                timeout_ms: s.timeout.as_ref().map(|t| t.value.millis()).or(default_timeout),
                timeout_from: s.timeout_from.as_ref().map(|n| templates.compile(n)).transpose()?,
                repeat: match &s.repeat {
                    Some(r) => Some(CompiledRepeat {
                        until: templates.compile(&r.until)?,
                        every_ms: r.every.as_ref().map_or(0, |e| e.value.millis()),
                        every_from: r.every_from.as_ref().map(|n| templates.compile(n)).transpose()?,
                        max: r.max.value,
                    }),
                    None => None,
                },
                on_error: s.on_error.clone(),
                compensate,
            });
        }
        let input_schema = match &w.input {
            Some(schema) => Some(jsonschema::draft202012::new(&schema.to_json()).map_err(|e| e.to_string())?),
            None => None,
        };
        let output = w.output.as_ref().map(|n| templates.compile(n)).transpose()?;
        let secrets = templates.secrets_read();
        Ok(CompiledWorkflow {
            input_json: w.input.as_ref().map(|n| n.to_json()),
            description: w.description.clone(),
            name: w.name.value.clone(),
            hash: crate::base::ids::content_hash(source),
            source: source.to_owned(),
            input_schema,
            timeout_ms: w.timeout.as_ref().map(|t| t.value.millis()),
            output,
            steps,
            templates,
            secrets,
            event_triggers: w
                .triggers
                .iter()
                .filter_map(|t| match &t.kind {
                    Some(TriggerKind::Event(kind)) => Some(kind.value.clone()),
                    _ => None,
                })
                .collect(),
            schedules: w
                .triggers
                .iter()
                .filter_map(|t| match &t.kind {
                    Some(TriggerKind::Schedule(cron)) => Some(ScheduleTrigger {
                        cron: cron.value.clone(),
                        timezone: t.timezone.as_ref().map(|z| z.value.clone()),
                        input: t.input.as_ref().map_or_else(|| Json::Object(Default::default()), |n| n.to_json()),
                    }),
                    _ => None,
                })
                .collect(),
        })
    }

    /// A run input with the defaults of `input:` filled in (DSL.md A5): what
    /// the run starts with and its record shows.
    pub(crate) fn with_defaults(&self, mut input: Json) -> Json {
        if let Some(schema) = &self.input_json {
            super::defaults::fill(schema, &mut input);
        }
        input
    }

    /// A run input's mismatches with `input:` (at most five), as the `schema` error a run fails with.
    pub(crate) fn check_input(&self, input: &Json) -> Option<crate::journal::entry::ActionError> {
        let validator = self.input_schema.as_ref()?;
        let problems: Vec<String> = validator
            .iter_errors(input)
            .take(5)
            .map(|e| {
                let path = e.instance_path().as_str().to_owned();
                let at = if path.is_empty() { "the input".to_owned() } else { format!("`{path}`") };
                format!("{at}: {e}")
            })
            .collect();
        (!problems.is_empty()).then(|| {
            let message = format!("the run input does not match `input:`: {}", problems.join("; "));
            crate::journal::entry::ActionError::new("schema", message)
        })
    }

    /// The values of the secrets it reads, from the environment (registered
    /// for masking): what a run of it is given, once, when it starts or is replayed.
    pub(crate) fn secret_values(&self) -> Arc<std::collections::BTreeMap<String, String>> {
        Arc::new(crate::base::secrets::values(&self.secrets))
    }

    /// "`w` has no step `x`; did you mean `y`?": what to say of a step id it lacks.
    pub(crate) fn no_step(&self, id: &str) -> String {
        let ids = self.steps.iter().map(|s| s.id.as_str());
        let hint = crate::base::suggest::hint(id, ids);
        format!("`{}` has no step `{id}`{hint}", self.name)
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

impl CompiledCompensate {
    /// What undoes a `workflow.run` step that says nothing of it: its child run, compensated.
    fn undo_child() -> CompiledCompensate {
        CompiledCompensate {
            action: CHILD_ACTION.to_owned(),
            kind: StepKind::UndoChild,
            with: ValueTemplate::Literal(Json::Null),
            retry: RetryPolicies::default(),
            timeout_ms: None,
            also_when_failed: false,
        }
    }
}

fn retry_from(templates: &mut Templates, retry: &RetryPolicies) -> Result<Vec<RetryFrom>, String> {
    let mut out = Vec::new();
    for (policy, r) in retry.iter().enumerate() {
        if r.delay_from.is_some() || r.max_delay_from.is_some() {
            out.push(RetryFrom {
                policy,
                delay: r.delay_from.as_ref().map(|n| templates.compile(n)).transpose()?,
                max_delay: r.max_delay_from.as_ref().map(|n| templates.compile(n)).transpose()?,
            });
        }
    }
    Ok(out)
}

fn compile_opt(templates: &mut Templates, node: Option<&crate::dsl::node::Node>) -> Result<ValueTemplate, String> {
    node.map_or(Ok(ValueTemplate::Literal(Json::Object(Default::default()))), |n| templates.compile(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_a_workflow_reads_are_those_its_templates_read_not_its_comments() {
        let yaml = "name: w
# rotate secrets.OLD_KEY next year
description: uses secrets.NOT_READ in words only
steps:
  - id: call
    action: mock
    with: { output: { key: '{{secrets.API_KEY}}', both: 'Bearer {{secrets.TOKEN}} {{secrets.API_KEY}}' } }
";
        let wf =
            match CompiledWorkflow::compile(std::path::Path::new("w.yaml"), yaml, crate::config::registry::builtin()) {
                Ok(wf) => wf,
                Err(e) => panic!("{:?}", e.0.diagnostics),
            };
        assert_eq!(wf.secrets, ["API_KEY", "TOKEN"]);
    }
}
