//! A run's status: what the run index, the run record and the API say of it.

use serde::{Deserialize, Serialize};

/// Where a run stands. Serialised as its snake_case name, as the store, the
/// run record of DSL.md and the API have always written it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RunStatus {
    /// Steps are running (or about to).
    Running,
    /// Nothing runs: the run waits for a timer (a retry's backoff, a sleep) or an event.
    Waiting,
    /// A failure rolls it back: its compensations run.
    Compensating,
    /// A step failed with `on_error: pause`: the run waits for an operator to
    /// retry, skip or abort it (DSL.md C1). Not final.
    Paused,
    Succeeded,
    /// It failed with nothing to undo.
    Failed,
    /// It failed, and every compensation succeeded.
    Compensated,
    /// It failed, and a compensation failed too: a person must look.
    CompensationFailed,
}

impl RunStatus {
    /// Every status; the last four are the ends.
    pub(crate) const ALL: [RunStatus; 8] = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Compensating,
        RunStatus::Paused,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Compensated,
        RunStatus::CompensationFailed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Compensating => "compensating",
            RunStatus::Paused => "paused",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Compensated => "compensated",
            RunStatus::CompensationFailed => "compensation_failed",
        }
    }

    /// Whether a run of this status goes on by itself no more: it ended, or
    /// it is paused until an operator acts.
    pub(crate) fn is_settled(self) -> bool {
        self.is_finished() || self == RunStatus::Paused
    }

    /// Whether a run of this status has ended.
    pub(crate) fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Compensated | RunStatus::CompensationFailed
        )
    }

    /// Statuses written as a comma-separated list (`failed,compensated`).
    pub(crate) fn parse_list(text: &str) -> Result<Vec<RunStatus>, String> {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
    }

    /// Every status's name, for messages and "did you mean".
    pub(crate) fn names() -> impl Iterator<Item = &'static str> {
        RunStatus::ALL.into_iter().map(RunStatus::as_str)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<RunStatus, String> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            let hint =
                crate::base::suggest::did_you_mean(text, RunStatus::names()).map(|h| format!("; {h}")).unwrap_or_else(
                    || format!("; a status is one of {}", RunStatus::names().collect::<Vec<_>>().join(", ")),
                );
            format!("`{text}` is not a run status{hint}")
        })
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for RunStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::{RunStatus, StepStatus, UnitStatus};

    /// Statuses line up in tables: `{:12}` pads them as it pads text.
    #[test]
    fn statuses_pad_to_a_width_as_text_does() {
        assert_eq!(format!("{:12}|", StepStatus::Failed), "failed      |");
        assert_eq!(format!("{:>8}|", UnitStatus::Running), " running|");
        assert_eq!(format!("{:10}|", RunStatus::Waiting), "waiting   |");
    }

    #[test]
    fn each_status_reads_back_from_its_name_as_json_writes_it() {
        for status in RunStatus::ALL {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
        }
        let e = "succeded".parse::<RunStatus>().unwrap_err();
        assert_eq!(e, "`succeded` is not a run status; did you mean `succeeded`?");
    }
}

/// Names a status enum's variants once, for `as_str`, `Display` and
/// comparisons with a plain string; serialised as that name.
macro_rules! named_status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

named_status! {
    /// Where a step stands, as the run record and templates (`steps.X.status`) say it.
    StepStatus {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        /// It succeeded, and its compensation ran and succeeded.
        Compensated => "compensated",
        /// Its compensation failed for good: a person must look.
        CompensationFailed => "compensation_failed",
        /// An `on_failure` step of a run that did not fail, or an `on_failure`
        /// or `finally` step of a run rejected at its input: it never ran and
        /// never will (DSL.md C1).
        NotRun => "not_run",
    }
}

named_status! {
    /// Where one attempt-bearing unit (a step, an item of a `for_each`, or a
    /// compensation) stands.
    UnitStatus {
        Pending => "pending",
        Running => "running",
        /// Its last attempt failed; another is due after a backoff.
        Retrying => "retrying",
        /// A `repeat` round ended without its condition; the next is due later.
        Repeating => "repeating",
        /// It failed with `on_error: pause`: an operator retries, skips or aborts it.
        Paused => "paused",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}
