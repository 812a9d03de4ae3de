//! Host names wherever the binary takes an address (`--listen`, `--server`).

mod common;

use common::*;

#[test]
fn server_and_client_take_host_names() {
    let server = Server::start(&["--raw", "--listen", "localhost:0"]);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    let by_name = format!("localhost:{}", server.addr.port());
    let output = assert_cmd::Command::from_std(binary())
        .args(["client", "--raw", "--nick", "named", "--server", &by_name])
        .env("KCP_CHAT_HOME", &server.home)
        .write_stdin("hello by name\n")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("running the client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    expect_message(&mut listener, "hello by name");
}

#[test]
fn an_address_that_cannot_work_is_refused_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (
            // An empty label: refused by the resolver without asking a name server.
            &[
                "client",
                "--raw",
                "--nick",
                "n",
                "--server",
                "no..such.host:4000",
            ],
            "cannot resolve \"no..such.host:4000\"",
        ),
        (
            &["server", "--raw", "--listen", "localhost"],
            "is not HOST:PORT",
        ),
        (&["server", "--raw", "--listen", "::1:4000"], "in brackets"),
        (
            &["bench", "--server", "localhost:99999"],
            "is not HOST:PORT",
        ),
    ];
    for (args, reason) in cases {
        let output = binary().args(args).output().expect("running kcp-chat");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
