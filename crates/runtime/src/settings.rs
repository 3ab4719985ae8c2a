//! Settings: embedded defaults → optional TOML file (`CAPI_CONFIG`, or the
//! path given) → environment variables `CAPI_<SECTION>__<KEY>` (e.g.
//! `CAPI_DATABASE__URL`, `CAPI_HTTP__PORT`). A missing or invalid value
//! fails at start with the key's path.

use bus::AmqpSettings;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::{Deserialize, de::DeserializeOwned};
use std::path::Path;

/// Sections every service has.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:pass@host:port/db`; never printed.
    pub url: SecretString,
    pub pool_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Pretty,
    /// One JSON object per line (production).
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `info,capi_sender=debug`;
    /// `RUST_LOG` wins when set.
    pub filter: String,
}

/// Defaults shared by every service; a service adds its own on top.
pub const COMMON_DEFAULTS: &str = r#"
[database]
url = "postgres://capi@127.0.0.1:54329/capi"
pool_size = 8

[amqp]
url = "amqp://guest:guest@127.0.0.1:56729/%2f"
prefix = "capi"
prefetch = 32
channels = 1

[http]
host = "127.0.0.1"

[log]
format = "pretty"
filter = "info"
"#;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid configuration: key `{path}`: {message}")]
    Key { path: String, message: String },
}

/// Loads the common sections and the service's own part `T` (deserialized
/// from the same root; it names only its own sections). `service_defaults`
/// is TOML merged over the common defaults (it must at least set `http.port`).
pub fn load_settings<T: DeserializeOwned>(
    service_defaults: &str,
    file: Option<&Path>,
) -> Result<(CommonSettings, T), SettingsError> {
    load_from(service_defaults, file, Environment::with_prefix("CAPI"))
}

/// Loads only the part `T` (e.g. `[llm]`) from `defaults`, `CAPI_CONFIG` and
/// the environment, for tools that run no service (the `capi` CLI).
pub fn load_section<T: DeserializeOwned>(defaults: &str) -> Result<T, SettingsError> {
    let root = load_root(defaults, None, Environment::with_prefix("CAPI"))?;
    with_path(&root)
}

fn load_from<T: DeserializeOwned>(
    service_defaults: &str,
    file: Option<&Path>,
    env: Environment,
) -> Result<(CommonSettings, T), SettingsError> {
    let root = load_root(service_defaults, file, env)?;
    Ok((with_path(&root)?, with_path(&root)?))
}

fn load_root(
    service_defaults: &str,
    file: Option<&Path>,
    env: Environment,
) -> Result<serde_json::Value, SettingsError> {
    let file = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CAPI_CONFIG").map(Into::into));
    let mut builder = Config::builder()
        .add_source(File::from_str(COMMON_DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(service_defaults, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let root: serde_json::Value = builder
        .add_source(env.prefix_separator("_").separator("__").try_parsing(true))
        .build()?
        .try_deserialize()?;
    Ok(root)
}

/// Deserializes with the failing key's path in the error.
fn with_path<T: DeserializeOwned>(root: &serde_json::Value) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(root).map_err(|e| SettingsError::Key {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// "500ms", "5s", "2m", "1h" → duration.
pub fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("'{s}' does not start with a number"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        other => anyhow::bail!("'{s}': unknown unit '{other}' (ms, s, m, h)"),
    })
}

/// "1s,30s,2m" → the waits of a retry schedule (empty parts ignored); the
/// error names the configuration `key`.
pub fn parse_schedule(key: &str, value: &str) -> anyhow::Result<Vec<std::time::Duration>> {
    value
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| duration_setting(key, p))
        .collect()
}

/// A duration setting; the error names the configuration `key`.
pub fn duration_setting(key: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    use anyhow::Context;
    parse_duration(value).with_context(|| format!("invalid configuration: key `{key}`"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedules_parse_and_name_their_key() {
        use std::time::Duration;
        assert_eq!(
            super::parse_schedule("x.retry", "1s, 2m,").ok(),
            Some(vec![Duration::from_secs(1), Duration::from_secs(120)])
        );
        let err = super::parse_schedule("x.retry", "1s,soon")
            .err()
            .map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("`x.retry`")));
    }

    #[test]
    fn durations_parse_with_units() {
        use std::time::Duration;
        assert_eq!(parse_duration("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    struct Example {
        sender: SenderPart,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SenderPart {
        graph_version: String,
    }

    const DEFAULTS: &str = "[http]\nport = 8083\n[sender]\ngraph_version = \"v26.0\"\n";

    fn load(vars: &[(&str, &str)]) -> Result<(CommonSettings, Example), SettingsError> {
        let source: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load_from(
            DEFAULTS,
            None,
            Environment::with_prefix("CAPI").source(Some(source)),
        )
    }

    #[test]
    fn environment_overrides_defaults() {
        let (common, s) = load(&[
            ("CAPI_HTTP__PORT", "9999"),
            ("CAPI_SENDER__GRAPH_VERSION", "v27.0"),
        ])
        .expect("loads");
        assert_eq!(common.http.port, 9999);
        assert_eq!(s.sender.graph_version, "v27.0");
        assert_eq!(common.amqp.prefix, "capi");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load(&[("CAPI_HTTP__PORT", "eighty")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("http.port"), "{err}");
        let err = load(&[("CAPI_LOG__FORMAT", "xml")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("log.format"), "{err}");
    }

    #[test]
    fn unknown_keys_in_a_section_are_rejected() {
        let err = load(&[("CAPI_SENDER__GRAPH_VERSON", "v1")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("graph_verson"), "{err}");
        let err = load(&[("CAPI_DATABASE__POOL_SIZ", "3")])
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("database") && err.contains("pool_siz"),
            "{err}"
        );
    }
}
