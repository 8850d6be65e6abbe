//! Apps written at test time around tests/fixtures/events: functions that
//! report every run to the test's [`Sink`](super::Sink) (its URL in their
//! `SINK` environment variable).

use super::{fixture, Sink};
use std::path::Path;

/// One function of an app: its name, its handler in
/// tests/fixtures/events/src/handlers.py and its trigger's TOML (none: "").
pub struct EventFn<'a> {
    pub name: &'a str,
    pub handler: &'a str,
    pub trigger: &'a str,
}

/// Writes (or rewrites) app `app` in `dir`.
pub fn write_event_app(dir: &Path, app: &str, sink: &Sink, functions: &[EventFn]) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(
        fixture("events").join("src/handlers.py"),
        src.join("handlers.py"),
    )
    .unwrap();
    let mut toml = format!("[app]\nname = \"{app}\"\n");
    for f in functions {
        toml.push_str(&format!(
            "\n[functions.{}]\nruntime = \"python3\"\nhandler = \"handlers.{}\"\n\
             code = \"src\"\nenv = {{ SINK = \"{}\" }}\n",
            f.name, f.handler, sink.url
        ));
        if !f.trigger.is_empty() {
            toml.push_str(&format!(
                "\n[[functions.{}.triggers]]\n{}\n",
                f.name, f.trigger
            ));
        }
    }
    std::fs::write(dir.join("updraft.toml"), toml).unwrap();
}
