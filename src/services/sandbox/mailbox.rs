//! The sandbox mailbox: mail lands here instead of an SMTP server, once per Message-ID.

use super::ledger::Ledger;
use super::ready;
use crate::services::notifications::{Mail, Mailer, Sent};
use crate::services::{Ctx, ServiceFuture};

pub(super) struct Mailbox(pub Ledger);

impl Mailer for Mailbox {
    fn deliver(&self, ctx: Ctx, mail: Mail) -> ServiceFuture<Sent> {
        ready(self.0.once("deliver", &ctx, |tx| {
            let n = tx.next_number("mail")?;
            // Zero-padded, so the mailbox lists in the order mail came.
            tx.put(&format!("mail/{n:08}"), &mail)?;
            Ok(Sent { message_id: mail.message_id.clone(), to: mail.to.clone(), subject: mail.subject.clone() })
        }))
    }
}
