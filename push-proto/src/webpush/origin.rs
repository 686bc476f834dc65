//! [`Origin`]: the `scheme://host[:port]` of a push service, the key its requests are routed
//! and authenticated by.

use std::fmt;

use http::Uri;
use http::uri::Scheme;
use thiserror::Error;

/// Longest endpoint URL accepted, in bytes (browsers' endpoints are a few hundred).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// The origin of a push service (RFC 6454): `https://host` or `https://host:port`, host in
/// lower case, the default port 443 left out. VAPID tokens name it as their `aud`ience, and
/// the client keeps one route (connections, rate control, token) per origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

/// Why an endpoint URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Longer than [`MAX_ENDPOINT_LEN`].
    #[error("longer than {MAX_ENDPOINT_LEN} bytes ({0})")]
    TooLong(usize),
    /// Not an absolute URL of visible ASCII characters.
    #[error("not an absolute URL")]
    NotUrl,
    /// Not `https` (RFC 8030 requires it).
    #[error("not https")]
    NotHttps,
    /// Has user information (`user@`), a fragment, or an empty or zero port.
    #[error("has user information, a fragment or a bad port")]
    Unusual,
}

impl Origin {
    /// The origin of an `https` URL.
    pub fn parse(url: &str) -> Result<Origin, EndpointError> {
        Origin::of(&parse_endpoint(url)?)
    }

    /// The origin of an already checked endpoint.
    pub(crate) fn of(uri: &Uri) -> Result<Origin, EndpointError> {
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return Err(EndpointError::NotHttps);
        }
        let authority = uri.authority().ok_or(EndpointError::NotUrl)?;
        let host = authority.host();
        if host.is_empty() {
            return Err(EndpointError::NotUrl);
        }
        if authority.as_str().contains('@') || authority.as_str().ends_with(':') {
            return Err(EndpointError::Unusual);
        }
        let host = host.to_ascii_lowercase();
        Ok(match authority.port_u16() {
            Some(0) => return Err(EndpointError::Unusual),
            None | Some(443) => Origin(format!("https://{host}")),
            Some(port) => Origin(format!("https://{host}:{port}")),
        })
    }

    /// The origin as text: `https://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses an endpoint: an absolute `https` URL of visible ASCII without fragment, at most
/// [`MAX_ENDPOINT_LEN`] bytes.
pub(crate) fn parse_endpoint(url: &str) -> Result<Uri, EndpointError> {
    if url.len() > MAX_ENDPOINT_LEN {
        return Err(EndpointError::TooLong(url.len()));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EndpointError::NotUrl);
    }
    if url.contains('#') {
        return Err(EndpointError::Unusual);
    }
    let uri: Uri = url.parse().map_err(|_| EndpointError::NotUrl)?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(EndpointError::NotUrl);
    }
    Origin::of(&uri)?;
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        for (url, origin) in [
            (
                "https://fcm.googleapis.com/fcm/send/abc",
                "https://fcm.googleapis.com",
            ),
            (
                "HTTPS://Updates.Push.Services.Mozilla.com/wpush/v2/x",
                "https://updates.push.services.mozilla.com",
            ),
            (
                "https://web.push.apple.com:443/QGu",
                "https://web.push.apple.com",
            ),
            ("https://localhost:8443/push/1", "https://localhost:8443"),
            ("https://[::1]:8443/p?q=1", "https://[::1]:8443"),
            ("https://a.example", "https://a.example"),
        ] {
            assert_eq!(Origin::parse(url).unwrap().as_str(), origin, "{url}");
        }
        assert_eq!(
            Origin::parse("https://a.example/x").unwrap().to_string(),
            "https://a.example"
        );
    }

    #[test]
    fn unusable_endpoints_say_why() {
        for (url, error) in [
            ("http://a.example/x", EndpointError::NotHttps),
            ("wss://a.example/x", EndpointError::NotHttps),
            ("/push/1", EndpointError::NotUrl),
            ("https:///x", EndpointError::NotUrl),
            ("https://a b/x", EndpointError::NotUrl),
            ("", EndpointError::NotUrl),
            ("https://a.example/caf\u{e9}", EndpointError::NotUrl),
            ("https://a.example/\u{fffd}", EndpointError::NotUrl),
            ("https://user@a.example/x", EndpointError::Unusual),
            ("https://a.example/x#frag", EndpointError::Unusual),
            ("https://a.example:0/x", EndpointError::Unusual),
            ("https://a.example:/x", EndpointError::Unusual),
        ] {
            assert_eq!(Origin::parse(url), Err(error), "{url}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_ENDPOINT_LEN));
        assert_eq!(
            Origin::parse(&long),
            Err(EndpointError::TooLong(long.len()))
        );
    }
}
