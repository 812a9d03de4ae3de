//! kcp-net's secure wire mode as a peer: the same server and client as raw kcp-net
//! (same engine settings, same event loop), with `ServerConfig::secure` and
//! `ClientConfig::secure` set, and the targets for it: ratios against raw
//! kcp-net measured in rounds interleaved with it, and against quinn.
//!
//! The server's key is [`identity`], made from a fixed private key in both the harness
//! and the server process, so nothing has to travel between them: it protects no
//! secret, it only makes every session go through the Noise handshake and every
//! datagram through the seal. Cookies follow the default policy (only under load,
//! WireGuard's behaviour), so the 1000-client and handshake scenarios pay the cookie
//! round trip when they load the server, as a real deployment would.

use kcp_net::secure::{Cipher, ClientSecurity, ServerIdentity, ServerSecurity};

use crate::scenarios::{Latencies, Throughput};
use crate::{Impl, Verdicts, list, median, ms, of, ratios_between};

/// The `--cipher` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CipherArg {
    /// AES-256-GCM.
    Aes,
    /// ChaCha20-Poly1305.
    Chacha,
}

/// The cipher the secure clients ask for: `--cipher`, else the faster on this CPU.
static CIPHER: std::sync::OnceLock<Cipher> = std::sync::OnceLock::new();

/// Sets the secure clients' cipher (once, before the run).
pub(crate) fn choose_cipher(choice: CipherArg) {
    let _ = CIPHER.set(match choice {
        CipherArg::Aes => Cipher::Aes256Gcm,
        CipherArg::Chacha => Cipher::ChaCha20Poly1305,
    });
}

fn cipher() -> Cipher {
    *CIPHER.get_or_init(Cipher::fastest_here)
}

/// The datagram size of the secure sessions (`--secure-mtu`), for the harness's
/// clients; the server process gets it through [`MTU_ENV`].
static MTU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// How the harness tells a secure server process its datagram size.
const MTU_ENV: &str = "LOOPBACK_SECURE_MTU";

/// The secure sessions' datagram size when `--secure-mtu` is not given: raw
/// kcp-net's, so both modes put the same bytes on the wire per datagram.
const DEFAULT_MTU: usize = 1400;

/// Sets the secure sessions' datagram size (once, before the run).
pub(crate) fn choose_mtu(mtu: usize) {
    let _ = MTU.set(mtu);
}

/// The secure sessions' datagram size: `--secure-mtu` in the harness, [`MTU_ENV`] in
/// a server process, else [`DEFAULT_MTU`].
fn mtu() -> usize {
    *MTU.get_or_init(|| {
        std::env::var(MTU_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MTU)
    })
}

/// The environment a server process of `which` needs: the secure datagram size.
pub(crate) fn server_env(which: Impl) -> Option<(&'static str, String)> {
    (which == Impl::KcpNetSecure).then(|| (MTU_ENV, mtu().to_string()))
}

/// The engine MTU `which` configures (kcp-net's `mtu` is the datagram size; a secure
/// session's KCP segments are [`kcp_net::secure::TRANSPORT_OVERHEAD`] bytes smaller).
pub(crate) fn configure_mtu(which: Impl, engine_mtu: &mut usize) {
    if which == Impl::KcpNetSecure {
        *engine_mtu = mtu();
    }
}

/// How the secure mode runs, for the report's header (the transport cipher is the
/// one the client prefers on this CPU, as in a real deployment, unless `--cipher`).
pub(crate) fn settings() -> String {
    format!(
        "kcp-net secure: the raw kcp-net server and client with `secure` set (Noise NK \
         over X25519, {} seal with a replay window, cookies only under load, default \
         rekey), the server key pinned by the client, datagrams of at most {} bytes \
         ({}); its ratios to raw kcp-net are medians of rounds run back to back with it.",
        cipher(),
        mtu(),
        segments(),
    )
}

/// How the secure sessions' KCP segments compare with raw kcp-net's, for the header.
fn segments() -> String {
    let overhead = kcp_net::secure::TRANSPORT_OVERHEAD;
    match mtu().checked_sub(overhead) {
        Some(DEFAULT_MTU) => {
            format!(
                "so its KCP segments are raw kcp-net's, with the seal's {overhead} bytes on top"
            )
        }
        Some(_) if mtu() == DEFAULT_MTU => format!(
            "as raw kcp-net's, so its KCP segments are {overhead} bytes smaller to make room \
             for the seal"
        ),
        Some(engine) => format!("KCP datagrams of {engine} bytes inside the seal"),
        None => format!("too small for the seal's {overhead} bytes"),
    }
}

/// The private key of the bench server. Fixed on purpose: the harness derives the
/// public key its clients pin from it, and the server process its identity, with
/// nothing passed between them. It guards nothing.
const BENCH_PRIVATE_KEY: [u8; 32] = *b"kcp-net loopback bench, no key!!";

/// The bench server's identity.
fn identity() -> ServerIdentity {
    ServerIdentity::from_private(BENCH_PRIVATE_KEY)
}

/// What `which`'s server sets as `ServerConfig::secure`.
pub(crate) fn server_security(which: Impl) -> Option<ServerSecurity> {
    (which == Impl::KcpNetSecure).then(|| ServerSecurity::new(identity()))
}

/// What `which`'s client sets as `ClientConfig::secure`.
pub(crate) fn client_security(which: Impl) -> Option<ClientSecurity> {
    (which == Impl::KcpNetSecure).then(|| {
        let mut security = ClientSecurity::new(identity().public());
        security.cipher = cipher();
        security
    })
}

/// Secure over raw kcp-net, round by round, and the median of those ratios.
fn versus_raw<T>(rounds: &[(Impl, Vec<T>)], figure: impl Fn(&T) -> f64) -> (f64, Vec<f64>) {
    let ratios = ratios_between(rounds, Impl::KcpNetSecure, Impl::KcpNet, figure);
    (median(ratios.clone()), ratios)
}

/// Paced (one client at 1000/s): p99 (and p50, for reading it) against raw kcp-net
/// round by round, p99 against quinn. `rows` holds each one's round of median p99.
pub(crate) fn paced_verdicts(
    rounds: &[(Impl, Vec<Latencies>)],
    rows: &[(Impl, Latencies)],
    verdicts: &mut Verdicts,
) {
    let p50 = |l: &Latencies| l.p50.as_secs_f64();
    let p99 = |l: &Latencies| l.p99.as_secs_f64();
    let (p50_ratio, p50s) = versus_raw(rounds, p50);
    let (p99_ratio, p99s) = versus_raw(rounds, p99);
    verdicts.add(
        "kcp-net secure, one client at 1000/s: p99 ≤ 1.1× raw kcp-net",
        format!(
            "{p99_ratio:.2}× (median of rounds: {}); p50 {p50_ratio:.2}× (rounds: {})",
            list(&p99s),
            list(&p50s)
        ),
        p99_ratio <= 1.1,
    );
    let (secure, quinn) = (of(rows, Impl::KcpNetSecure), of(rows, Impl::Quinn));
    let to_quinn = p99(secure) / p99(quinn);
    verdicts.add(
        "kcp-net secure, one client at 1000/s: p99 ≤ 1.0× quinn",
        format!(
            "{to_quinn:.2}× ({} vs {} ms; p50 {} vs {} ms)",
            ms(secure.p99),
            ms(quinn.p99),
            ms(secure.p50),
            ms(quinn.p50)
        ),
        to_quinn <= 1.0,
    );
}

/// Many clients: server CPU against raw kcp-net round by round; no client may fail.
pub(crate) fn many_verdict(
    rounds: &[(Impl, Vec<Latencies>)],
    clients: usize,
    rate: f64,
    verdicts: &mut Verdicts,
) {
    let failed: usize = of(rounds, Impl::KcpNetSecure)
        .iter()
        .map(|l| l.failed_clients)
        .sum();
    let (ratio, ratios) = versus_raw(rounds, |l| l.server_cpu);
    verdicts.add(
        &format!(
            "kcp-net secure, {clients} clients × {rate}/s: 0 failed, server CPU ≤ 1.3× raw kcp-net"
        ),
        format!(
            "{ratio:.2}× (median of rounds: {}), {failed} failed in {} rounds",
            list(&ratios),
            ratios.len()
        ),
        ratio <= 1.3 && failed == 0,
    );
}

/// Bulk: throughput against raw kcp-net round by round, and against quinn (medians,
/// bytes per second).
pub(crate) fn bulk_verdicts(
    rounds: &[(Impl, Vec<Throughput>)],
    secure: f64,
    quinn: f64,
    verdicts: &mut Verdicts,
) {
    let (ratio, ratios) = versus_raw(rounds, |t| t.bytes_per_sec);
    verdicts.add(
        "kcp-net secure, one session, bulk: throughput ≥ 0.85× raw kcp-net",
        format!("{ratio:.2}× (median of rounds: {})", list(&ratios)),
        ratio >= 0.85,
    );
    verdicts.add(
        "kcp-net secure, one session, bulk: throughput ≥ 1.5× quinn",
        format!(
            "{:.2}× (medians {:.0} vs {:.0} MB/s)",
            secure / quinn,
            secure / 1e6,
            quinn / 1e6
        ),
        secure >= 1.5 * quinn,
    );
}
