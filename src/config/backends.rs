//! From a config to the registry a process runs with: each service on its
//! backend, mail over SMTP or into the sandbox mailbox, `http.request` with its
//! allow-list.

use std::sync::Arc;

use super::{Config, ConfigError, ServiceConfig};
use crate::actions::Registry;
use crate::adapters::client::{Client, Secret};
use crate::adapters::http_request::{AllowList, HttpRequest};
use crate::adapters::service_http::HttpService;
use crate::adapters::smtp::{SmtpMailer, SmtpSettings};
use crate::adapters::webhook::Webhook;
use crate::services::notifications::{Emailer, MailTemplates, Mailer, Notifier};
use crate::services::remote::Remote;
use crate::services::sandbox::{Sandbox, Seed};
use crate::services::Services;
use crate::store::sled::SledStore;

/// The largest answer a service or `http.request` may give, unless configured.
pub(super) const DEFAULT_MAX_RESPONSE: usize = 1024 * 1024;

/// Attempts at a webhook delivery unless configured: with the relay's backoff
/// (1 s doubling to 10 min), about two hours.
pub(super) const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 20;

/// What a process runs with.
pub(crate) struct Backends {
    pub registry: Arc<Registry>,
    /// Who takes emitted events over HTTP.
    pub webhooks: Vec<Arc<Webhook>>,
    /// Where spans go (`[telemetry]`), if anywhere.
    pub telemetry: Option<super::Telemetry>,
}

impl Backends {
    /// Binds every action to its backend. The registry lives as long as the process.
    /// With a store, the sandbox lives in its database and its writes are
    /// flushed with the store's commits.
    pub(crate) fn build(config: &Config, store: Option<&SledStore>) -> Result<Backends, ConfigError> {
        Backends::with_seed(config, store, config.seed()?)
    }

    /// As [`Backends::build`], with a sandbox seeded from `seed` where it is new.
    pub(crate) fn with_seed(config: &Config, store: Option<&SledStore>, seed: Seed) -> Result<Backends, ConfigError> {
        let sandbox = match store {
            Some(store) => Sandbox::open(store.db(), &seed, true),
            None => Sandbox::temporary(&seed),
        }
        .map_err(ConfigError::from)?;
        if let Some(store) = store {
            let flushed = sandbox.clone();
            store.before_commit(Box::new(move || Ok(flushed.flush()?)));
        }
        Backends::on(config, sandbox)
    }

    /// Binds every action to its backend, the sandbox services to `sandbox`.
    pub(crate) fn on(config: &Config, sandbox: Sandbox) -> Result<Backends, ConfigError> {
        let client = Client::new().map_err(ConfigError)?;
        let services = config.services(&sandbox, &client)?;
        let http = HttpRequest {
            client: Some(client.clone()),
            allow: AllowList(config.http.allow.clone()),
            timeout: config.duration(&config.http.timeout, "http.timeout", 30_000)?,
            max_response_bytes: config.http.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE),
        };
        let registry = crate::config::registry::with_services(&services, http)
            .map_err(|e| ConfigError(format!("action `{}` has a broken schema: {}", e.action, e.message)))?;
        let webhooks = config.webhooks(&client)?;
        Ok(Backends { registry: Arc::new(registry), webhooks, telemetry: config.telemetry()? })
    }
}

impl Config {
    pub(crate) fn seed(&self) -> Result<Seed, ConfigError> {
        match &self.sandbox.seed {
            None => Ok(Seed::builtin()),
            Some(path) => Seed::load(&self.path(path.get_ref())).map_err(|e| self.error(path.span(), &e)),
        }
    }

    /// The templates `notify.send` sends from: the shipped ones, and those of
    /// the configured file besides (a name in both: the file's).
    pub(crate) fn templates(&self) -> Result<MailTemplates, ConfigError> {
        match &self.notifications.templates {
            None => Ok(MailTemplates::builtin()),
            Some(path) => {
                let p = self.path(path.get_ref());
                let text = crate::base::file::read_regular_text(&p, crate::config::MAX_CONFIG_FILE_BYTES)
                    .map_err(|e| self.error(path.span(), &format!("cannot read {}: {e}", p.display())))?;
                MailTemplates::with_builtin(&p, &text).map_err(|e| self.error(path.span(), &e))
            }
        }
    }

    fn webhooks(&self, client: &Client) -> Result<Vec<Arc<Webhook>>, ConfigError> {
        let mut webhooks = Vec::new();
        for hook in &self.webhooks {
            let name = hook.name.get_ref();
            let headers =
                self.headers(&hook.headers, hook.bearer_secret.as_ref(), &format!("webhook `{name}` bearer_secret"))?;
            let events = match hook.events.is_empty() {
                true => vec!["*".to_owned()],
                false => hook.events.iter().map(|e| e.get_ref().clone()).collect(),
            };
            webhooks.push(Arc::new(Webhook {
                name: name.clone(),
                url: hook.url.get_ref().clone(),
                events,
                headers,
                timeout: self.duration(&hook.timeout, &format!("webhook `{name}` timeout"), 10_000)?,
                max_attempts: hook.max_attempts.unwrap_or(DEFAULT_WEBHOOK_ATTEMPTS),
                client: client.clone(),
            }));
        }
        Ok(webhooks)
    }

    /// The headers a request carries: the plain ones, and `Authorization: Bearer`
    /// from the named secret (`what` says where it is asked for, in errors).
    fn headers(
        &self,
        plain: &std::collections::BTreeMap<String, String>,
        bearer_secret: Option<&toml::Spanned<String>>,
        what: &str,
    ) -> Result<Vec<(String, Secret)>, ConfigError> {
        let mut headers: Vec<(String, Secret)> =
            plain.iter().map(|(k, v)| (k.clone(), Secret::plain(v.clone()))).collect();
        if let Some(secret) = bearer_secret {
            let token = self.secret(secret, what)?;
            headers.push(("authorization".into(), Secret::hidden(format!("Bearer {token}"))));
        }
        Ok(headers)
    }

    fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|(k, _)| k.get_ref() == name).map(|(_, v)| v)
    }

    /// The http backend of a service, when the config chooses it.
    fn http_service(&self, name: &str, client: &Client) -> Result<Option<Remote>, ConfigError> {
        let Some(s) = self.service(name).filter(|s| s.backend.get_ref() == "http") else { return Ok(None) };
        let headers = self.headers(&s.headers, s.bearer_secret.as_ref(), &format!("services.{name}.bearer_secret"))?;
        let service = HttpService {
            service: name.to_owned(),
            base_url: s.base_url.as_ref().map(|u| u.get_ref().clone()).unwrap_or_default(),
            timeout: self.duration(&s.timeout, &format!("services.{name}.timeout"), 30_000)?,
            max_response_bytes: self.http.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE),
            headers,
            client: Some(client.clone()),
        };
        Ok(Some(Remote(Arc::new(service))))
    }

    fn mailer(&self, sandbox: &Sandbox) -> Result<Arc<dyn Mailer>, ConfigError> {
        let Some(smtp) = &self.smtp else { return sandbox.mailbox().map_err(ConfigError::from) };
        let password = match &smtp.password_secret {
            Some(name) => Some(Secret::hidden(self.secret(name, "smtp.password_secret")?)),
            None => None,
        };
        let settings = SmtpSettings {
            host: smtp.host.clone(),
            port: smtp.port,
            tls: smtp.tls.get_ref().clone(),
            from: smtp.from.get_ref().clone(),
            username: smtp.username.clone(),
            password,
            timeout: self.duration(&smtp.timeout, "smtp.timeout", 30_000)?,
        };
        let mailer = SmtpMailer::new(&settings).map_err(|e| self.error(smtp.tls.span(), &e))?;
        Ok(Arc::new(mailer))
    }

    /// Every service on the backend the config chooses; the sandbox otherwise.
    fn services(&self, sandbox: &Sandbox, client: &Client) -> Result<Services, ConfigError> {
        let templates = Arc::new(self.templates()?);
        let mut services = sandbox.services(templates.clone()).map_err(ConfigError::from)?;
        macro_rules! choose {
            ($($field:ident),*) => {$(
                if let Some(h) = self.http_service(stringify!($field), client)? {
                    services.$field = Arc::new(h);
                }
            )*};
        }
        choose!(inventory, payments, orders, users, courses, vendor, erp, catalog, ai);
        let mailer = self.mailer(sandbox)?;
        services.notify = match self.http_service("notify", client)? {
            Some(h) => {
                services.templates = None;
                Arc::new(h)
            }
            None => {
                services.templates = Some(templates.names().to_vec());
                Arc::new(Notifier { templates, users: services.users.clone(), mailer: mailer.clone() })
            }
        };
        services.email = match self.http_service("email", client)? {
            Some(h) => Arc::new(h),
            None => Arc::new(Emailer(mailer)),
        };
        Ok(services)
    }
}
