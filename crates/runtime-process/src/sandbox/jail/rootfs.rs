//! The instance's root file system: a tmpfs with the host's system
//! directories, the code and the runtime bound read-only, a private `/tmp`,
//! `/dev` and `/dev/shm`, and `/proc`; planned in the parent as [`Step`]s
//! the child runs.

use super::{fail, step};
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Host directories every instance sees read-only (Lambda's images hold the
/// same). A host link (merged /usr: `/bin -> usr/bin`) is made as a link.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Device nodes bound into the instance's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// The size of an instance's `/dev/shm` (memory-backed: it counts against
/// the instance's memory limit too).
const SHM_MB: u32 = 64;

/// One thing to do while building the root, with every path made ahead.
pub(super) enum Step {
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Mount {
        src: Option<CString>,
        dst: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
        what: &'static CStr,
    },
}

pub(super) fn cs(p: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(p.as_ref().as_os_str().as_bytes()).map_err(io::Error::other)
}

pub(super) fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(io::Error::other)
}

/// The mount flags a read-only bind of `path` must carry: ours plus those of
/// the mount it comes from (in a user namespace they are locked).
fn bind_flags(path: &Path) -> libc::c_ulong {
    let mut flags =
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    if let Ok(c) = cs(path) {
        // SAFETY: statvfs writes into the zeroed struct we own.
        #[allow(unsafe_code)]
        let st = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            (libc::statvfs(c.as_ptr(), &mut st) == 0).then_some(st)
        };
        if let Some(st) = st {
            let f = st.f_flag;
            for (st_flag, ms_flag) in [
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if f & st_flag != 0 {
                    flags |= ms_flag;
                }
            }
        }
    }
    flags
}

/// What an instance's root is made of, found once at start-up.
#[derive(Clone, Debug)]
pub struct RootLayout {
    /// An empty directory a tmpfs is mounted on in each instance's own mount
    /// namespace (so one directory serves every instance).
    pub mount_point: PathBuf,
    system: Vec<(PathBuf, Option<PathBuf>)>,
}

impl RootLayout {
    pub fn new(mount_point: PathBuf) -> io::Result<RootLayout> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(&mount_point)?;
        fs::set_permissions(&mount_point, fs::Permissions::from_mode(0o755))?;
        let mut system = Vec::new();
        for d in SYSTEM_DIRS {
            let p = Path::new(d);
            match fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    system.push((p.to_path_buf(), Some(fs::read_link(p)?)))
                }
                Ok(m) if m.is_dir() => system.push((p.to_path_buf(), None)),
                _ => {}
            }
        }
        Ok(RootLayout {
            mount_point,
            system,
        })
    }
}

/// One instance's box, as the host path of its parts.
pub struct InstanceRoot<'a> {
    pub layout: &'a RootLayout,
    pub code_dir: &'a Path,
    /// The runtime's bootstrap directory, shown at `/var/runtime`.
    pub runtime_dir: Option<&'a Path>,
    /// An interpreter's directories (`--runtime` mappings), shown at their
    /// own paths unless a system directory holds them already.
    pub interpreter_dirs: &'a [PathBuf],
    /// The AWS SDK for the runtime, and its name inside `/var/runtime`
    /// (where an empty directory waits for it).
    pub sdk: Option<(&'a Path, &'static str)>,
    pub tmp_mb: u32,
}

/// A read-only bind of `src` at `dst` (relative to the root `at` makes paths in).
fn bind_ro(
    steps: &mut Vec<Step>,
    at: &impl Fn(&str) -> io::Result<CString>,
    src: &Path,
    dst: &str,
) -> io::Result<()> {
    steps.push(Step::Mkdir(at(dst)?));
    steps.push(Step::Mount {
        src: Some(cs(src)?),
        dst: at(dst)?,
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
        what: c"bind a read-only directory",
    });
    steps.push(Step::Mount {
        src: None,
        dst: at(dst)?,
        fstype: None,
        flags: bind_flags(src),
        data: None,
        what: c"make a bound directory read-only",
    });
    Ok(())
}

/// A tmpfs of its own at `dst`.
fn tmpfs(
    steps: &mut Vec<Step>,
    at: &impl Fn(&str) -> io::Result<CString>,
    dst: &str,
    data: String,
    extra: libc::c_ulong,
    what: &'static CStr,
) -> io::Result<()> {
    steps.push(Step::Mkdir(at(dst)?));
    steps.push(Step::Mount {
        src: Some(cstr("tmpfs")?),
        dst: at(dst)?,
        fstype: Some(cstr("tmpfs")?),
        flags: libc::MS_NOSUID | libc::MS_NODEV | extra,
        data: Some(cstr(&data)?),
        what,
    });
    Ok(())
}

impl RootLayout {
    /// The part of every instance's root that names no function: the root's
    /// tmpfs, the system directories, `/dev`, `/dev/shm` and `/proc`. A
    /// child parked ahead of need makes it while it waits (in its own mount
    /// namespace); [`InstanceRoot::own_steps`] adds the function's part.
    pub(super) fn base_steps(&self, mount_proc: bool) -> io::Result<Vec<Step>> {
        let root = &self.mount_point;
        let at = |rel: &str| cs(root.join(rel.trim_start_matches('/')));
        let mut steps = vec![
            Step::Mount {
                src: None,
                dst: cstr("/")?,
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
                what: c"make mounts private",
            },
            Step::Mount {
                src: Some(cstr("tmpfs")?),
                dst: cs(root)?,
                fstype: Some(cstr("tmpfs")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(cstr("size=1m,mode=0755")?),
                what: c"mount the instance root",
            },
        ];
        for (dir, link) in &self.system {
            let rel = dir.to_string_lossy();
            match link {
                Some(target) => steps.push(Step::Symlink {
                    target: cs(target)?,
                    link: at(&rel)?,
                }),
                None => bind_ro(&mut steps, &at, dir, &rel)?,
            }
        }
        steps.push(Step::Mkdir(at("var")?));
        steps.push(Step::Mkdir(at("opt")?));
        tmpfs(
            &mut steps,
            &at,
            "dev",
            "size=64k,mode=0755".into(),
            libc::MS_NOEXEC,
            c"mount /dev",
        )?;
        for d in DEVICES {
            let dst = at(&format!("dev/{d}"))?;
            steps.push(Step::Touch(dst.clone()));
            steps.push(Step::Mount {
                src: Some(cstr(&format!("/dev/{d}"))?),
                dst,
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
                what: c"bind a device",
            });
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            steps.push(Step::Symlink {
                target: cstr(target)?,
                link: at(&format!("dev/{name}"))?,
            });
        }
        tmpfs(
            &mut steps,
            &at,
            "dev/shm",
            format!("size={SHM_MB}m,mode=1777"),
            libc::MS_NOEXEC,
            c"mount a private /dev/shm",
        )?;
        steps.push(Step::Mkdir(at("proc")?));
        if mount_proc {
            steps.push(Step::Mount {
                src: Some(cstr("proc")?),
                dst: at("proc")?,
                fstype: Some(cstr("proc")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                // Without a PID namespace this still hides other users' processes.
                data: Some(cstr("hidepid=2")?),
                what: c"mount /proc",
            });
        }
        Ok(steps)
    }
}

impl InstanceRoot<'_> {
    /// The function's part of its root, on [`RootLayout::base_steps`]: its
    /// code, the runtime's bootstrap and SDK, its `/tmp` and the
    /// interpreter's directories.
    pub(super) fn own_steps(&self) -> io::Result<Vec<Step>> {
        let root = &self.layout.mount_point;
        let at = |rel: &str| cs(root.join(rel.trim_start_matches('/')));
        let mut steps = Vec::new();
        bind_ro(&mut steps, &at, self.code_dir, "var/task")?;
        if let Some(rt) = self.runtime_dir {
            bind_ro(&mut steps, &at, rt, "var/runtime")?;
            if let Some((sdk, name)) = self.sdk {
                bind_ro(&mut steps, &at, sdk, &format!("var/runtime/{name}"))?;
            }
        }
        tmpfs(
            &mut steps,
            &at,
            "tmp",
            format!("size={}m,mode=1777", self.tmp_mb),
            0,
            c"mount a private /tmp",
        )?;
        steps.push(Step::Symlink {
            target: cstr("/tmp")?,
            link: at("var/tmp")?,
        });
        for dir in self.interpreter_dirs {
            if SYSTEM_DIRS.iter().any(|s| dir.starts_with(s)) || !dir.is_absolute() {
                continue;
            }
            // Each parent too: the root is an empty tmpfs.
            let mut parents: Vec<&Path> = dir.ancestors().skip(1).collect();
            parents.reverse();
            for p in parents.iter().skip(1) {
                steps.push(Step::Mkdir(at(&p.to_string_lossy())?));
            }
            bind_ro(&mut steps, &at, dir, &dir.to_string_lossy())?;
        }
        Ok(steps)
    }
}

#[allow(unsafe_code)]
pub(super) unsafe fn run_step(s: &Step) -> io::Result<()> {
    match s {
        Step::Mkdir(p) => {
            if libc::mkdir(p.as_ptr(), 0o755) != 0 && *libc::__errno_location() != libc::EEXIST {
                return fail(c"make a directory in the instance root");
            }
            Ok(())
        }
        Step::Touch(p) => {
            let fd = libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return fail(c"make a device mount point");
            }
            libc::close(fd);
            Ok(())
        }
        Step::Symlink { target, link } => step(
            c"make a link in the instance root",
            libc::symlink(target.as_ptr(), link.as_ptr()),
        ),
        Step::Mount {
            src,
            dst,
            fstype,
            flags,
            data,
            what,
        } => step(
            what,
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                dst.as_ptr(),
                fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                *flags,
                data.as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
            ),
        ),
    }
}
