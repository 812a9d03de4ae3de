//! Server settings that cannot work are refused before anything starts; settings
//! that work badly start with a warning.

mod common;

use common::*;

#[test]
fn settings_that_cannot_work_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--max-clients", "0"],
            "max clients 0: no client could ever join",
        ),
        (
            &["--idle-timeout", "1s"],
            "idle timeout 1s is shorter than the clients' keepalive (3s)",
        ),
        (&["--history", "100000000"], "more than the memory budget"),
    ];
    for (args, reason) in cases {
        let home = std::env::temp_dir().join(format!("kcp-chat-refused-{}", std::process::id()));
        let output = binary()
            .args(["server", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("KCP_CHAT_HOME", &home)
            .output()
            .expect("running kcp-chat");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("listening"), "{stdout}");
        // Refused before any side effect: no key file was made.
        assert!(!home.join("server.key").exists(), "{args:?}");
    }
}

#[test]
fn an_idle_timeout_near_the_keepalive_starts_with_a_warning() {
    let mut server = Server::start(&["--raw", "--idle-timeout", "5s"]);
    let warning = server.proc.expect_stderr(WAIT, |l| l.contains("WARN"));
    assert!(
        warning.contains("idle timeout 5s is under two client keepalives"),
        "{warning}"
    );
    let mut chat = server.chat("still-works");
    join(&mut chat, "lobby");
}
