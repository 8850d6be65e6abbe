//! The real AWS tools (boto3, the AWS CLI) pointed at a test server that
//! runs with fixed keys, with nothing of the developer's own AWS setup.

use super::Server;
use std::process::Command;

pub const ACCESS_KEY: &str = "AKIAUPDRAFTLAMBDATEST";
pub const SECRET_KEY: &str = "updraft-lambda-api-test-secret-0123456789";

/// The server's environment for [`ACCESS_KEY`] / [`SECRET_KEY`].
pub const KEYS: [(&str, &str); 2] = [
    ("UPDRAFT_ACCESS_KEY_ID", ACCESS_KEY),
    ("UPDRAFT_SECRET_ACCESS_KEY", SECRET_KEY),
];

/// Fails (never skips) when python3 cannot import boto3.
pub fn require_boto3() {
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    assert!(
        matches!(&boto3, Ok(o) if o.status.success()),
        "python3 with boto3 is required for the AWS API tests: run .ci/run, \
         or `pip install boto3 awscli` (got {boto3:?})"
    );
}

/// Fails (never skips) when the AWS tools are missing: boto3 and `aws`.
/// `suite` names the tests that need them.
pub fn require_aws_tools(suite: &str) {
    require_boto3();
    let aws = Command::new("aws").arg("--version").output();
    assert!(
        matches!(&aws, Ok(o) if o.status.success()),
        "the AWS CLI (`aws`) is required for the {suite} tests: run .ci/run, \
         or `pip install boto3 awscli` (got {aws:?})"
    );
}

/// Runs `cmd` (a client suite or script), failing with its output unless
/// it succeeds.
pub fn run_suite(what: &str, mut cmd: Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        super::stdout(&out),
        super::stderr(&out)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    eprintln!("{what} passed:\n{text}");
}

/// A command with the AWS environment pointed at `s` (started with
/// [`KEYS`]) and nothing of the developer's own AWS configuration.
pub fn aws_env(cmd: &mut Command, s: &Server) {
    let nowhere = s.data_dir.join("no-such-aws-config");
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_EVENTS",
        "AWS_ENDPOINT_URL_EVENTBRIDGE",
        "AWS_CA_BUNDLE",
        "AWS_REGION",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(super::repo())
        .env("UPDRAFT_ENDPOINT", &s.endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
}

/// A server whose credentials are [`ACCESS_KEY`] / [`SECRET_KEY`], written
/// to its data directory before it starts (as if it had generated them), so
/// that the CLI and [`Server::bearer`] find them there too.
pub fn server_with_keys(name: &str, env: &[(&str, &str)]) -> Server {
    server_with_keys_and_flags(name, env, &[])
}

/// [`server_with_keys`] with extra `server` flags.
pub fn server_with_keys_and_flags(name: &str, env: &[(&str, &str)], flags: &[&str]) -> Server {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = super::scratch(name);
    let creds = updraft_auth::Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("credentials"))
        .unwrap();
    std::io::Write::write_all(&mut file, creds.to_ini().as_bytes()).unwrap();
    Server::start_with(dir, env, flags)
}
