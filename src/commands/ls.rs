//! `updraft ls [--json]`.

use super::Context;
use reqwest::Method;
use std::process::ExitCode;
use updraft_platform::FunctionInfo;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft ls
  updraft ls --json | jq '.[].name'"#;

#[derive(clap::Args)]
pub struct Args {
    /// The functions as a JSON array (name, app, version, runtime, url, …).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct List {
    functions: Vec<FunctionInfo>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let list: List = ctx
        .client()?
        .json(Method::GET, "/api/v1/functions", None)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list.functions)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "NAME",
        "APP",
        "VERSION",
        "RUNTIME",
        "URL_AUTH",
        "INSTANCES",
        "URL",
        "TRIGGERS",
    ]
    .map(String::from)];
    for f in &list.functions {
        rows.push([
            f.name.clone(),
            f.app.clone().unwrap_or_else(|| "-".into()),
            updraft_core::version_label(f.version),
            runtime_column(f),
            format!("{:?}", f.url_auth).to_lowercase(),
            f.live_instances.to_string(),
            f.url.clone(),
            if f.triggers.is_empty() {
                "-".into()
            } else {
                f.triggers.join(", ")
            },
        ]);
    }
    print!("{}", updraft_core::text_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `python3.11 (3.11.2)`: the Lambda id and the interpreter's version, or
/// what is missing when this server has no interpreter for it.
fn runtime_column(f: &FunctionInfo) -> String {
    let id = if f.runtime_id.is_empty() {
        &f.runtime
    } else {
        &f.runtime_id
    };
    match (
        &f.interpreter_version,
        updraft_core::RuntimeKind::parse(&f.runtime),
    ) {
        (Some(v), _) => format!("{id} ({v})"),
        (None, Some(updraft_core::RuntimeKind::Python3 | updraft_core::RuntimeKind::Nodejs)) => {
            format!("{id} (not installed)")
        }
        (None, _) => id.clone(),
    }
}
