//! Mail over SMTP (lettre): the idempotency key is the Message-ID, so a send
//! repeated after a crash is recognisable by the receiving side.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::client::Secret;
use crate::services::notifications::{Mail, Mailer, Sent};
use crate::services::{ActionError, Ctx, ServiceFuture};

/// How to reach the SMTP server.
#[derive(Debug, Clone)]
pub(crate) struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `none` (plain, for a relay on loopback), `starttls` or `tls`.
    pub tls: String,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

pub(crate) struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpMailer {
    pub(crate) fn new(s: &SmtpSettings) -> Result<SmtpMailer, String> {
        let from = s.from.parse().map_err(|e| format!("smtp.from `{}` is not an address: {e}", s.from))?;
        let builder = match s.tls.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| format!("smtp: cannot set up STARTTLS to {}: {e}", s.host))?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| format!("smtp: cannot set up TLS to {}: {e}", s.host))?,
            other => return Err(format!("smtp.tls is `{other}`; it must be none, starttls or tls")),
        };
        let mut builder = builder.port(s.port).timeout(Some(s.timeout));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(SmtpMailer { transport: builder.build(), from })
    }
}

fn send_error(e: &lettre::transport::smtp::Error) -> ActionError {
    if e.is_permanent() {
        ActionError::new("invalid_input", format!("the SMTP server refused the message: {e}"))
    } else if e.is_timeout() {
        ActionError::new("timeout", format!("the SMTP server did not answer in time: {e}"))
    } else {
        ActionError::new("unavailable", format!("cannot send through the SMTP server: {e}"))
    }
}

impl Mailer for SmtpMailer {
    fn deliver(&self, ctx: Ctx, mail: Mail) -> ServiceFuture<Sent> {
        let message = (|| {
            let to = mail.to.parse().map_err(|e| format!("`{}` is not an address: {e}", mail.to))?;
            Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject.clone())
                .message_id(Some(mail.message_id.clone()))
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body.clone())
                .map_err(|e| format!("the message cannot be built: {e}"))
        })();
        let transport = self.transport.clone();
        Box::pin(async move {
            let message = message.map_err(|m| ActionError::new("invalid_input", m))?;
            tokio::select! {
                sent = transport.send(message) => sent.map_err(|e| send_error(&e))?,
                _ = ctx.cancel.cancelled() => return Err(ActionError::new("cancelled", "the send was cancelled")),
            };
            Ok(Sent { message_id: mail.message_id, to: mail.to, subject: mail.subject })
        })
    }
}
