//! docs/rust-sdk.md stays runnable: its `rust` blocks run as doctests (included in
//! `src/lib.rs`); this checks that no block escapes that (an untagged or `ignore`d
//! fence), and that the guide's `[dependencies]` block resolves against this crate.

use std::path::{Path, PathBuf};

fn guide() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rust-sdk.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (info string, body) of every fenced block.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some("")) => out.push(open.take().expect("open")),
            (Some((_, body)), _) => {
                body.push_str(trimmed);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fence is never closed");
    out
}

#[test]
fn every_block_is_tagged_and_rust_blocks_all_run() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.contains(r#"include_str!("../../../docs/rust-sdk.md")"#),
        "src/lib.rs includes the guide as doctests"
    );
    let blocks = blocks(&guide());
    let mut rust = 0;
    for (info, body) in &blocks {
        let first = body.lines().next().unwrap_or("");
        match info.as_str() {
            // `no_run` only for the program that needs a node to connect to
            "rust,no_run" => assert!(body.contains("#[tokio::main]"), "no_run on {first:?}"),
            "rust" | "rust,test_harness" => {}
            "sh" | "toml" => continue,
            other => panic!("fence {other:?} (block starting {first:?}): tag it rust, rust,test_harness, sh or toml"),
        }
        rust += 1;
    }
    assert!(rust >= 8, "only {rust} rust blocks");
    let harness = blocks
        .iter()
        .filter(|(i, _)| i == "rust,test_harness")
        .count();
    assert!(harness >= 2, "the testing section runs its tests");
}

#[test]
fn the_dependencies_block_resolves() {
    let (_, toml) = blocks(&guide())
        .into_iter()
        .find(|(info, body)| info == "toml" && body.contains("[dependencies]"))
        .expect("a [dependencies] block");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    assert!(toml.contains(r#"path = "../crosswire/sdk/rust""#), "{toml}");
    let toml = toml.replace(
        r#"path = "../crosswire/sdk/rust""#,
        &format!("path = {:?}", sdk.display().to_string()),
    );
    let dir = std::env::temp_dir().join(format!("cw-docs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"docs-check\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n\n{toml}"),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    // the SDK's lock file pins what is in the local registry cache
    std::fs::copy(sdk.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    // `cargo tree` resolves for the host only, from the local registry cache
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the guide's [dependencies] do not resolve:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for name in ["crosswire v", "serde v1", "tokio v1"] {
        assert!(
            tree.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{tree}"
        );
    }
}
