//! Output bytes → log lines within an invocation's budget: the loop every
//! runtime's output capture runs over a [`LineSplitter`] and a [`LogBudget`].

use crate::logs::{LineSplitter, LogBudget};

/// Feeds `bytes` to `lines`; each complete line the budget admits goes to
/// `emit`. Once the budget is spent, the held line and `bytes` are only
/// counted as dropped.
pub fn feed(
    lines: &mut LineSplitter,
    budget: &mut LogBudget,
    bytes: &[u8],
    mut emit: impl FnMut(String),
) {
    if budget.is_truncated() {
        let held = lines.discard();
        budget.drop_bytes(held + bytes.len());
        return;
    }
    lines.push(bytes, |line, raw| {
        if budget.admit(raw) {
            emit(String::from_utf8_lossy(line).into_owned());
        }
    });
}

/// Ends the stream: its unfinished last line goes to `emit` if the budget
/// admits it, else it is counted as dropped.
pub fn finish(lines: &mut LineSplitter, budget: &mut LogBudget, mut emit: impl FnMut(String)) {
    if budget.is_truncated() {
        budget.drop_bytes(lines.discard());
        return;
    }
    lines.finish(|line, raw| {
        if budget.admit(raw) {
            emit(String::from_utf8_lossy(line).into_owned());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LINE_COST;

    #[test]
    fn lines_within_the_budget_are_emitted_the_rest_counted() {
        let mut lines = LineSplitter::default();
        // Room for "one\n" and "two\r\n" (4 + 5 bytes and two line costs), not "three".
        let mut budget = LogBudget::new(9 + 2 * LINE_COST);
        let mut got = Vec::new();
        feed(&mut lines, &mut budget, b"one\ntw", |l| got.push(l));
        feed(&mut lines, &mut budget, b"o\r\nthree\nfo", |l| got.push(l));
        assert_eq!(got, ["one", "two"]);
        // Spent: "three\n" (6) was refused; "fo" held, then "ur" and "fo" dropped unread.
        assert!(budget.is_truncated());
        feed(&mut lines, &mut budget, b"ur", |l| got.push(l));
        finish(&mut lines, &mut budget, |l| got.push(l));
        assert_eq!(got, ["one", "two"]);
        let notice = budget.take_notice().unwrap();
        assert!(
            notice.contains(" 10 bytes of output were dropped"),
            "{notice}"
        );
    }

    #[test]
    fn finish_emits_the_unfinished_line_lossily() {
        let mut lines = LineSplitter::default();
        let mut budget = LogBudget::new(u64::MAX);
        let mut got = Vec::new();
        feed(&mut lines, &mut budget, b"a\nb\xff", |l| got.push(l));
        assert_eq!(got, ["a"]);
        finish(&mut lines, &mut budget, |l| got.push(l));
        assert_eq!(got, ["a", "b\u{fffd}"]);
        assert_eq!(budget.take_notice(), None);
    }
}
