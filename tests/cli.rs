//! The `updraft` command line itself: help text, exit statuses, pipes.

mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "updraft {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The subcommands `updraft --help` lists (`help` aside).
fn subcommands() -> Vec<String> {
    help(&["--help"])
        .split("\nCommands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Each argument of a help section with its description, as clap prints
/// them: `  --flag <V>  description` on one line, or the description on the
/// lines below, indented further.
fn described_args(text: &str, section: &str) -> Vec<(String, String)> {
    let Some(body) = text.split(&format!("\n{section}:\n")).nth(1) else {
        return Vec::new();
    };
    let lines: Vec<&str> = body.lines().take_while(|l| !l.is_empty()).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let starts_arg = trimmed.starts_with('-') || trimmed.starts_with(['<', '[']);
        if indent > 6 || !starts_arg {
            continue;
        }
        let (name, same_line) = match trimmed.split_once("  ") {
            Some((n, d)) => (n.trim().to_string(), d.trim().to_string()),
            None => (trimmed.to_string(), String::new()),
        };
        let below = lines
            .get(i + 1)
            .filter(|next| next.len() - next.trim_start().len() > 6)
            .map(|next| next.trim().to_string())
            .unwrap_or_default();
        let description = if same_line.is_empty() {
            below
        } else {
            same_line
        };
        out.push((name, description));
    }
    out
}

#[test]
fn every_command_describes_each_argument_and_shows_an_example() {
    let commands = subcommands();
    for expected in ["server", "dev", "deploy", "invoke", "logs", "ls", "rm"] {
        assert!(commands.iter().any(|c| c == expected), "{commands:?}");
    }
    for cmd in &commands {
        let text = help(&[cmd, "--help"]);
        let mut args = described_args(&text, "Options");
        args.extend(described_args(&text, "Arguments"));
        assert!(
            args.iter().any(|(n, _)| n.starts_with("-h, --help")),
            "`updraft {cmd} --help` was not parsed:\n{text}"
        );
        for (name, description) in &args {
            assert!(
                !description.is_empty() && !description.starts_with('['),
                "`updraft {cmd} --help`: {name} has no description:\n{text}"
            );
        }
        let examples = text
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("`updraft {cmd} --help` has no Examples section:\n{text}"));
        assert!(
            examples.contains(&format!("updraft {cmd}")),
            "`updraft {cmd} --help`: the examples do not run {cmd}:\n{text}"
        );
    }
}

#[test]
fn client_flags_belong_to_client_commands_only() {
    for cmd in ["server", "dev"] {
        let text = help(&[cmd, "--help"]);
        for flag in ["--endpoint", "--ca-cert"] {
            assert!(
                !text.contains(flag),
                "`updraft {cmd} --help` lists {flag}:\n{text}"
            );
        }
    }
    for cmd in [
        "deploy", "invoke", "logs", "dlq", "ls", "rm", "rollback", "usage",
    ] {
        let text = help(&[cmd, "--help"]);
        for flag in ["--endpoint", "--data-dir", "--ca-cert"] {
            assert!(
                text.contains(flag),
                "`updraft {cmd} --help` lacks {flag}:\n{text}"
            );
        }
    }
    let server = Command::new(BIN)
        .args(["server", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(server.status.code(), Some(2), "{}", stderr(&server));
    assert!(
        stderr(&server).contains("--endpoint"),
        "{}",
        stderr(&server)
    );
}

#[test]
fn logs_of_an_unknown_function_exits_1_naming_it() {
    let s = Server::start("cli-logs");
    let out = s.cli(&["logs", "no-such-function"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no function named no-such-function"),
        "{}",
        stderr(&out)
    );
}

/// `updraft invoke f | head -c0`: the reader is gone before the result is
/// written. The command ends as `cat` does, by SIGPIPE and without a word.
#[test]
fn a_closed_stdout_ends_a_command_quietly_by_sigpipe() {
    let s = Server::start("cli-pipe");
    s.deploy(&repo().join("examples/hello"));
    // A flag before the command is still accepted (earlier releases took
    // the client flags globally) and wins over the environment.
    let leading = s
        .cli_command(&["--endpoint", &s.endpoint, "ls"])
        .env("UPDRAFT_ENDPOINT", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(leading.status.success(), "{}", stderr(&leading));
    assert!(stdout(&leading).contains("greet"), "{}", stdout(&leading));

    for args in [
        &[
            "invoke",
            "greet",
            "--payload",
            r#"{"pathParameters":{"name":"ada"}}"#,
        ][..],
        &["ls"][..],
        &["usage"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s
            .cli_command(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "updraft {args:?}: {} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            stderr(&out).is_empty(),
            "updraft {args:?}: {}",
            stderr(&out)
        );
    }
}

/// A code directory with a requirements.txt and no `build` line deploys,
/// with a warning naming the file and the build line that would ship it.
#[test]
fn deploy_warns_of_requirements_it_does_not_install() {
    let s = Server::start("cli-deps");
    let dir = scratch("deps-app");
    std::fs::create_dir(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    std::fs::write(dir.join("src/requirements.txt"), "requests==2.32.3\n").unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"deps\"\n[functions.deps]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"src\"\n",
    )
    .unwrap();
    let out = s.cli(&["deploy", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "warning: deps: src/requirements.txt lists packages that deploy does not install \
             (the function has no `build` line); to ship them, add to [functions.deps]: \
             build = \"pip install -r requirements.txt -t .\""
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("deps 1 "), "{}", stdout(&out));
}
