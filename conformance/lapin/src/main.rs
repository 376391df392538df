//! Conformance scenarios written with lapin, the Rust AMQP 0-9-1 client, for `conformance/run`.
//!
//! ```text
//! conformance-lapin URL SCENARIO|all|list
//! ```
//!
//! prints one JSON line per scenario: `{"scenario", "status": "pass"|"fail"|"skip", "detail"}`,
//! like the other clients of the suite. The runner starts one process per scenario, with a time
//! limit. `amqp://host:port/` means vhost `/` here as for the other clients (lapin itself would
//! read the empty path as vhost `""`).

mod errors;
mod harness;
mod messaging;
mod publishing;
mod routing;
mod topology;
mod world;

use std::time::Instant;

use harness::{Outcome, Scenario};

fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(topology::scenarios());
    all.extend(routing::scenarios());
    all.extend(messaging::scenarios());
    all.extend(publishing::scenarios());
    all.extend(errors::scenarios());
    all
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn emit(name: &str, status: &str, detail: &str) {
    println!(
        "{{\"scenario\": {}, \"status\": {}, \"detail\": {}}}",
        json_str(name),
        json_str(status),
        json_str(detail)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(which)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: conformance-lapin URL SCENARIO|all|list");
        std::process::exit(2);
    };
    let all = scenarios();
    if which == "list" {
        for s in &all {
            println!("{}", s.name);
        }
        return;
    }
    let url = harness::lapin_url(url);
    let picked: Vec<&Scenario> = if which == "all" {
        all.iter().collect()
    } else {
        all.iter().filter(|s| s.name == which.as_str()).collect()
    };
    if picked.is_empty() {
        emit(which, "skip", "not implemented for this client");
        return;
    }
    for s in picked {
        let t0 = Instant::now();
        let outcome = futures_lite::future::block_on((s.run)(url.clone()));
        let secs = t0.elapsed().as_secs_f64();
        match outcome {
            Ok(detail) => emit(s.name, "pass", format!("{detail} ({secs:.2}s)").trim()),
            Err(Outcome::Fail(why)) => emit(s.name, "fail", &why),
        }
    }
}
