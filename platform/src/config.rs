//! Typed configuration, read once at start-up from defaults overlaid with environment variables.
//!
//! Every variable is listed in the README's configuration table; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A value that must not appear in logs (a connection string may carry a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything a helpdesk process needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HELPDESK_ADDR`: where the HTTP API listens.
    pub addr: SocketAddr,
    /// `DATABASE_URL`: the Postgres database holding the event store.
    pub database_url: Secret,
    /// `NATS_URL`: the NATS server with JetStream.
    pub nats_url: String,
    /// `HELPDESK_NATS_PREFIX`: prefix of every stream, consumer and subject we create.
    pub nats_prefix: String,
    /// `HELPDESK_DATA_DIR`: where embedded state (search index) lives.
    pub data_dir: PathBuf,
    /// `HELPDESK_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `HELPDESK_IDEMPOTENCY_TTL_HOURS`: how long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// `HELPDESK_DB_MAX_CONNECTIONS`: size of the Postgres pool.
    pub db_max_connections: u32,
    /// `HELPDESK_MAX_IN_FLIGHT`: API requests handled at once; one more is answered
    /// `503 overloaded` with `Retry-After` instead of queueing.
    pub max_in_flight: usize,
    /// How tokens are verified and what agents see.
    pub auth: AuthConfig,
    /// `HELPDESK_RELAY_POLL_MS`: how often the relay looks for events written by other
    /// processes (it wakes at once for this process's own writes).
    pub relay_poll_interval: Duration,
    /// `HELPDESK_RELAY`: `on` (default) runs the relay inside `helpdesk up`; `off` leaves it to
    /// a separate `helpdesk relay` process.
    pub relay_in_process: bool,
    /// `HELPDESK_RELAY_THREAD`: `on` runs that relay on a thread of its own, with its own
    /// connections; `off` (default) as a task among the API's (docs/adr/0004-relay.md).
    pub relay_thread: bool,
    /// `HELPDESK_PROJECTION_MAX_DELIVER`: failed deliveries before an event is dead-lettered.
    pub projection_max_deliver: i64,
    /// `HELPDESK_SLA_BATCH_WAIT_MS`: how long a lane of the `sla` projection holds its first
    /// event for more to join its transaction (zero: it hands over what it holds at once).
    pub sla_batch_wait: Duration,
    /// Where ticket search lives.
    pub search: SearchConfig,
    /// `HELPDESK_AUDIT_ANCHOR_SECS`: how often `helpdesk up` appends an audit anchor (a hash
    /// over every chain head) when events were added since the last one.
    pub audit_anchor_interval: Duration,
    /// `SO_SNDBUF` of every accepted connection, in bytes (`HELPDESK_SOCKET_SEND_BUFFER`);
    /// unset leaves the kernel's autotuning. A bound caps the kernel memory a client that does
    /// not read can hold, and lets the real-time feed notice such a client sooner.
    pub socket_send_buffer: Option<u32>,
    /// Whether `up` runs the projectors (`HELPDESK_PROJECTORS=on|off`, default on); off gives an
    /// API-only instance (commands, reads, real-time) beside one that projects.
    pub projectors: bool,
    /// The real-time feed.
    pub realtime: RealtimeConfig,
}

/// Real-time feed settings.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Most events a reconnecting client may have missed and still be replayed
    /// (`HELPDESK_REALTIME_REPLAY_LIMIT`, default 10,000); further behind gets `resync`.
    pub replay_limit: usize,
    /// Messages queued for one client before it counts as not reading
    /// (`HELPDESK_REALTIME_BUFFER`, default 1,024).
    pub buffer: usize,
    /// Ticket summaries the feed keeps to fold events without a read
    /// (`HELPDESK_REALTIME_SUMMARY_CACHE`, default 50,000).
    pub summary_cache: usize,
}

/// Search settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// `SEARCH_INDEX_DIR`: the embedded tantivy index (default `$HELPDESK_DATA_DIR/search`).
    pub index_dir: PathBuf,
    /// `ELASTICSEARCH_URL`: when set, search uses this Elasticsearch cluster instead.
    pub elasticsearch_url: Option<String>,
    /// `HELPDESK_SEARCH_COMMIT_MS`: the longest a change waits before the index commits it.
    pub commit_interval: Duration,
}

/// Token verification settings.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `HELPDESK_JWT_SECRET`: HS256 shared secret (development and tests).
    pub jwt_secret: Option<Secret>,
    /// `HELPDESK_JWKS_URL`: a JWKS document (`https://…`, `file:///…` or a path) for RS256/ES256.
    pub jwks_url: Option<String>,
    /// `HELPDESK_JWT_ISSUER`: required `iss`, when set.
    pub issuer: Option<String>,
    /// `HELPDESK_JWT_AUDIENCE`: required `aud`, when set.
    pub audience: Option<String>,
    /// `HELPDESK_AGENT_SCOPE`: `all` (default) or `groups`.
    pub agent_scope: helpdesk_domain::AgentScope,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// Why its value is unusable.
    pub reason: String,
}

/// Default values, in one place.
pub mod defaults {
    /// Default for `HELPDESK_ADDR`.
    pub const ADDR: &str = "127.0.0.1:8080";
    /// Default for `DATABASE_URL`.
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/helpdesk";
    /// Default for `NATS_URL`.
    pub const NATS_URL: &str = "nats://127.0.0.1:4222";
    /// Default for `HELPDESK_NATS_PREFIX`.
    pub const NATS_PREFIX: &str = "helpdesk";
    /// Default for `HELPDESK_DATA_DIR`.
    pub const DATA_DIR: &str = "./data";
    /// Default for `HELPDESK_IDEMPOTENCY_TTL_HOURS`.
    pub const IDEMPOTENCY_TTL_HOURS: u64 = 24;
    /// Default for `HELPDESK_RELAY_POLL_MS`.
    pub const RELAY_POLL_MS: u64 = 500;
    /// Default for `HELPDESK_DB_MAX_CONNECTIONS`.
    pub const DB_MAX_CONNECTIONS: u32 = 20;
    /// Default for `HELPDESK_MAX_IN_FLIGHT`.
    pub const MAX_IN_FLIGHT: usize = 256;
    /// Default for `HELPDESK_SLA_BATCH_WAIT_MS`.
    pub const SLA_BATCH_WAIT_MS: u64 = 20;
    /// The most `HELPDESK_SLA_BATCH_WAIT_MS` may be.
    pub const SLA_BATCH_WAIT_MS_MAX: u64 = 1000;
    /// Default for `HELPDESK_AUDIT_ANCHOR_SECS` (hourly).
    pub const AUDIT_ANCHOR_SECS: u64 = 3600;
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str, default: &str| {
            lookup(name)
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let addr = get("HELPDESK_ADDR", defaults::ADDR);
        let addr = addr.parse().map_err(|_| ConfigError {
            variable: "HELPDESK_ADDR",
            reason: format!("{addr:?} is not host:port (for example 127.0.0.1:8080)"),
        })?;
        let prefix = get("HELPDESK_NATS_PREFIX", defaults::NATS_PREFIX);
        validate_prefix(&prefix)?;
        let log_format = match get("HELPDESK_LOG_FORMAT", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError {
                    variable: "HELPDESK_LOG_FORMAT",
                    reason: format!("{other:?} is neither \"pretty\" nor \"json\""),
                });
            }
        };
        let ttl_hours = parse_number(
            "HELPDESK_IDEMPOTENCY_TTL_HOURS",
            &get(
                "HELPDESK_IDEMPOTENCY_TTL_HOURS",
                &defaults::IDEMPOTENCY_TTL_HOURS.to_string(),
            ),
        )?;
        let db_max_connections = parse_number(
            "HELPDESK_DB_MAX_CONNECTIONS",
            &get(
                "HELPDESK_DB_MAX_CONNECTIONS",
                &defaults::DB_MAX_CONNECTIONS.to_string(),
            ),
        )?;
        let max_in_flight = usize::try_from(parse_number(
            "HELPDESK_MAX_IN_FLIGHT",
            &get(
                "HELPDESK_MAX_IN_FLIGHT",
                &defaults::MAX_IN_FLIGHT.to_string(),
            ),
        )?)
        .unwrap_or(usize::MAX);
        let optional = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let agent_scope = match get("HELPDESK_AGENT_SCOPE", "all").as_str() {
            "all" => helpdesk_domain::AgentScope::All,
            "groups" => helpdesk_domain::AgentScope::Groups,
            other => {
                return Err(ConfigError {
                    variable: "HELPDESK_AGENT_SCOPE",
                    reason: format!("{other:?} is neither \"all\" nor \"groups\""),
                });
            }
        };
        let auth = AuthConfig {
            jwt_secret: optional("HELPDESK_JWT_SECRET").map(Secret::new),
            jwks_url: optional("HELPDESK_JWKS_URL"),
            issuer: optional("HELPDESK_JWT_ISSUER"),
            audience: optional("HELPDESK_JWT_AUDIENCE"),
            agent_scope,
        };
        let relay_poll_ms = parse_number(
            "HELPDESK_RELAY_POLL_MS",
            &get(
                "HELPDESK_RELAY_POLL_MS",
                &defaults::RELAY_POLL_MS.to_string(),
            ),
        )?;
        let relay_in_process = on_off("HELPDESK_RELAY", &get("HELPDESK_RELAY", "on"))?;
        let relay_thread = on_off(
            "HELPDESK_RELAY_THREAD",
            &get("HELPDESK_RELAY_THREAD", "off"),
        )?;
        let projection_max_deliver = parse_number(
            "HELPDESK_PROJECTION_MAX_DELIVER",
            &get("HELPDESK_PROJECTION_MAX_DELIVER", "5"),
        )?;
        let sla_batch_wait_ms = parse_whole_number(
            "HELPDESK_SLA_BATCH_WAIT_MS",
            &get(
                "HELPDESK_SLA_BATCH_WAIT_MS",
                &defaults::SLA_BATCH_WAIT_MS.to_string(),
            ),
        )?;
        // Held events are not acknowledged: a wait near the 30 s ack wait would have them
        // redelivered while they wait.
        if sla_batch_wait_ms > defaults::SLA_BATCH_WAIT_MS_MAX {
            return Err(ConfigError {
                variable: "HELPDESK_SLA_BATCH_WAIT_MS",
                reason: format!(
                    "{sla_batch_wait_ms} is more than {} (milliseconds)",
                    defaults::SLA_BATCH_WAIT_MS_MAX
                ),
            });
        }
        let data_dir = PathBuf::from(get("HELPDESK_DATA_DIR", defaults::DATA_DIR));
        let search = SearchConfig {
            index_dir: lookup("SEARCH_INDEX_DIR")
                .filter(|dir| !dir.is_empty())
                .map_or_else(|| data_dir.join("search"), PathBuf::from),
            elasticsearch_url: lookup("ELASTICSEARCH_URL").filter(|url| !url.is_empty()),
            commit_interval: Duration::from_millis(parse_number(
                "HELPDESK_SEARCH_COMMIT_MS",
                &get("HELPDESK_SEARCH_COMMIT_MS", "200"),
            )?),
        };
        let audit_anchor_secs = parse_number(
            "HELPDESK_AUDIT_ANCHOR_SECS",
            &get(
                "HELPDESK_AUDIT_ANCHOR_SECS",
                &defaults::AUDIT_ANCHOR_SECS.to_string(),
            ),
        )?;
        let realtime = RealtimeConfig {
            replay_limit: usize::try_from(parse_number(
                "HELPDESK_REALTIME_REPLAY_LIMIT",
                &get("HELPDESK_REALTIME_REPLAY_LIMIT", "10000"),
            )?)
            .unwrap_or(usize::MAX),
            buffer: usize::try_from(parse_number(
                "HELPDESK_REALTIME_BUFFER",
                &get("HELPDESK_REALTIME_BUFFER", "1024"),
            )?)
            .unwrap_or(usize::MAX),
            summary_cache: usize::try_from(parse_number(
                "HELPDESK_REALTIME_SUMMARY_CACHE",
                &get("HELPDESK_REALTIME_SUMMARY_CACHE", "50000"),
            )?)
            .unwrap_or(usize::MAX),
        };
        let socket_send_buffer = match optional("HELPDESK_SOCKET_SEND_BUFFER") {
            None => None,
            Some(raw) => Some(
                u32::try_from(parse_number("HELPDESK_SOCKET_SEND_BUFFER", &raw)?).map_err(
                    |_| ConfigError {
                        variable: "HELPDESK_SOCKET_SEND_BUFFER",
                        reason: "too large".into(),
                    },
                )?,
            ),
        };
        let projectors = on_off("HELPDESK_PROJECTORS", &get("HELPDESK_PROJECTORS", "on"))?;
        Ok(Config {
            socket_send_buffer,
            realtime,
            projectors,
            search,
            audit_anchor_interval: Duration::from_secs(audit_anchor_secs),
            projection_max_deliver: i64::try_from(projection_max_deliver).unwrap_or(i64::MAX),
            sla_batch_wait: Duration::from_millis(sla_batch_wait_ms),
            relay_in_process,
            relay_thread,
            relay_poll_interval: Duration::from_millis(relay_poll_ms),
            auth,
            addr,
            database_url: Secret::new(get("DATABASE_URL", defaults::DATABASE_URL)),
            nats_url: get("NATS_URL", defaults::NATS_URL),
            nats_prefix: prefix,
            data_dir,
            log_format,
            idempotency_ttl: Duration::from_secs(ttl_hours * 3600),
            db_max_connections: pool_size(db_max_connections)?,
            max_in_flight,
        })
    }
}

/// A pool needs two connections: work that holds a transaction open also reads on a second
/// connection (the SLA rebuild reads the next chunk's events while it writes the current one).
fn pool_size(value: u64) -> Result<u32, ConfigError> {
    let error = |reason: &str| ConfigError {
        variable: "HELPDESK_DB_MAX_CONNECTIONS",
        reason: reason.into(),
    };
    match u32::try_from(value) {
        Ok(size) if size >= 2 => Ok(size),
        Ok(_) => Err(error("must be at least 2")),
        Err(_) => Err(error("too large")),
    }
}

fn on_off(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ConfigError {
            variable,
            reason: format!("{other:?} is neither \"on\" nor \"off\""),
        }),
    }
}

fn parse_number(variable: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError {
            variable,
            reason: format!("{value:?} is not a positive whole number"),
        }),
    }
}

/// Like [`parse_number`], with zero allowed (for a setting that zero turns off).
fn parse_whole_number(variable: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.parse::<u64>().map_err(|_| ConfigError {
        variable,
        reason: format!("{value:?} is not a whole number (0 or more)"),
    })
}

/// The prefix becomes part of stream names (upper-cased: `HELPDESK_EVENTS`) and subjects, where NATS allows
/// only a restricted alphabet.
fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let valid = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError {
            variable: "HELPDESK_NATS_PREFIX",
            reason: format!("{prefix:?} must be letters, digits, '_' or '-'"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn it_uses_the_documented_defaults() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url.expose(), defaults::DATABASE_URL);
        assert_eq!(config.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(config.nats_prefix, "helpdesk");
        assert_eq!(config.idempotency_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.audit_anchor_interval, Duration::from_secs(3600));
        assert_eq!(config.realtime.summary_cache, 50_000);
        assert_eq!(config.max_in_flight, 256);
        assert_eq!(config.sla_batch_wait, Duration::from_millis(20));
    }

    #[test]
    fn the_sla_lanes_wait_as_long_as_told_or_not_at_all() {
        let config = config_from(&[("HELPDESK_SLA_BATCH_WAIT_MS", "0")]).unwrap();
        assert_eq!(config.sla_batch_wait, Duration::ZERO);
        let config = config_from(&[("HELPDESK_SLA_BATCH_WAIT_MS", "50")]).unwrap();
        assert_eq!(config.sla_batch_wait, Duration::from_millis(50));
        let error = config_from(&[("HELPDESK_SLA_BATCH_WAIT_MS", "-1")]).unwrap_err();
        assert_eq!(error.variable, "HELPDESK_SLA_BATCH_WAIT_MS");
        assert_eq!(error.reason, "\"-1\" is not a whole number (0 or more)");
        let error = config_from(&[("HELPDESK_SLA_BATCH_WAIT_MS", "1001")]).unwrap_err();
        assert_eq!(error.reason, "1001 is more than 1000 (milliseconds)");
    }

    #[test]
    fn the_feed_keeps_as_many_summaries_as_told_and_refuses_none() {
        let config = config_from(&[("HELPDESK_REALTIME_SUMMARY_CACHE", "5000")]).unwrap();
        assert_eq!(config.realtime.summary_cache, 5000);
        let error = config_from(&[("HELPDESK_REALTIME_SUMMARY_CACHE", "0")]).unwrap_err();
        assert_eq!(error.variable, "HELPDESK_REALTIME_SUMMARY_CACHE");
    }

    #[test]
    fn it_names_the_variable_that_is_wrong() {
        let error = config_from(&[("HELPDESK_ADDR", "nowhere")]).unwrap_err();
        assert_eq!(error.variable, "HELPDESK_ADDR");
        let error = config_from(&[("HELPDESK_NATS_PREFIX", "a.b")]).unwrap_err();
        assert_eq!(error.variable, "HELPDESK_NATS_PREFIX");
    }

    #[test]
    fn the_pool_holds_at_least_two_connections() {
        let config = config_from(&[("HELPDESK_DB_MAX_CONNECTIONS", "2")]).unwrap();
        assert_eq!(config.db_max_connections, 2);
        let error = config_from(&[("HELPDESK_DB_MAX_CONNECTIONS", "1")]).unwrap_err();
        assert_eq!(error.variable, "HELPDESK_DB_MAX_CONNECTIONS");
        assert_eq!(error.reason, "must be at least 2");
    }

    #[test]
    fn it_never_prints_the_database_url() {
        let config = config_from(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
