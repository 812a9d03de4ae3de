//! `--log-format json`: one JSON object per log line on stderr.

mod common;

use common::*;

#[test]
fn json_logs_are_one_object_per_line() {
    let mut server = Server::start(&["--raw", "--log", "info", "--log-format", "json"]);
    let line = server
        .proc
        .expect_stderr(WAIT, |l| l.contains("chat server up"));
    let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(event["fields"]["message"], "chat server up", "{line}");
    assert_eq!(
        event["fields"]["addr"].as_str(),
        Some(server.addr.to_string().as_str()),
        "{line}"
    );
    assert!(event["timestamp"].is_string(), "{line}");
}

#[test]
fn text_logs_stay_the_default() {
    let mut server = Server::start(&["--raw", "--log", "info"]);
    let line = server
        .proc
        .expect_stderr(WAIT, |l| l.contains("chat server up"));
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "{line}"
    );
    assert!(line.contains("INFO"), "{line}");
}
