//! A file moved through `examples/tunnel.rs` on loopback: TCP → KCP → TCP echo
//! service and back.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/tunnel.rs"]
mod tunnel;

use std::time::Duration;

use kcp_tokio::KcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_travels_through_the_tunnel_and_back() {
    // The remote service: a TCP echo that half-closes when its client does.
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = service.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    let kcp = KcpListener::bind("127.0.0.1:0", tunnel::server_config())
        .await
        .unwrap();
    let kcp_addr = kcp.local_addr();
    tokio::spawn(tunnel::serve_remote(kcp, service_addr));
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_addr = local.local_addr().unwrap();
    tokio::spawn(tunnel::serve_local(local, kcp_addr));

    // A 3 MiB file on disk.
    let path = std::env::temp_dir().join(format!("kcp-tokio-tunnel-{}.bin", std::process::id()));
    let file: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &file).unwrap();
    let contents = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    let transfer = async {
        let socket = TcpStream::connect(local_addr).await.unwrap();
        let (mut r, mut w) = socket.into_split();
        let send = async {
            w.write_all(&contents).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let receive = r.read_to_end(&mut back);
        let ((), n) = tokio::join!(send, receive);
        assert_eq!(n.unwrap(), contents.len());
        back
    };
    let back = timeout(Duration::from_secs(30), transfer)
        .await
        .expect("the transfer finished");
    assert!(back == file, "the file came back intact");
}
