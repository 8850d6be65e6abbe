//! Snapshot tests of manifest errors: every `tests/ui/NAME.toml` must be
//! refused with exactly the message in `tests/ui/NAME.err`.
//! `UPDRAFT_BLESS=1 cargo test -p updraft-manifest --test ui` rewrites them.

use std::path::Path;
use updraft_manifest::Manifest;

#[test]
fn ui() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(crate_dir).unwrap();
    let ui = Path::new("tests/ui");
    // Absolute paths in messages vary per machine; snapshots say $DIR.
    let abs = ui.canonicalize().unwrap().display().to_string();
    let bless = std::env::var_os("UPDRAFT_BLESS").is_some_and(|v| v == "1");

    let mut cases: Vec<_> = std::fs::read_dir(ui)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());

    let mut failures = Vec::new();
    for toml in &cases {
        let err_file = toml.with_extension("err");
        let actual = match Manifest::load(toml) {
            Ok(_) => "(loaded without error)\n".to_string(),
            Err(e) => format!("{}\n", e.to_string().replace(&abs, "$DIR")),
        };
        if bless {
            std::fs::write(&err_file, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&err_file).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n  expected: {}  actual:   {}",
                toml.display(),
                expected,
                actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ (UPDRAFT_BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
