//! quinn (QUIC, TLS 1.3 by rustls) as a peer: its echo server, its blocking echo
//! client and its handshake dialer.
//!
//! Messages travel on one bidirectional stream, framed as the TCP peer frames them
//! (u32 little-endian length, then the bytes): a stream is reliable and ordered, as KCP's
//! messages are, so it is the fair match. QUIC datagrams would be closer to raw UDP
//! (unreliable, one packet each) and are not used.
//!
//! The server's certificate is self-signed, made by rcgen once per harness run
//! ([`identity`]), handed to the server process in [`IDENTITY_ENV`] and pinned by
//! every client as its only root. Both sides use quinn's defaults (Cubic, MTU discovery,
//! GSO/GRO where the kernel has them) except for three knobs matched to the KCP peers:
//! socket buffers of [`kcp_net::DEFAULT_SOCKET_BUFFER`], stream and connection windows of
//! the KCP window in bytes ([`window_bytes`]), and no idle timeout shorter than a run.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::rustls::{self, pki_types};
use quinn::{Connection, Endpoint, EndpointConfig, RecvStream, SendStream, TokioRuntime};

use crate::clients::{EchoClient, RECV_TIMEOUT};
use crate::handshake::Dialer;
use crate::scenarios::Latencies;
use crate::{Impl, Verdicts, ms};

/// How quinn runs, for the report's header.
pub(crate) const SETTINGS: &str = "quinn 0.11 (rustls 0.23 over ring, TLS 1.3, a \
    self-signed ECDSA P-256 certificate from rcgen pinned by the client) on one tokio \
    thread, messages framed on one bidirectional stream as TCP's are; quinn's defaults \
    (Cubic, MTU discovery, GSO) except socket buffers as kcp-net's (4 MiB) and stream \
    and connection windows of the KCP window in bytes (segments × 1400).";

/// The latency target against quinn: kcp-net's paced p99 at most quinn's.
pub(crate) fn paced_verdict(rows: &[(Impl, Latencies)], verdicts: &mut Verdicts) {
    let find = |which| rows.iter().find(|(w, _)| *w == which).map(|(_, l)| l);
    let (Some(ours), Some(quinn)) = (find(Impl::KcpNet), find(Impl::Quinn)) else {
        return;
    };
    let p99 = ours.p99.as_secs_f64() / quinn.p99.as_secs_f64();
    verdicts.add(
        "one client at 1000/s: p99 ≤ 1.0× quinn",
        format!("{p99:.2}× ({} vs {} ms)", ms(ours.p99), ms(quinn.p99)),
        p99 <= 1.0,
    );
}

/// The throughput target against quinn: kcp-net's bulk median at least 1.5×
/// quinn's (both in bytes per second).
pub(crate) fn bulk_verdict(ours: f64, quinn: f64, verdicts: &mut Verdicts) {
    verdicts.add(
        "one session, 16 KiB messages: throughput ≥ 1.5× quinn",
        format!(
            "{:.2}× (medians {:.0} vs {:.0} MB/s)",
            ours / quinn,
            ours / 1e6,
            quinn / 1e6
        ),
        ours >= 1.5 * quinn,
    );
}

/// The environment variable that carries the server's key and certificate from the
/// harness to the server process: hex PKCS#8 key, `:`, hex DER certificate.
pub(crate) const IDENTITY_ENV: &str = "LOOPBACK_QUINN_IDENTITY";

/// The name in the certificate, and the one clients ask for.
const SERVER_NAME: &str = "localhost";

/// The server's self-signed certificate and its key (ECDSA P-256, rcgen's default).
struct Identity {
    cert: pki_types::CertificateDer<'static>,
    key: pki_types::PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    fn generate() -> anyhow::Result<Self> {
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])?;
        Ok(Self {
            cert: made.cert.der().clone(),
            key: made.signing_key.serialize_der().into(),
        })
    }

    fn to_env(&self) -> String {
        format!(
            "{}:{}",
            hex(self.key.secret_pkcs8_der()),
            hex(self.cert.as_ref())
        )
    }

    fn from_env(value: &str) -> anyhow::Result<Self> {
        let (key, cert) = value.split_once(':').context("no ':' in the identity")?;
        Ok(Self {
            cert: unhex(cert)?.into(),
            key: unhex(key)?.into(),
        })
    }
}

/// This run's identity, made on first use: the harness pins it in its clients and
/// hands it to each quinn server it starts.
fn identity() -> &'static Identity {
    static IDENTITY: OnceLock<Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| Identity::generate().expect("rcgen makes a self-signed certificate"))
}

/// What a server process of `which` needs in its environment: for quinn, this run's
/// identity ([`IDENTITY_ENV`]); nothing for the others.
pub(crate) fn server_env(which: Impl) -> Option<(&'static str, String)> {
    (which == Impl::Quinn).then(|| (IDENTITY_ENV, identity().to_env()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

/// A KCP window of `segments` in bytes (MTU 1400): quinn's stream and connection
/// flow-control windows, so neither protocol is held back by a smaller window.
fn window_bytes(segments: u16) -> u32 {
    u32::from(segments) * 1400
}

fn transport(window: u16) -> Arc<quinn::TransportConfig> {
    let bytes = window_bytes(window);
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(bytes.into())
        .receive_window(bytes.into())
        .send_window(u64::from(bytes))
        // The 1000-client run keeps every connection open for its whole length.
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(600)).expect("600 s fits"),
        ));
    Arc::new(transport)
}

/// A UDP socket on `addr` with the socket buffers kcp-net asks for.
fn socket(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Linux caps both at rmem_max/wmem_max, as it does for kcp-net.
    let _ = socket.set_recv_buffer_size(kcp_net::DEFAULT_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(kcp_net::DEFAULT_SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?)
}

/// quinn's echo server on one tokio thread (as kcp-net runs one event loop and
/// tokio_kcp one runtime thread): every accepted stream echoes its frames. Runs until
/// standard input closes.
pub(crate) fn serve(listen: SocketAddr, window: u16) -> anyhow::Result<()> {
    let identity = match std::env::var(IDENTITY_ENV) {
        Ok(value) => Identity::from_env(&value).context(IDENTITY_ENV)?,
        Err(_) => Identity::generate()?, // started by hand: no client can pin it anyway
    };
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(vec![identity.cert], identity.key.into())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport(window));

    let runtime = current_thread_runtime()?;
    runtime.block_on(async move {
        let endpoint = Endpoint::new(
            EndpointConfig::default(),
            Some(config),
            socket(listen)?,
            Arc::new(TokioRuntime),
        )
        .context("binding quinn")?;
        crate::servers::announce(endpoint.local_addr()?);
        let (eof_tx, mut eof) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            crate::servers::wait_for_stdin_eof();
            let _ = eof_tx.send(());
        });
        loop {
            tokio::select! {
                _ = &mut eof => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    tokio::spawn(async move {
                        if let Ok(connection) = incoming.await {
                            while let Ok((send, recv)) = connection.accept_bi().await {
                                tokio::spawn(echo(send, recv));
                            }
                        }
                    });
                }
            }
        }
        endpoint.close(0u32.into(), b"shutdown");
        anyhow::Ok(())
    })
}

/// Echoes length-prefixed frames until the stream or the connection ends.
async fn echo(mut send: SendStream, mut recv: RecvStream) {
    let mut frame = Vec::new();
    while read_frame(&mut recv, &mut frame).await.is_ok() {
        if send.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Reads one frame (length prefix included) into `frame`.
async fn read_frame(recv: &mut RecvStream, frame: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    frame.clear();
    frame.extend_from_slice(&len);
    frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
    recv.read_exact(&mut frame[4..]).await?;
    Ok(())
}

/// A client endpoint that pins this run's certificate; `resume` keeps rustls's session
/// cache, so a second connection to the same server resumes (no certificate, no
/// signature) instead of a full handshake.
fn client_endpoint(window: u16, resume: bool) -> anyhow::Result<Endpoint> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity().cert.clone())?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    if !resume {
        tls.resumption = rustls::client::Resumption::disabled();
    }
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport(window));
    let mut endpoint = Endpoint::new(
        EndpointConfig::default(),
        None,
        socket((Ipv4Addr::LOCALHOST, 0).into())?,
        Arc::new(TokioRuntime),
    )?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// Connects `endpoint` to `server` and opens the stream the echo runs on.
async fn open(
    endpoint: &Endpoint,
    server: SocketAddr,
) -> anyhow::Result<(Connection, SendStream, RecvStream)> {
    let connection = tokio::time::timeout(RECV_TIMEOUT, endpoint.connect(server, SERVER_NAME)?)
        .await
        .context("quinn: no handshake in time")??;
    let (send, recv) = connection.open_bi().await?;
    Ok((connection, send, recv))
}

/// Sends one frame of `message` and waits for its echo, checked.
async fn round_trip(
    send: &mut SendStream,
    recv: &mut RecvStream,
    frame: &mut Vec<u8>,
    message: &[u8],
) -> anyhow::Result<()> {
    write_frame(send, frame, message).await?;
    read_echo(recv, frame).await?;
    anyhow::ensure!(frame[4..] == *message, "quinn: echo differs");
    Ok(())
}

async fn write_frame(
    send: &mut SendStream,
    frame: &mut Vec<u8>,
    message: &[u8],
) -> anyhow::Result<()> {
    frame.clear();
    frame.extend_from_slice(&(message.len() as u32).to_le_bytes());
    frame.extend_from_slice(message);
    send.write_all(frame).await?;
    Ok(())
}

async fn read_echo(recv: &mut RecvStream, frame: &mut Vec<u8>) -> anyhow::Result<()> {
    tokio::time::timeout(RECV_TIMEOUT, read_frame(recv, frame))
        .await
        .context("quinn: no echo in time")?
}

/// A client endpoint (one socket) on a current-thread runtime of its own, as a
/// blocking caller would run quinn; dropping it gives closing connections up to
/// 100 ms to say so to the server.
struct Local {
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
}

impl Local {
    fn new(window: u16, resume: bool) -> anyhow::Result<Self> {
        let runtime = current_thread_runtime()?;
        let endpoint = runtime.block_on(async { client_endpoint(window, resume) })?;
        Ok(Self { runtime, endpoint })
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let idle = self.endpoint.wait_idle();
        let _ = self.runtime.block_on(async {
            // (a timer needs the runtime, so it is made inside)
            tokio::time::timeout(Duration::from_millis(100), idle).await
        });
    }
}

/// One connection and its stream, on a [`Local`] endpoint of its own (one per
/// client, like the tokio_kcp client).
pub(crate) struct Client {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    frame: Vec<u8>,
    local: Local,
}

impl Client {
    /// Connects to `server` with windows of `window` KCP segments in bytes.
    pub(crate) fn connect(server: SocketAddr, window: u16) -> anyhow::Result<Self> {
        let local = Local::new(window, false)?;
        let (connection, send, recv) = local.runtime.block_on(open(&local.endpoint, server))?;
        Ok(Self {
            connection,
            send,
            recv,
            frame: Vec::new(),
            local,
        })
    }
}

impl EchoClient for Client {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let Self {
            local, send, frame, ..
        } = self;
        local.runtime.block_on(write_frame(send, frame, message))
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let Self {
            local, recv, frame, ..
        } = self;
        local.runtime.block_on(read_echo(recv, frame))?;
        Ok(self.frame[4..].to_vec())
    }

    fn round_trip(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let Self {
            local,
            send,
            recv,
            frame,
            ..
        } = self;
        local
            .runtime
            .block_on(round_trip(send, recv, frame, message))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // `local`, dropped next, lets the close reach the server (as the kcp-net
        // client waits for its last ACK).
        self.connection.close(0u32.into(), b"done");
    }
}

/// The handshake loop's quinn client: one [`Local`] endpoint making connection after
/// connection, as a real client process would. Each handshake is a full one unless
/// `resume`.
pub(crate) struct QuinnDialer {
    local: Local,
    server: SocketAddr,
    frame: Vec<u8>,
}

impl QuinnDialer {
    pub(crate) fn new(server: SocketAddr, window: u16, resume: bool) -> anyhow::Result<Self> {
        Ok(Self {
            local: Local::new(window, resume)?,
            server,
            frame: Vec::new(),
        })
    }
}

impl Dialer for QuinnDialer {
    fn connect_echo_close(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let Self {
            local,
            server,
            frame,
        } = self;
        local.runtime.block_on(async {
            let (connection, mut send, mut recv) = open(&local.endpoint, *server).await?;
            round_trip(&mut send, &mut recv, frame, message).await?;
            // The CONNECTION_CLOSE leaves on this runtime's next turn (the next
            // connect); the draining period runs in the background, as in a real client.
            connection.close(0u32.into(), b"done");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_crosses_the_environment() {
        let identity = Identity::generate().unwrap();
        let back = Identity::from_env(&identity.to_env()).unwrap();
        assert_eq!(back.cert, identity.cert);
        assert_eq!(back.key.secret_pkcs8_der(), identity.key.secret_pkcs8_der());
    }
}
