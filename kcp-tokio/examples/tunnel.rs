//! A TCP port forwarded through KCP: TCP connections to the local end travel as KCP
//! conversations to the remote end, which connects each to the target TCP service.
//!
//! ```text
//! # on the remote host: KCP on udp/4000, forwarding to a local service
//! cargo run -p kcp-tokio --example tunnel -- remote 0.0.0.0:4000 127.0.0.1:22
//! # on this host: tcp/2222 forwarded through KCP
//! cargo run -p kcp-tokio --example tunnel -- local 127.0.0.1:2222 remote.example:4000
//! ```
//!
//! KCP has no FIN, so each message carries a one-byte tag: [`DATA`] then the bytes,
//! or [`EOF`] when that direction's TCP side finished writing (a half-close).

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use kcp_tokio::{ClientConfig, KcpListener, KcpStream, Preset, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

/// Tag of a message that carries bytes.
pub const DATA: u8 = 0;
/// Tag of the message that ends a direction.
pub const EOF: u8 = 1;

/// Bytes read from TCP per KCP message.
const CHUNK: usize = 16 << 10;

#[allow(dead_code)] // the file is also a module of the tunnel test
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["local", listen, remote] => {
            let tcp = TcpListener::bind(listen).await?;
            println!(
                "forwarding tcp {} through KCP to {remote}",
                tcp.local_addr()?
            );
            serve_local(tcp, remote.to_owned()).await?;
        }
        ["remote", listen, target] => {
            let kcp = KcpListener::bind(listen, server_config()).await?;
            println!("KCP on {}, forwarding to tcp {target}", kcp.local_addr());
            serve_remote(kcp, target.to_owned()).await?;
        }
        _ => anyhow::bail!(
            "usage: tunnel local <tcp listen> <kcp remote> | remote <kcp listen> <tcp target>"
        ),
    }
    Ok(())
}

/// The settings of both ends: fast preset, flushes on send and input, big windows.
pub fn server_config() -> ServerConfig {
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.engine.snd_wnd = 1024;
    config.engine.rcv_wnd = 1024;
    config
}

/// See [`server_config`].
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    config.flush_on_input = true;
    config.engine.snd_wnd = 1024;
    config.engine.rcv_wnd = 1024;
    config
}

/// The local end: each accepted TCP connection becomes a KCP conversation to `remote`.
pub async fn serve_local(
    tcp: TcpListener,
    remote: impl ToSocketAddrs + Clone + Send + Sync + 'static,
) -> io::Result<()> {
    loop {
        let (socket, _) = tcp.accept().await?;
        let remote = remote.clone();
        tokio::spawn(async move {
            match KcpStream::connect(remote, client_config()).await {
                Ok(kcp) => {
                    let _ = pump(socket, kcp).await;
                }
                Err(e) => eprintln!("connect: {e}"),
            }
        });
    }
}

/// The remote end: each KCP conversation is connected to `target`.
pub async fn serve_remote(
    kcp: KcpListener,
    target: impl ToSocketAddrs + Clone + Send + Sync + 'static,
) -> io::Result<()> {
    loop {
        let (stream, _) = kcp.accept().await?;
        let target = target.clone();
        tokio::spawn(async move {
            match TcpStream::connect(target).await {
                Ok(socket) => {
                    let _ = pump(socket, stream).await;
                }
                Err(e) => eprintln!("connect: {e}"),
            }
        });
    }
}

/// Moves bytes both ways until both directions ended.
async fn pump(tcp: TcpStream, kcp: KcpStream) -> io::Result<()> {
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let (mut kcp_read, mut kcp_write) = kcp.split();
    let up = async {
        let mut buf = BytesMut::with_capacity(CHUNK + 1);
        loop {
            buf.clear();
            buf.put_u8(DATA);
            buf.resize(CHUNK + 1, 0);
            let n = tcp_read.read(&mut buf[1..]).await?;
            if n == 0 {
                kcp_write.send(Bytes::from_static(&[EOF])).await?;
                // Wait until the peer acknowledged everything before we let go.
                kcp_write.shutdown().await?;
                return io::Result::Ok(());
            }
            buf.truncate(n + 1);
            kcp_write.send(buf.split().freeze()).await?;
        }
    };
    let down = async {
        while let Some(message) = kcp_read.recv().await {
            match message.first() {
                Some(&DATA) => tcp_write.write_all(&message[1..]).await?,
                Some(&EOF) => break,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad tunnel frame",
                    ));
                }
            }
        }
        tcp_write.shutdown().await
    };
    let (up, down) = tokio::join!(up, down);
    up.and(down)
}
