//! The one wasmtime `Engine` of a server, and the epoch ticker that bounds
//! every request's run time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances while a request runs: the granularity of
/// timeouts, and how often a guest that has run past [`RUN_BEFORE_YIELD`]
/// yields to other tasks.
pub const TICK: Duration = Duration::from_millis(2);

/// How long a request's guest runs before its first yield. Yielding at every
/// tick chopped each request of a busy function into 2 ms slices taken in
/// turn with every other request in flight, so none finished early and all
/// of their instances stayed live at once (caches, TLB, memory slots): the
/// JavaScript fixture component served ~30% fewer requests/s at c=16 and
/// c=64 than when it ran its usual 1–2 ms to the end (behind its function
/// URL under wrk, the two compared interleaved on one build; bench section 2
/// has the result against `wasmtime serve`). Past this, a guest still yields
/// every tick, so a long or looping one holds a worker thread no longer than
/// this at a time.
pub const RUN_BEFORE_YIELD: Duration = Duration::from_millis(10);

/// Concurrent component instances the pooling allocator makes room for.
const POOL_COMPONENTS: u32 = 1000;

/// Dirty bytes of a linear memory reset in place (copied back from the
/// component's memory image) when its store ends, rather than given back to
/// the kernel: the next request in that slot takes no page faults on them.
/// A slot keeps at most this much resident while unused.
const MEMORY_KEEP_RESIDENT: usize = 8 << 20;
/// The same for tables.
const TABLE_KEEP_RESIDENT: usize = 1 << 20;

/// Builds the engine: pooling allocator when the host allows it (it reserves
/// virtual memory up front), on-demand allocation otherwise.
pub fn build() -> Result<(Engine, bool), wasmtime::Error> {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(POOL_COMPONENTS)
        .total_core_instances(POOL_COMPONENTS * 4)
        .total_memories(POOL_COMPONENTS * 2)
        .total_tables(POOL_COMPONENTS * 4)
        .total_stacks(POOL_COMPONENTS)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(8 << 20)
        .max_memory_size(4 << 30);
    // A fresh store per request means each request's writes to the memory
    // image are copy-on-write faults (each a TLB shootdown across the
    // server's threads) when a slot's memory is reset with `madvise`. With
    // PAGEMAP_SCAN (Linux 6.7+) only the pages a request dirtied are found
    // and copied back from the image, and they stay mapped for the next
    // request in the slot. Without it, keeping memory resident would mean
    // copying the first bytes of every memory whether dirtied or not: the
    // default `madvise` reset is kept there.
    let scan = PoolingAllocationConfig::is_pagemap_scan_available();
    if scan {
        pooling
            .pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => {
            tracing::debug!(pagemap_scan = scan, "wasm: pooling allocator");
            Ok((engine, true))
        }
        Err(e) => {
            tracing::warn!(error = %e, "wasm: the pooling allocator is not available here; allocating instances on demand");
            Ok((Engine::new(&base_config())?, false))
        }
    }
}

/// An engine with the server's code-generation settings and no pooling
/// allocator (compiling allocates no instances): what the compile helper
/// uses. Its artifacts load in [`build`]'s engine, pooling or not: the
/// allocation strategy is not part of an engine's compatibility hash
/// (`compile_only_matches_the_server` checks).
/// With `functions`, compiled functions are reused from and added to that
/// cache (not part of the compatibility hash either).
pub fn compile_only(
    functions: Option<std::sync::Arc<crate::compile::FunctionCache>>,
    parallel: bool,
) -> Result<Engine, wasmtime::Error> {
    let mut config = base_config();
    // Off when other compiles run beside this one: their threads would
    // only contend for the same cores.
    config.parallel_compilation(parallel);
    if let Some(cache) = functions {
        config.enable_incremental_compilation(cache)?;
    }
    Engine::new(&config)
}

/// A short name for an engine's settings and wasmtime version: artifacts
/// carry it in their file names, and the compile helper checks it.
pub fn key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Epochs, not fuel: fuel instruments every block and costs throughput.
    config.epoch_interruption(true);
    config
}

struct TickerState {
    running: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Advances the engine's epoch every [`TICK`] while at least one request
/// runs, and sleeps otherwise (an idle server wakes no thread).
pub struct Ticker {
    state: Arc<TickerState>,
}

/// Held while a request runs.
pub struct Running {
    state: Arc<TickerState>,
}

impl Ticker {
    pub fn start(engine: Engine) -> std::io::Result<Ticker> {
        let state = Arc::new(TickerState {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let s = state.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                {
                    let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                    while s.running.load(Ordering::SeqCst) == 0 && !s.stop.load(Ordering::SeqCst) {
                        guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                }
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(TICK);
                engine.increment_epoch();
            })?;
        Ok(Ticker { state })
    }

    pub fn running(&self) -> Running {
        if self.state.running.fetch_add(1, Ordering::SeqCst) == 0 {
            let _guard = self.state.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.state.wake.notify_one();
        }
        Running {
            state: self.state.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.state.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _guard = self.state.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.state.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compile_only_matches_the_server() {
        let (server, _pooling) = super::build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::compile::FunctionCache::open(dir.path()).unwrap();
        let helper = super::compile_only(Some(cache.clone()), true).unwrap();
        assert_eq!(super::key(&server), super::key(&helper));
        let one_thread = super::compile_only(Some(cache), false).unwrap();
        assert_eq!(super::key(&server), super::key(&one_thread));
        assert_eq!(
            super::key(&server),
            super::key(&super::compile_only(None, true).unwrap())
        );
    }
}
