//! The sandbox users. Invariant: one account per email address.

use sha2::Digest;

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::users::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

pub(super) struct SandboxUsers(pub Ledger);

fn load(tx: &Tx, id: &str) -> TxResult<User> {
    tx.require(&format!("user/{id}"), "user", id)
}

fn save(tx: &Tx, u: &User) -> TxResult<()> {
    tx.put(&format!("user/{}", u.user_id), u)?;
    tx.put(&format!("email/{}", u.email.to_lowercase()), &u.user_id)
}

/// A token that cannot be guessed from the user id alone, the same on a repeat.
fn token(user_id: &str, key: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{user_id}/{key}").as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

impl Users for SandboxUsers {
    fn create(&self, ctx: Ctx, request: CreateUser) -> ServiceFuture<User> {
        ready(self.0.once("create", &ctx, |tx| {
            let email = request.email.to_lowercase();
            if let Some(owner) = tx.get::<String>(&format!("email/{email}"))? {
                return abort(ActionError::new(
                    "email_taken",
                    format!("{} already belongs to user `{owner}`", request.email),
                ));
            }
            let user_id = tx.next_id("user", "usr")?;
            let user = User {
                verification_token: token(&user_id, &ctx.idempotency_key),
                user_id,
                email: request.email.clone(),
                name: request.name.clone(),
                verified: false,
            };
            save(tx, &user)?;
            Ok(user)
        }))
    }

    fn delete(&self, ctx: Ctx, request: DeleteUser) -> ServiceFuture<Deleted> {
        ready(self.0.once("delete", &ctx, |tx| {
            let id = request.user_id.as_deref();
            let found = tx.undo_target(id, request.key.as_deref(), &["create"], |u: User| u.user_id)?;
            let Some(user_id) = found else { return Ok(Deleted { user_id: None, deleted: false }) };
            let key = format!("user/{user_id}");
            let Some(user) = tx.get::<User>(&key)? else {
                return Ok(Deleted { user_id: Some(user_id), deleted: false });
            };
            tx.remove(&key)?;
            tx.remove(&format!("email/{}", user.email.to_lowercase()))?;
            Ok(Deleted { user_id: Some(user_id), deleted: true })
        }))
    }

    fn verify(&self, ctx: Ctx, request: VerifyUser) -> ServiceFuture<User> {
        ready(self.0.once("verify", &ctx, |tx| {
            let mut user = load(tx, &request.user_id)?;
            if request.token.as_ref().is_some_and(|t| *t != user.verification_token) {
                return abort(ActionError::new("invalid_token", "the verification token does not match"));
            }
            user.verified = true;
            save(tx, &user)?;
            Ok(user)
        }))
    }

    fn get(&self, _: Ctx, request: UserRef) -> ServiceFuture<User> {
        ready(self.0.transact(|tx| load(tx, &request.user_id)))
    }
}

pub(super) fn seed(ledger: &Ledger, users: &[User]) -> Result<(), ActionError> {
    ledger.transact(|tx| users.iter().try_for_each(|u| save(tx, u)))
}
