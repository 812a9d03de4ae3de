//! Builders for the `#[non_exhaustive]` settings types, whose struct update syntax
//! (`ServerConfig { threads: 2, ..ServerConfig::default() }`) does not compile outside
//! this crate: `ServerConfig::builder().threads(2).build()?` instead, validated once
//! at the end with the same checks as `validate`.

use std::net::SocketAddr;
use std::time::Duration;

use kcp_core::{Config, builder_setters};

use crate::config::{ClientConfig, ConversationConfig, Preset, ServerConfig, UnconfirmedLimits};
use crate::error::NetError;
#[cfg(feature = "impair")]
use crate::impair::ImpairConfig;
use crate::secure::{ClientSecurity, ServerSecurity};
use crate::udp::IoBackend;

/// The parts every builder here shares: `Target::builder()` from the defaults,
/// `preset`, and `build`, which runs `Target::validate`.
macro_rules! builder_frame {
    ($builder:ident, $target:ident) => {
        impl $target {
            #[doc = concat!("A builder starting from the defaults; see [`", stringify!($builder), "`].")]
            pub fn builder() -> $builder {
                $builder(Self::default())
            }
        }

        impl $builder {
            #[doc = concat!("Sets [`", stringify!($target), "::engine`] to `preset`'s engine settings.")]
            pub fn preset(mut self, preset: Preset) -> Self {
                self.0.engine = preset.config();
                self
            }

            #[doc = concat!("The configuration, if [`", stringify!($target), "::validate`] accepts it.")]
            ///
            /// # Errors
            /// [`NetError::Config`] for the engine, [`NetError::Setting`] for the rest.
            pub fn build(self) -> Result<$target, NetError> {
                self.0.validate()?;
                Ok(self.0)
            }
        }
    };
}

/// Builds a [`ServerConfig`], starting from [`ServerConfig::default`] (the fast
/// preset); [`build`](Self::build) validates it.
///
/// ```
/// use std::time::Duration;
/// use kcp_net::{NetError, Preset, ServerConfig};
///
/// let config = ServerConfig::builder()
///     .preset(Preset::Normal)
///     .threads(2)
///     .idle_timeout(Duration::from_secs(10))
///     .flush_on_input(true)
///     .build()?;
/// assert_eq!((config.threads, config.engine.interval), (2, 40));
/// assert!(matches!(ServerConfig::builder().threads(0).build(), Err(NetError::Setting(_))));
/// # Ok::<(), NetError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerConfigBuilder(ServerConfig);

impl ServerConfigBuilder {
    builder_setters!(ServerConfig {
        engine: Config,
        secure: Option<ServerSecurity>,
        threads: usize,
        max_sessions: usize,
        max_queued_bytes_per_session: usize,
        idle_timeout: Duration,
        new_sessions_per_sec: u32,
        max_buffered_bytes: usize,
        unconfirmed: UnconfirmedLimits,
        max_unconfirmed_sessions: usize,
        max_sessions_per_ip: u32,
        new_sessions_per_ip_per_sec: u32,
        flush_on_send: bool,
        flush_on_input: bool,
        swallow_empty_messages: bool,
        close_linger: Duration,
        slow_consumer_timeout: Option<Duration>,
        io: IoBackend,
        recv_buffer: usize,
        send_buffer: usize,
        #[cfg(feature = "impair")]
        impair: Option<ImpairConfig>,
    });
}

builder_frame!(ServerConfigBuilder, ServerConfig);

/// Builds a [`ClientConfig`], starting from [`ClientConfig::default`] (the fast
/// preset); [`build`](Self::build) validates it.
///
/// ```
/// use std::time::Duration;
/// use kcp_net::{ClientConfig, NetError};
/// use kcp_net::kcp_core::Config;
///
/// let config = ClientConfig::builder()
///     .engine(Config::fast())
///     .keepalive(Some(Duration::from_secs(1)))
///     .server_timeout(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(config.server_timeout, Duration::from_secs(10));
/// assert!(ClientConfig::builder().server_timeout(Duration::ZERO).build().is_err());
/// # Ok::<(), NetError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientConfigBuilder(ClientConfig);

impl ClientConfigBuilder {
    builder_setters!(ClientConfig {
        engine: Config,
        secure: Option<ClientSecurity>,
        bind: Option<SocketAddr>,
        keepalive: Option<Duration>,
        server_timeout: Duration,
        flush_on_send: bool,
        flush_on_input: bool,
        max_queued_bytes: usize,
        pad_opening: bool,
        io: IoBackend,
        recv_buffer: usize,
        send_buffer: usize,
        #[cfg(feature = "impair")]
        impair: Option<ImpairConfig>,
    });
}

builder_frame!(ClientConfigBuilder, ClientConfig);

/// Builds a [`ConversationConfig`], starting from [`ConversationConfig::default`];
/// [`build`](Self::build) validates it.
///
/// ```
/// use std::time::Duration;
/// use kcp_net::{ConversationConfig, NetError, Preset};
///
/// let config = ConversationConfig::builder()
///     .preset(Preset::Fast)
///     .peer_timeout(Some(Duration::from_secs(10)))
///     .build()?;
/// assert_eq!(config.peer_timeout, Some(Duration::from_secs(10)));
/// # Ok::<(), NetError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ConversationConfigBuilder(ConversationConfig);

impl ConversationConfigBuilder {
    builder_setters!(ConversationConfig {
        engine: Config,
        max_queued_bytes: usize,
        flush_on_send: bool,
        flush_on_input: bool,
        keepalive: Option<Duration>,
        peer_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
        swallow_empty_messages: bool,
        unconfirmed: Option<UnconfirmedLimits>,
        pad_opening: bool,
        slow_consumer: Option<Duration>,
    });
}

builder_frame!(ConversationConfigBuilder, ConversationConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use kcp_core::ConfigError;

    #[test]
    fn builders_set_fields_and_refuse_what_validate_refuses() {
        let server = ServerConfig::builder()
            .threads(2)
            .max_sessions(7)
            .engine(Config::fast())
            .build()
            .unwrap();
        assert_eq!((server.threads, server.max_sessions), (2, 7));
        let mut unchecked = Config::fast();
        unchecked.mtu = 10;
        assert!(matches!(
            ServerConfig::builder().engine(unchecked.clone()).build(),
            Err(NetError::Config(ConfigError::Mtu(10)))
        ));
        assert!(matches!(
            ClientConfig::builder().engine(unchecked).build(),
            Err(NetError::Config(ConfigError::Mtu(10)))
        ));
        assert!(matches!(
            ServerConfig::builder().max_sessions(0).build(),
            Err(NetError::Setting(_))
        ));
        let client = ClientConfig::builder()
            .preset(Preset::Default)
            .keepalive(None)
            .build()
            .unwrap();
        assert_eq!((client.keepalive, client.engine.interval), (None, 100));
        assert!(matches!(
            ConversationConfig::builder()
                .idle_timeout(Some(Duration::ZERO))
                .build(),
            Err(NetError::Setting(_))
        ));
    }
}
