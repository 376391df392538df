//! `cargo xtask <command>`: developer commands that are not part of any shipped crate.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\
         \n\
         commands:\n  \
         codegen           regenerate crates/warren-codec/src/generated.rs from the spec XML\n  \
         codegen --check   fail if the committed generated.rs is stale\n  \
         fuzz [SECONDS]    run the frame-decoder fuzz target (needs cargo-fuzz)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("codegen") => {
            let check = args.get(1).map(String::as_str) == Some("--check");
            match xtask::codegen::run(&root, check) {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("codegen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("fuzz") => {
            let secs = args.get(1).cloned().unwrap_or_else(|| "60".into());
            let status = Command::new("cargo")
                .current_dir(root.join("fuzz"))
                .env("RUSTC_BOOTSTRAP", "1")
                .args([
                    "fuzz",
                    "run",
                    "frame_decoder",
                    "--",
                    &format!("-max_total_time={secs}"),
                ])
                .status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!(
                        "fuzz: cannot run cargo fuzz ({e}); install it with `cargo install cargo-fuzz`"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
