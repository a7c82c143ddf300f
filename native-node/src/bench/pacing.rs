//! When a client sends its next request: at once (closed loop), or at its slots of a fixed
//! offered rate (open loop).
//!
//! In an open-loop run the offered rate is split over the clients: client `i` of `n` owns the
//! slots `i, i + n, i + 2n, ...`, slot `k` being due at `origin + k / rate`. A client still
//! waiting for its previous answer when a slot comes sends late, and its latency is measured
//! from the slot's time, so a system that queues cannot hide the wait (coordinated omission);
//! the load run does that. Kept free of I/O so the schedule can be unit-tested.

use std::time::{Duration, Instant};

pub enum Pacer {
    /// Send as soon as the previous answer arrived.
    Closed,
    Open {
        origin: Instant,
        interval: Duration,
        next_slot: u64,
        stride: u64,
    },
}

impl Pacer {
    /// Client `client` of `clients`, at `rate_per_s` operations per second for all clients
    /// together (`None`: closed loop).
    pub fn new(rate_per_s: Option<f64>, client: usize, clients: usize, origin: Instant) -> Pacer {
        match rate_per_s {
            Some(rate) if rate > 0.0 => Pacer::Open {
                origin,
                interval: Duration::from_secs_f64(1.0 / rate),
                next_slot: client as u64,
                stride: clients.max(1) as u64,
            },
            _ => Pacer::Closed,
        }
    }

    /// When the next request is due (the instant its latency is measured from); `now` in a
    /// closed loop. Advances to the following slot.
    pub fn next_due(&mut self, now: Instant) -> Instant {
        match self {
            Pacer::Closed => now,
            Pacer::Open {
                origin,
                interval,
                next_slot,
                stride,
            } => {
                let due = *origin + interval.mul_f64(*next_slot as f64);
                *next_slot += *stride;
                due
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_sends_now() {
        let now = Instant::now();
        let mut p = Pacer::new(None, 3, 8, now);
        assert_eq!(p.next_due(now), now);
    }

    #[test]
    fn open_loop_clients_interleave_their_slots() {
        let origin = Instant::now();
        // 1000/s over 4 clients: client 1 owns slots 1, 5, 9 (1 ms apart each).
        let mut p = Pacer::new(Some(1000.0), 1, 4, origin);
        let due: Vec<Duration> = (0..3).map(|_| p.next_due(origin) - origin).collect();
        assert_eq!(
            due,
            vec![
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_millis(9)
            ]
        );
    }

    #[test]
    fn a_late_client_keeps_its_schedule() {
        // Being late does not move the slots: the lateness is what the latency includes.
        let origin = Instant::now();
        let mut p = Pacer::new(Some(100.0), 0, 1, origin);
        let late = origin + Duration::from_secs(1);
        assert_eq!(p.next_due(late), origin);
        assert_eq!(p.next_due(late), origin + Duration::from_millis(10));
    }
}
