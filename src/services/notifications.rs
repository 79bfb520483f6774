//! Notifications: mail from named templates (`notify.send`) and plain mail
//! (`email.send`). Both hand a [`Mail`] to a [`Mailer`]: the sandbox mailbox or SMTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::errors::invalid;
use super::users::{UserRef, Users};
use super::{ActionError, Ctx, ServiceFuture};
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Notification {
    /// A user id (its address is looked up) or an email address.
    pub to: String,
    /// The name of a template (see docs/services.md).
    pub template: String,
    /// What the template shows.
    #[serde(default)]
    pub data: serde_json::Map<String, Json>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailRequest {
    #[schemars(regex(pattern = "^[^@\\s]+@[^@\\s]+$"))]
    pub to: String,
    #[schemars(length(min = 1, max = 998))]
    pub subject: String,
    #[schemars(length(max = 1048576))]
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Sent {
    /// The Message-ID: made from the idempotency key, so a retried send is recognisable.
    pub message_id: String,
    pub to: String,
    pub subject: String,
}

crate::service! {
    /// Notifications to users from named templates.
    trait Notify, fn notify_operations, service "notify" {
        /// Sends a notification from a named template to a user or address.
        send(Notification) -> Sent, Effect::Irreversible, ["unknown_template", "not_found"];
    }
}

crate::service! {
    /// Plain email.
    trait Email, fn email_operations, service "email" {
        /// Sends an email.
        send(EmailRequest) -> Sent, Effect::Irreversible, ["invalid_input"];
    }
}

/// A message ready to go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Mail {
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub template: Option<String>,
}

/// Where mail goes: the sandbox mailbox or an SMTP server.
pub(crate) trait Mailer: Send + Sync {
    /// Delivers at most once per `mail.message_id` where the backend can tell.
    fn deliver(&self, ctx: Ctx, mail: Mail) -> ServiceFuture<Sent>;
}

/// The Message-ID of a send: the idempotency key, made safe for the header.
pub(crate) fn message_id(idempotency_key: &str) -> String {
    let local: String =
        idempotency_key.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '.' }).collect();
    format!("<{local}@sagaflow>")
}

/// `email.send` over a mailer.
pub(crate) struct Emailer(pub Arc<dyn Mailer>);

impl Email for Emailer {
    fn send(&self, ctx: Ctx, request: EmailRequest) -> ServiceFuture<Sent> {
        let mail = Mail {
            message_id: message_id(&ctx.idempotency_key),
            to: request.to,
            subject: request.subject,
            body: request.body,
            template: None,
        };
        self.0.deliver(ctx, mail)
    }
}

/// A named template: a subject and a body, both handlebars.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Template {
    pub subject: String,
    pub body: String,
}

/// The templates shipped with sagaflow (`notifications/templates.yaml`).
pub(crate) const BUILTIN_TEMPLATES: &str = include_str!("../../notifications/templates.yaml");

/// Named templates, compiled once.
pub(crate) struct MailTemplates {
    registry: handlebars::Handlebars<'static>,
    names: Vec<String>,
}

impl MailTemplates {
    /// Reads templates from YAML text: `name: {subject, body}`.
    pub(crate) fn parse(path: &std::path::Path, text: &str) -> Result<MailTemplates, String> {
        MailTemplates::compile(read_templates(path, text)?, path)
    }

    /// The shipped templates, and those of a file besides (a name in both: the file's).
    pub(crate) fn with_builtin(path: &std::path::Path, text: &str) -> Result<MailTemplates, String> {
        let shipped = std::path::Path::new("notifications/templates.yaml");
        let mut all = read_templates(shipped, BUILTIN_TEMPLATES)?;
        all.extend(read_templates(path, text)?);
        MailTemplates::compile(all, path)
    }

    fn compile(all: BTreeMap<String, Template>, path: &std::path::Path) -> Result<MailTemplates, String> {
        let mut registry = handlebars::Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        for (name, t) in &all {
            for (part, text) in [("subject", &t.subject), ("body", &t.body)] {
                registry
                    .register_template_string(&format!("{name}.{part}"), text)
                    .map_err(|e| format!("{}: template `{name}` {part}: {e}", path.display()))?;
            }
        }
        Ok(MailTemplates { registry, names: all.into_keys().collect() })
    }

    pub(crate) fn builtin() -> MailTemplates {
        MailTemplates::parse(std::path::Path::new("notifications/templates.yaml"), BUILTIN_TEMPLATES)
            .unwrap_or_else(|e| panic!("the shipped templates are broken (a test checks them): {e}"))
    }

    /// The templates' names, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// (subject, body) of a template filled with `data`.
    pub(crate) fn render(&self, name: &str, data: &Json) -> Result<(String, String), ActionError> {
        if !self.names.iter().any(|n| n == name) {
            let known = self.names.join(", ");
            return Err(ActionError::new("unknown_template", format!("there is no template `{name}`; known: {known}")));
        }
        let part = |p: &str| {
            self.registry
                .render(&format!("{name}.{p}"), data)
                .map_err(|e| invalid(format!("template `{name}` {p}: {}", e.reason())))
        };
        Ok((part("subject")?, part("body")?))
    }
}

/// Templates from YAML text: `name: {subject, body}`.
fn read_templates(path: &std::path::Path, text: &str) -> Result<BTreeMap<String, Template>, String> {
    let loaded = crate::dsl::loader::load_bytes(path, text.as_bytes());
    let root = loaded.root.map_err(|d| format!("{}: {}", path.display(), d.message))?;
    serde_json::from_value(root.to_json())
        .map_err(|e| format!("{}: not a map of templates with `subject` and `body`: {e}", path.display()))
}

/// `notify.send`: a template rendered and mailed to a user.
pub(crate) struct Notifier {
    pub templates: Arc<MailTemplates>,
    pub users: Arc<dyn Users>,
    pub mailer: Arc<dyn Mailer>,
}

impl Notify for Notifier {
    fn send(&self, ctx: Ctx, request: Notification) -> ServiceFuture<Sent> {
        let data = Json::Object(request.data.clone());
        let rendered = self.templates.render(&request.template, &data);
        let users = self.users.clone();
        let mailer = self.mailer.clone();
        Box::pin(async move {
            let (subject, body) = rendered?;
            let to = if request.to.contains('@') {
                request.to
            } else {
                users.get(ctx.clone(), UserRef { user_id: request.to }).await?.email
            };
            let mail = Mail {
                message_id: message_id(&ctx.idempotency_key),
                to,
                subject,
                body,
                template: Some(request.template),
            };
            mailer.deliver(ctx, mail).await
        })
    }
}
