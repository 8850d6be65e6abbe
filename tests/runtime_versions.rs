//! Lambda runtime ids run on that interpreter version: what the server has
//! is found at start, `--runtime ID=PATH` maps more, and a version it lacks
//! is refused at deploy and CreateFunction, never run on another version.

mod common;
use common::aws::{aws_env, require_boto3, server_with_keys};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directories instances' `PATH` holds (the server scans the same).
const INSTANCE_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];

/// The major version of the system's `node` (the first on the instance PATH).
fn system_node_major() -> u32 {
    let node = INSTANCE_PATH
        .iter()
        .map(|d| Path::new(d).join("node"))
        .find(|p| p.is_file())
        .expect("a node on /usr/local/bin:/usr/bin:/bin");
    let out = Command::new(&node).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{} --version printed {text:?}", node.display()))
}

/// The newest `python3.X` on the instance PATH: its minor.
fn newest_python_minor() -> u32 {
    INSTANCE_PATH
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("python3.")?.parse().ok()
        })
        .max()
        .expect("a python3.X on /usr/local/bin:/usr/bin:/bin")
}

/// Node 22 installed beside the system's (scripts/setup: UPDRAFT_TEST_NODE22).
fn node22() -> Option<PathBuf> {
    let path = std::env::var_os("UPDRAFT_TEST_NODE22").map(PathBuf::from);
    let ok = path.as_ref().is_some_and(|p| p.is_file());
    require(
        ok,
        "UPDRAFT_TEST_NODE22, the path of a Node.js 22 (scripts/setup installs one under target/ci/node22)",
    )
    .then(|| path.unwrap())
}

/// An app whose functions answer the version of the interpreter they run on.
fn write_app(dir: &Path, functions: &[(&str, &str)]) {
    for (file, text) in [
        ("node/index.js", "exports.version = async () => process.version;\n"),
        (
            "py/app.py",
            "import sys\n\ndef version(event, context):\n    return '%d.%d.%d' % sys.version_info[:3]\n",
        ),
    ] {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let mut toml = String::from("[app]\nname = \"versions\"\n");
    for (name, runtime) in functions {
        let (handler, code) = if runtime.starts_with("python") {
            ("app.version", "py")
        } else {
            ("index.version", "node")
        };
        toml += &format!(
            "\n[functions.{name}]\nruntime = \"{runtime}\"\nhandler = \"{handler}\"\ncode = \"{code}\"\n"
        );
    }
    std::fs::write(dir.join("updraft.toml"), toml).unwrap();
}

const BOTO3_SCRIPT: &str = r#"
import boto3, io, json, os, sys, zipfile
c = boto3.client('lambda', endpoint_url=os.environ['UPDRAFT_ENDPOINT'])
create, runtime, names = sys.argv[1], sys.argv[2], sys.argv[3:]
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w') as z:
    z.writestr('index.js', 'exports.version = async () => process.version;\n')
out = {}
try:
    c.create_function(FunctionName=create, Runtime=runtime, Handler='index.version',
                      Role='arn:aws:iam::000000000000:role/x', Code={'ZipFile': buf.getvalue()})
    out['invoked'] = json.loads(c.invoke(FunctionName=create)['Payload'].read())
    names.append(create)
except c.exceptions.InvalidParameterValueException as e:
    out['error'] = e.response['Error']['Code']
    out['message'] = e.response['Error']['Message']
if 'error' in out:
    # UpdateFunctionConfiguration to the same runtime is refused too.
    c.create_function(FunctionName=create + '-other', Runtime=os.environ['OTHER_RUNTIME'],
                      Handler='index.version', Role='arn:aws:iam::000000000000:role/x',
                      Code={'ZipFile': buf.getvalue()})
    names.append(create + '-other')
    try:
        c.update_function_configuration(FunctionName=create + '-other', Runtime=runtime)
    except c.exceptions.InvalidParameterValueException as e:
        out['update_error'] = e.response['Error']['Message']
out['runtimes'] = {n: c.get_function(FunctionName=n)['Configuration']['Runtime'] for n in names}
out['listed'] = sorted(f['Runtime'] for f in c.list_functions()['Functions'])
print(json.dumps(out))
"#;

/// Through boto3: CreateFunction `create` on `runtime` (its answer or its
/// error; when refused, UpdateFunctionConfiguration of a function on the
/// system's node to `runtime`), then GetFunction's Runtime of each of
/// `names` and of `create`.
fn boto3(s: &Server, create: &str, runtime: &str, names: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", BOTO3_SCRIPT, create, runtime]).args(names);
    aws_env(&mut cmd, s);
    cmd.env("OTHER_RUNTIME", format!("nodejs{}.x", system_node_major()));
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

#[test]
fn a_version_the_server_lacks_is_refused_at_deploy_and_create_function() {
    require_boto3();
    let major = system_node_major();
    assert_ne!(
        major, 22,
        "this test needs a system node other than 22 (it deploys nodejs22.x where none is installed)"
    );
    let system = format!("nodejs{major}.x");
    let s = server_with_keys("rtv-refused", &[]);
    let runtimes = s.startup.iter().find(|l| l.contains("runtimes: ")).cloned();
    let runtimes = runtimes.unwrap_or_else(|| panic!("no runtimes line: {:?}", s.startup));
    assert!(runtimes.contains(&format!("{system} (/")), "{runtimes}");

    let app = scratch("rtv-refused-app");
    write_app(&app, &[("v22", "nodejs22.x")]);
    let out = s.cli(&["deploy", app.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for want in [
        "functions.v22.runtime",
        "\"nodejs22.x\"",
        system.as_str(),
        "--runtime nodejs22.x=/path/to/node",
    ] {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    assert!(s.function_info("v22").is_null(), "nothing was deployed");

    let v = boto3(&s, "v22", "nodejs22.x", &[]);
    assert_eq!(v["error"], "InvalidParameterValueException", "{v}");
    let message = v["message"].as_str().unwrap();
    for want in ["Runtime", "nodejs22.x", system.as_str(), "--runtime"] {
        assert!(message.contains(want), "{want:?} not in: {message}");
    }
    assert_eq!(v["update_error"], message, "{v}");
    assert_eq!(v["runtimes"]["v22-other"], system.as_str(), "{v}");
}

#[test]
fn a_bad_mapping_stops_the_server_naming_the_flag() {
    let major = system_node_major();
    let node = INSTANCE_PATH
        .iter()
        .map(|d| Path::new(d).join("node"))
        .find(|p| p.is_file())
        .unwrap();
    let wrong = if major == 22 {
        "nodejs20.x"
    } else {
        "nodejs22.x"
    };
    let missing = scratch("rtv-bad-mapping").join("no-such-node");
    for (mapping, want) in [
        (
            format!("{wrong}={}", node.display()),
            format!("reports version {major}."),
        ),
        (
            format!("nodejs22.x={}", missing.display()),
            "No such file".to_string(),
        ),
        (
            "java21=/usr/bin/java".to_string(),
            "expected a Lambda runtime id".to_string(),
        ),
    ] {
        let out = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(scratch("rtv-bad-mapping-data"))
            .args(["--runtime", &mapping])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{mapping}: the server started");
        assert!(err.contains("--runtime"), "{mapping}: {err}");
        assert!(err.contains(&want), "{mapping}: {want:?} not in {err}");
    }
}

#[test]
fn a_mapped_node_runs_the_functions_that_ask_for_it() {
    let Some(node22) = node22() else { return };
    require_boto3();
    let major = system_node_major();
    let minor = newest_python_minor();
    let mapping = format!("nodejs22.x={}", node22.display());
    let mut s = server_with_keys("rtv-mapped", &[("UPDRAFT_RUNTIME", &mapping)]);
    let runtimes = s.startup.iter().find(|l| l.contains("runtimes: ")).unwrap();
    assert!(
        runtimes.contains(&format!("nodejs22.x ({})", node22.display())),
        "{runtimes}"
    );

    let app = scratch("rtv-mapped-app");
    let system = format!("nodejs{major}.x");
    write_app(
        &app,
        &[
            ("v22", "nodejs22.x"),
            ("newest-node", "nodejs"),
            ("system-node", &system),
            ("py", "python3"),
        ],
    );
    s.deploy(&app);
    // Instances run jailed (tests run as root): the mapped node's directory
    // is reachable inside the instance root.
    let v22 = version_of(&s, "v22");
    assert!(v22.starts_with("v22."), "{v22}");
    assert!(version_of(&s, "newest-node").starts_with("v22."));
    assert!(version_of(&s, "system-node").starts_with(&format!("v{major}.")));
    assert!(version_of(&s, "py").starts_with(&format!("3.{minor}.")));

    let v = boto3(&s, "made", "nodejs22.x", &["v22", "newest-node", "py"]);
    assert!(v.get("error").is_none(), "{v}");
    assert!(v["invoked"].as_str().unwrap().starts_with("v22."), "{v}");
    let runtimes = &v["runtimes"];
    assert_eq!(runtimes["v22"], "nodejs22.x");
    assert_eq!(runtimes["made"], "nodejs22.x");
    assert_eq!(runtimes["newest-node"], "nodejs22.x");
    assert_eq!(runtimes["py"], format!("python3.{minor}"));
    let mut listed = vec![
        "nodejs22.x".to_string(),
        "nodejs22.x".into(),
        "nodejs22.x".into(),
        system.clone(),
        format!("python3.{minor}"),
    ];
    listed.sort();
    assert_eq!(v["listed"], serde_json::json!(listed));

    let ls = s.ok(&["ls"]);
    assert!(ls.contains("nodejs22.x (22."), "{ls}");
    assert!(ls.contains(&format!("python3.{minor} (3.{minor}.")), "{ls}");

    // Restarted without the mapping: the stored nodejs22.x function fails
    // clearly instead of running on the system's node.
    assert!(s.terminate().success());
    let s = Server::start_in(s.data_dir.clone(), &[]);
    let out = s.cli(&["invoke", "v22"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("nodejs22.x is not installed on this server")
            && err.contains(&system)
            && err.contains("--runtime nodejs22.x="),
        "{err}"
    );
    let ls = s.ok(&["ls"]);
    assert!(ls.contains("nodejs22.x (not installed)"), "{ls}");
    assert!(version_of(&s, "system-node").starts_with(&format!("v{major}.")));
}

fn version_of(s: &Server, name: &str) -> String {
    s.invoke_json(name, "{}").as_str().unwrap().to_string()
}
