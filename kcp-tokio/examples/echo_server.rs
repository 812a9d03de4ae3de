//! A KCP echo server on tokio: every message comes back as it was.
//!
//! ```text
//! cargo run -p kcp-tokio --example echo_server -- 127.0.0.1:4000
//! ```

use kcp_tokio::{KcpListener, Preset, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".into());
    let mut config = ServerConfig::new(Preset::Fast);
    config.flush_on_send = true;
    let listener = KcpListener::bind(addr.as_str(), config).await?;
    println!("echo server on {}", listener.local_addr());
    loop {
        let (mut stream, peer) = listener.accept().await?;
        println!("{peer} conv {:#010x} connected", stream.conv());
        tokio::spawn(async move {
            while let Some(message) = stream.recv().await {
                if stream.send(message).await.is_err() {
                    break;
                }
            }
            println!("{peer} gone: {:?}", stream.close_reason());
        });
    }
}
