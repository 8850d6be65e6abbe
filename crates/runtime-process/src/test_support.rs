//! What this crate's tests share (the end-to-end tests have the same rule in
//! tests/common).

/// Whether a test can run here: true when `met`. Otherwise the test cannot
/// run: under `CI=true` (where every test must run) that is a failure naming
/// `what` it needs; elsewhere it prints "skipped: …" and returns false.
pub(crate) fn require(met: bool, what: &str) -> bool {
    if met {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test cannot run here (CI=true runs every test): it needs {what}"
    );
    eprintln!("skipped: this test needs {what}");
    false
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}
