//! A KCP echo client on tokio: sends messages and times their echoes.
//!
//! ```text
//! cargo run -p kcp-tokio --example echo_client -- 127.0.0.1:4000 100
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use kcp_tokio::{ClientConfig, KcpStream, Preset};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4000".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;
    let mut config = ClientConfig::new(Preset::Fast);
    config.flush_on_send = true;
    let mut stream = KcpStream::connect(addr.as_str(), config).await?;
    let mut worst = Duration::ZERO;
    for i in 0..count {
        let message = Bytes::from(format!("message {i}"));
        let sent = Instant::now();
        stream.send(message.clone()).await?;
        let echo = tokio::time::timeout(Duration::from_secs(5), stream.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the conversation ended"))?;
        anyhow::ensure!(echo == message, "echo differs");
        worst = worst.max(sent.elapsed());
    }
    println!(
        "{count} echoes, slowest {worst:?}; {:?}",
        stream.stats().counters
    );
    Ok(())
}
