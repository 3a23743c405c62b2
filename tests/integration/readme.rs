//! The README's embedding example is `examples/embedding.rs`, to the letter, so the code a
//! user copies from the README is code that compiles and runs (`tests/integration/examples.rs` runs it).

#[test]
fn the_readme_embedding_block_is_the_embedding_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/embedding.rs")).unwrap();
    let start = readme.find("## Embedding").expect("an Embedding section");
    let block = readme[start..]
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```\n").next())
        .expect("a rust block in the Embedding section");
    let marked = example
        .split("// README START\n")
        .nth(1)
        .and_then(|b| b.split("    // README END").next())
        .expect("README START/END markers in the example");
    let unindented: String = marked
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        unindented, block,
        "README.md and examples/embedding.rs say different things"
    );
}
