//! The manual engine knobs (`--mtu`, `--sndwnd`, `--rcvwnd`, `--nodelay`,
//! `--interval`, `--resend`, `--nc`) on top of the presets, through the binary.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn server_and_client_chat_with_knobs_on_top_of_the_preset() {
    let knobs = [
        "--preset",
        "normal",
        "--mtu",
        "600",
        "--sndwnd",
        "64",
        "--rcvwnd",
        "256",
        "--nodelay",
        "1",
        "--interval",
        "20",
        "--resend",
        "2",
        "--nc",
        "1",
    ];
    let server = Server::start(&knobs);
    let mut listener = server.chat("listener");
    join(&mut listener, "lobby");
    // Longer than one 600-byte datagram: the message crosses as fragments.
    let long = "x".repeat(900);
    let output = server.run_client("tuned", &knobs, format!("short\n{long}\n"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    expect_message(&mut listener, "short");
    expect_message(&mut listener, &long);
}

#[test]
fn a_knob_out_of_range_is_refused_with_the_engines_reason() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["server", "--raw", "--mtu", "30"],
            "mtu 30 is outside 50..=65535",
        ),
        (
            &["client", "--raw", "--nick", "n", "--rcvwnd", "16"],
            "receive window 16 is outside 128..=65535",
        ),
        (
            &["demo", "--interval", "5"],
            "interval 5 ms is outside 10..=5000",
        ),
        (
            &["bench", "--sndwnd", "0"],
            "send window 0 is outside 1..=65535",
        ),
    ];
    for (args, reason) in cases {
        let output = binary()
            .args(args)
            .env("KCP_CHAT_HOME", std::env::temp_dir().join("kcp-chat-knobs"))
            .output()
            .expect("running kcp-chat");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains("engine settings"), "{stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    // Values that no preset can mean are refused by the parser.
    for (flag, value) in [("--nodelay", "3"), ("--nc", "2"), ("--mtu", "big")] {
        let output = binary()
            .args(["demo", flag, value])
            .output()
            .expect("running kcp-chat");
        assert!(!output.status.success(), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(flag),
            "{flag} {value}"
        );
    }
}

#[test]
fn the_demo_reports_the_knobs_it_ran_with() {
    let output = assert_cmd::Command::from_std(binary())
        .args([
            "demo",
            "--raw",
            "--quiet",
            "--bots",
            "2",
            "--duration",
            "1s",
        ])
        .args([
            "--drain",
            "2s",
            "--loss",
            "0",
            "--message-interval",
            "200ms",
        ])
        .args(["--mtu", "1200", "--sndwnd", "128", "--nc", "0"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("running the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("preset fast, mtu 1200, sndwnd 128, nc 0"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS"), "{stdout}");
}
