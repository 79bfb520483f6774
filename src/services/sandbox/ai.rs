//! The sandbox AI assistant: quotas by plan, and a deterministic completion.
//! Invariant: an account's `used + reserved` never exceeds its plan's limit.

use serde::{Deserialize, Serialize};

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::ai::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Account {
    pub user_id: String,
    pub plan: String,
    pub limit: u64,
    #[serde(default)]
    pub used: u64,
    #[serde(default)]
    pub reserved: u64,
}

impl Account {
    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used + self.reserved)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hold {
    reservation_id: String,
    user_id: String,
    tokens: u64,
    status: String,
    charged: u64,
}

pub(super) struct SandboxAi(pub Ledger);

fn account(tx: &Tx, user: &str) -> TxResult<Account> {
    tx.require(&format!("account/{user}"), "AI account for user", user)
}

fn save(tx: &Tx, a: &Account) -> TxResult<()> {
    tx.put(&format!("account/{}", a.user_id), a)
}

fn hold(tx: &Tx, id: &str) -> TxResult<Hold> {
    tx.require(&format!("hold/{id}"), "quota reservation", id)
}

/// Ends a hold: charges `charge` tokens of it and frees the rest.
fn settle(tx: &Tx, mut h: Hold, status: &str, charge: u64) -> TxResult<QuotaSettled> {
    let mut a = account(tx, &h.user_id)?;
    if h.status == "held" {
        a.reserved = a.reserved.saturating_sub(h.tokens);
        a.used += charge;
        h.status = status.into();
        h.charged = charge;
        save(tx, &a)?;
        tx.put(&format!("hold/{}", h.reservation_id), &h)?;
    }
    Ok(QuotaSettled {
        reservation_id: Some(h.reservation_id),
        status: h.status,
        charged: h.charged,
        remaining: Some(a.remaining()),
    })
}

impl Ai for SandboxAi {
    fn check_quota(&self, _: Ctx, request: QuotaAsk) -> ServiceFuture<Quota> {
        ready(self.0.transact(|tx| {
            let a = account(tx, &request.user_id)?;
            Ok(Quota {
                allowed: a.remaining() >= request.tokens,
                remaining: a.remaining(),
                user_id: a.user_id,
                plan: a.plan,
                limit: a.limit,
                used: a.used,
                reserved: a.reserved,
            })
        }))
    }

    fn reserve_quota(&self, ctx: Ctx, request: QuotaAsk) -> ServiceFuture<QuotaHold> {
        ready(self.0.once("reserve_quota", &ctx, |tx| {
            let mut a = account(tx, &request.user_id)?;
            if a.remaining() < request.tokens {
                return abort(ActionError::new(
                    "quota_exceeded",
                    format!("{} tokens asked, {} left on the {} plan", request.tokens, a.remaining(), a.plan),
                ));
            }
            a.reserved += request.tokens;
            save(tx, &a)?;
            let id = tx.next_id("hold", "quota")?;
            let h = Hold {
                reservation_id: id.clone(),
                user_id: a.user_id.clone(),
                tokens: request.tokens,
                status: "held".into(),
                charged: 0,
            };
            tx.put(&format!("hold/{id}"), &h)?;
            Ok(QuotaHold {
                reservation_id: id,
                user_id: a.user_id.clone(),
                tokens: request.tokens,
                remaining: a.remaining(),
            })
        }))
    }

    fn commit_quota(&self, ctx: Ctx, request: CommitQuota) -> ServiceFuture<QuotaSettled> {
        ready(self.0.once("commit_quota", &ctx, |tx| {
            let h = hold(tx, &request.reservation_id)?;
            if h.status == "released" {
                return abort(ActionError::new(
                    "conflict",
                    format!("quota reservation `{}` was released", h.reservation_id),
                ));
            }
            let charge = request.tokens_used.min(h.tokens);
            settle(tx, h, "committed", charge)
        }))
    }

    fn release_quota(&self, ctx: Ctx, request: ReleaseQuota) -> ServiceFuture<QuotaSettled> {
        ready(self.0.once("release_quota", &ctx, |tx| {
            let id = request.reservation_id.as_deref();
            let found =
                tx.undo_target(id, request.key.as_deref(), &["reserve_quota"], |h: QuotaHold| h.reservation_id)?;
            let Some(reservation_id) = found else {
                return Ok(QuotaSettled {
                    reservation_id: None,
                    status: "nothing".into(),
                    charged: 0,
                    remaining: None,
                });
            };
            settle(tx, hold(tx, &reservation_id)?, "released", 0)
        }))
    }

    fn complete(&self, _: Ctx, request: Prompt) -> ServiceFuture<Completion> {
        let words: Vec<&str> = request.prompt.split_whitespace().collect();
        let topic = words.iter().rev().take(6).rev().copied().collect::<Vec<_>>().join(" ");
        let text = format!("Sandbox answer about \"{topic}\": this is a deterministic reply for testing.");
        let tokens = (words.len() + text.split_whitespace().count()) as u64;
        ready(Ok(Completion {
            text,
            tokens_used: tokens.min(request.max_tokens),
            model: request.model.unwrap_or_else(|| "sandbox-1".into()),
        }))
    }
}

pub(super) fn seed(ledger: &Ledger, accounts: &[Account]) -> Result<(), ActionError> {
    ledger.transact(|tx| accounts.iter().try_for_each(|a| save(tx, a)))
}
