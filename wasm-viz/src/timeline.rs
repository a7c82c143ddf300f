//! The recording: every input the page received, bounded, with a cursor to look back.
//!
//! The live model is always up to date. Looking back (pause, step, scrub, replay) rebuilds the
//! model at the cursor from the nearest checkpoint, so scrubbing costs at most
//! [`CHECKPOINT_EVERY`] reductions. When the recording is full, the inputs before its oldest
//! checkpoint are dropped and counted (so the page can say how much history was dropped), and
//! that checkpoint becomes the base model: a dropped input is never reduced a second time,
//! which under load would double the reducer's work once the recording fills.

use std::collections::VecDeque;

use omnikv_core::{
    decode_json,
    wire::{decode_postcard, encode_postcard, take_postcard},
};
use serde::{Deserialize, Serialize};

use crate::{model::ClusterModel, record::Record};

/// Inputs kept by default (a few minutes of a busy 3-node cluster).
pub const RECORDS_CAP: usize = 20_000;
/// A model copy is kept every this many inputs, to bound the cost of a seek (every tenth of
/// the cap for a smaller recording).
pub const CHECKPOINT_EVERY: u64 = 2_000;
/// Replay speeds offered, slowest first.
pub const SPEEDS: [f64; 4] = [0.1, 0.25, 0.5, 1.0];
/// The speed selector's option values, one per entry of [`SPEEDS`].
pub const SPEED_NAMES: [&str; 4] = ["0.1", "0.25", "0.5", "1"];

/// The replay speed an option value names; 1 for anything else. A lookup rather than float
/// parsing, which would bring the float parser and its tables into the wasm.
pub fn speed_named(name: &str) -> f64 {
    SPEED_NAMES
        .iter()
        .position(|n| *n == name.trim())
        .map_or(1.0, |i| SPEEDS[i])
}
/// Format tag of exported traces.
pub const TRACE_FORMAT: &str = "omnikv-trace";
/// The trace version this build writes and the page reads: 4, the first written in postcard
/// (`omnikv_core::wire`), the page's encoding. Raise it when a recorded type changes shape.
pub const TRACE_VERSION: u32 = 4;
/// Versions 1 to 3 were JSON: version 2 added `control` records and the status's `kv_digest`,
/// version 3 `operation` records (the client history). [`Timeline::import_json`] (for `omnikv
/// history`) still reads them, what they lack reading as absent or empty; the page does not.
pub const TRACE_JSON_VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Live,
    /// Frozen at `cursor` (number of inputs applied since the start of the recording).
    Paused,
    /// Playing the recording forward at `speed` times real time.
    Replay {
        speed: f64,
    },
}

pub struct Timeline {
    cap: usize,
    records: VecDeque<Record>,
    /// The model before `records[0]`: the checkpoint the recording was last dropped up to.
    base: ClusterModel,
    /// Absolute position of `records[0]`: how many inputs were dropped (`base` holds them).
    first_pos: u64,
    /// Model copies by position, oldest first: about `cap / checkpoint_every` (10), so a
    /// vector; a deque type more would cost the wasm its code.
    checkpoints: Vec<(u64, ClusterModel)>,
    /// At most `cap`, so that a full recording always holds a checkpoint to drop up to.
    checkpoint_every: u64,
    live: ClusterModel,
    mode: Mode,
    cursor: u64,
    /// The model at `cursor` while looking back.
    view: Option<(u64, ClusterModel)>,
    /// Replay clock in event time.
    replay_clock_ms: f64,
}

/// The exported form of a recording.
#[derive(Serialize, Deserialize)]
pub struct Trace {
    pub format: String,
    pub version: u32,
    /// Inputs dropped before the first one kept: the imported picture starts without them.
    pub dropped: u64,
    pub records: Vec<Record>,
}

impl Timeline {
    pub fn new(cap: usize) -> Timeline {
        Timeline {
            cap: cap.max(1),
            records: VecDeque::new(),
            base: ClusterModel::default(),
            first_pos: 0,
            checkpoints: Vec::new(),
            checkpoint_every: (cap as u64 / 10).clamp(1, CHECKPOINT_EVERY),
            live: ClusterModel::default(),
            mode: Mode::Live,
            cursor: 0,
            view: None,
            replay_clock_ms: 0.0,
        }
    }

    /// Records an input and applies it to the live model.
    pub fn push(&mut self, record: Record) {
        self.live.apply(&record);
        self.records.push_back(record);
        if self.records.len() > self.cap {
            self.drop_to_oldest_checkpoint();
        }
        let end = self.end();
        if end.is_multiple_of(self.checkpoint_every) {
            self.checkpoints.push((end, self.live.clone()));
        }
        if self.mode == Mode::Live {
            self.cursor = end;
        }
    }

    /// Drops the inputs before the oldest checkpoint, which becomes the base. A full recording
    /// holds one: checkpoints are at most `cap` inputs apart.
    fn drop_to_oldest_checkpoint(&mut self) {
        // Each checkpoint is taken after an input is pushed and a drop removes the one it drops
        // up to, so every checkpoint is past the start and the oldest is the first.
        if self.checkpoints.is_empty() {
            return;
        }
        let (pos, model) = self.checkpoints.remove(0);
        for _ in self.first_pos..pos {
            self.records.pop_front();
        }
        self.base = model;
        self.first_pos = pos;
        self.cursor = self.cursor.max(pos);
        // A view from before the new start cannot be brought forward without the inputs just
        // dropped: it is rebuilt from the base when drawn.
        if matches!(self.view, Some((p, _)) if p < pos) {
            self.view = None;
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn dropped(&self) -> u64 {
        self.first_pos
    }
    pub fn start(&self) -> u64 {
        self.first_pos
    }
    pub fn end(&self) -> u64 {
        self.first_pos + self.records.len() as u64
    }
    pub fn cursor(&self) -> u64 {
        self.cursor
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    pub fn live_model(&self) -> &ClusterModel {
        &self.live
    }

    /// Time of the input at absolute position `pos` (the last applied before it).
    pub fn time_at(&self, pos: u64) -> Option<u64> {
        let i = pos.checked_sub(self.first_pos)?.checked_sub(1)?;
        self.records.get(i as usize).map(Record::at_ms)
    }

    /// The model to draw.
    pub fn model(&mut self) -> &ClusterModel {
        self.view_and_live().0
    }

    /// The model to draw and the live one (which knows the whole recording), together.
    pub fn view_and_live(&mut self) -> (&ClusterModel, &ClusterModel) {
        if self.mode != Mode::Live {
            self.ensure_view();
        }
        match (self.mode, &self.view) {
            (Mode::Live, _) | (_, None) => (&self.live, &self.live),
            (_, Some((_, m))) => (m, &self.live),
        }
    }

    /// The time the picture shows, for animations: `None` in live mode (use the wall clock).
    pub fn view_time_ms(&self) -> Option<f64> {
        match self.mode {
            Mode::Live => None,
            Mode::Paused => Some(self.time_at(self.cursor).unwrap_or(0) as f64),
            Mode::Replay { .. } => Some(self.replay_clock_ms),
        }
    }

    pub fn pause(&mut self) {
        if self.mode == Mode::Live {
            self.cursor = self.end();
        }
        self.mode = Mode::Paused;
    }

    pub fn go_live(&mut self) {
        self.mode = Mode::Live;
        self.cursor = self.end();
        self.view = None;
    }

    /// Moves the cursor by one input (pausing first).
    pub fn step(&mut self, forward: bool) {
        self.pause();
        let to = if forward {
            self.cursor.saturating_add(1)
        } else {
            self.cursor.saturating_sub(1)
        };
        self.seek(to);
    }

    /// Puts the cursor at absolute position `pos` (clamped), pausing.
    pub fn seek(&mut self, pos: u64) {
        if self.mode == Mode::Live {
            self.mode = Mode::Paused;
        }
        self.cursor = pos.clamp(self.start(), self.end());
        self.replay_clock_ms = self.time_at(self.cursor).unwrap_or(0) as f64;
    }

    /// Plays from the cursor at `speed` times real time.
    pub fn replay(&mut self, speed: f64) {
        if self.mode == Mode::Live {
            self.cursor = self.start();
        }
        self.replay_clock_ms = self
            .time_at(self.cursor)
            .or_else(|| self.records.front().map(Record::at_ms))
            .unwrap_or(0) as f64;
        self.mode = Mode::Replay {
            speed: speed.clamp(0.01, 1.0),
        };
    }

    /// Advances a replay by `wall_dt_ms` of real time; goes live when it catches up.
    pub fn tick(&mut self, wall_dt_ms: f64) {
        let Mode::Replay { speed } = self.mode else {
            return;
        };
        self.replay_clock_ms += wall_dt_ms.clamp(0.0, 1_000.0) * speed;
        while self.cursor < self.end() {
            let i = (self.cursor - self.first_pos) as usize;
            match self.records.get(i) {
                Some(r) if (r.at_ms() as f64) <= self.replay_clock_ms => self.cursor += 1,
                _ => break,
            }
        }
        if self.cursor >= self.end() {
            self.go_live();
        }
    }

    fn ensure_view(&mut self) {
        let cursor = self.cursor;
        if let Some((pos, model)) = &mut self.view {
            if *pos <= cursor {
                for i in *pos..cursor {
                    if let Some(r) = self.records.get((i - self.first_pos) as usize) {
                        model.apply(r);
                    }
                }
                *pos = cursor;
                return;
            }
        }
        let (mut pos, mut model) = self
            .checkpoints
            .iter()
            .rev()
            .find(|(p, _)| *p <= cursor && *p >= self.first_pos)
            .map(|(p, m)| (*p, m.clone()))
            .unwrap_or_else(|| (self.first_pos, self.base.clone()));
        while pos < cursor {
            if let Some(r) = self.records.get((pos - self.first_pos) as usize) {
                model.apply(r);
            }
            pos += 1;
        }
        self.view = Some((cursor, model));
    }

    /// The recorded inputs still held, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    pub fn export(&self) -> Trace {
        Trace {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            dropped: self.first_pos,
            records: self.records.iter().cloned().collect(),
        }
    }

    /// The recording as a trace file.
    pub fn export_bytes(&self) -> Vec<u8> {
        encode_postcard(&self.export())
    }

    /// Reads a trace file of at most `limit` bytes, as [`Timeline::export_bytes`] writes it. A
    /// trace of another version is named as such rather than by the first record it cannot read.
    pub fn import_bytes(bytes: &[u8], limit: usize, cap: usize) -> Result<Timeline, String> {
        if bytes.trim_ascii_start().starts_with(b"{") {
            return Err(format!(
                "this trace was made by an older version of OmniKV (a JSON trace, versions {} to \
                 {}; this page reads version {TRACE_VERSION}); `omnikv history` still reads it",
                TRACE_JSON_VERSIONS.start(),
                TRACE_JSON_VERSIONS.end()
            ));
        }
        // The header is the trace's first two fields, and postcard writes fields in order.
        let header = take_postcard::<(String, u32)>(bytes)
            .ok()
            .map(|(header, _)| header);
        match header {
            Some((format, version)) if format == TRACE_FORMAT && version != TRACE_VERSION => {
                return Err(other_version(version))
            }
            _ => {}
        }
        let trace = decode_postcard::<Trace>(bytes, limit).map_err(unreadable)?;
        Timeline::import(trace, cap)
    }

    /// Reads a JSON trace file (versions [`TRACE_JSON_VERSIONS`]) of at most `limit` bytes.
    pub fn import_json(text: &str, limit: usize, cap: usize) -> Result<Timeline, String> {
        let trace = decode_json::<Trace>(text.as_bytes(), limit).map_err(unreadable)?;
        check_format(&trace.format)?;
        match trace.version {
            v if TRACE_JSON_VERSIONS.contains(&v) => Timeline::load(trace, cap),
            v => Err(format!("trace version {v} is not a JSON trace")),
        }
    }

    /// A paused timeline holding an imported trace, cursor at its start.
    pub fn import(trace: Trace, cap: usize) -> Result<Timeline, String> {
        check_header(&trace.format, trace.version)?;
        Timeline::load(trace, cap)
    }

    fn load(trace: Trace, cap: usize) -> Result<Timeline, String> {
        let mut t = Timeline::new(cap.max(trace.records.len()));
        t.first_pos = trace.dropped;
        t.cursor = trace.dropped;
        t.base.inputs = trace.dropped;
        t.live.inputs = trace.dropped;
        for r in trace.records {
            t.push(r);
        }
        if trace.dropped > 0 {
            t.base.notice(
                0,
                format!("this trace starts after {} dropped events", trace.dropped),
            );
            t.live.notice(
                0,
                format!("this trace starts after {} dropped events", trace.dropped),
            );
        }
        t.mode = Mode::Paused;
        t.seek(t.start());
        Ok(t)
    }
}

fn check_header(format: &str, version: u32) -> Result<(), String> {
    check_format(format)?;
    if version != TRACE_VERSION {
        return Err(other_version(version));
    }
    Ok(())
}

fn check_format(format: &str) -> Result<(), String> {
    match format == TRACE_FORMAT {
        true => Ok(()),
        false => Err(format!("not an OmniKV trace (format \"{format}\")")),
    }
}

fn unreadable(e: omnikv_core::DecodeError) -> String {
    format!("not a readable OmniKV trace: {e}")
}

fn other_version(version: u32) -> String {
    let which = if version < TRACE_VERSION {
        "an older"
    } else {
        "a newer"
    };
    format!(
        "this trace was made by {which} version of OmniKV (trace version {version}; this page \
         reads version {TRACE_VERSION})"
    )
}
