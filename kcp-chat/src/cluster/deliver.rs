//! Frames from the cluster threads to this node's sessions, through the server's
//! handle. These threads are not event loops, so a send waits for the loops to take
//! it: they call these with the hub's lock released (a loop may be waiting for it).

use kcp_net::{ServerHandle, SessionKey};

use super::Counters;
use crate::protocol::{ErrorCode, ServerFrame, encode};
use crate::room::UserId;
use crate::server::{Hub, HubState};

/// The sessions of `ids` that are still here.
pub(crate) fn keys_of(state: &HubState, ids: impl IntoIterator<Item = UserId>) -> Vec<SessionKey> {
    ids.into_iter()
        .filter_map(|id| state.members.get(&id).map(|m| m.key))
        .collect()
}

/// Queues `frame` to each of `keys` (encoded once).
pub(crate) fn to_keys(
    hub: &Hub,
    handle: &ServerHandle,
    keys: Vec<SessionKey>,
    frame: &ServerFrame,
) {
    if keys.is_empty() {
        return;
    }
    let Ok(bytes) = encode(frame) else {
        return;
    };
    hub.post_many(handle, keys, bytes);
}

/// Queues `frame` to one session.
pub(crate) fn to_key(hub: &Hub, handle: &ServerHandle, key: SessionKey, frame: &ServerFrame) {
    to_keys(hub, handle, vec![key], frame);
}

/// Tells a session that what it asked was not done, and why; counted as refused.
pub(crate) fn refuse(
    hub: &Hub,
    handle: &ServerHandle,
    counters: &Counters,
    key: SessionKey,
    code: ErrorCode,
    text: String,
) {
    if code == ErrorCode::Unavailable {
        Counters::add(&counters.refused, 1);
    }
    hub.counters.count_error();
    to_key(hub, handle, key, &ServerFrame::Error { code, text });
}
