//! An address as an operator types it: `HOST:PORT`, where HOST is an IP address or a
//! name (`localhost:4000`, `chat.example.org:4000`, `[::1]:4000`).
//!
//! The name is resolved once, when the text is parsed, with the system resolver
//! ([`ToSocketAddrs`]); the first IPv4 address wins, else the first IPv6 one (a name
//! such as `localhost` often has both, and servers here listen on IPv4 by default).
//! The text is kept for display, for the known-servers file and for the config file.
//!
//! ```
//! use kcp_chat::endpoint::Endpoint;
//!
//! let local: Endpoint = "localhost:4000".parse().unwrap();
//! assert_eq!(local.addr(), "127.0.0.1:4000".parse().unwrap());
//! assert_eq!(local.to_string(), "localhost:4000");
//! assert!("localhost".parse::<Endpoint>().unwrap_err().to_string().contains("HOST:PORT"));
//! ```

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// A `HOST:PORT` and the address it resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    text: String,
    addr: SocketAddr,
}

/// Why a `HOST:PORT` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not of the form `HOST:PORT` (an IPv6 address goes in brackets: `[::1]:4000`).
    #[error("{0:?} is not HOST:PORT (an IPv6 address goes in brackets: [::1]:4000)")]
    Syntax(String),
    /// The resolver failed or knows no address for the name.
    #[error("cannot resolve {text:?}: {source}")]
    Resolve {
        /// What was given.
        text: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
}

impl Endpoint {
    /// The resolved address.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Self {
            text: addr.to_string(),
            addr,
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// Parses `HOST:PORT` and resolves HOST (no lookup for an IP address).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self {
                text: text.to_owned(),
                addr,
            });
        }
        let syntax = || EndpointError::Syntax(text.to_owned());
        let (host, port) = text.rsplit_once(':').ok_or_else(syntax)?;
        if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
            return Err(syntax());
        }
        let resolve = |source| EndpointError::Resolve {
            text: text.to_owned(),
            source,
        };
        let addrs: Vec<SocketAddr> = text.to_socket_addrs().map_err(resolve)?.collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| resolve(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        Ok(Self {
            text: text.to_owned(),
            addr,
        })
    }
}

crate::serde_text::serde_as_text!(Endpoint);

impl fmt::Display for Endpoint {
    /// The text as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_without_a_lookup_and_keep_their_text() {
        for text in ["127.0.0.1:4000", "[::1]:4000", "0.0.0.0:0"] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.addr(), text.parse::<SocketAddr>().unwrap());
            assert_eq!(endpoint.text(), text);
        }
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let endpoint: Endpoint = "localhost:4000".parse().unwrap();
        assert!(endpoint.addr().ip().is_loopback());
        assert_eq!(endpoint.addr().port(), 4000);
        assert_eq!(endpoint.to_string(), "localhost:4000");
    }

    #[test]
    fn malformed_text_is_refused_before_any_lookup() {
        for text in [
            "localhost",
            "localhost:",
            "localhost:70000",
            ":4000",
            "::1:4000",
            "",
        ] {
            let err = text.parse::<Endpoint>().unwrap_err();
            assert!(matches!(err, EndpointError::Syntax(_)), "{text}: {err}");
            assert!(err.to_string().contains("HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_says_so() {
        // An empty label: the resolver refuses it without asking a name server.
        let err = "no..such.host:4000".parse::<Endpoint>().unwrap_err();
        assert!(matches!(err, EndpointError::Resolve { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot resolve \"no..such.host:4000\""),
            "{err}"
        );
    }
}
