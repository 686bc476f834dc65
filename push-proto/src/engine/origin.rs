//! [`Origin`]: the scheme and authority of a provider's service URL, checked once.

use http::Uri;
use http::uri::{self, Authority, InvalidUriParts, PathAndQuery, Scheme};

use super::config::ConfigError;

/// Where a provider's requests go (`https://api.push.apple.com`): every request URI is this
/// origin and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Origin {
    /// Parses `scheme://authority`, with at most a `/` for a path.
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad_url = || ConfigError::BaseUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad_url())?;
        let path_ok = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        let (Some(scheme), Some(authority), true) =
            (uri.scheme().cloned(), uri.authority().cloned(), path_ok)
        else {
            return Err(bad_url());
        };
        Ok(Origin { scheme, authority })
    }

    /// The URI of `path_and_query` (starting with `/`) at this origin.
    pub(crate) fn uri(&self, path_and_query: String) -> Result<Uri, InvalidUriParts> {
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
        Uri::from_parts(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_and_authority_only() {
        let origin = Origin::parse("https://api.push.apple.com/").unwrap();
        assert_eq!(
            origin.uri("/3/device/ab".into()).unwrap(),
            "https://api.push.apple.com/3/device/ab"
        );
        assert!(Origin::parse("http://localhost:8443").is_ok());
        for bad in [
            "api.push.apple.com",
            "https://host/path",
            "/only/a/path",
            "not a url",
        ] {
            assert_eq!(Origin::parse(bad), Err(ConfigError::BaseUrl(bad.into())));
        }
    }
}
