//! The `warren` binary's command line: flags, environment twins, `--print-config`, and refusal
//! of invalid configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::warren_binary as warren;

#[test]
fn print_config_shows_defaults() {
    let out = warren().arg("--print-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "port = 5672",
        "bind = \"0.0.0.0\"",
        "data_dir = \"warren-data\"",
        "frame_max = 131072",
        "heartbeat = 60",
        "consumer_timeout = 1800000",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn flags_and_environment_override_the_file() {
    let dir = std::env::temp_dir().join(format!("warren-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warren.toml");
    std::fs::write(&file, "port = 6000\nheartbeat = 7\nlog_level = \"debug\"\n").unwrap();
    let out = warren()
        .args([
            "--config",
            file.to_str().unwrap(),
            "--port",
            "6001",
            "--print-config",
        ])
        .env("WARREN_HEARTBEAT", "9")
        .env("WARREN_CONSUMER_TIMEOUT", "5000")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("consumer_timeout = 5000"), "{text}");
    assert!(text.contains("port = 6001"), "{text}");
    assert!(text.contains("heartbeat = 9"), "{text}");
    assert!(text.contains("log_level = \"debug\""), "{text}");
}

#[test]
fn invalid_configuration_exits_with_a_clear_message() {
    let out = warren()
        .args(["--print-config"])
        .env("WARREN_FRAME_MAX", "12")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("frame_max"), "{err}");
}

#[test]
fn zero_consumer_timeout_is_refused() {
    let out = warren()
        .args(["--print-config"])
        .env("WARREN_CONSUMER_TIMEOUT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("consumer_timeout"), "{err}");
}

#[test]
fn an_empty_variable_counts_as_unset_even_for_flags_with_twins() {
    let out = warren()
        .arg("--print-config")
        .env("WARREN_PORT", "")
        .env("WARREN_BIND", "")
        .env("WARREN_DATA_DIR", "")
        .env("WARREN_LOG_LEVEL", "")
        .env("WARREN_CONFIG", "")
        .env("WARREN_HEARTBEAT", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "port = 5672",
        "bind = \"0.0.0.0\"",
        "data_dir = \"warren-data\"",
        "log_level = \"info\"",
        "heartbeat = 60",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn flags_win_over_their_environment_twins() {
    let out = warren()
        .args([
            "--port",
            "6002",
            "--data-dir",
            "/tmp/flag-dir",
            "--print-config",
        ])
        .env("WARREN_PORT", "6003")
        .env("WARREN_DATA_DIR", "/tmp/env-dir")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("port = 6002"), "{text}");
    assert!(text.contains("data_dir = \"/tmp/flag-dir\""), "{text}");
}
