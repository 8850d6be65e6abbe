//! Keep-alive that learns from a function's own history: the hybrid
//! histogram policy of "Serverless in the Wild" (Shahrad et al., USENIX ATC
//! '20), used when a function sets no `idle_timeout` of its own.
//!
//! Each function keeps a histogram of its idle times (from the moment its
//! last invocation ended, with none left running, to the next arrival) in
//! one-minute bins over four hours. Once it has seen enough gaps and they
//! are concentrated enough to predict (the coefficient of variation of the
//! bin counts at least [`CV_MIN`]), its windows come from the histogram:
//!
//! - **pre-warm** = the 5th percentile of idle times, less 10%: an instance
//!   left idle is stopped at once and a new one is started this long after
//!   the last invocation ended, just before the next one is expected;
//! - **keep-alive** = the 99th percentile plus 10%, minus the pre-warm
//!   window: how long that instance (or, with no pre-warm window, the one
//!   that just finished) is kept waiting.
//!
//! Until then, or when most gaps are longer than the histogram's range, the
//! function is kept warm for the fixed fallback (the server's default
//! `idle_timeout`). All times are given by the caller, so the policy runs
//! the same under a replayed clock (`bench/`'s trace replay) as live.

use std::time::Duration;
use tokio::time::Instant;

/// Width of one histogram bin.
pub const BIN: Duration = Duration::from_secs(60);
/// Bins: the histogram spans four hours of idle time.
pub const BINS: usize = 240;
/// Idle times observed before the histogram is trusted.
pub const MIN_OBSERVATIONS: u32 = 10;
/// The least coefficient of variation of the bin counts that makes the
/// histogram representative (a flat histogram predicts nothing).
pub const CV_MIN: f64 = 2.0;
/// The percentiles that bound the windows, and the margin applied to each.
const HEAD: f64 = 0.05;
const TAIL: f64 = 0.99;
const MARGIN: f64 = 0.10;

/// What a function's instances do once it has nothing to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Stop the idle instance now and start one this long after the last
    /// invocation ended (zero: keep the idle one).
    pub prewarm: Duration,
    /// Then keep it (or the idle one) this long.
    pub keep_alive: Duration,
}

impl Windows {
    /// Keep the idle instance for `d`, as a fixed `idle_timeout` does.
    pub fn fixed(d: Duration) -> Windows {
        Windows {
            prewarm: Duration::ZERO,
            keep_alive: d,
        }
    }
}

/// Idle times of one function, binned by minute.
#[derive(Clone, Debug)]
pub struct IdleHistogram {
    bins: Box<[u16; BINS]>,
    /// Idle times longer than the histogram's range.
    out_of_range: u16,
}

impl Default for IdleHistogram {
    fn default() -> Self {
        IdleHistogram {
            bins: Box::new([0; BINS]),
            out_of_range: 0,
        }
    }
}

impl IdleHistogram {
    /// Counts one idle time. Counts are halved when one would overflow, so
    /// recent behaviour weighs more than old.
    pub fn observe(&mut self, idle: Duration) {
        let bin = (idle.as_secs() / BIN.as_secs()) as usize;
        let slot = if bin < BINS {
            &mut self.bins[bin]
        } else {
            &mut self.out_of_range
        };
        if *slot == u16::MAX {
            self.halve();
            return self.observe(idle);
        }
        *slot += 1;
    }

    fn halve(&mut self) {
        for b in self.bins.iter_mut() {
            *b /= 2;
        }
        self.out_of_range /= 2;
    }

    fn in_range(&self) -> u32 {
        self.bins.iter().map(|&b| u32::from(b)).sum()
    }

    /// Every idle time counted.
    pub fn observations(&self) -> u32 {
        self.in_range() + u32::from(self.out_of_range)
    }

    /// Whether the bin counts are concentrated enough to predict from.
    fn representative(&self) -> bool {
        let n = self.in_range();
        if n < MIN_OBSERVATIONS || u32::from(self.out_of_range) * 2 > self.observations() {
            return false;
        }
        let mean = f64::from(n) / BINS as f64;
        let var = self
            .bins
            .iter()
            .map(|&b| (f64::from(b) - mean).powi(2))
            .sum::<f64>()
            / BINS as f64;
        var.sqrt() / mean >= CV_MIN
    }

    /// The bin where the cumulative count first reaches `p` of the total.
    fn percentile_bin(&self, p: f64) -> usize {
        let target = (f64::from(self.in_range()) * p).ceil().max(1.0);
        let mut seen = 0f64;
        for (i, &b) in self.bins.iter().enumerate() {
            seen += f64::from(b);
            if seen >= target {
                return i;
            }
        }
        BINS - 1
    }

    /// The paper's windows: pre-warm at the 5th percentile of idle times
    /// less 10%, keep to the 99th plus 10%; `fallback` while the histogram
    /// is not representative. Kept for comparison (`bench/`'s replay): on a
    /// trace shaped like Azure's it holds more idle memory than a fixed
    /// keep-alive, so the scheduler uses [`IdleHistogram::windows`].
    pub fn percentile_windows(&self, fallback: Duration) -> Windows {
        if !self.representative() {
            return Windows::fixed(fallback);
        }
        // Head: the start of its bin (an arrival can come that early);
        // tail: the end of its bin.
        let head = BIN * self.percentile_bin(HEAD) as u32;
        let tail = BIN * (self.percentile_bin(TAIL) as u32 + 1);
        let prewarm = head.mul_f64(1.0 - MARGIN);
        let keep_alive = tail.mul_f64(1.0 + MARGIN).saturating_sub(prewarm);
        Windows {
            prewarm,
            keep_alive,
        }
    }

    /// The windows this history calls for: of every pre-warm and keep-alive
    /// pair on bin edges, the one that would have had the fewest cold starts
    /// over the idle times seen, without holding instances idle longer in
    /// all than keeping each for `fallback` would have (ties: the least idle
    /// time, then the earliest, shortest window), so a function is never
    /// worse off, on its own history, than with the fixed fallback.
    /// `fallback` itself until [`MIN_OBSERVATIONS`] idle times are known.
    pub fn windows(&self, fallback: Duration) -> Windows {
        let n = self.observations();
        if n < MIN_OBSERVATIONS {
            return Windows::fixed(fallback);
        }
        let n = f64::from(n);
        // count[i], weighted[i]: idle times in bins below i, and their sum in
        // bins (each at its bin's middle).
        let mut count = [0f64; BINS + 1];
        let mut weighted = [0f64; BINS + 1];
        for (i, &b) in self.bins.iter().enumerate() {
            count[i + 1] = count[i] + f64::from(b);
            weighted[i + 1] = weighted[i] + f64::from(b) * (i as f64 + 0.5);
        }
        // An instance alive from bin edge p to bin edge e after each end:
        // an idle time below p or at e and above is a cold start; it holds
        // the instance from p until the arrival, or until e.
        // The instance is started 10% early (`MARGIN`), p less 10% after the
        // end: the margin is paid in idle time, never in cold starts.
        let cost = |p: usize, e: usize| {
            let (p_, e_) = (p as f64 * (1.0 - MARGIN), e as f64);
            let cold = count[p] + (n - count[e]);
            let warm = count[e] - count[p];
            let idle = (weighted[e] - weighted[p]) - p_ * warm + (e_ - p_) * (n - count[e]);
            (cold, idle)
        };
        // The fallback's cost: kept from the end for f bins (f may be
        // fractional; an idle time counts as warm when its bin's middle is
        // under f).
        let f = fallback.as_secs_f64() / BIN.as_secs_f64();
        let (mut fixed_cold, mut fixed_idle) = (n - count[BINS], (n - count[BINS]) * f);
        for (i, &b) in self.bins.iter().enumerate() {
            let (b, mid) = (f64::from(b), i as f64 + 0.5);
            if mid < f {
                fixed_idle += b * mid;
            } else {
                fixed_cold += b;
                fixed_idle += b * f;
            }
        }
        let mut best: Option<(f64, f64, usize, usize)> = None;
        for p in 0..BINS {
            for e in p + 1..=BINS {
                let (cold, idle) = cost(p, e);
                if idle > fixed_idle + 1e-9 {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((c, i, _, _)) => cold < c - 1e-9 || (cold <= c + 1e-9 && idle < i - 1e-9),
                };
                if better {
                    best = Some((cold, idle, p, e));
                }
            }
        }
        match best {
            // Ties: the first found, the earliest and shortest window.
            Some((cold, _, p, e)) if cold <= fixed_cold + 1e-9 => {
                let prewarm = (BIN * p as u32).mul_f64(1.0 - MARGIN);
                Windows {
                    prewarm,
                    keep_alive: BIN * e as u32 - prewarm,
                }
            }
            _ => Windows::fixed(fallback),
        }
    }
}

/// How a function's windows are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Always the fallback (a function's own `idle_timeout`).
    Fixed,
    /// [`IdleHistogram::windows`]: what functions without `idle_timeout` get.
    Learned,
    /// [`IdleHistogram::percentile_windows`], the paper's (for comparison).
    Percentiles,
}

/// Idle times seen between two computations of the windows: computing
/// them is a few tens of microseconds, so not at every invocation.
const RECOMPUTE_EVERY: u32 = 8;

/// One function's keep-alive state: its idle times, the invocations it has
/// running and the pre-warm it is waiting for.
#[derive(Debug, Default)]
pub struct History {
    /// Allocated at the first idle time of a learning function.
    idle: Option<IdleHistogram>,
    /// The windows last computed, and idle times seen since.
    cached: Option<Windows>,
    seen_since: u32,
    busy: u32,
    last_end: Option<Instant>,
    /// When to start an instance ahead of the expected arrival, and how
    /// long to keep it.
    prewarm: Option<(Instant, Duration)>,
}

impl History {
    /// An invocation arrives at `now`. Its idle time counts when the
    /// function had nothing running.
    pub fn arrive(&mut self, now: Instant, policy: Policy) {
        if self.busy == 0 && policy != Policy::Fixed {
            if let Some(end) = self.last_end {
                self.idle
                    .get_or_insert_with(Default::default)
                    .observe(now.saturating_duration_since(end));
                self.seen_since += 1;
            }
        }
        self.busy += 1;
        self.prewarm = None;
    }

    /// An invocation ended at `now`: how long the instance it ran on stays
    /// idle (zero: stop it; a pre-warm is then due, see [`History::due`]).
    pub fn finish(&mut self, now: Instant, policy: Policy, fallback: Duration) -> Duration {
        self.busy = self.busy.saturating_sub(1);
        if self.busy > 0 {
            // Others still run: the function's idle times say nothing about
            // when its concurrency rises again. Kept as the fallback keeps.
            return fallback;
        }
        let windows = self.windows(policy, fallback);
        self.last_end = Some(now);
        if windows.prewarm.is_zero() {
            return windows.keep_alive;
        }
        self.prewarm = Some((now + windows.prewarm, windows.keep_alive));
        Duration::ZERO
    }

    fn windows(&mut self, policy: Policy, fallback: Duration) -> Windows {
        let Some(h) = &self.idle else {
            return Windows::fixed(fallback);
        };
        match policy {
            Policy::Fixed => Windows::fixed(fallback),
            Policy::Percentiles => h.percentile_windows(fallback),
            Policy::Learned => match self.cached {
                Some(w) if self.seen_since < RECOMPUTE_EVERY => w,
                _ => {
                    let w = h.windows(fallback);
                    // Until the history is long enough, every new idle time counts.
                    if h.observations() >= MIN_OBSERVATIONS {
                        self.cached = Some(w);
                        self.seen_since = 0;
                    }
                    w
                }
            },
        }
    }

    /// A pre-warm due by `now`: how long to keep the instance it starts.
    pub fn due(&mut self, now: Instant) -> Option<Duration> {
        match self.prewarm {
            Some((at, keep)) if at <= now => {
                self.prewarm = None;
                Some(keep)
            }
            _ => None,
        }
    }

    /// The pending pre-warm: when it is due and how long it keeps its instance.
    pub fn pending(&self) -> Option<(Instant, Duration)> {
        self.prewarm
    }

    /// Forgets a pending pre-warm (the function was retired or changed).
    pub fn cancel(&mut self) {
        self.prewarm = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    fn history(gaps: impl IntoIterator<Item = Duration>) -> IdleHistogram {
        let mut h = IdleHistogram::default();
        for g in gaps {
            h.observe(g);
        }
        h
    }

    fn periodic(n: u64) -> IdleHistogram {
        // 30:00 to 30:57 after the last call ended.
        history((0..n).map(|i| minutes(30) + Duration::from_secs(i * 3 % 60)))
    }

    #[test]
    fn too_few_idle_times_keep_the_fallback() {
        for w in [IdleHistogram::windows, IdleHistogram::percentile_windows] {
            assert_eq!(w(&periodic(9), minutes(5)), Windows::fixed(minutes(5)));
            assert_ne!(w(&periodic(10), minutes(5)), Windows::fixed(minutes(5)));
        }
    }

    #[test]
    fn a_periodic_function_is_released_and_prewarmed_before_its_next_call() {
        // Learned: pre-warm at the 30-minute edge less 10%, keep to its end:
        // no cold start, 3.5 minutes idle a call where 5 minutes and a cold
        // start were the fallback's.
        let w = periodic(20).windows(minutes(5));
        assert_eq!(w.prewarm, minutes(27));
        assert_eq!(w.keep_alive, minutes(4));
        // The paper's: head bin 30 less 10% = 27 min; tail: end of bin 30 =
        // 31 min, plus 10% = 34.1 min, less the pre-warm window.
        let w = periodic(20).percentile_windows(minutes(5));
        assert_eq!(w.prewarm, minutes(27));
        assert_eq!(w.keep_alive, Duration::from_secs(34 * 60 + 6) - minutes(27));
    }

    #[test]
    fn a_busy_function_is_kept_across_its_short_gaps_only() {
        // Gaps of seconds, all in the first bin: nothing to pre-warm; kept a
        // minute (the paper's: 1.1 minutes), not the 5-minute fallback.
        let h = history((0..50).map(Duration::from_secs));
        assert_eq!(h.windows(minutes(5)), Windows::fixed(minutes(1)));
        let w = h.percentile_windows(minutes(5));
        assert_eq!(w, Windows::fixed(Duration::from_secs(66)));
    }

    #[test]
    fn learned_windows_never_hold_more_idle_time_than_the_fallback() {
        // Bursts (gaps of seconds) between pauses of 20 to 80 minutes: the
        // paper's tail keeps instances past 80 minutes after every call; the
        // learned windows keep the bursts warm within the fallback's budget.
        let mut gaps: Vec<Duration> = (0..200).map(|i| Duration::from_secs(i % 10)).collect();
        gaps.extend((0..20).map(|i| minutes(20 + 3 * i)));
        let h = history(gaps.iter().copied());
        let w = h.windows(minutes(5));
        let held = |w: Windows| -> (usize, Duration) {
            let mut cold = 0;
            let mut idle = Duration::ZERO;
            for &g in &gaps {
                let end = w.prewarm + w.keep_alive;
                if g < w.prewarm || g > end {
                    cold += 1;
                    idle += if g > end {
                        w.keep_alive
                    } else {
                        Duration::ZERO
                    };
                } else {
                    idle += g - w.prewarm;
                }
            }
            (cold, idle)
        };
        let (cold, idle) = held(w);
        let (fixed_cold, fixed_idle) = held(Windows::fixed(minutes(5)));
        assert!(
            cold <= fixed_cold && idle <= fixed_idle,
            "{w:?}: {cold} {idle:?} vs {fixed_cold} {fixed_idle:?}"
        );
        let (_, paper_idle) = held(h.percentile_windows(minutes(5)));
        assert!(paper_idle > fixed_idle * 5, "{paper_idle:?}");
    }

    #[test]
    fn a_spread_out_history_is_not_trusted_by_the_percentile_policy() {
        // One gap in every bin: a flat histogram (CV 0).
        let h = history((0..BINS as u64).map(minutes));
        assert_eq!(h.percentile_windows(minutes(5)), Windows::fixed(minutes(5)));
    }

    #[test]
    fn mostly_out_of_range_gaps_keep_the_fallback() {
        let mut h = history(std::iter::repeat_n(minutes(10), 10));
        for _ in 0..11 {
            h.observe(minutes(5 * 60));
        }
        assert_eq!(h.observations(), 21);
        assert_eq!(h.percentile_windows(minutes(5)), Windows::fixed(minutes(5)));
        // Learned: gaps past the range are cold whatever the window; the
        // 10-minute ones are worth pre-warming for.
        assert_eq!(h.windows(minutes(5)).prewarm, minutes(9));
    }

    #[test]
    fn the_percentile_tail_covers_the_99th_percentile() {
        // 99 gaps of ~2 minutes and one of 60: the 99th percentile is still
        // in the 2-minute bin; 100 of 200 at 60 moves it there.
        let mut h = history(std::iter::repeat_n(minutes(2), 99));
        h.observe(minutes(60));
        let w = h.percentile_windows(minutes(5));
        assert_eq!(w.prewarm, minutes(2).mul_f64(0.9));
        assert_eq!(
            w.keep_alive,
            minutes(3).mul_f64(1.1) - minutes(2).mul_f64(0.9)
        );
        for _ in 0..100 {
            h.observe(minutes(60));
        }
        let w = h.percentile_windows(minutes(5));
        assert_eq!(
            w.keep_alive,
            minutes(61).mul_f64(1.1) - minutes(2).mul_f64(0.9)
        );
    }

    #[test]
    fn a_periodic_function_is_released_then_prewarmed_once() {
        let t0 = Instant::now();
        let mut h = History::default();
        let mut now = t0;
        // 30 minutes after each call ends: nine idle times, learning.
        for _ in 0..10 {
            h.arrive(now, Policy::Learned);
            now += Duration::from_secs(1);
            assert_eq!(h.finish(now, Policy::Learned, minutes(5)), minutes(5));
            assert!(h.due(now + minutes(60)).is_none());
            now += minutes(30);
        }
        // Learned: released at once, pre-warmed 27 minutes later.
        h.arrive(now, Policy::Learned);
        now += Duration::from_secs(1);
        assert_eq!(h.finish(now, Policy::Learned, minutes(5)), Duration::ZERO);
        assert_eq!(h.due(now + minutes(27) - Duration::from_millis(1)), None);
        assert_eq!(h.due(now + minutes(27)), Some(minutes(4)));
        assert_eq!(h.due(now + minutes(28)), None, "once");
        // A fixed function never learns.
        let mut f = History::default();
        for i in 0..20 {
            f.arrive(t0 + minutes(30 * i), Policy::Fixed);
            assert_eq!(
                f.finish(t0 + minutes(30 * i), Policy::Fixed, minutes(5)),
                minutes(5)
            );
        }
        assert!(f.idle.is_none());
    }

    #[test]
    fn an_instance_freed_while_others_run_is_kept_for_the_fallback() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.arrive(t0, Policy::Learned);
        h.arrive(t0, Policy::Learned);
        assert_eq!(h.finish(t0, Policy::Learned, minutes(5)), minutes(5));
        assert_eq!(h.finish(t0, Policy::Learned, minutes(5)), minutes(5));
        // An arrival cancels a pending pre-warm.
        h.prewarm = Some((t0 + minutes(1), minutes(1)));
        h.arrive(t0, Policy::Learned);
        assert_eq!(h.due(t0 + minutes(2)), None);
    }

    #[test]
    fn counts_are_halved_not_overflowed() {
        let mut h = IdleHistogram::default();
        for _ in 0..u32::from(u16::MAX) + 10 {
            h.observe(minutes(1));
        }
        assert_eq!(h.bins[1], u16::MAX / 2 + 10);
        assert_eq!(
            h.percentile_windows(minutes(5)).prewarm,
            minutes(1).mul_f64(0.9)
        );
    }
}
