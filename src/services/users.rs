//! Users: accounts and the verification of their email address.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    #[schemars(regex(pattern = "^[^@\\s]+@[^@\\s]+$"))]
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct User {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub verified: bool,
    /// The token the verification email carries.
    pub verification_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserRef {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteUser {
    /// The account to delete; or give `key`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The idempotency key of the `create` call (`{{step.key}}` in a
    /// compensate): found even when its answer was lost; nothing to delete
    /// when it created no account.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyUser {
    pub user_id: String,
    /// When given, it must be the token the user was sent.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Deleted {
    /// None: the call named by `key` created no account.
    pub user_id: Option<String>,
    /// False when there was no such user (deleting twice is harmless).
    pub deleted: bool,
}

crate::service! {
    /// User accounts.
    trait Users, fn operations, service "users" {
        /// Creates an unverified account; fails with email_taken when the address has one.
        create(CreateUser) -> User, undone_by("users.delete"), ["email_taken"];
        /// Deletes an account; deleting twice is harmless.
        delete(DeleteUser) -> Deleted, Effect::Irreversible, [];
        /// Marks the account's email address as verified.
        verify(VerifyUser) -> User, Effect::Irreversible, ["not_found", "invalid_token"];
        /// Reads an account.
        get(UserRef) -> User, Effect::Read, ["not_found"];
    }
}
