use std::io::Read;
use std::path::Path;
use updraft_core::{Cors, HttpRoute, PayloadFormat, RuntimeKind, Scaling, Trigger, UrlAuth};
use updraft_manifest::{package, run_build, CodeKind, Manifest, ManifestError};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn manifest(dir: &Path, text: &str) -> Result<Manifest, ManifestError> {
    write(dir, "updraft.toml", text);
    Manifest::load(&dir.join("updraft.toml"))
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn defaults_apply() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "hello/app.py", "");
    write(tmp.path(), "comp.wasm", "\0asm\x01\0\0\0");
    let m = manifest(
        tmp.path(),
        r#"
[app]
name = "shop"

[functions.hello]
runtime = "python3"
handler = "app.handler"
code = "hello"

[functions.comp]
runtime = "wasm"
code = "comp.wasm"
"#,
    )
    .unwrap();
    assert_eq!(m.app, "shop");
    assert!(m.path.is_absolute());
    let names: Vec<_> = m.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["comp", "hello"], "sorted by name");

    let hello = m.function("hello").unwrap();
    assert_eq!(hello.config.memory_mb, 128);
    assert_eq!(hello.config.timeout_ms, 3000);
    assert_eq!(hello.config.url, UrlAuth::Private);
    assert_eq!(hello.config.scaling, Scaling::default());
    assert!(hello.config.env.is_empty());
    assert!(hello.config.triggers.is_empty());
    assert_eq!(hello.code_kind, CodeKind::Dir);
    assert_eq!(hello.code, tmp.path().canonicalize().unwrap().join("hello"));
    assert_eq!(hello.build, None);

    let comp = m.function("comp").unwrap();
    assert_eq!(comp.code_kind, CodeKind::Wasm);
    assert_eq!(comp.config.handler, "");
    assert_eq!(comp.config.scaling.per_instance, 16);
    assert_eq!(
        comp.config.scaling.max_instances,
        Scaling::default().max_instances
    );
}

#[test]
fn full_example_and_aliases() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "hello/app.py", "");
    write(tmp.path(), "web/index.mjs", "");
    write(tmp.path(), "dist/bin.zip", "");
    let m = manifest(
        tmp.path(),
        r#"
[app]
name = "shop"

[functions.hello]
runtime = "python3.12"
handler = "app.handler"
code = "./hello"
build = "pip install -r requirements.txt -t ."
memory_mb = 256
timeout = "30s"
env = { GREETING = "hi" }
url = "public"
cors = { allow_origins = ["https://shop.example"], allow_methods = ["GET", "POST"], allow_headers = ["content-type"], expose_headers = ["x-total"], max_age = "1h", allow_credentials = true }

[functions.hello.scaling]
min_instances = 1
max_instances = 20
per_instance = 1
idle_timeout = "1m"
max_queue_wait = "0"

[[functions.hello.triggers]]
http = { route = "GET /hello/{name}" }

[[functions.hello.triggers]]
http = { route = "post /hello" }

[[functions.hello.triggers]]
http = { route = "ANY /api/{proxy+}", payload = "1.0" }

[functions.web]
runtime = "nodejs20.x"
handler = "index.handler"
code = "web"

[functions.native]
runtime = "provided.al2023"
code = "dist/bin.zip"
"#,
    )
    .unwrap();
    let hello = m.function("hello").unwrap();
    let c = &hello.config;
    assert_eq!(c.runtime, "python3.12", "the id as written is kept");
    assert_eq!(c.kind(), RuntimeKind::Python3);
    assert_eq!((c.memory_mb, c.timeout_ms), (256, 30_000));
    assert_eq!(c.env.get("GREETING").map(String::as_str), Some("hi"));
    assert_eq!(c.url, UrlAuth::Public);
    assert_eq!(
        c.scaling,
        Scaling {
            min_instances: 1,
            max_instances: 20,
            per_instance: 1,
            idle_timeout_ms: 60_000,
            max_queue_wait_ms: 0,
            keep_alive: updraft_core::config::KeepAlive::Fixed,
        }
    );
    assert_eq!(
        c.triggers,
        vec![
            Trigger::Http(HttpRoute::parse("GET /hello/{name}").unwrap()),
            Trigger::Http(HttpRoute {
                method: "POST".into(),
                path: "/hello".into(),
                payload: PayloadFormat::V2,
            }),
            Trigger::Http(HttpRoute {
                method: "ANY".into(),
                path: "/api/{proxy+}".into(),
                payload: PayloadFormat::V1,
            }),
        ]
    );
    assert_eq!(
        c.cors,
        Some(Cors {
            allow_credentials: Some(true),
            allow_headers: Some(vec!["content-type".into()]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_origins: Some(vec!["https://shop.example".into()]),
            expose_headers: Some(vec!["x-total".into()]),
            max_age: Some(3600),
        })
    );
    assert_eq!(m.function("web").unwrap().config.cors, None);
    assert_eq!(
        hello.build.as_deref(),
        Some("pip install -r requirements.txt -t .")
    );
    assert_eq!(hello.code, tmp.path().canonicalize().unwrap().join("hello"));
    assert_eq!(
        m.function("web").unwrap().config.kind(),
        RuntimeKind::Nodejs
    );
    let native = m.function("native").unwrap();
    assert_eq!(native.config.kind(), RuntimeKind::Provided);
    assert_eq!(native.code_kind, CodeKind::Zip);
}

#[test]
fn missing_manifest_names_the_file() {
    let err = Manifest::load(Path::new("/nonexistent/updraft.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/updraft.toml: cannot read the manifest: "),
        "{err}"
    );
}

#[test]
fn error_exposes_key() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "hello/app.py", "");
    let err = manifest(
        tmp.path(),
        "[app]\nname = \"a\"\n[functions.hello]\nruntime = \"python3\"\nhandler = \"a.b\"\ncode = \"hello\"\nmemory_mb = 64\n",
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("functions.hello.memory_mb"));
    assert!(err.to_string().ends_with(
        "updraft.toml: functions.hello.memory_mb: expected a number from 128 to 10240, got 64"
    ));
}

#[test]
fn build_output_may_not_exist_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(
        tmp.path(),
        r#"
[app]
name = "shop"

[functions.comp]
runtime = "wasm"
code = "target/comp.wasm"
build = "mkdir -p target && printf '\\000asm\\001\\000\\000\\000' > target/comp.wasm"
"#,
    )
    .unwrap();
    let comp = &m.functions[0];
    assert_eq!(comp.code_kind, CodeKind::Wasm);
    let err = package(comp).unwrap_err().to_string();
    assert!(
        err.contains("the build command did not produce it"),
        "{err}"
    );
    // The code is a file, so the build runs in the manifest's directory.
    run_build(comp).unwrap();
    let pkg = package(comp).unwrap();
    assert_eq!(pkg.sha256.len(), 64);
}

#[test]
fn build_failure_names_function_command_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "hello/app.py", "");
    let m = manifest(
        tmp.path(),
        "[app]\nname = \"a\"\n[functions.hello]\nruntime = \"python3\"\nhandler = \"app.h\"\ncode = \"hello\"\nbuild = \"touch built && exit 3\"\n",
    )
    .unwrap();
    let err = run_build(&m.functions[0]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "function hello: build command `touch built && exit 3` failed: exit status: 3"
        ),
        "{text}"
    );
    // It ran in the code directory.
    assert!(tmp.path().join("hello/built").exists());
}

fn read_back(bytes: &[u8]) -> Vec<(String, Option<u32>, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), f.unix_mode(), data)
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn directory_zip_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("fn");
    write(&code, "bootstrap", "#!/bin/sh\necho hi\n");
    chmod(&code.join("bootstrap"), 0o755);
    write(&code, "lib/z.txt", "z");
    write(&code, "lib/a.txt", "a");
    write(&code, "a.txt", "top");
    write(&code, ".git/HEAD", "ref");
    write(&code, "lib/__pycache__/x.pyc", "cache");
    write(&code, ".updraft/updraft.db", "db");
    write(tmp.path(), "outside.txt", "linked");
    std::os::unix::fs::symlink(tmp.path().join("outside.txt"), code.join("link.txt")).unwrap();
    let m = manifest(
        tmp.path(),
        "[app]\nname = \"a\"\n[functions.native]\nruntime = \"provided\"\ncode = \"fn\"\n",
    )
    .unwrap();
    let spec = &m.functions[0];

    let first = package(spec).unwrap();
    // Touching files changes mtimes, not the package.
    let touched = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for name in ["a.txt", "bootstrap", "lib/a.txt"] {
        let f = std::fs::File::options()
            .write(true)
            .open(code.join(name))
            .unwrap();
        f.set_modified(touched).unwrap();
    }
    let second = package(spec).unwrap();
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(first.bytes, second.bytes);

    let entries = read_back(&first.bytes);
    let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["a.txt", "bootstrap", "lib/a.txt", "lib/z.txt", "link.txt"]
    );
    let mode = |n: &str| entries.iter().find(|e| e.0 == n).unwrap().1.unwrap() & 0o777;
    assert_eq!(mode("bootstrap"), 0o755);
    assert_eq!(mode("a.txt"), 0o644);
    assert_eq!(
        entries.iter().find(|e| e.0 == "link.txt").unwrap().2,
        b"linked"
    );

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&first.bytes)).unwrap();
    let f = zip.by_name("bootstrap").unwrap();
    assert_eq!(f.compression(), zip::CompressionMethod::Deflated);
    let t = f.last_modified().unwrap();
    assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1));
}

#[test]
fn wasm_is_wrapped_and_zip_taken_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = b"\0asm\x01\0\0\0rest";
    std::fs::write(tmp.path().join("c.wasm"), wasm).unwrap();
    // A real zip for the `Zip` kind.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut w, b"x").unwrap();
    let zip_bytes = w.finish().unwrap().into_inner();
    std::fs::write(tmp.path().join("b.zip"), &zip_bytes).unwrap();
    let m = manifest(
        tmp.path(),
        "[app]\nname = \"a\"\n[functions.c]\nruntime = \"wasm\"\ncode = \"c.wasm\"\n[functions.b]\nruntime = \"provided\"\ncode = \"b.zip\"\n",
    )
    .unwrap();

    let c = package(m.function("c").unwrap()).unwrap();
    let entries = read_back(&c.bytes);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "function.wasm");
    assert_eq!(entries[0].2, wasm);
    assert_eq!(c, package(m.function("c").unwrap()).unwrap());

    let b = package(m.function("b").unwrap()).unwrap();
    assert_eq!(b.bytes, zip_bytes);
}

#[test]
fn broken_zip_and_wasm_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.wasm"), b"not wasm").unwrap();
    std::fs::write(tmp.path().join("b.zip"), b"not zip").unwrap();
    let m = manifest(
        tmp.path(),
        "[app]\nname = \"a\"\n[functions.c]\nruntime = \"wasm\"\ncode = \"c.wasm\"\n[functions.b]\nruntime = \"provided\"\ncode = \"b.zip\"\n",
    )
    .unwrap();
    let e = package(m.function("c").unwrap()).unwrap_err().to_string();
    assert!(
        e.starts_with("function c: cannot package ") && e.contains("not a WebAssembly binary"),
        "{e}"
    );
    let e = package(m.function("b").unwrap()).unwrap_err().to_string();
    assert!(e.contains("not a valid zip archive"), "{e}");
}
