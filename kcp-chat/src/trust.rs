//! Which server keys a client trusts: a key pinned on the command line, or the
//! `known_servers` file (one `address key` line per server, like ssh's
//! `known_hosts`), filled on first use.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kcp_net::secure::{ClientSecurity, HandshakeError, PublicKey, ServerIdentity};
use kcp_net::{ClientConfig, KcpClient, NetError};

/// A fresh key pair for servers this process starts itself (the demo, the bench),
/// whose clients pin it directly; `None` when `secure` is off.
///
/// # Errors
/// [`NetError::Setting`] if the system has no random number generator.
pub fn in_process_identity(secure: bool) -> Result<Option<ServerIdentity>, NetError> {
    if !secure {
        return Ok(None);
    }
    ServerIdentity::generate()
        .map(Some)
        .map_err(|_| NetError::Setting("no random number generator for the server key"))
}

/// Where `known_servers` lives by default: `$KCP_CHAT_HOME`, else `$HOME/.kcp-chat`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("KCP_CHAT_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kcp-chat")))
        .unwrap_or_else(|| PathBuf::from(".kcp-chat"))
}

/// Why a server's key could not be settled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The key of a known server changed: possibly someone in the middle.
    #[error(
        "WARNING: THE KEY OF {server} HAS CHANGED.\n  known:   {known}\n  offered: {offered}\n\
         Someone may be impersonating the server, or it has a new key. If you trust the \
         new key, remove the line for {server} from {file} (or pass --server-key)."
    )]
    Changed {
        /// The server as named.
        server: String,
        /// The fingerprint we know.
        known: String,
        /// The fingerprint it offers (or "nothing").
        offered: String,
        /// The known-servers file.
        file: String,
    },
    /// The server did not tell its key (not a secure kcp-chat server, or unreachable).
    #[error("{server} did not offer a key: {source}")]
    NoKey {
        /// The server.
        server: String,
        /// What the probe got.
        #[source]
        source: NetError,
    },
    /// Reading or writing the known-servers file failed.
    #[error("{what} {file}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file.
        file: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not `address key`.
    #[error("{file}:{line}: expected `address key`")]
    Malformed {
        /// The file.
        file: String,
        /// The line number.
        line: usize,
    },
}

/// The `known_servers` file.
#[derive(Clone, Debug)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at `path` (it need not exist yet).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// The key remembered for `server`.
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub fn get(&self, server: &str) -> Result<Option<PublicKey>, TrustError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TrustError::Io {
                    what: "reading",
                    file: self.shown(),
                    source,
                });
            }
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = || TrustError::Malformed {
                file: self.shown(),
                line: i + 1,
            };
            let (name, key) = line.split_once(char::is_whitespace).ok_or_else(malformed)?;
            if name == server {
                return key.trim().parse().map(Some).map_err(|_| malformed());
            }
        }
        Ok(None)
    }

    /// Remembers `key` for `server` (appends a line; the directory is created).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn add(&self, server: &str, key: PublicKey) -> Result<(), TrustError> {
        let io = |what, source| TrustError::Io {
            what,
            file: self.shown(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io("opening", e))?;
        writeln!(file, "{server} {key}").map_err(|e| io("writing", e))
    }
}

/// How a client settled the server's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trusted {
    /// Pinned on the command line.
    Pinned(PublicKey),
    /// Known from the file.
    Known(PublicKey),
    /// Learned now, on first use, and remembered.
    FirstUse(PublicKey),
}

impl Trusted {
    /// The key.
    pub const fn key(self) -> PublicKey {
        match self {
            Self::Pinned(k) | Self::Known(k) | Self::FirstUse(k) => k,
        }
    }
}

/// Settles the key of `server` (named as the user wrote it, `addr` resolved): the
/// pinned one, the known one, or, for a server never seen, the key it offers to a
/// probe (trust on first use), which is then remembered.
///
/// # Errors
/// [`TrustError`]: the probe got no key, or the file failed.
pub fn settle(
    server: &str,
    addr: SocketAddr,
    pinned: Option<PublicKey>,
    known: &KnownServers,
    config: &ClientConfig,
) -> Result<Trusted, TrustError> {
    if let Some(key) = pinned {
        return Ok(Trusted::Pinned(key));
    }
    if let Some(key) = known.get(server)? {
        return Ok(Trusted::Known(key));
    }
    let key = probe(addr, config).map_err(|source| TrustError::NoKey {
        server: server.to_owned(),
        source,
    })?;
    known.add(server, key)?;
    Ok(Trusted::FirstUse(key))
}

/// Asks a secure server for its key: a handshake with a key that cannot be its,
/// whose reject names the right one.
fn probe(addr: SocketAddr, config: &ClientConfig) -> Result<PublicKey, NetError> {
    let mut config = config.clone();
    let fake = ServerIdentity::generate()
        .map_err(|_| NetError::Setting("no random number generator"))?
        .public();
    let mut security = ClientSecurity::new(fake);
    security.handshake_timeout = Duration::from_secs(3);
    config.secure = Some(security);
    match KcpClient::connect(addr, config) {
        Err(NetError::Handshake(HandshakeError::WrongServerKey {
            offered: Some(key), ..
        })) => Ok(key),
        Err(e) => Err(e),
        Ok(_) => Err(NetError::Setting(
            "the server accepted a key that cannot be its own",
        )),
    }
}

/// The loud error for a key that is not the one known, from a failed handshake.
pub fn changed(
    server: &str,
    trusted: Trusted,
    error: &HandshakeError,
    known: &KnownServers,
) -> Option<TrustError> {
    match error {
        HandshakeError::WrongServerKey { offered, .. } => Some(TrustError::Changed {
            server: server.to_owned(),
            known: trusted.key().fingerprint(),
            offered: offered.map_or_else(|| "nothing".to_owned(), |k| k.fingerprint()),
            file: known.path().display().to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_servers_round_trip_and_refuse_malformed_lines() {
        let dir = std::env::temp_dir().join(format!("kcp-chat-trust-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let known = KnownServers::at(dir.join("sub").join("known_servers"));
        assert_eq!(known.get("a:1").unwrap(), None);
        let key = ServerIdentity::generate().unwrap().public();
        known.add("a:1", key).unwrap();
        assert_eq!(known.get("a:1").unwrap(), Some(key));
        assert_eq!(known.get("b:1").unwrap(), None);
        fs::write(known.path(), "nonsense\n").unwrap();
        assert!(matches!(
            known.get("a:1"),
            Err(TrustError::Malformed { line: 1, .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
