//! A code directory whose dependencies `deploy` will not install: a
//! `requirements.txt` or `package.json` listing packages, no `build` line
//! and nothing installed beside it. Lambda's deploy tools install them; here
//! the function would fail at its first import, so deploy says so first.

use crate::{CodeKind, FunctionSpec};
use std::path::Path;
use updraft_core::RuntimeKind;

/// The warning `deploy` prints for `spec`, naming the file and the `build`
/// line that would install what it lists; None when nothing is missing.
pub fn dependency_warning(spec: &FunctionSpec) -> Option<String> {
    if spec.build.is_some() || spec.code_kind != CodeKind::Dir {
        return None;
    }
    let code = &spec.code;
    let (file, build) = match spec.config.kind() {
        RuntimeKind::Python3 => {
            let file = code.join("requirements.txt");
            let listed = std::fs::read_to_string(&file).ok()?.lines().any(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            });
            (listed && !has_dist_info(code))
                .then_some((file, "pip install -r requirements.txt -t ."))?
        }
        RuntimeKind::Nodejs => {
            let file = code.join("package.json");
            let text = std::fs::read_to_string(&file).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let listed = v["dependencies"].as_object().is_some_and(|d| !d.is_empty());
            (listed && !code.join("node_modules").is_dir())
                .then_some((file, "npm install --omit=dev"))?
        }
        _ => return None,
    };
    let shown = file.strip_prefix(&spec.root).unwrap_or(&file);
    Some(format!(
        "{}: {} lists packages that deploy does not install (the function has no `build` line); \
         to ship them, add to [functions.{}]: build = \"{build}\"",
        spec.name,
        shown.display(),
        spec.name
    ))
}

/// Whether packages were installed into the code directory (`pip -t .`).
fn has_dist_info(code: &Path) -> bool {
    std::fs::read_dir(code).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".dist-info"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    /// A project directory with an empty code directory `src`.
    fn project() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        (dir, src)
    }

    fn spec(dir: &Path, runtime: &str, extra: &str) -> FunctionSpec {
        let text = format!(
            "[app]\nname = \"a\"\n[functions.f]\nruntime = \"{runtime}\"\nhandler = \"app.handler\"\ncode = \"src\"\n{extra}"
        );
        let m = Manifest::parse_str(&dir.join("updraft.toml"), &text).unwrap();
        m.functions[0].clone()
    }

    #[test]
    fn python_requirements_without_build_warn_naming_file_and_build_line() {
        let (dir, src) = project();
        let f = spec(dir.path(), "python3", "");
        assert_eq!(dependency_warning(&f), None, "no requirements.txt");
        std::fs::write(src.join("requirements.txt"), "# none\n\n").unwrap();
        assert_eq!(dependency_warning(&f), None, "nothing listed");
        std::fs::write(src.join("requirements.txt"), "requests==2.32.3\n").unwrap();
        let w = dependency_warning(&f).unwrap();
        assert!(w.contains("src/requirements.txt lists packages"), "{w}");
        assert!(
            w.contains(r#"add to [functions.f]: build = "pip install -r requirements.txt -t .""#),
            "{w}"
        );
        let built = spec(dir.path(), "python3", "build = \"true\"\n");
        assert_eq!(dependency_warning(&built), None, "a build line");
        std::fs::create_dir(src.join("requests-2.32.3.dist-info")).unwrap();
        assert_eq!(dependency_warning(&f), None, "installed already");
    }

    #[test]
    fn node_dependencies_without_build_warn() {
        let (dir, src) = project();
        let f = spec(dir.path(), "nodejs", "");
        std::fs::write(src.join("package.json"), r#"{"type": "module"}"#).unwrap();
        assert_eq!(dependency_warning(&f), None, "no dependencies");
        std::fs::write(
            src.join("package.json"),
            r#"{"dependencies": {"uuid": "^9"}}"#,
        )
        .unwrap();
        let w = dependency_warning(&f).unwrap();
        assert!(w.contains("src/package.json lists packages"), "{w}");
        assert!(w.contains(r#"build = "npm install --omit=dev""#), "{w}");
        std::fs::create_dir(src.join("node_modules")).unwrap();
        assert_eq!(dependency_warning(&f), None, "installed already");
    }
}
