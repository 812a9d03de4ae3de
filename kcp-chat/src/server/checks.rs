//! Settings that cannot work are refused, settings that work badly are warned about,
//! before a server starts.

use std::time::Duration;

use super::ChatServerConfig;

/// How often the `kcp-chat` client sends a keepalive by default (`--keepalive`).
pub const CLIENT_KEEPALIVE: Duration = Duration::from_secs(3);

/// A setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingError {
    /// `max_clients` of 0: nobody could ever join.
    #[error("max clients 0: no client could ever join")]
    NoClients,
    /// An idle timeout shorter than the clients' keepalive: every client that only
    /// listens would be closed between two keepalives.
    #[error(
        "idle timeout {idle:?} is shorter than the clients' keepalive ({keepalive:?}): \
         every client that only listens would be closed between two keepalives"
    )]
    IdleShorterThanKeepalive {
        /// The idle timeout asked for.
        idle: Duration,
        /// The clients' keepalive interval.
        keepalive: Duration,
    },
    /// Full rooms' histories would not fit in memory.
    #[error(
        "history {history}: {rooms} full rooms of messages up to {frame} bytes could hold \
         {worst_case} bytes, more than the memory budget of {budget} bytes (a quarter of \
         the machine's memory)"
    )]
    HistoryTooLarge {
        /// Messages kept per room.
        history: usize,
        /// Rooms that may exist.
        rooms: usize,
        /// The largest frame a message can make.
        frame: usize,
        /// What full histories would hold.
        worst_case: u128,
        /// The bound: the server's `net.max_buffered_bytes`.
        budget: usize,
    },
}

/// A setting that works, badly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingWarning {
    /// An idle timeout under two keepalives: one lost keepalive closes a session.
    #[error(
        "idle timeout {idle:?} is under two client keepalives ({keepalive:?} each): one \
         lost keepalive closes a listening client's session"
    )]
    IdleNearKeepalive {
        /// The idle timeout asked for.
        idle: Duration,
        /// The clients' keepalive interval.
        keepalive: Duration,
    },
}

impl ChatServerConfig {
    /// Checks the settings against each other and the machine, for clients that
    /// keep alive every `keepalive` ([`CLIENT_KEEPALIVE`] for the `kcp-chat` client).
    /// The history bound: `rooms.max_rooms` full histories of the largest frames must
    /// fit in `net.max_buffered_bytes` (by default a quarter of the machine's memory).
    ///
    /// # Errors
    /// The first setting that cannot work. `Ok` holds the warnings.
    pub fn check(&self, keepalive: Duration) -> Result<Vec<SettingWarning>, SettingError> {
        if self.max_clients == 0 {
            return Err(SettingError::NoClients);
        }
        let idle = self.net.idle_timeout;
        if idle < keepalive {
            return Err(SettingError::IdleShorterThanKeepalive { idle, keepalive });
        }
        let frame = self.max_frame();
        let rooms = self.rooms.max_rooms;
        let worst_case = rooms as u128 * self.rooms.history as u128 * frame as u128;
        let budget = self.net.max_buffered_bytes;
        if worst_case > budget as u128 {
            return Err(SettingError::HistoryTooLarge {
                history: self.rooms.history,
                rooms,
                frame,
                worst_case,
                budget,
            });
        }
        let mut warnings = Vec::new();
        if idle < keepalive * 2 {
            warnings.push(SettingWarning::IdleNearKeepalive { idle, keepalive });
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_without_a_warning() {
        assert_eq!(
            ChatServerConfig::default().check(CLIENT_KEEPALIVE),
            Ok(vec![])
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let config = ChatServerConfig {
            max_clients: 0,
            ..ChatServerConfig::default()
        };
        assert_eq!(config.check(CLIENT_KEEPALIVE), Err(SettingError::NoClients));

        let mut config = ChatServerConfig::default();
        config.net.idle_timeout = Duration::from_secs(2);
        assert!(matches!(
            config.check(CLIENT_KEEPALIVE),
            Err(SettingError::IdleShorterThanKeepalive { .. })
        ));

        let mut config = ChatServerConfig::default();
        config.net.max_buffered_bytes = 1 << 20;
        config.rooms.history = 20; // 1000 rooms x 20 x ~1.2 KB: 24 MB > 1 MiB
        let err = config.check(CLIENT_KEEPALIVE).unwrap_err();
        assert!(matches!(err, SettingError::HistoryTooLarge { .. }), "{err}");
        config.rooms.history = 0;
        assert_eq!(config.check(CLIENT_KEEPALIVE), Ok(vec![]));
    }

    #[test]
    fn an_idle_timeout_under_two_keepalives_is_warned_about() {
        let mut config = ChatServerConfig::default();
        config.net.idle_timeout = Duration::from_secs(5);
        assert_eq!(
            config.check(CLIENT_KEEPALIVE),
            Ok(vec![SettingWarning::IdleNearKeepalive {
                idle: Duration::from_secs(5),
                keepalive: CLIENT_KEEPALIVE,
            }])
        );
    }
}
