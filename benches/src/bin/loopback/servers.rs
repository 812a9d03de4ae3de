//! The echo servers measured side by side, one per implementation. Each runs in a
//! child process of the harness (`loopback serve IMPL`), prints `listening ADDR` once
//! ready and exits when its standard input closes, so its CPU time is its own.

use std::future::Future;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use kcp_net::{EventHandler, KcpServer, LoopStats, Preset, ServerConfig, SessionCtx};

use crate::Impl;

/// The KCP window (segments, send and receive) of the latency scenarios.
pub(crate) const KCP_WINDOW: u16 = 1024;

/// The KCP window of the bulk scenario (the "window 4096").
pub(crate) const BULK_WINDOW: u16 = 4096;

/// Runs `which`'s echo server on `listen` until standard input closes; the KCP servers
/// use `window` segments each way.
pub(crate) fn serve(which: Impl, listen: SocketAddr, window: u16) -> anyhow::Result<()> {
    match which {
        Impl::KcpNet | Impl::KcpNetSecure => kcp_net_server(which, listen, window),
        Impl::KcpTokio => kcp_tokio_server(listen, window),
        Impl::TokioKcp => tokio_kcp_server(listen, window),
        Impl::Udp => udp_server(listen),
        Impl::Tcp => tcp_server(listen),
        Impl::Quinn => crate::quinn_peer::serve(listen, window),
    }
}

/// Blocks until the harness closes our standard input.
pub(crate) fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
}

pub(crate) fn announce(addr: SocketAddr) {
    println!("listening {addr}");
    let _ = std::io::stdout().flush();
}

#[derive(Clone)]
struct Echo;

impl EventHandler for Echo {
    fn on_message(&mut self, session: &mut SessionCtx<'_>, message: Bytes) {
        let _ = session.send_bytes(message);
    }
}

/// The server settings of kcp-net and kcp-tokio: the fast preset, flushing on every
/// send and every input (as tokio_kcp does with `flush_write` and
/// `flush_acks_input`), limits no bench reaches.
fn kcp_server_config(window: u16) -> ServerConfig {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.engine.snd_wnd = u32::from(window);
    config.engine.rcv_wnd = u32::from(window);
    config.max_sessions = 100_000;
    config.new_sessions_per_sec = 1_000_000;
    // Every client of the bench comes from 127.0.0.1.
    config.max_sessions_per_ip = 1_000_000;
    config.new_sessions_per_ip_per_sec = 1_000_000;
    config.max_queued_bytes_per_session = 64 << 20;
    config.idle_timeout = Duration::from_secs(600);
    config
}

/// kcp-net, one event loop thread, raw or secure as `which` says.
fn kcp_net_server(which: Impl, listen: SocketAddr, window: u16) -> anyhow::Result<()> {
    let mut config = kcp_server_config(window);
    config.secure = crate::secure_peer::server_security(which);
    crate::secure_peer::configure_mtu(which, &mut config.engine.mtu);
    let server = KcpServer::bind(listen, config, Echo)
        .with_context(|| format!("binding {}", which.name()))?;
    announce(server.local_addr());
    wait_for_stdin_eof();
    report(which.name(), &server.shutdown(Duration::ZERO)?.total);
    Ok(())
}

/// For whoever reads the harness's standard error: what a KCP server's loop did.
fn report(name: &str, stats: &LoopStats) {
    eprintln!(
        "  {name} server: {} datagrams in ({} recv calls), {} out ({} send calls), \
         {} wake-ups, {} retransmits, {} dropped on a full socket",
        stats.datagrams_in,
        stats.recv_syscalls,
        stats.datagrams_out,
        stats.send_syscalls,
        stats.wakeups,
        stats.retransmits,
        stats.dropped_send_full
    );
}

/// Runs `serve` on a single-threaded runtime until the harness closes our standard
/// input.
fn serve_until_stdin_eof(serve: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let (eof_tx, eof) = tokio::sync::oneshot::channel();
        thread::spawn(move || {
            wait_for_stdin_eof();
            let _ = eof_tx.send(());
        });
        tokio::select! {
            _ = eof => Ok(()),
            served = serve => served,
        }
    })
}

/// kcp-tokio's listener on a single-threaded runtime, one task per accepted stream
/// echoing its messages.
fn kcp_tokio_server(listen: SocketAddr, window: u16) -> anyhow::Result<()> {
    let mut stats = None;
    serve_until_stdin_eof(async {
        let listener = kcp_tokio::KcpListener::bind(listen, kcp_server_config(window))
            .await
            .context("binding kcp-tokio")?;
        announce(listener.local_addr());
        let listener = &*stats.insert(listener);
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                while let Some(message) = stream.recv().await {
                    if stream.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    })?;
    if let Some(listener) = stats {
        report("kcp-tokio", &listener.stats());
    }
    Ok(())
}

/// The tokio_kcp configuration matching ours: `nodelay(1, 10, 2, 1)`, the same window,
/// flush on write and ACKs flushed on input.
pub(crate) fn tokio_kcp_config(window: u16) -> tokio_kcp::KcpConfig {
    tokio_kcp::KcpConfig {
        mtu: 1400,
        nodelay: tokio_kcp::KcpNoDelayConfig::fastest(),
        wnd_size: (window, window),
        session_expire: Duration::from_secs(600),
        flush_write: true,
        flush_acks_input: true,
        stream: false,
        allow_recv_empty_packet: false,
    }
}

/// tokio_kcp's listener on a single-threaded runtime (as fair a match for our one event
/// loop as it allows), one task per accepted session echoing what it receives.
fn tokio_kcp_server(listen: SocketAddr, window: u16) -> anyhow::Result<()> {
    serve_until_stdin_eof(async move {
        let mut listener = tokio_kcp::KcpListener::bind(tokio_kcp_config(window), listen)
            .await
            .context("binding tokio_kcp")?;
        announce(listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = stream.recv(&mut buf).await {
                    if stream.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

/// A plain UDP echo: the floor any UDP-based protocol pays.
fn udp_server(listen: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    announce(socket.local_addr()?);
    let echo = socket.try_clone()?;
    thread::spawn(move || {
        let mut buf = [0u8; 65_536];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    wait_for_stdin_eof();
    Ok(())
}

/// TCP echo of length-prefixed messages (u32 little-endian length, then the bytes),
/// one thread per connection, `TCP_NODELAY` on.
fn tcp_server(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)?;
    announce(listener.local_addr()?);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = tcp_echo(stream);
            });
        }
    });
    wait_for_stdin_eof();
    Ok(())
}

fn tcp_echo(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, stream.try_clone()?);
    let mut writer = stream;
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if reader.fill_buf()?.is_empty() {
            return Ok(());
        }
        reader.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        buf.resize(n, 0);
        reader.read_exact(&mut buf)?;
        writer.write_all(&len)?;
        writer.write_all(&buf)?;
    }
}
