//! `updraft deploy [DIR] [--prune]`: build, package, upload, publish.

use super::Context;
use bytes::Bytes;
use reqwest::Method;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use updraft_manifest::Manifest;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft deploy                      deploy ./updraft.toml
  updraft deploy examples/hello       prints NAME VERSION URL per function
  updraft deploy --prune              also delete the app's functions no longer listed"#;

#[derive(clap::Args)]
pub struct Args {
    /// The directory holding updraft.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Delete the app's functions that the manifest no longer lists.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize)]
struct Report {
    functions: Vec<updraft_platform::Deployed>,
    pruned: Vec<String>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    for f in deploy_dir(&client, &args.dir, args.prune).await? {
        println!("{} {} {}", f.name, f.version, f.url);
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads, builds, packages, uploads and publishes every function of
/// `dir/updraft.toml`; progress goes to stderr.
pub async fn deploy_dir(
    client: &crate::client::Client,
    dir: &std::path::Path,
    prune: bool,
) -> anyhow::Result<Vec<updraft_platform::Deployed>> {
    // A bad manifest stops everything before any upload.
    let manifest = Manifest::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut functions = Vec::new();
    for spec in &manifest.functions {
        if let Some(warning) = updraft_manifest::dependency_warning(spec) {
            eprintln!("warning: {warning}");
        }
        if spec.build.is_some() {
            eprintln!("building {} …", spec.name);
            updraft_manifest::run_build(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let package = updraft_manifest::package(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
        upload(client, &spec.name, package.bytes, &package.sha256).await?;
        functions.push(serde_json::json!({ "name": spec.name, "config": spec.config, "code_sha256": package.sha256 }));
    }
    let wasm: Vec<&str> = manifest
        .functions
        .iter()
        .filter(|f| f.config.kind() == updraft_core::RuntimeKind::Wasm)
        .map(|f| f.name.as_str())
        .collect();
    if !wasm.is_empty() {
        // The server compiles new components before it answers: seconds for
        // a large one, nothing for one it has compiled before.
        eprintln!(
            "deploying (the server compiles new wasm components: {}) …",
            wasm.join(", ")
        );
    }
    let body = serde_json::json!({ "functions": functions, "prune": prune });
    let path = format!(
        "/api/v1/apps/{}/deploy",
        crate::client::encode(&manifest.app)
    );
    let report: Report = client.json(Method::POST, &path, Some(&body)).await?;
    for f in &report.functions {
        let note = if f.changed { "published" } else { "unchanged" };
        eprintln!("{}: version {} {note}", f.name, f.version);
    }
    for name in &report.pruned {
        eprintln!("{name}: deleted (no longer in {})", manifest.path.display());
    }
    Ok(report.functions)
}

/// Uploads a package unless the server has it already, with a progress bar
/// on a terminal and plain lines otherwise (both on stderr).
async fn upload(
    client: &crate::client::Client,
    name: &str,
    bytes: Vec<u8>,
    sha: &str,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/code/{sha}");
    match client.send(Method::GET, &path, Bytes::new(), None).await {
        Ok(_) => {
            eprintln!("{name}: code {} already uploaded", &sha[..12]);
            return Ok(());
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let total = bytes.len() as u64;
    let body = Bytes::from(bytes);
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("uploading {name}"));
        Some(bar)
    } else {
        eprintln!("uploading {name} ({} KiB)", total.div_ceil(1024));
        None
    };
    let chunks: Vec<Bytes> = (0..body.len())
        .step_by(64 * 1024)
        .map(|i| body.slice(i..(i + 64 * 1024).min(body.len())))
        .collect();
    let progress = bar.clone();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
        if let Some(b) = &progress {
            b.inc(c.len() as u64);
        }
        Ok::<Bytes, std::io::Error>(c)
    }));
    client
        .send(
            Method::PUT,
            &path,
            body,
            Some(reqwest::Body::wrap_stream(stream)),
        )
        .await?;
    match bar {
        Some(b) => b.finish_and_clear(),
        None => eprintln!("uploaded {name}"),
    }
    Ok(())
}
