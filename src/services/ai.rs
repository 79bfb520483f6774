//! The AI assistant: token quotas by plan, and completions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaAsk {
    pub user_id: String,
    /// Tokens the request may use at most.
    #[schemars(range(min = 1))]
    pub tokens: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Quota {
    pub user_id: String,
    pub plan: String,
    pub limit: u64,
    pub used: u64,
    pub reserved: u64,
    pub remaining: u64,
    /// Whether `tokens` fit in what remains.
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct QuotaHold {
    pub reservation_id: String,
    pub user_id: String,
    pub tokens: u64,
    pub remaining: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitQuota {
    pub reservation_id: String,
    /// Tokens the completion really used; at most the reserved tokens are charged.
    pub tokens_used: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseQuota {
    /// The hold to release; or give `key`.
    #[serde(default)]
    pub reservation_id: Option<String>,
    /// The idempotency key of the `reserve_quota` call (`{{step.key}}` in a
    /// compensate): found even when its answer was lost; nothing to release
    /// when it held nothing.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct QuotaSettled {
    /// None: the call named by `key` held nothing.
    pub reservation_id: Option<String>,
    /// `committed`, `released`, or `nothing` when there was no hold.
    pub status: String,
    pub charged: u64,
    /// Tokens left in the user's quota; none when there was no hold.
    pub remaining: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prompt {
    #[schemars(length(min = 1, max = 32768))]
    pub prompt: String,
    #[serde(default = "default_max")]
    #[schemars(range(min = 1, max = 32768))]
    pub max_tokens: u64,
    #[serde(default)]
    pub model: Option<String>,
}

fn default_max() -> u64 {
    512
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Completion {
    pub text: String,
    pub tokens_used: u64,
    pub model: String,
}

crate::service! {
    /// The AI assistant.
    trait Ai, fn operations, service "ai" {
        /// Tells whether a user's plan has the tokens left.
        check_quota(QuotaAsk) -> Quota, Effect::Read, ["not_found"];
        /// Holds tokens of a user's quota for one request.
        reserve_quota(QuotaAsk) -> QuotaHold, undone_by("ai.release_quota"), ["quota_exceeded", "not_found"];
        /// Charges the tokens really used (at most those held) and frees the rest.
        commit_quota(CommitQuota) -> QuotaSettled, Effect::Irreversible, ["not_found", "conflict"];
        /// Frees held tokens; releasing twice is harmless.
        release_quota(ReleaseQuota) -> QuotaSettled, Effect::Irreversible, ["not_found"];
        /// Completes a prompt.
        complete(Prompt) -> Completion, Effect::Irreversible, ["invalid_input"];
    }
}
