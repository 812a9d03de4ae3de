//! The one-command demo, the load generator and the help text, through the binary.

use std::time::Duration;

use assert_cmd::Command;

fn kcp_chat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kcp-chat"))
}

#[test]
fn demo_delivers_everything_over_a_lossy_link() {
    let output = kcp_chat()
        .args(["demo", "--duration", "4s", "--bots", "3"])
        .timeout(Duration::from_secs(40))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("\n  lost              0\n"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    assert!(
        stdout.contains("link loss 10.0%, delay 30±20 ms"),
        "{stdout}"
    );
    // Both directions lose datagrams, and the summary counts both.
    let datagrams = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("datagrams"))
        .unwrap_or_else(|| panic!("no datagrams line: {stdout}"));
    let dropped: Vec<u64> = datagrams
        .split(['(', ' '])
        .zip(datagrams.split(['(', ' ']).skip(1))
        .filter(|(_, next)| next.starts_with("dropped"))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    assert_eq!(dropped.len(), 2, "{datagrams}");
    assert!(dropped.iter().all(|&d| d > 0), "{datagrams}");
    // The narration shows the conversation, a /me and the nick change.
    assert!(stdout.contains("[lobby] <ada>"), "{stdout}");
    assert!(
        stdout.contains("*** grace is now known as grace_h"),
        "{stdout}"
    );
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  messages sent"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a sent count");
    assert!(sent >= 10, "only {sent} messages in 4 s");
}

#[test]
fn demo_fails_when_the_link_eats_everything() {
    // A link that loses every datagram: nothing is delivered, so the demo must fail.
    let output = kcp_chat()
        .args([
            "demo",
            "--duration",
            "1s",
            "--drain",
            "1s",
            "--loss",
            "1.0",
            "--quiet",
            "--setup-timeout",
            "1s",
        ])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    // Secure bots cannot even finish their handshakes: said, not an error.
    assert!(stdout.contains("bots failed"), "{stdout}");
}

/// Runs `kcp-chat bench ARGS --json --no-progress`, which must pass, and returns its
/// report.
#[track_caller]
fn bench_json(args: &[&str]) -> serde_json::Value {
    let output = kcp_chat()
        .arg("bench")
        .args(args)
        .args(["--json", "--no-progress"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    serde_json::from_str(&stdout).expect("JSON")
}

#[test]
fn bench_reports_json_with_nothing_lost() {
    let report = bench_json(&[
        "--clients",
        "40",
        "--rate",
        "5",
        "--duration",
        "2s",
        "--room-size",
        "8",
    ]);
    assert_eq!(report["clients_ok"], 40);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent >= 200, "sent {sent}");
    assert_eq!(report["expected"].as_u64().unwrap(), sent * 8);
    assert_eq!(report["delivered"], report["expected"]);
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(report["server_cpu"]["source"], "in-process");
    // Secure by default: all 40 handshook at once (only one did while the client's
    // handshake poll kept its socket from the bench's poll).
    assert_eq!(report["wire"], "secure");
}

#[test]
fn bench_joins_during_load_with_a_ramp_and_counts_only_the_counted_lines() {
    let report = bench_json(&[
        "--clients",
        "40",
        "--rate",
        "5",
        "--ramp",
        "1s",
        "--duration",
        "1s",
        "--room-size",
        "8",
    ]);
    assert_eq!(report["ramp_s"], 1.0);
    // A light load: nobody is refused.
    assert_eq!(report["clients_ok"], 40);
    assert_eq!(report["refused_busy"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["errors"], 0, "{report}");
    // About 200 counted lines in the counted second; the warm-up lines of the ramp
    // (about 100 more) are not among them.
    let sent = report["sent"].as_u64().unwrap();
    assert!((120..=260).contains(&sent), "sent {sent}");
    assert_eq!(report["expected"].as_u64().unwrap(), sent * 8);
    assert_eq!(report["delivered"], report["expected"]);
}

#[test]
fn bench_runs_raw_kcp_to_compare() {
    let report = bench_json(&["--raw", "--clients", "8", "--rate", "5", "--duration", "1s"]);
    assert_eq!(report["wire"], "raw");
    assert_eq!(report["clients_ok"], 8);
    assert_eq!(report["lost"], 0);
}

#[test]
fn help_explains_every_subcommand() {
    let output = kcp_chat().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for command in ["server", "client", "demo", "bench"] {
        assert!(help.contains(&format!("  {command}")), "{help}");
    }
    for command in ["server", "client", "demo", "bench"] {
        let output = kcp_chat().args([command, "--help"]).output().unwrap();
        assert!(output.status.success(), "{command} --help");
    }
    let bad = kcp_chat()
        .args(["client", "--nick", "x", "--impair", "lose=0.1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown key \"lose\""));
}
