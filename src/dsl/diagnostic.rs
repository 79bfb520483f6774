//! Diagnostics: what is wrong, where, and what to do about it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dsl::span::{SourceFile, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $name:literal, $severity:ident, $explain:literal;)*) => {
        /// Every diagnostic code, with its default severity and a one-line explanation.
        /// This table is the list of checks: `sagaflow validate --explain` prints it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            pub fn explain(self) -> &'static str {
                match self { $(Code::$variant => $explain,)* }
            }
        }
    };
}

codes! {
    Io = "io", Error, "the file could not be read";
    Internal = "internal", Error, "sagaflow failed while checking the file (a bug: please report it)";
    TooLarge = "too-large", Error, "the file is larger than a workflow file may be";
    Encoding = "encoding", Error, "the file is not UTF-8 text";
    Yaml = "yaml", Error, "the file is not valid YAML";
    YamlLimit = "yaml-limit", Error, "the YAML nests too deeply or expands too many aliases";
    DuplicateKey = "duplicate-key", Error, "a key appears twice in one mapping";
    UnknownKey = "unknown-key", Error, "a key the language does not have (a typo is never ignored)";
    MissingKey = "missing-key", Error, "a required key is missing";
    WrongType = "wrong-type", Error, "a value has the wrong type (text, number, list, mapping)";
    InvalidValue = "invalid-value", Error, "a value is out of range or not one of the allowed ones";
    InvalidName = "invalid-name", Error, "a workflow name is not of the form [a-z][a-z0-9_.-]*";
    InvalidId = "invalid-id", Error, "a step id is not of the form [a-z][a-z0-9_]*";
    InvalidDuration = "invalid-duration", Error, "a duration is not a whole number followed by ms, s, m, h or d";
    InvalidRetry = "invalid-retry", Error, "a retry policy is out of bounds or contradicts itself";
    InvalidCron = "invalid-cron", Error, "a schedule is not a 5- or 6-field cron expression";
    InvalidTrigger = "invalid-trigger", Error, "a trigger names neither or both of `schedule` and `event`";
    InvalidInputSchema = "invalid-input-schema", Error, "`input:` is not a valid JSON Schema (draft 2020-12)";
    DuplicateId = "duplicate-id", Error, "two steps share an id";
    DuplicateWorkflow = "duplicate-workflow", Error, "two files in a directory declare the same workflow name";
    UnknownStep = "unknown-step", Error, "a step id is named that no step has";
    SelfNeeds = "self-needs", Error, "a step needs itself";
    Cycle = "cycle", Error, "steps need each other in a circle, so none can start";
    UnknownAction = "unknown-action", Error, "an action that is not registered";
    UnknownWorkflow = "unknown-workflow", Error, "a `workflow.run` step names a workflow that is not in the directory";
    WorkflowCycle = "workflow-cycle", Error, "workflows call each other (or themselves) in a circle through `workflow.run`";
    InvalidWith = "invalid-with", Error, "`with` does not match the action's input schema";
    TemplateSyntax = "template-syntax", Error, "a template does not parse";
    UnknownTemplateRoot = "unknown-template-root", Error, "a template reads a name that is not in scope (input run steps item index error secrets)";
    UnknownHelper = "unknown-helper", Error, "a template calls a helper that does not exist";
    HelperArguments = "helper-arguments", Error, "a template helper is given the wrong number or kind of arguments (`add` takes numbers)";
    UnknownField = "unknown-field", Error, "a template reads a field that cannot exist (steps.X has only output and status; run has id and workflow; error has step, code and message)";
    UnknownOutputField = "unknown-output-field", Error, "a template reads a field that the step's declared output does not have (a warning where the output may carry more than it declares)";
    UnreachableStep = "unreachable-step", Error, "a template reads a step that is not sure to have finished (not among the step's needs, directly or through others)";
    ItemOutsideForEach = "item-outside-for-each", Error, "`item` or `index` used outside a `for_each` step";
    ErrorOutsideFailure = "error-outside-failure", Error, "`error` used outside `compensate` and `on_failure`";
    ForEachNotList = "for-each-not-list", Error, "`for_each` is neither a list nor a template that gives one";
    WaitWithoutTimeout = "wait-without-timeout", Warning, "an `event.wait` with no timeout may wait forever";
    WaitExceedsRunTimeout = "wait-exceeds-run-timeout", Warning, "a wait or sleep is longer than the whole run may take";
    RetryExceedsRunTimeout = "retry-exceeds-run-timeout", Warning, "a step's retry budget (attempts x timeout + waits) is longer than the whole run may take";
    NeverEqual = "never-equal", Warning, "`eq` or `ne` compares a field with a value its schema never allows";
    ContinuedCodeUnknown = "unknown-error-code", Warning, "`on_error.continue` or `retry.on` names a code the step's action never fails with";
    MaybeSkippedOutput = "maybe-skipped-output", Warning, "a template reads the output of a step that may not run, without `default`";
    ForEachWithoutConcurrency = "for-each-without-concurrency", Warning, "a `for_each` over a large list runs its items one at a time";
    ConcurrencyWithoutForEach = "concurrency-without-for-each", Warning, "`concurrency` means nothing without `for_each`";
    CompensateInOnFailure = "compensate-in-on-failure", Warning, "an `on_failure` step's `compensate` never runs";
    ConstantWhen = "constant-when", Warning, "a `when` that is not a template always gives the same answer";
    UnknownInputField = "unknown-input-field", Warning, "a template reads an input field that `input:` does not declare (an error where the object is closed: `additionalProperties: false`)";
    UncompensatedStep = "uncompensated-step", Warning, "a step that can be undone has no `compensate`, and a later failure would strand its effect";
    CompensableAfterIrreversible = "compensable-after-irreversible", Warning, "a step that can be undone runs after one that cannot (the point of no return should come last)";
}

/// A second place that explains a diagnostic ("first defined here").
#[derive(Debug, Clone)]
pub struct Related {
    pub file: Arc<SourceFile>,
    pub span: Span,
    pub label: String,
}

/// One finding: a code, a span in its file, a plain-words message and maybe help.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    /// A short label under the caret.
    pub label: Option<String>,
    /// "did you mean `x`?" or a hint of what to write instead.
    pub help: Option<String>,
    pub related: Option<Box<Related>>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            span,
            message: message.into(),
            label: None,
            help: None,
            related: None,
        }
    }

    /// The same finding, at another severity than its code's (a field of an
    /// open object is a warning where one of a closed object is an error).
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn related(mut self, related: Related) -> Self {
        self.related = Some(Box::new(related));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostics of one file.
#[derive(Debug)]
pub struct FileReport {
    pub file: Arc<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub fn path(&self) -> &PathBuf {
        &self.file.path
    }

    /// Sorts by position, errors first at the same position, and drops exact repeats.
    pub fn normalize(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (a.span.start, a.severity, a.code.as_str()).cmp(&(b.span.start, b.severity, b.code.as_str()))
        });
        self.diagnostics.dedup_by(|a, b| a.span == b.span && a.code == b.code);
    }
}

impl Diagnostic {
    /// Sets the help only when none was set before.
    pub fn help_if_none(self, help: impl Into<String>) -> Self {
        if self.help.is_some() {
            self
        } else {
            self.help(help)
        }
    }
}
