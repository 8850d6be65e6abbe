//! One cgroup per instance: a memory limit (no swap), a pids limit and a CPU
//! weight proportional to memory, on cgroup v1 (one directory per
//! controller hierarchy) or v2 (one directory). Every group this server makes
//! lives under `updraft/KEY`, KEY naming this server's data dir, so clean-up
//! never touches another server's groups.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Processes an instance may run at once unless configured otherwise.
pub const DEFAULT_PIDS: u32 = 1024;

/// Lambda gives one vCPU at 1,769 MB; weights follow the same proportion.
const MB_PER_CPU: u64 = 1769;

/// The directories under which this server makes one cgroup per instance.
#[derive(Clone, Debug)]
pub struct CgroupRoot {
    /// v2: the one directory; v1: the memory hierarchy's.
    pub dir: PathBuf,
    pub v2: bool,
    /// v1 only: the pids and cpu hierarchies' directories, when present.
    pids_v1: Option<PathBuf>,
    cpu_v1: Option<PathBuf>,
    /// Whether pids and CPU limits are applied (both versions).
    pub pids: bool,
    pub cpu: bool,
}

/// The limits of one instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u32,
}

impl CgroupRoot {
    /// Finds a writable memory controller (required) and pids and cpu
    /// controllers (reported when missing).
    pub fn detect(key: &str) -> Result<CgroupRoot, String> {
        let base = Path::new("/sys/fs/cgroup");
        let v1_mem = base.join("memory");
        let root = if v1_mem.join("memory.limit_in_bytes").exists() {
            let hierarchy = |name: &str, probe: &str| {
                let d = base.join(name);
                d.join(probe).exists().then(|| d.join("updraft").join(key))
            };
            CgroupRoot {
                dir: v1_mem.join("updraft").join(key),
                v2: false,
                pids_v1: hierarchy("pids", "cgroup.procs"),
                cpu_v1: hierarchy("cpu", "cpu.shares"),
                pids: false,
                cpu: false,
            }
        } else {
            let controllers = fs::read_to_string(base.join("cgroup.controllers"))
                .map_err(|e| format!("no cgroup v1 memory controller and no cgroup v2 ({e})"))?;
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if !has("memory") {
                return Err("cgroup v2 without a memory controller".into());
            }
            let dir = base.join("updraft").join(key);
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // Children only get a controller if every ancestor delegates it.
            let wanted: Vec<&str> = ["memory", "pids", "cpu"]
                .into_iter()
                .filter(|c| has(c))
                .collect();
            let enable = wanted
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            for p in [base.join("updraft"), dir.clone()] {
                let _ = fs::write(p.join("cgroup.subtree_control"), &enable);
            }
            CgroupRoot {
                dir,
                v2: true,
                pids_v1: None,
                cpu_v1: None,
                pids: false,
                cpu: false,
            }
        };
        root.create_dirs()?;
        // Probe each limit on a throwaway group.
        let probe = format!("probe-{}", std::process::id());
        let mut root = root;
        let cg = root
            .create(
                &probe,
                Limits {
                    memory_bytes: 128 << 20,
                    pids: DEFAULT_PIDS,
                },
            )
            .map_err(|e| {
                format!(
                    "cannot make a memory cgroup under {}: {e}",
                    root.dir.display()
                )
            })?;
        root.pids = cg.pids_limited;
        root.cpu = cg.cpu_weighted;
        cg.remove();
        Ok(root)
    }

    fn create_dirs(&self) -> Result<(), String> {
        for d in std::iter::once(&self.dir)
            .chain(&self.pids_v1)
            .chain(&self.cpu_v1)
        {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(())
    }

    /// Creates the cgroup(s) of one instance with its limits.
    pub fn create(&self, name: &str, limits: Limits) -> io::Result<Cgroup> {
        let mut cg = Cgroup {
            peak: Default::default(),
            dirs: vec![self.dir.join(name)],
            v2: self.v2,
            pids_limited: false,
            cpu_weighted: false,
        };
        fs::create_dir_all(&cg.dirs[0])?;
        let mem = limits.memory_bytes.to_string();
        let cpu_share = (limits.memory_bytes >> 20).max(1);
        if self.v2 {
            let d = &cg.dirs[0];
            fs::write(d.join("memory.max"), &mem)?;
            let _ = fs::write(d.join("memory.swap.max"), "0");
            cg.pids_limited = fs::write(d.join("pids.max"), limits.pids.to_string()).is_ok();
            // cpu.weight: 1..10000, 100 = default; 1 vCPU's worth of memory → 100.
            let weight = (cpu_share * 100 / MB_PER_CPU).clamp(1, 10_000);
            cg.cpu_weighted = fs::write(d.join("cpu.weight"), weight.to_string()).is_ok();
        } else {
            let d = cg.dirs[0].clone();
            fs::write(d.join("memory.limit_in_bytes"), &mem)?;
            // Without this the limit only bounds RAM and the instance can swap.
            let _ = fs::write(d.join("memory.memsw.limit_in_bytes"), &mem);
            let _ = fs::write(d.join("memory.swappiness"), "0");
            if let Some(p) = &self.pids_v1 {
                let d = p.join(name);
                if fs::create_dir_all(&d).is_ok() {
                    cg.dirs.push(d.clone());
                    cg.pids_limited =
                        fs::write(d.join("pids.max"), limits.pids.to_string()).is_ok();
                }
            }
            if let Some(c) = &self.cpu_v1 {
                let d = c.join(name);
                if fs::create_dir_all(&d).is_ok() {
                    cg.dirs.push(d.clone());
                    // cpu.shares: 1024 = default; 1 vCPU's worth of memory → 1024.
                    let shares = (cpu_share * 1024 / MB_PER_CPU).max(2);
                    cg.cpu_weighted = fs::write(d.join("cpu.shares"), shares.to_string()).is_ok();
                }
            }
        }
        Ok(cg)
    }

    /// Kills and removes the cgroups left by an earlier run of this server
    /// (only its own: everything under `updraft/KEY`).
    pub fn cleanup_leftovers(&self) {
        for parent in std::iter::once(&self.dir)
            .chain(&self.pids_v1)
            .chain(&self.cpu_v1)
        {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    Cgroup {
                        peak: Default::default(),
                        dirs: vec![e.path()],
                        v2: self.v2,
                        pids_limited: false,
                        cpu_weighted: false,
                    }
                    .remove();
                }
            }
        }
    }
}

/// One instance's cgroup (one directory per v1 hierarchy; the memory one first).
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    pub pids_limited: bool,
    pub cpu_weighted: bool,
    /// The peak-memory file, opened at its first read and re-read in place
    /// (`pread` at 0) after every invocation: no path walk per request.
    peak: std::sync::OnceLock<Option<fs::File>>,
}

impl Cgroup {
    /// The `cgroup.procs` files a process must write itself into.
    pub fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.iter().map(|d| d.join("cgroup.procs"))
    }

    fn memory_dir(&self) -> &Path {
        &self.dirs[0]
    }

    /// Sets the limits of an instance on a cgroup made ahead of need (with
    /// a parked process in it), and starts its peak memory count afresh.
    pub fn set_limits(&self, limits: Limits) -> io::Result<()> {
        let mem = limits.memory_bytes.to_string();
        let cpu_share = (limits.memory_bytes >> 20).max(1);
        let d = self.memory_dir();
        if self.v2 {
            fs::write(d.join("memory.max"), &mem)?;
            if self.pids_limited {
                fs::write(d.join("pids.max"), limits.pids.to_string())?;
            }
            if self.cpu_weighted {
                let weight = (cpu_share * 100 / MB_PER_CPU).clamp(1, 10_000);
                fs::write(d.join("cpu.weight"), weight.to_string())?;
            }
        } else {
            // memsw must stay at or above the memory limit at every step.
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if fs::write(d.join("memory.limit_in_bytes"), &mem).is_err() {
                let _ = fs::write(&memsw, &mem);
                fs::write(d.join("memory.limit_in_bytes"), &mem)?;
            }
            let _ = fs::write(&memsw, &mem);
            let _ = fs::write(d.join("memory.max_usage_in_bytes"), "0");
            for dir in &self.dirs[1..] {
                if self.pids_limited && dir.join("pids.max").exists() {
                    fs::write(dir.join("pids.max"), limits.pids.to_string())?;
                }
                if self.cpu_weighted && dir.join("cpu.shares").exists() {
                    let shares = (cpu_share * 1024 / MB_PER_CPU).max(2);
                    fs::write(dir.join("cpu.shares"), shares.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Peak memory use in bytes since the cgroup was made.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        use std::os::unix::fs::FileExt;
        let f = self
            .peak
            .get_or_init(|| fs::File::open(self.memory_dir().join(file)).ok())
            .as_ref()?;
        let mut buf = [0u8; 32];
        let n = f.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Whether the kernel's OOM killer has killed a process in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let Ok(text) = fs::read_to_string(self.memory_dir().join(file)) else {
            return false;
        };
        text.lines().any(|l| {
            let mut parts = l.split_whitespace();
            parts.next() == Some("oom_kill")
                && parts
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
        })
    }

    /// Kills every process in the cgroup.
    pub fn kill_all(&self) {
        for procs in self.procs_files() {
            if let Ok(pids) = fs::read_to_string(procs) {
                for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    super::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// Kills what is left and removes the cgroup.
    pub fn remove(&self) {
        for dir in &self.dirs {
            let mut removed = false;
            for _ in 0..50 {
                self.kill_all();
                match fs::remove_dir(dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        // Killed processes leave the group a moment later.
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => {
                        removed = true;
                        break;
                    }
                }
            }
            if !removed {
                tracing::warn!(dir = %dir.display(), "could not remove an instance cgroup");
            }
        }
    }
}
