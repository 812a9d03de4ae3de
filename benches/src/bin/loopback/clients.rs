//! One echo client per implementation behind a common blocking interface, so every
//! scenario drives each the same way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use kcp_net::{ClientConfig, KcpClient, Preset};
use tokio::io::AsyncWriteExt as _;

use crate::Impl;
use crate::servers::tokio_kcp_config;

/// How long one receive may wait before the run counts as failed.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking echo client.
pub(crate) trait EchoClient {
    /// Queues or sends one message.
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()>;
    /// The next echoed message.
    fn recv(&mut self) -> anyhow::Result<Vec<u8>>;

    /// Sends `message` and checks its echo.
    fn round_trip(&mut self, message: &[u8]) -> anyhow::Result<()> {
        self.send(message)?;
        let echo = self.recv()?;
        if echo != message {
            bail!("echo differs from what was sent");
        }
        Ok(())
    }
}

/// A connected client of `which`.
/// The KCP clients use `window` segments each way.
pub(crate) fn connect(
    which: Impl,
    server: SocketAddr,
    window: u16,
) -> anyhow::Result<Box<dyn EchoClient>> {
    Ok(match which {
        Impl::KcpNet | Impl::KcpNetSecure => {
            Box::new(KcpNetClient::connect(which, server, window)?)
        }
        Impl::KcpTokio => Box::new(KcpTokioClient::connect(server, window)?),
        Impl::TokioKcp => Box::new(TokioKcpClient::connect(server, window)?),
        Impl::Udp => Box::new(UdpClient::connect(server)?),
        Impl::Tcp => Box::new(TcpClient::connect(server)?),
        Impl::Quinn => Box::new(crate::quinn_peer::Client::connect(server, window)?),
    })
}

/// The client settings of kcp-net and kcp-tokio (the servers' in `servers.rs`).
fn kcp_client_config(window: u16) -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.recv_buffer = kcp_net::DEFAULT_SOCKET_BUFFER;
    config.send_buffer = kcp_net::DEFAULT_SOCKET_BUFFER;
    config.engine.snd_wnd = u32::from(window);
    config.engine.rcv_wnd = u32::from(window);
    config.max_queued_bytes = 64 << 20;
    config
}

/// kcp-net's client, raw or secure; `secure` says which, for its drop.
struct KcpNetClient {
    client: KcpClient,
    secure: bool,
}

impl KcpNetClient {
    fn connect(which: Impl, server: SocketAddr, window: u16) -> anyhow::Result<Self> {
        let mut config = kcp_client_config(window);
        config.secure = crate::secure_peer::client_security(which);
        crate::secure_peer::configure_mtu(which, &mut config.engine.mtu);
        let secure = config.secure.is_some();
        let client = KcpClient::connect(server, config)
            .with_context(|| format!("{}: connecting", which.name()))?;
        Ok(Self { client, secure })
    }
}

impl EchoClient for KcpNetClient {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        Ok(self.client.send(message)?)
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let message = self
            .client
            .recv(RECV_TIMEOUT)?
            .context("kcp-net: no echo in time")?;
        Ok(message.to_vec())
    }
}

impl Drop for KcpNetClient {
    /// Raw KCP has no close on the wire: wait for the last ACK and go (the server keeps
    /// the session until its idle timeout). A secure client tells the server, which
    /// frees the session at once, as the handshake rows need.
    fn drop(&mut self) {
        let linger = Duration::from_millis(100);
        let _ = if self.secure {
            self.client.close(linger)
        } else {
            self.client.wait_acknowledged(linger)
        };
    }
}

/// A single-threaded runtime for one blocking client.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?)
}

/// kcp-tokio's stream on a runtime of its own (one per client, as a blocking caller
/// would use it, like tokio_kcp's below).
struct KcpTokioClient {
    runtime: tokio::runtime::Runtime,
    stream: kcp_tokio::KcpStream,
}

impl KcpTokioClient {
    fn connect(server: SocketAddr, window: u16) -> anyhow::Result<Self> {
        let runtime = client_runtime()?;
        let stream = runtime.block_on(kcp_tokio::KcpStream::connect(
            server,
            kcp_client_config(window),
        ))?;
        Ok(Self { runtime, stream })
    }
}

impl EchoClient for KcpTokioClient {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let message = Bytes::copy_from_slice(message);
        self.runtime.block_on(self.stream.send(message))?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let Self { runtime, stream } = self;
        let message = runtime
            .block_on(async { tokio::time::timeout(RECV_TIMEOUT, stream.recv()).await })
            .context("kcp-tokio: no echo in time")?
            .context("kcp-tokio: the stream ended")?;
        Ok(message.to_vec())
    }

    /// Send and echo in one entry to the runtime, as an async caller awaits them
    /// (and as quinn's client does).
    fn round_trip(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let Self { runtime, stream } = self;
        let echo = runtime.block_on(async {
            stream.send(Bytes::copy_from_slice(message)).await?;
            let echo = tokio::time::timeout(RECV_TIMEOUT, stream.recv())
                .await
                .context("kcp-tokio: no echo in time")?
                .context("kcp-tokio: the stream ended")?;
            anyhow::Ok(echo)
        })?;
        if echo != message {
            bail!("echo differs from what was sent");
        }
        Ok(())
    }
}

impl Drop for KcpTokioClient {
    fn drop(&mut self) {
        let Self { runtime, stream } = self;
        let _ = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await
        });
    }
}

/// tokio_kcp's stream on a runtime of its own (one per client, as a blocking caller
/// would use it).
struct TokioKcpClient {
    runtime: tokio::runtime::Runtime,
    stream: tokio_kcp::KcpStream,
    buf: Vec<u8>,
}

impl TokioKcpClient {
    fn connect(server: SocketAddr, window: u16) -> anyhow::Result<Self> {
        let runtime = client_runtime()?;
        let stream = runtime.block_on(tokio_kcp::KcpStream::connect(
            &tokio_kcp_config(window),
            server,
        ))?;
        Ok(Self {
            runtime,
            stream,
            buf: vec![0; 256 * 1024],
        })
    }
}

impl EchoClient for TokioKcpClient {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let stream = &mut self.stream;
        self.runtime.block_on(stream.send(message))?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let Self {
            runtime,
            stream,
            buf,
        } = self;
        let n = runtime
            .block_on(async { tokio::time::timeout(RECV_TIMEOUT, stream.recv(buf)).await })
            .context("tokio_kcp: no echo in time")??;
        Ok(buf[..n].to_vec())
    }

    /// Send and echo in one entry to the runtime, as for kcp-tokio.
    fn round_trip(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let Self {
            runtime,
            stream,
            buf,
        } = self;
        let n = runtime.block_on(async {
            stream.send(message).await?;
            let n = tokio::time::timeout(RECV_TIMEOUT, stream.recv(buf))
                .await
                .context("tokio_kcp: no echo in time")??;
            anyhow::Ok(n)
        })?;
        if buf[..n] != *message {
            bail!("echo differs from what was sent");
        }
        Ok(())
    }
}

struct UdpClient {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl UdpClient {
    fn connect(server: SocketAddr) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(server)?;
        socket.set_read_timeout(Some(RECV_TIMEOUT))?;
        Ok(Self {
            socket,
            buf: vec![0; 65_536],
        })
    }
}

impl EchoClient for UdpClient {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        self.socket.send(message)?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let n = self
            .socket
            .recv(&mut self.buf)
            .context("udp: no echo in time")?;
        Ok(self.buf[..n].to_vec())
    }
}

struct TcpClient(TcpStream);

impl TcpClient {
    fn connect(server: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(server)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(RECV_TIMEOUT))?;
        Ok(Self(stream))
    }
}

impl EchoClient for TcpClient {
    fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(4 + message.len());
        frame.extend_from_slice(&(message.len() as u32).to_le_bytes());
        frame.extend_from_slice(message);
        self.0.write_all(&frame)?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.0
            .read_exact(&mut len)
            .context("tcp: no echo in time")?;
        let mut message = vec![0; u32::from_le_bytes(len) as usize];
        self.0.read_exact(&mut message)?;
        Ok(message)
    }
}
