//! Fails when `crates/warren-codec/src/generated.rs` no longer matches what the spec generates.

#[test]
fn committed_generated_code_matches_the_spec() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fresh = xtask::codegen::generate(&root).expect("generator runs");
    let committed =
        std::fs::read_to_string(xtask::codegen::output_path(&root)).expect("generated.rs exists");
    assert!(
        fresh == committed,
        "generated.rs is stale: run `cargo xtask codegen` and commit the result"
    );
}
