//! Connecting to Redis over smol (no second runtime), with the URL's password kept out of
//! every message.

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::redis_queue::args::RedisArgs;

/// A Redis server named by a URL, and how to speak of it without its password.
#[derive(Clone)]
pub struct Server {
    client: redis::Client,
    shown: String,
    password: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Server {
    /// The server of `--redis` (redis://, rediss:// for TLS, redis+unix://), trusting only
    /// `--redis-ca` when given.
    pub fn new(args: &RedisArgs) -> Result<Server, String> {
        let url = args.redis.as_str();
        let shown = redact(url);
        let password = password(url);
        let opened = match &args.redis_ca {
            None => redis::Client::open(url),
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("cannot read --redis-ca {}: {e}", ca.display()))?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(url, certificates)
            }
        };
        let client = opened.map_err(|error| {
            let error = scrub(&error.to_string(), password.as_deref());
            format!("--redis {shown}: {error}")
        })?;
        Ok(Server {
            client,
            shown,
            password,
        })
    }

    /// Opens a connection without a response timeout (a worker blocks on `XREADGROUP`).
    pub async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| self.error("cannot connect", &error))
    }

    /// A [`Fault`] for `error`: [`Fault::Lost`] when the connection is gone or the server
    /// is not ready (loading its data after a restart), worth a new connection.
    pub fn fault(&self, context: &str, error: &redis::RedisError) -> Fault {
        let message = self.error(context, error);
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || matches!(error.code(), Some("LOADING" | "NOGROUP"))
        {
            Fault::Lost(message)
        } else {
            Fault::Fatal(message)
        }
    }

    /// A message for `error`, naming the server without its password.
    pub fn error(&self, context: &str, error: &redis::RedisError) -> String {
        let error = scrub(&error.to_string(), self.password.as_deref());
        format!("redis {}: {context}: {error}", self.shown)
    }
}

/// Why a worker's Redis command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The connection is gone, or the server is restarting: connect again and retry.
    Lost(String),
    /// Anything else: the worker stops.
    Fatal(String),
}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Fault::Fatal(message)
    }
}

/// The URL's password, if it has one.
fn password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!password.is_empty()).then(|| password.to_owned())
}

/// `url` with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

/// `text` with every occurrence of `password` replaced by `***`.
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> RedisArgs {
        RedisArgs {
            redis: url.into(),
            redis_ca: None,
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("redis://user:s3cret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact("rediss://:s3cret@host"), "rediss://:***@host");
        assert_eq!(redact("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            password("redis://user:s3cret@host").as_deref(),
            Some("s3cret")
        );
        assert_eq!(password("redis://host"), None);
        assert_eq!(scrub("bad s3cret here", Some("s3cret")), "bad *** here");
        let server = Server::new(&args("redis://user:s3cret@127.0.0.1:1")).unwrap();
        assert!(!format!("{server:?}").contains("s3cret"));
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let error = Server::new(&args("http://user:s3cret@host")).unwrap_err();
        assert!(error.contains("user:***@host"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
