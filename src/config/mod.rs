//! `sagaflow.toml`: which backend each service uses, base URLs, SMTP, the
//! HTTP allow-list and timeouts. Secrets only by reference: `*_secret = "NAME"`
//! reads the environment variable `SAGAFLOW_SECRET_NAME`. No file means every
//! service on its sandbox. A wrong file gets an error with file, line and key.

mod backends;
pub(crate) mod registry;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

pub(crate) use backends::Backends;

/// The file looked for in the working directory when `--config` is not given.
pub(crate) const DEFAULT_FILE: &str = "sagaflow.toml";

/// The largest config file (and notification templates file) read.
pub(crate) const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The service names a `[services.NAME]` table may have.
pub(crate) const SERVICE_NAMES: &[&str] =
    &["inventory", "payments", "orders", "users", "courses", "vendor", "erp", "catalog", "ai", "notify", "email"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub services: BTreeMap<Spanned<String>, ServiceConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// HTTP subscribers to events (`[[webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// How long finished runs stay in the store (`[retention]`).
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Where spans go (`[telemetry]`).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Where runs are kept (`[store]`), unless the command line says.
    #[serde(default)]
    pub store: StoreConfig,
    /// Where the file was read from (none: defaults).
    #[serde(skip)]
    pub source: Option<std::sync::Arc<crate::dsl::span::SourceFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// `sled:DIR` or `postgres://USER@HOST:PORT/DB`.
    pub url: Option<Spanned<String>>,
    /// The database password, by reference: `SAGAFLOW_SECRET_<NAME>`.
    pub password_secret: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetryConfig {
    /// An OTLP/HTTP collector (`http://127.0.0.1:4318`): runs, steps,
    /// attempts and compensations go there as spans.
    pub otlp_endpoint: Option<Spanned<String>>,
    /// The `service.name` of the spans (default `sagaflow`).
    pub service_name: Option<String>,
}

/// Where spans go, once checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Telemetry {
    pub endpoint: String,
    pub service_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionConfig {
    /// A finished run leaves the store this long after it finished (`"30d"`);
    /// none: runs stay until `sagaflow store prune` removes them.
    pub finished: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SandboxConfig {
    /// A seed file replacing the shipped one.
    pub seed: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceConfig {
    /// `sandbox` (default) or `http`.
    #[serde(default = "sandbox")]
    pub backend: Spanned<String>,
    pub base_url: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Sent as `Authorization: Bearer <SAGAFLOW_SECRET_NAME>`.
    pub bearer_secret: Option<Spanned<String>>,
    /// Plain extra headers (no secrets here: use `bearer_secret`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn sandbox() -> Spanned<String> {
    Spanned::new(0..0, "sandbox".to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// Hosts `http.request` may call: `host`, `host:port` or `*.domain`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Per-request timeout by default (30s).
    pub timeout: Option<Spanned<String>>,
    /// The largest answer read, in bytes (default 1 MiB).
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpConfig {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default = "starttls")]
    pub tls: Spanned<String>,
    pub from: Spanned<String>,
    pub username: Option<String>,
    pub password_secret: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

fn smtp_port() -> u16 {
    587
}

fn starttls() -> Spanned<String> {
    Spanned::new(0..0, "starttls".to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotificationsConfig {
    /// A templates file adding to the shipped `notifications/templates.yaml`
    /// (a template of the same name replaces the shipped one).
    pub templates: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    /// Event types: `order.placed`, `order.*`, `*` (the default: all).
    #[serde(default)]
    pub events: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Attempts before the delivery is a dead letter (default 20, about 2 hours).
    pub max_attempts: Option<u32>,
    /// Sent as `Authorization: Bearer <SAGAFLOW_SECRET_NAME>`.
    pub bearer_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A config that cannot be used: the message names the file, line and key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl From<crate::services::sandbox::SandboxError> for ConfigError {
    fn from(e: crate::services::sandbox::SandboxError) -> Self {
        ConfigError(e.to_string())
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// `--config FILE`, else `./sagaflow.toml` if it exists, else the defaults.
    pub(crate) fn find(given: Option<&Path>) -> Result<Config, ConfigError> {
        match given {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_FILE).is_file() => Config::load(Path::new(DEFAULT_FILE)),
            None => Ok(Config::default()),
        }
    }

    /// Reads and parses a config file.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::base::file::read_regular_text(path, MAX_CONFIG_FILE_BYTES)
            .map_err(|e| ConfigError(format!("cannot read the config {}: {e}", path.display())))?;
        Config::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let source = crate::dsl::span::SourceFile::new(path, text.to_owned());
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| source.position(s.start)).unwrap_or_else(|| source.position(0));
            ConfigError(format!("{at}: {}", e.message().trim()))
        })?;
        config.source = Some(source);
        config.check()?;
        Ok(config)
    }

    /// What serde cannot see: service names, backends and the keys they need.
    fn check(&self) -> Result<(), ConfigError> {
        self.check_webhooks()?;
        for (name, service) in &self.services {
            if !SERVICE_NAMES.contains(&name.get_ref().as_str()) {
                let hint = crate::base::suggest::hint(name.get_ref(), SERVICE_NAMES.iter().copied());
                return Err(self.error(name.span(), &format!("there is no service `{}`{hint}", name.get_ref())));
            }
            match service.backend.get_ref().as_str() {
                "sandbox" => {}
                "http" if service.base_url.is_none() => {
                    return Err(self.error(
                        service.backend.span(),
                        &format!("services.{}: the http backend needs `base_url`", name.get_ref()),
                    ))
                }
                "http" => {}
                other => {
                    return Err(self.error(
                        service.backend.span(),
                        &format!("services.{}.backend is `{other}`; it must be `sandbox` or `http`", name.get_ref()),
                    ))
                }
            }
        }
        Ok(())
    }

    fn check_webhooks(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for hook in &self.webhooks {
            let name = hook.name.get_ref();
            let fine = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !fine {
                return Err(self.error(hook.name.span(), "a webhook name is letters, digits, `_` and `-`"));
            }
            if !seen.insert(name.clone()) {
                return Err(self.error(hook.name.span(), &format!("two webhooks are named `{name}`")));
            }
            let url = hook.url.get_ref();
            if reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                return Err(self
                    .error(hook.url.span(), &format!("webhook `{name}`: `{url}` is not an http:// or https:// URL")));
            }
            for pattern in &hook.events {
                let p = pattern.get_ref();
                let star = p.find('*');
                if p.is_empty() || star.is_some_and(|at| at != p.len() - 1) {
                    return Err(self.error(
                        pattern.span(),
                        &format!("webhook `{name}`: `{p}` is not an event type, `prefix.*` or `*`"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// An error at a span of the file.
    /// A path the config names: relative ones are from the config file's folder
    /// (as written, when the config is the defaults).
    pub(crate) fn path(&self, given: &str) -> std::path::PathBuf {
        let given = Path::new(given);
        match self.source.as_ref().and_then(|s| s.path.parent()) {
            Some(dir) if given.is_relative() => dir.join(given),
            _ => given.to_owned(),
        }
    }

    pub(crate) fn error(&self, span: std::ops::Range<usize>, message: &str) -> ConfigError {
        match &self.source {
            Some(source) => ConfigError(format!("{}: {message}", source.position(span.start))),
            None => ConfigError(message.to_owned()),
        }
    }

    /// A secret named in the config, from `SAGAFLOW_SECRET_<NAME>`.
    pub(crate) fn secret(&self, name: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let var = format!("{}{}", crate::base::secrets::SECRET_PREFIX, name.get_ref());
        crate::base::secrets::read(name.get_ref()).ok_or_else(|| {
            self.error(name.span(), &format!("{key} names the secret `{}`, but {var} is not set", name.get_ref()))
        })
    }

    /// How long finished runs stay, if `[retention] finished` says (at least a second).
    pub(crate) fn retention(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        let Some(value) = &self.retention.finished else { return Ok(None) };
        let period = self.duration(&self.retention.finished, "retention.finished", 0)?;
        if period < std::time::Duration::from_secs(1) {
            let message = format!("retention.finished `{}`: keep finished runs at least 1s", value.get_ref());
            return Err(self.error(value.span(), &message));
        }
        Ok(Some(period))
    }

    /// Where spans go, if `[telemetry] otlp_endpoint` says.
    pub(crate) fn telemetry(&self) -> Result<Option<Telemetry>, ConfigError> {
        let Some(endpoint) = &self.telemetry.otlp_endpoint else { return Ok(None) };
        crate::adapters::otlp::traces_url(endpoint.get_ref())
            .map_err(|e| self.error(endpoint.span(), &format!("telemetry.otlp_endpoint: {e}")))?;
        let service_name = self.telemetry.service_name.clone().unwrap_or_else(|| "sagaflow".to_owned());
        Ok(Some(Telemetry { endpoint: endpoint.get_ref().clone(), service_name }))
    }

    /// A duration value of the config.
    pub(crate) fn duration(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: u64,
    ) -> Result<std::time::Duration, ConfigError> {
        match value {
            None => Ok(std::time::Duration::from_millis(default)),
            Some(v) => v
                .get_ref()
                .parse::<crate::dsl::duration::Duration>()
                .map(|d| d.std())
                .map_err(|e| self.error(v.span(), &format!("{key} `{}`: {e}", v.get_ref()))),
        }
    }
}

#[cfg(test)]
mod tests;
