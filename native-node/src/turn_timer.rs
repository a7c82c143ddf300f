//! How long a node's turns take, and a warning that names the slow part.
//!
//! Peers elect a new leader when the leader's heartbeat replies miss a round (`--tick-ms` x
//! `--election-ticks`), and a turn of the event loop is when those replies go out: a turn longer
//! than a round changes leaders under load. The warning says which phase of the turn took the
//! time (handling the batch of inputs, applying, the fsync, or finishing: snapshotting, status),
//! so an operator can tell a slow disk from a slow apply. Warnings are rate-limited, with the
//! number of slow turns in between, so a saturated node does not flood its log.

use std::time::{Duration, Instant};

use tracing::warn;

/// At most one warning per this interval; the ones in between are counted.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The phases of a turn, in the order the event loop runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Handing the batch of inputs to the replica (OmniPaxos writes its log here).
    Inputs,
    /// Sending what may leave before the fsync, starting it, and applying decided entries
    /// while it runs.
    Apply,
    /// What remained of the one fsync of everything the batch wrote once the apply ended.
    Sync,
    /// Snapshotting, answering reads and admin requests, sending, the status.
    Finish,
}

const PHASES: usize = 4;

/// Times the turns of one event loop.
pub struct TurnTimer {
    /// A turn longer than this is slow.
    slow_after: Duration,
    began: Instant,
    /// When the current phase began.
    phase_began: Instant,
    phases: [Duration; PHASES],
    inputs: usize,
    /// Slow turns since the last warning, and the longest of them.
    slow: u64,
    longest: Option<SlowTurn>,
    reported_at: Option<Instant>,
}

/// One slow turn, as a warning reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowTurn {
    pub total: Duration,
    pub phases: [Duration; PHASES],
    pub inputs: usize,
}

impl TurnTimer {
    pub fn new(slow_after: Duration) -> TurnTimer {
        let now = Instant::now();
        TurnTimer {
            slow_after,
            began: now,
            phase_began: now,
            phases: [Duration::ZERO; PHASES],
            inputs: 0,
            slow: 0,
            longest: None,
            reported_at: None,
        }
    }

    /// A turn starts (its first input arrived, or the tick).
    pub fn begin(&mut self) {
        self.began = Instant::now();
        self.phase_began = self.began;
        self.phases = [Duration::ZERO; PHASES];
        self.inputs = 0;
    }

    pub fn input(&mut self) {
        self.inputs += 1;
    }

    /// `phase` ends now.
    pub fn ended(&mut self, phase: Phase) {
        let now = Instant::now();
        self.phases[phase as usize] += now - self.phase_began;
        self.phase_began = now;
    }

    /// The turn ends: logs a warning when it was slow and none was logged in the last interval.
    pub fn end(&mut self) {
        if let Some(turn) = self.finish(Instant::now()) {
            let [inputs_ms, apply_ms, sync_ms, finish_ms] =
                turn.phases.map(|d| d.as_secs_f64() * 1e3);
            warn!(
                turn_ms = turn.total.as_secs_f64() * 1e3,
                inputs = turn.inputs,
                inputs_ms,
                apply_ms,
                sync_ms,
                finish_ms,
                slow_turns = self.slow_reported(),
                "a turn of the event loop outlasted half a heartbeat round (the longest since the last warning)"
            );
        }
    }

    /// Records the turn ending at `now`; returns the longest slow turn when a warning is due.
    fn finish(&mut self, now: Instant) -> Option<SlowTurn> {
        let total = now - self.began;
        if total <= self.slow_after {
            return None;
        }
        self.slow += 1;
        let turn = SlowTurn {
            total,
            phases: self.phases,
            inputs: self.inputs,
        };
        if self.longest.as_ref().is_none_or(|l| l.total < total) {
            self.longest = Some(turn);
        }
        let due = self
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= REPORT_INTERVAL);
        if !due {
            return None;
        }
        self.reported_at = Some(now);
        self.longest.take()
    }

    /// The slow turns the warning being logged stands for; counting starts again.
    fn slow_reported(&mut self) -> u64 {
        std::mem::take(&mut self.slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(timer: &mut TurnTimer, sync: Duration) -> Option<SlowTurn> {
        timer.begin();
        timer.input();
        timer.ended(Phase::Inputs);
        timer.ended(Phase::Apply);
        std::thread::sleep(sync);
        timer.ended(Phase::Sync);
        timer.ended(Phase::Finish);
        timer.finish(Instant::now())
    }

    #[test]
    fn a_slow_turn_names_its_slow_phase_and_quick_turns_say_nothing() {
        let mut timer = TurnTimer::new(Duration::from_millis(50));
        assert_eq!(turn(&mut timer, Duration::ZERO), None);
        let slow = turn(&mut timer, Duration::from_millis(60)).expect("reported");
        assert_eq!(slow.inputs, 1);
        let [inputs, apply, sync, finish] = slow.phases;
        assert!(sync >= Duration::from_millis(60), "{slow:?}");
        assert!(inputs < sync && apply < sync && finish < sync, "{slow:?}");
        assert_eq!(timer.slow_reported(), 1);
    }

    #[test]
    fn slow_turns_within_an_interval_are_counted_into_one_warning() {
        let mut timer = TurnTimer::new(Duration::from_millis(1));
        assert!(turn(&mut timer, Duration::from_millis(3)).is_some());
        assert_eq!(timer.slow_reported(), 1);
        // Within the interval: counted, not reported; the longest is kept for the next warning.
        assert!(turn(&mut timer, Duration::from_millis(8)).is_none());
        assert!(turn(&mut timer, Duration::from_millis(3)).is_none());
        assert_eq!(timer.slow, 2);
        timer.reported_at = Some(Instant::now() - REPORT_INTERVAL);
        let next = turn(&mut timer, Duration::from_millis(3)).expect("due again");
        assert!(
            next.total >= Duration::from_millis(8),
            "the longest: {next:?}"
        );
        assert_eq!(timer.slow_reported(), 3);
    }
}
