//! Token buckets for the event stream's budgets: how much detail a subscriber is sent per
//! second, on average, with a burst allowed.
//!
//! A loaded node does tens of thousands of things a second; a page draws a few hundred of them
//! and reads the rest from counts and dumps. Every budget of the stream is one of these, so the
//! rule for refilling and spending exists once.

use std::time::Instant;

/// Units (events, bytes) that may be spent: refilled at `per_s`, holding at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    per_s: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A bucket that starts full, so a quiet node's first burst is sent whole.
    pub fn new(per_s: f64, burst: f64) -> TokenBucket {
        assert!(per_s > 0.0 && burst >= 1.0, "a budget that allows nothing");
        TokenBucket {
            per_s,
            burst,
            tokens: burst,
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let refill = now.duration_since(self.refilled).as_secs_f64() * self.per_s;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.refilled = now;
    }

    /// Spends `units` if the bucket holds them; nothing is spent otherwise.
    pub fn take(&mut self, units: f64) -> bool {
        self.take_at(units, Instant::now())
    }

    /// Whether the bucket holds `units` now, spending nothing.
    pub fn holds(&mut self, units: f64) -> bool {
        self.refill(Instant::now());
        self.tokens >= units
    }

    fn take_at(&mut self, units: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= units {
            self.tokens -= units;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_grants_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10.0);
        bucket.refilled = start;
        let granted = (0..50).filter(|_| bucket.take_at(1.0, start)).count();
        assert_eq!(granted, 10, "the burst, no more");
        assert!(!bucket.take_at(1.0, start + Duration::from_millis(5)));
        assert!(
            bucket.take_at(1.0, start + Duration::from_millis(15)),
            "1.5 refilled"
        );
        let later = start + Duration::from_secs(60);
        let granted = (0..50).filter(|_| bucket.take_at(1.0, later)).count();
        assert_eq!(granted, 10, "an idle bucket holds its burst, no more");
    }

    #[test]
    fn a_refused_take_spends_nothing() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 100.0);
        bucket.refilled = now;
        assert!(!bucket.take_at(101.0, now));
        assert!(
            bucket.take_at(100.0, now),
            "the refused take left the tokens"
        );
        assert!(!bucket.take_at(1.0, now));
    }
}
