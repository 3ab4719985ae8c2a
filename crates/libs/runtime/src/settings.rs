//! Settings: embedded defaults → optional TOML file (`CAPI_CONFIG`, or the
//! path given) → environment variables `CAPI_<SECTION>__<KEY>` (e.g.
//! `CAPI_DATABASE__URL`, `CAPI_HTTP__PORT`). A missing or invalid value
//! fails at start with the key's path.

use bus::AmqpSettings;
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use std::path::Path;

/// Sections every service has.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub secrets: SecretsSettings,
    /// What loading noticed, for the service to report once it can.
    #[serde(skip)]
    pub notes: LoadNotes,
}

/// What [`load_settings`] noticed besides the values: deprecated keys that
/// were read under their new name, and `CAPI_*` variables for sections this
/// service does not read. Returned with the settings, not kept anywhere else.
#[derive(Debug, Clone, Default)]
pub struct LoadNotes {
    /// One warning per deprecated key that was set (logged at start).
    pub deprecations: Vec<String>,
    /// Variables set for sections this service has no use for
    /// (`--check-config` refuses them).
    pub unread_variables: Vec<String>,
    /// Sections of the file or the environment this service does not read:
    /// another service's (one file may serve them all) or a name no
    /// service reads. Logged at start; a name one letter or two away from a
    /// section this service reads is refused instead (a misspelling).
    pub unread_sections: Vec<String>,
}

/// The keys stored credentials are encrypted with (`storage::secrets`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    /// Base64 of 32 random bytes (`capi secrets generate-key`); required.
    pub key: SecretString,
    /// Earlier keys, comma-separated: still opened, never used to seal
    /// (`capi secrets rotate` re-seals their values under `key`).
    pub previous_keys: SecretString,
}

impl SecretsSettings {
    /// The keyring, or why the keys are unusable (never showing a key).
    pub fn keyring(&self) -> Result<storage::secrets::Keyring, storage::secrets::KeyError> {
        storage::secrets::Keyring::from_settings(&self.key, &self.previous_keys)
    }
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
    /// HTTP worker threads (webhook-gateway takes 4: bursts of webhooks).
    pub workers: usize,
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
workers = 2

[log]
format = "pretty"
filter = "info"

[secrets]
key = ""
previous_keys = ""
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

/// [`load_settings`] with the defaults in layers, each merged over the one
/// before: the service's own, then those of a library that reads keys of
/// the same sections (e.g. `dashboard_link::DEFAULTS`).
pub fn load_settings_layered<T: DeserializeOwned>(
    defaults: &[&str],
    file: Option<&Path>,
) -> Result<(CommonSettings, T), SettingsError> {
    load_layers(defaults, file, Environment::with_prefix("CAPI"))
}

/// Loads only the part `T` (e.g. `[llm]`) from `defaults`, `CAPI_CONFIG` and
/// the environment, for tools that run no service (the `capi` CLI). A
/// deprecated key is read under its new name; the CLI logs nothing, so its
/// warning is not shown here (the services show it).
pub fn load_section<T: DeserializeOwned>(defaults: &str) -> Result<T, SettingsError> {
    let (root, _deprecations) = load_root(&[defaults], None, Environment::with_prefix("CAPI"))?;
    refuse_misspelled_sections(&root, &ignored_by::<T>(&root))?;
    with_path(&root)
}

fn load_from<T: DeserializeOwned>(
    service_defaults: &str,
    file: Option<&Path>,
    env: Environment,
) -> Result<(CommonSettings, T), SettingsError> {
    load_layers(&[service_defaults], file, env)
}

fn load_layers<T: DeserializeOwned>(
    defaults: &[&str],
    file: Option<&Path>,
    env: Environment,
) -> Result<(CommonSettings, T), SettingsError> {
    let (root, deprecations) = load_root(defaults, file, env)?;
    let unread = intersect(ignored_by::<CommonSettings>(&root), &ignored_by::<T>(&root));
    refuse_misspelled_sections(&root, &unread)?;
    let mut loaded: (CommonSettings, T) = (with_path(&root)?, with_path(&root)?);
    // sslmode / sslrootcert (and the CA file itself) checked before start,
    // so `--check-config` catches a URL that could never connect.
    storage::PgTarget::parse(loaded.0.database.url.expose_secret()).map_err(|e| {
        SettingsError::Key {
            path: "database.url".into(),
            message: e.to_string(),
        }
    })?;
    let vars = std::env::vars().map(|(name, _)| name);
    loaded.0.notes = LoadNotes {
        deprecations,
        unread_variables: unread_variables(vars, &unread),
        unread_sections: unread,
    };
    Ok(loaded)
}

/// The top-level sections of `root` that `T` does not read. The settings
/// types are each service's declaration of its sections: no list of names
/// is kept beside them.
fn ignored_by<T: DeserializeOwned>(root: &serde_json::Value) -> Vec<String> {
    let mut ignored = Vec::new();
    let _ = serde_ignored::deserialize::<_, _, T>(root, |p| ignored.push(p.to_string()));
    ignored.retain(|path| root.get(path).is_some_and(serde_json::Value::is_object));
    ignored
}

fn intersect(mut a: Vec<String>, b: &[String]) -> Vec<String> {
    a.retain(|x| b.contains(x));
    a
}

/// An unread section whose name is a slip of one the reader reads
/// (`mtea` for `meta`, `qualificaton` for `qualification`) is refused:
/// the reader would otherwise run on its defaults without a word. The
/// slip allowed is one edit (a transposition counts as one) for names of
/// up to four letters, two for longer ones; no two sections of the
/// services are that close (a test in the pipeline tests loads one file
/// holding every service's sections into every service).
fn refuse_misspelled_sections(
    root: &serde_json::Value,
    unread: &[String],
) -> Result<(), SettingsError> {
    let Some(top) = root.as_object() else {
        return Ok(());
    };
    let read: Vec<&String> = top
        .iter()
        .filter(|(name, value)| value.is_object() && !unread.contains(name))
        .map(|(name, _)| name)
        .collect();
    for name in unread {
        let slip = read.iter().find(|own| {
            let allowed = if own.len() <= 4 { 1 } else { 2 };
            strsim::osa_distance(name, own) <= allowed
        });
        if let Some(own) = slip {
            return Err(SettingsError::Key {
                path: name.clone(),
                message: format!("unknown section (did you mean `{own}`?)"),
            });
        }
    }
    Ok(())
}

/// The `CAPI_<SECTION>__<KEY>` variables among `vars` whose section is in `unread`.
fn unread_variables(vars: impl Iterator<Item = String>, unread: &[String]) -> Vec<String> {
    let mut found: Vec<String> = vars
        .filter(|name| {
            name.strip_prefix("CAPI_")
                .and_then(|rest| rest.split_once("__"))
                .is_some_and(|(section, _)| unread.contains(&section.to_lowercase()))
        })
        .collect();
    found.sort();
    found
}

/// `SERVICE --check-config`: load the settings as at start (every value
/// parsed, unknown keys and sections refused), then stop.
pub fn check_requested() -> bool {
    std::env::args().skip(1).any(|a| a == "--check-config")
}

/// The verdict of `--check-config` after the settings loaded: an error
/// names each `CAPI_*` variable the service would not read (a setting meant
/// for another service, or a misplaced one); else one line on stdout.
pub fn config_check(service: &str, common: &CommonSettings) -> anyhow::Result<()> {
    let unread = &common.notes.unread_variables;
    if unread.is_empty() {
        match common.notes.unread_sections.as_slice() {
            [] => println!("{service}: configuration is valid"),
            others => println!(
                "{service}: configuration is valid (sections it does not read: {})",
                others.join(", ")
            ),
        }
        return Ok(());
    }
    anyhow::bail!(
        "invalid configuration: {} set but not read by {service} (a section it has no use for)",
        unread.join(", ")
    )
}

/// The merged settings tree, and a warning per deprecated key it held.
fn load_root(
    defaults: &[&str],
    file: Option<&Path>,
    env: Environment,
) -> Result<(serde_json::Value, Vec<String>), SettingsError> {
    let file = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CAPI_CONFIG").map(Into::into));
    let mut builder =
        Config::builder().add_source(File::from_str(COMMON_DEFAULTS, FileFormat::Toml));
    for layer in defaults {
        builder = builder.add_source(File::from_str(layer, FileFormat::Toml));
    }
    if let Some(path) = &file {
        builder = builder.add_source(
            File::from(path.as_path())
                .format(FileFormat::Toml)
                .required(true),
        );
    }
    let mut root: serde_json::Value = builder
        .add_source(env.prefix_separator("_").separator("__").try_parsing(true))
        .build()?
        .try_deserialize()?;
    if let Some(path) = &file {
        let own: serde_json::Value = Config::builder()
            .add_source(File::from(path.as_path()).format(FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        reject_loose_keys(&own)?;
    }
    let deprecations = rename_deprecated(&mut root);
    Ok((root, deprecations))
}

/// A file's top level holds only sections: a key outside any is a mistake.
fn reject_loose_keys(file: &serde_json::Value) -> Result<(), SettingsError> {
    let loose = file
        .as_object()
        .and_then(|top| top.iter().find(|(_, value)| !value.is_object()));
    match loose {
        Some((name, _)) => Err(SettingsError::Key {
            path: name.clone(),
            message: "a setting outside any section (write it under `[section]`)".into(),
        }),
        None => Ok(()),
    }
}

/// Settings that were numbers of a unit and are now humane durations:
/// (section, old key, new key, the old number's unit). The old keys are
/// still read, with a warning, for one release.
const RENAMED_DURATIONS: &[(&str, &str, &str, &str)] = &[
    ("meta", "timeout_ms", "timeout", "ms"),
    ("meta", "linger_ms", "linger", "ms"),
    ("meta", "max_linger_ms", "max_linger", "ms"),
    ("meta", "lease_secs", "lease", "s"),
    ("chatbot", "buffer_delay_ms", "buffer_delay", "ms"),
    ("bot", "evolution_timeout_ms", "evolution_timeout", "ms"),
    ("llm", "timeout_ms", "timeout", "ms"),
];

/// Settings that moved to another section: (old section, old key, new
/// section, new key). Where the Graph API is became one `[meta]` for every
/// service (`meta_graph`). The old keys are still read, with a warning, for
/// one release; the new key wins when both are set.
const MOVED_KEYS: &[(&str, &str, &str, &str)] = &[
    ("reports", "graph_url", "meta", "graph_base_url"),
    ("reports", "graph_version", "meta", "graph_version"),
    ("bot", "cloud_api_base_url", "meta", "graph_base_url"),
    ("bot", "cloud_api_version", "meta", "graph_version"),
];

/// A deprecated key that was set overrides its new key's default (the
/// defaults only ever name new keys, so an old key was set on purpose).
/// Returns a warning per key renamed.
fn rename_deprecated(root: &mut serde_json::Value) -> Vec<String> {
    let mut notes = Vec::new();
    for (section, old, new_section, new) in MOVED_KEYS {
        let Some(value) = root
            .get_mut(*section)
            .and_then(|v| v.as_object_mut())
            .and_then(|t| t.remove(*old))
        else {
            continue;
        };
        let note = format!(
            "setting `{section}.{old}` is deprecated and will be removed in the next release: \
             use `{new_section}.{new}` (read as that now, unless it is set too)"
        );
        if let Some(top) = root.as_object_mut() {
            let target = top
                .entry((*new_section).to_owned())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(t) = target.as_object_mut() {
                t.entry((*new).to_owned()).or_insert(value);
            }
        }
        notes.push(note);
    }
    for (section, old, new, unit) in RENAMED_DURATIONS {
        let Some(table) = root.get_mut(*section).and_then(|v| v.as_object_mut()) else {
            continue;
        };
        let Some(value) = table.remove(*old) else {
            continue;
        };
        let number = match &value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let humane = format!("{number}{unit}");
        let note = format!(
            "setting `{section}.{old}` is deprecated and will be removed in the next release: \
             use `{section}.{new} = \"{humane}\"` (read as that now)"
        );
        table.insert((*new).to_owned(), serde_json::Value::String(humane));
        notes.push(note);
    }
    notes
}

/// Deserializes with the failing key's path in the error.
fn with_path<T: DeserializeOwned>(root: &serde_json::Value) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(root).map_err(|e| SettingsError::Key {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_and_schedules_are_typed_and_a_bad_one_names_its_key() {
        #[derive(Debug, Deserialize)]
        struct Own {
            reports: X,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct X {
            #[serde(deserialize_with = "domain::duration::deserialize")]
            wait: std::time::Duration,
            #[serde(deserialize_with = "domain::duration::deserialize_schedule")]
            retry: Vec<std::time::Duration>,
        }
        let load = |vars: &[(&str, &str)]| {
            let source: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            super::load_from::<Own>(
                "[http]\nport = 1\n[reports]\nwait = \"250ms\"\nretry = \"1s, 2m,\"\n",
                None,
                config::Environment::with_prefix("CAPI").source(Some(source)),
            )
        };
        let (_, own) = load(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(own.reports.wait, std::time::Duration::from_millis(250));
        assert_eq!(
            own.reports.retry,
            [
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(120)
            ]
        );
        let err = load(&[("CAPI_REPORTS__RETRY", "1s,soon")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`reports.retry`") && err.contains("soon"),
            "{err}"
        );
        let err = load(&[("CAPI_REPORTS__WAIT", "5w")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`reports.wait`") && err.contains("unknown unit"),
            "{err}"
        );
    }

    #[test]
    fn variables_of_sections_no_part_reads_are_found() {
        let root = serde_json::json!({
            "database": {"url": "postgres://x", "pool_size": 1},
            "amqp": {"url": "amqp://x", "prefix": "p", "prefetch": 1, "channels": 1},
            "http": {"host": "h", "port": 1, "workers": 1},
            "log": {"format": "json", "filter": "info"},
            "meta": {"graph_version": "v1"},
            "llm": {"base_url": "u"}
        });
        let unread = intersect(
            ignored_by::<CommonSettings>(&root),
            &ignored_by::<Example>(&root),
        );
        assert_eq!(unread, vec!["llm".to_owned()]);
        let vars = [
            "CAPI_LLM__BASE_URL",
            "CAPI_META__GRAPH_VERSION",
            "CAPI_CONFIG",
            "HOME",
        ];
        assert_eq!(
            unread_variables(vars.iter().map(|v| v.to_string()), &unread),
            vec!["CAPI_LLM__BASE_URL".to_owned()]
        );
    }

    #[test]
    fn graph_settings_moved_to_meta_are_still_read_and_the_new_key_wins() {
        let load_moved = |vars: &[(&str, &str)]| {
            let source: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            load_from::<Example>(
                "[http]\nport = 8083\n",
                None,
                Environment::with_prefix("CAPI").source(Some(source)),
            )
        };
        let (common, s) = load_moved(&[("CAPI_BOT__CLOUD_API_VERSION", "v25.0")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.meta.graph_version, "v25.0");
        assert!(
            common.notes.deprecations.iter().any(
                |n| n.contains("`bot.cloud_api_version`") && n.contains("`meta.graph_version`")
            )
        );
        let (_, s) = load_moved(&[
            ("CAPI_REPORTS__GRAPH_VERSION", "v24.0"),
            ("CAPI_META__GRAPH_VERSION", "v27.0"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.meta.graph_version, "v27.0", "the new key wins");
    }

    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    struct Example {
        meta: MetaPart,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MetaPart {
        graph_version: String,
    }

    const DEFAULTS: &str = "[http]\nport = 8083\n[meta]\ngraph_version = \"v20.0\"\n";

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
            ("CAPI_META__GRAPH_VERSION", "v27.0"),
        ])
        .expect("loads");
        assert_eq!(common.http.port, 9999);
        assert_eq!(s.meta.graph_version, "v27.0");
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
    fn a_database_url_whose_tls_cannot_work_is_refused_naming_the_setting() {
        let err = load(&[(
            "CAPI_DATABASE__URL",
            "postgres://capi:hunter2@db/capi?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )])
        .expect_err("must fail")
        .to_string();
        assert!(
            err.starts_with(
                "invalid configuration: key `database.url`: sslrootcert /nonexistent/ca.pem"
            ),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = load(&[("CAPI_DATABASE__URL", "postgres://db/capi?sslmode=verify")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("sslmode=\"verify\" is not one of"), "{err}");
        assert!(load(&[("CAPI_DATABASE__URL", "postgres://db/capi?sslmode=require")]).is_ok());
    }

    #[test]
    fn a_slip_of_a_section_read_is_refused_and_another_services_section_is_noted() {
        let err = load(&[("CAPI_MTEA__GRAPH_VERSION", "v1")])
            .expect_err("must fail")
            .to_string();
        assert_eq!(
            err,
            "invalid configuration: key `mtea`: unknown section (did you mean `meta`?)"
        );
        let err = load(&[("CAPI_DATABSE__POOL_SIZE", "3")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("did you mean `database`?"), "{err}");
        // A shared file or environment may carry every service's sections:
        // read by none of this service's parts, they are noted, not refused.
        let (common, _) = load(&[("CAPI_LLM__MODEL", "m"), ("CAPI_CONFIG_DIR", "/x")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(common.notes.unread_sections, vec!["llm".to_owned()]);
        let dir = std::env::temp_dir().join(format!("capi-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("capi.toml");
        let from_file = |text: &str| {
            std::fs::write(&path, text).expect("write");
            load_from::<Example>(DEFAULTS, Some(&path), Environment::with_prefix("CAPI_NONE"))
                .map(|(common, _)| common.notes.unread_sections)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            from_file("[meta]\ngraph_version = \"v1\"\n[qualification]\nmax_wait = \"1m\"\n"),
            Ok(vec!["qualification".to_owned()])
        );
        assert_eq!(
            from_file("[mtea]\ngraph_version = \"v1\"\n"),
            Err("invalid configuration: key `mtea`: unknown section (did you mean `meta`?)".into())
        );
        assert_eq!(
            from_file("graph_version = \"v1\"\n"),
            Err(
                "invalid configuration: key `graph_version`: a setting outside any section \
                 (write it under `[section]`)"
                    .into()
            )
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_old_millisecond_key_is_read_as_its_humane_key_with_a_warning() {
        #[derive(Debug, Deserialize)]
        struct Own {
            meta: Meta,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Meta {
            #[serde(deserialize_with = "domain::duration::deserialize")]
            timeout: std::time::Duration,
        }
        let source: HashMap<String, String> =
            [("CAPI_META__TIMEOUT_MS".to_owned(), "2500".to_owned())].into();
        let (common, own) = load_from::<Own>(
            "[http]\nport = 1\n[meta]\ntimeout = \"10s\"\n",
            None,
            Environment::with_prefix("CAPI").source(Some(source)),
        )
        .expect("loads");
        assert_eq!(own.meta.timeout, std::time::Duration::from_millis(2500));
        let notes = common.notes.deprecations;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("`meta.timeout_ms` is deprecated")
                    && n.contains("`meta.timeout = \"2500ms\"`")),
            "{notes:?}"
        );
    }

    #[test]
    fn unknown_keys_in_a_section_are_rejected() {
        let err = load(&[("CAPI_META__GRAPH_VERSON", "v1")])
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
