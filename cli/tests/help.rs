//! The command line as built (the library's tests in `../tests/` run it too): every §8
//! command is there and says what it does.

#[test]
fn help_lists_every_command() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_texcache"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["demo", "replay", "stats", "tune", "check-config"] {
        assert!(text.contains(command), "no `{command}` in:\n{text}");
    }
}
