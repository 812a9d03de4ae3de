//! The `handshake_responder` target: initiations, well formed or not, into the
//! server's first look (version, length, mac1, cookie policy) and its Noise
//! responder.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::secure::{
    CookiePolicy, INITIATION_LEN, Macs, Psk, Responder, Screened, ServerIdentity, VERSION,
    initiation, put_mac2,
};

/// The server's key pair, the same for every case (made once: a key file's worth of
/// work per case would slow the fuzzer for nothing).
fn identity() -> Arc<ServerIdentity> {
    static IDENTITY: OnceLock<Arc<ServerIdentity>> = OnceLock::new();
    Arc::clone(IDENTITY.get_or_init(|| Arc::new(ServerIdentity::from_private([0x42; 32]))))
}

/// Runs one case. The first byte picks the setting: the cookie policy (bits 0-1),
/// whether the server is under load (2), a pre-shared key (3), and what the harness
/// repairs in the message so that it gets further: its length made exact (4), kind
/// and version set (5), mac1 recomputed (6, set: left as the fuzzer wrote it), a
/// valid mac2 for the sender's address (7). The rest is the message.
///
/// # Panics
/// If an invariant breaks: no reply is larger than the datagram it answers (the
/// response at most a third of it); a message only gets past the screen with the
/// exact length and a valid mac1, and past a cookie policy that asks for one only
/// with a valid mac2; a screened message is answered or refused, never half-way.
pub fn handshake_responder(data: &[u8]) {
    let Some((&setting, message)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let policy = match setting & 3 {
        0 => CookiePolicy::Always,
        1 => CookiePolicy::Never,
        _ => CookiePolicy::UnderLoad,
    };
    let under_load = setting & 4 != 0;
    let psk = (setting & 8 != 0).then(|| Psk::from_passphrase("fuzz"));
    let identity = identity();
    let macs = Macs::for_server(&identity.public());
    let mut responder = Responder::new(Arc::clone(&identity), psk, policy, now);
    let from = SocketAddr::from(([127, 0, 0, 1], 4000));

    let mut msg = message.to_vec();
    if setting & 0x10 != 0 {
        msg.resize(INITIATION_LEN, 0);
    }
    if setting & 0x20 != 0 && msg.len() > initiation::VERSION {
        msg[0] = 1;
        msg[initiation::VERSION] = VERSION;
    }
    let mut with_mac2 = false;
    if let Ok(exact) = <&mut [u8; INITIATION_LEN]>::try_from(&mut msg[..]) {
        if setting & 0x40 == 0 {
            macs.put_mac1(exact);
        }
        if setting & 0x80 != 0 {
            put_mac2(exact, &responder.cookie_for(now, from));
            with_mac2 = true;
        }
    }

    let mut out = Vec::new();
    let screened = responder.screen(now, from, &msg, under_load, &mut out);
    assert!(
        out.len() <= msg.len(),
        "a {}-byte reply to a {}-byte datagram",
        out.len(),
        msg.len()
    );
    let Screened::Valid { sender_index } = screened else {
        return;
    };
    assert!(
        out.is_empty(),
        "a valid initiation got a reply at the screen"
    );
    assert_eq!(msg.len(), INITIATION_LEN);
    assert!(macs.mac1_ok(&msg), "past the screen without mac1");
    let asked = match policy {
        CookiePolicy::Always => true,
        CookiePolicy::UnderLoad => under_load,
        _ => false,
    };
    assert!(!asked || with_mac2, "past a cookie policy without mac2");
    if let Ok(accepted) = responder.accept(&msg, 7) {
        assert!(
            accepted.response.len() * 3 <= msg.len(),
            "the response amplifies"
        );
        assert_eq!(accepted.established.peer_index, sender_index);
        assert_eq!(accepted.established.local_index, 7);
    }
}
