//! `kcp-chat server --config FILE` and `--print-config`: the file under the flags,
//! unknown keys and bad values refused with the file's name.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use kcp_chat::protocol::{ErrorCode, ServerFrame};

/// Writes `text` to a file of its own in the temp dir.
fn config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kcp-chat-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the config");
    path
}

fn server(file: &Path, flags: &[&str]) -> Output {
    binary()
        .arg("server")
        .arg("--config")
        .arg(file)
        .args(flags)
        .output()
        .expect("running kcp-chat")
}

/// The effective settings `--print-config` prints, parsed.
fn printed(file: &Path, flags: &[&str]) -> toml::Table {
    let output = server(file, &[&["--print-config"], flags].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn flags_override_the_file_and_the_file_overrides_the_defaults() {
    let file = config(
        "precedence.toml",
        "max_clients = 5\nidle_timeout = \"1m\"\nhistory = 3\n\
         [engine]\npreset = \"normal\"\nmtu = 900\nsndwnd = 64\n",
    );
    let settings = printed(&file, &["--mtu", "1000", "--history", "20"]);
    let engine = settings["engine"].as_table().expect("an [engine] table");
    // The flags win, even one given with the default value...
    assert_eq!(engine["mtu"].as_integer(), Some(1000));
    assert_eq!(settings["history"].as_integer(), Some(20));
    // ...the file's other keys count...
    assert_eq!(settings["max_clients"].as_integer(), Some(5));
    assert_eq!(settings["idle_timeout"].as_str(), Some("1m"));
    assert_eq!(engine["preset"].as_str(), Some("normal"));
    assert_eq!(engine["sndwnd"].as_integer(), Some(64));
    // ...and what neither gives keeps its default.
    assert_eq!(settings["listen"].as_str(), Some("127.0.0.1:4000"));
    assert_eq!(settings["max_message"].as_integer(), Some(1000));
    assert!(!engine.contains_key("rcvwnd"));
}

#[test]
fn the_printed_config_reads_back_to_itself() {
    let file = config(
        "round.toml",
        "listen = \"localhost:4100\"\nimpair = \"loss=0.1,delay=40ms\"\n\
         stats_every = \"10s\"\n[engine]\nnc = 0\n[cluster]\nredis = \"redis://127.0.0.1:1\"\n",
    );
    let first = printed(&file, &[]);
    let again = config("again.toml", &toml::to_string(&first).unwrap());
    assert_eq!(printed(&again, &[]), first);
    assert_eq!(first["listen"].as_str(), Some("localhost:4100"));
    assert_eq!(
        first["impair"].as_str(),
        Some("loss=0.1,delay=40ms,jitter=0s,dup=0,reorder=0,seed=1")
    );
    assert_eq!(
        first["cluster"]["redis"].as_str(),
        Some("redis://127.0.0.1:1")
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_problem() {
    let cases = [
        (
            "typo.toml",
            "max_client = 5\n",
            "unknown field `max_client`",
        ),
        (
            "nested.toml",
            "[engine]\nmtuu = 900\n",
            "unknown field `mtuu`",
        ),
        ("misplaced.toml", "mtu = 900\n", "unknown field `mtu`"),
        (
            "type.toml",
            "max_clients = \"many\"\n",
            "invalid type: string \"many\"",
        ),
        ("duration.toml", "idle_timeout = \"soon\"\n", "idle_timeout"),
        ("address.toml", "listen = \"nowhere\"\n", "is not HOST:PORT"),
        ("syntax.toml", "max_clients = \n", "line 1"),
        (
            "range.toml",
            "[engine]\nmtu = 10\n",
            "mtu 10 is outside 50..=65535",
        ),
    ];
    for (name, text, reason) in cases {
        let file = config(name, text);
        let output = server(&file, &["--print-config"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(output.stdout.is_empty(), "{name}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        if !matches!(name, "range.toml" | "nobody.toml") {
            assert!(stderr.contains(name), "{name}: {stderr}");
        }
    }
    let missing = std::env::temp_dir().join("kcp-chat-no-such-config.toml");
    let output = server(&missing, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kcp-chat-no-such-config.toml"), "{stderr}");
}

#[test]
fn a_server_runs_with_the_files_settings() {
    let file = config("live.toml", "max_clients = 1\n");
    let server = Server::start(&["--config", file.to_str().expect("a UTF-8 path")]);
    let mut first = server.chat("first");
    join(&mut first, "lobby");
    let mut second = server.chat("second");
    expect_frame(&mut second, |f| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::ServerFull,
                ..
            }
        )
    });
}
