//! Keys of the secure wire mode: the server's static X25519 key pair (kept in a
//! file, shown as text with a fingerprint), its public half that clients pin, and
//! the optional pre-shared key.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use blake2::{Blake2s256, Digest};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use subtle::ConstantTimeEq;

/// Length of an X25519 key, public or private.
pub const KEY_LEN: usize = 32;

/// Why a key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a key: 32 bytes in base64 (44 characters).
    #[error("not a key: expected 32 bytes in base64 (44 characters), got {0:?}")]
    Malformed(String),
    /// The key file has no `private = ...` line.
    #[error("{0}: no `private = <base64>` line")]
    NoPrivateKey(String),
    /// The key file can be read by others than its owner.
    #[error("{path} can be read by others (mode {mode:o}): make it 0600 (chmod 600 {path})")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The system's random number generator failed.
    #[error("generating a key: {0}")]
    Random(String),
}

/// A server's public key: what a client pins. Its text form is 44 characters of
/// base64, as WireGuard shows keys; [`fingerprint`](Self::fingerprint) is a short
/// form for people to compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// From its 32 bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short, stable digest for people to compare: 16 hex digits in groups of four
    /// (`1a2b:3c4d:5e6f:7a8b`), from BLAKE2s of the key.
    pub fn fingerprint(&self) -> String {
        let digest = Blake2s256::new()
            .chain_update(b"kcp-net fingerprint v1")
            .chain_update(self.0)
            .finalize();
        let hex: Vec<String> = digest[..8]
            .chunks(2)
            .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
            .collect();
        hex.join(":")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(Self)
    }
}

/// A server's static X25519 key pair.
///
/// # Example
///
/// ```
/// use kcp_net::secure::ServerIdentity;
///
/// let dir = std::env::temp_dir().join(format!("kcp-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("server.key");
/// let (identity, created) = ServerIdentity::load_or_create(&path).unwrap();
/// assert!(created);
/// let again = ServerIdentity::load(&path).unwrap();
/// assert_eq!(identity.public(), again.public());
/// println!("server key {} ({})", identity.public(), identity.public().fingerprint());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct ServerIdentity {
    private: [u8; KEY_LEN],
    public: PublicKey,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// A new random key pair.
    ///
    /// # Errors
    /// [`KeyError::Random`] if the system's generator fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut private = [0; KEY_LEN];
        let mut rng = DefaultResolver
            .resolve_rng()
            .ok_or_else(|| KeyError::Random("no random number generator".into()))?;
        rng.try_fill_bytes(&mut private)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_private(private))
    }

    /// The pair of a private key (its public half is computed).
    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("the default resolver has X25519");
        dh.set(&private);
        let mut public = [0; KEY_LEN];
        public.copy_from_slice(dh.pubkey());
        // `set` clamps a copy; keep what the caller gave (snow clamps again).
        Self {
            private,
            public: PublicKey(public),
        }
    }

    /// The public key, for clients to pin.
    pub const fn public(&self) -> PublicKey {
        self.public
    }

    pub(crate) const fn private(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// Reads a key file written by [`save`](Self::save). Refuses a file that others
    /// can read.
    ///
    /// # Errors
    /// [`KeyError`]: unreadable, exposed or malformed.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let io = |what, source| KeyError::Io {
            what,
            path: shown.clone(),
            source,
        };
        check_private_mode(path).map_err(|e| match e {
            ModeError::Io(source) => io("reading", source),
            ModeError::Exposed(mode) => KeyError::Exposed {
                path: shown.clone(),
                mode,
            },
        })?;
        let text = fs::read_to_string(path).map_err(|e| io("reading", e))?;
        let private = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .find(|(name, _)| name.trim() == "private")
            .map(|(_, value)| value.trim())
            .ok_or_else(|| KeyError::NoPrivateKey(shown.clone()))?;
        Ok(Self::from_private(decode_key(private)?))
    }

    /// Writes the key pair to `path` with mode 0600, creating it (fails if it exists,
    /// so a key is never overwritten by accident).
    ///
    /// # Errors
    /// [`KeyError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            what: "creating",
            path: path.display().to_string(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        let text = format!(
            "# kcp-net server key (X25519). Keep it secret: whoever has it can be this server.\n\
             private = {}\n\
             # The public key, for clients to pin (fingerprint {}):\n\
             public = {}\n",
            BASE64.encode(self.private),
            self.public.fingerprint(),
            self.public,
        );
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Loads `path`, or creates a new key there if there is no file. Returns the
    /// identity and whether it was created.
    ///
    /// # Errors
    /// As [`load`](Self::load) and [`save`](Self::save).
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match fs::metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate()?;
                identity.save(path)?;
                Ok((identity, true))
            }
            Err(source) => Err(KeyError::Io {
                what: "reading",
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// A pre-shared key both ends know (a game's per-title secret): mixed into the
/// handshake, so that without it no session can be made even with the server's
/// public key.
#[derive(Clone)]
pub struct Psk([u8; KEY_LEN]);

impl Psk {
    /// From 32 bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Derived from a passphrase by BLAKE2s (use a long random one: this is not a
    /// password hash).
    pub fn from_passphrase(passphrase: &str) -> Self {
        let digest = Blake2s256::new()
            .chain_update(b"kcp-net psk v1")
            .chain_update(passphrase.as_bytes())
            .finalize();
        Self(digest.into())
    }

    pub(crate) const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for Psk {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Psk {}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(..)")
    }
}

impl FromStr for Psk {
    type Err = KeyError;

    /// 32 bytes in base64.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(Self)
    }
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let text = text.trim();
    BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| KeyError::Malformed(text.chars().take(60).collect()))
}

enum ModeError {
    Io(std::io::Error),
    Exposed(u32),
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<(), ModeError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(ModeError::Io)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(ModeError::Exposed(mode))
    }
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<(), ModeError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kcp-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_file_round_trips_with_mode_0600_and_is_never_overwritten() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("k");
        let (a, created) = ServerIdentity::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = ServerIdentity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        assert_eq!(a.private(), b.private());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(a.save(&path), Err(KeyError::Io { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("exposed");
        let path = dir.join("k");
        ServerIdentity::generate().unwrap().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServerIdentity::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Exposed { mode: 0o644, .. }),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn public_keys_parse_from_their_text_and_refuse_anything_else() {
        let key = ServerIdentity::generate().unwrap().public();
        let text = key.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>().unwrap(), key);
        assert!("abc".parse::<PublicKey>().is_err());
        assert!(BASE64.encode([0u8; 31]).parse::<PublicKey>().is_err());
        let fp = key.fingerprint();
        assert_eq!(fp.len(), 19, "{fp}");
        assert_eq!(fp.matches(':').count(), 3);
    }

    #[test]
    fn the_public_half_is_derived_from_the_private() {
        let a = ServerIdentity::generate().unwrap();
        let b = ServerIdentity::from_private(*a.private());
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), ServerIdentity::generate().unwrap().public());
    }
}
