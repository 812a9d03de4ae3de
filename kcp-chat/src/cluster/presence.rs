//! A node's presence in Redis: its liveness key, its users' nicks and room
//! memberships; restored on every (re)connect, refreshed every quarter TTL, removed
//! on a clean departure; and the look for nodes whose liveness expired.

use std::time::Duration;

use redis::{Connection, RedisResult, Value};
use tracing::{info, warn};

use super::ClusterConfig;
use super::keys::Keys;
use super::publisher::{evalsha, items, millis, text};
use super::scripts::Scripts;
use crate::protocol::LOBBY;
use crate::server::Hub;

/// This node's presence.
#[derive(Debug)]
pub(crate) struct Presence {
    node: String,
    keys: Keys,
    incarnation: u64,
    ttl: Duration,
    alive_ttl: Duration,
    maxlen: usize,
    empty_room_ttl: Duration,
}

/// What a refresh found.
#[derive(Debug, Default)]
pub(crate) struct Refreshed {
    /// Other nodes declared lost.
    pub(crate) reaped: u64,
    /// Nicks of ours another node holds now (they expired during an outage).
    pub(crate) nicks_lost: u64,
}

/// The local users' nicks and (room, nick) memberships.
fn snapshot(hub: &Hub) -> (Vec<String>, Vec<(String, String)>) {
    let state = hub.lock();
    let mut nicks = Vec::new();
    let mut memberships = Vec::new();
    for id in state.members.keys() {
        let Some(nick) = state.rooms.nick(*id) else {
            continue;
        };
        for room in state.rooms.rooms_of(*id) {
            memberships.push((room, nick.to_owned()));
        }
        nicks.push(nick.to_owned());
    }
    (nicks, memberships)
}

impl Presence {
    pub(crate) fn new(config: &ClusterConfig, keys: Keys, incarnation: u64) -> Self {
        Self {
            node: config.node_id.clone(),
            keys,
            incarnation,
            ttl: config.presence_ttl,
            alive_ttl: config.alive_ttl(),
            maxlen: config.stream_maxlen,
            empty_room_ttl: config.empty_room_ttl,
        }
    }

    /// Which run of this node this is.
    pub(crate) const fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn announce(&self, pipe: &mut redis::Pipeline, scripts: &Scripts, nicks: &[String]) {
        pipe.cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&self.node)
            .ignore();
        pipe.cmd("SET")
            .arg(self.keys.alive(&self.node))
            .arg(self.incarnation)
            .arg("PX")
            .arg(millis(self.alive_ttl))
            .ignore();
        let nick_keys: Vec<String> = nicks.iter().map(|n| self.keys.nick(n)).collect();
        let args = [self.node.clone(), millis(self.ttl)];
        pipe.add_command(evalsha(&scripts.refresh, &nick_keys, &args));
    }

    /// After a (re)connect: the node, its nicks and its users' memberships, again (a
    /// restarted Redis without persistence has none of them; with it, this changes
    /// nothing). The first connect of a run (`first`) first removes the users a
    /// previous run of this node id left in the rooms, if it was killed.
    pub(crate) fn restore(
        &self,
        conn: &mut Connection,
        scripts: &Scripts,
        hub: &Hub,
        first: bool,
    ) -> RedisResult<()> {
        let (nicks, memberships) = snapshot(hub);
        let mut pipe = redis::pipe();
        if first {
            pipe.add_command(self.reap_cmd(scripts, "restart")).ignore();
        }
        self.announce(&mut pipe, scripts, &nicks);
        for (room, nick) in &memberships {
            pipe.cmd("HSET")
                .arg(self.keys.members(room))
                .arg(nick)
                .arg(&self.node)
                .ignore();
            pipe.cmd("SADD").arg(self.keys.rooms()).arg(room).ignore();
        }
        let lost: Vec<i64> = pipe.query(conn)?;
        let lost = lost.first().copied().unwrap_or(0);
        if lost > 0 {
            warn!(
                lost,
                "nicks of this node's users are held by other nodes now"
            );
        }
        info!(node = %self.node, users = nicks.len(), "presence restored in Redis");
        Ok(())
    }

    /// Refreshes the liveness key and the nicks, then removes the nodes whose
    /// liveness expired (the reap script does it once, whichever node runs it).
    pub(crate) fn refresh(
        &self,
        conn: &mut Connection,
        scripts: &Scripts,
        hub: &Hub,
    ) -> RedisResult<Refreshed> {
        let (nicks, _) = snapshot(hub);
        let mut pipe = redis::pipe();
        self.announce(&mut pipe, scripts, &nicks);
        pipe.add_command(self.reap_cmd(scripts, "reap"));
        let replies: Vec<Value> = pipe.query(conn)?;
        let nicks_lost = replies
            .first()
            .and_then(text)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let reaped: Vec<String> = replies
            .get(1)
            .and_then(items)
            .unwrap_or_default()
            .iter()
            .filter_map(text)
            .collect();
        for node in &reaped {
            warn!(%node, "node lost: its presence expired; its users left every room");
        }
        Ok(Refreshed {
            reaped: reaped.len() as u64,
            nicks_lost,
        })
    }

    fn reap_cmd(&self, scripts: &Scripts, mode: &str) -> redis::Cmd {
        let args = [
            self.node.clone(),
            self.keys.prefix().to_owned(),
            self.maxlen.to_string(),
            millis(self.empty_room_ttl),
            LOBBY.to_owned(),
            mode.to_owned(),
        ];
        evalsha(&scripts.reap, &[self.keys.nodes()], &args)
    }

    /// A clean shutdown: frees the nicks and removes the node and its users from
    /// every room (the others see them quit).
    pub(crate) fn depart(
        &self,
        conn: &mut Connection,
        scripts: &Scripts,
        hub: &Hub,
    ) -> RedisResult<()> {
        let (nicks, _) = snapshot(hub);
        let mut pipe = redis::pipe();
        for nick in &nicks {
            pipe.add_command(evalsha(
                &scripts.release,
                &[self.keys.nick(nick)],
                std::slice::from_ref(&self.node),
            ))
            .ignore();
        }
        pipe.add_command(self.reap_cmd(scripts, "depart")).ignore();
        pipe.query::<()>(conn)?;
        info!(node = %self.node, users = nicks.len(), "left the cluster");
        Ok(())
    }
}
