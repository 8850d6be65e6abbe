//! PLACEHOLDER until the schedule branch merges (never landed as is).
use updraft_core::{Invalid, ScheduleTrigger};
#[derive(Clone, Debug)]
pub struct Schedule(i64);
impl Schedule {
    pub fn parse(_t: &ScheduleTrigger) -> Result<Schedule, Invalid> {
        Ok(Schedule(1000))
    }
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        Some((after_ms / self.0 + 1) * self.0)
    }
    pub fn latest_between(&self, since_ms: i64, at_ms: i64) -> Option<i64> {
        let t = at_ms / self.0 * self.0;
        (t > since_ms).then_some(t)
    }
    pub fn describe(&self) -> String {
        "rate(1 second)".into()
    }
}
