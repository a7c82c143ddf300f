//! Short human-readable text for events, messages and commands: the page's inspector and log
//! strip use it, and so does `omnikv.mjs watch`, so both describe an event the same way.

use omnikv_core::{
    client::{ClientOp, ReadMode},
    event::{
        BallotView, EventEnvelope, MessageInfo, MessageKind, NodeEvent, RequestOutcome,
        SnapshotCarried,
    },
    txn::{Guard, TxnOp},
    KVCommand,
};

pub fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::PrepareReq => "PrepareReq",
        MessageKind::Prepare => "Prepare",
        MessageKind::Promise => "Promise",
        MessageKind::AcceptSync => "AcceptSync",
        MessageKind::AcceptDecide => "AcceptDecide",
        MessageKind::Accepted => "Accepted",
        MessageKind::NotAccepted => "NotAccepted",
        MessageKind::Decide => "Decide",
        MessageKind::ProposalForward => "ProposalForward",
        MessageKind::Compaction => "Compaction",
        MessageKind::AcceptStopSign => "AcceptStopSign",
        MessageKind::ForwardStopSign => "ForwardStopSign",
        MessageKind::HeartbeatRequest => "HeartbeatRequest",
        MessageKind::HeartbeatReply => "HeartbeatReply",
    }
}

/// What a message does, in plain words, for a person stepping through the protocol.
pub fn message_purpose(m: &MessageInfo) -> String {
    let (from, to) = (m.from, m.to);
    let b = m.ballot.as_ref().map(ballot).unwrap_or_default();
    let idx = |i: Option<u64>| i.map_or("?".to_string(), |i| i.to_string());
    let snapshot = match m.snapshot {
        Some(SnapshotCarried::Complete) => " with a complete snapshot",
        Some(SnapshotCarried::Delta) => " with a delta snapshot",
        None => "",
    };
    match m.kind {
        MessageKind::PrepareReq => format!("node {from} asks node {to} to bring it up to date"),
        MessageKind::Prepare => format!(
            "node {from}, elected, asks node {to} to promise ballot {b} and say what it accepted"
        ),
        MessageKind::Promise => format!(
            "node {from} promises ballot {b} to node {to}: it accepted up to index {}",
            idx(m.accepted_idx)
        ),
        MessageKind::AcceptSync => format!(
            "leader {from} makes node {to}'s log its own from index {}{snapshot}",
            idx(m.sync_idx)
        ),
        MessageKind::AcceptDecide => format!(
            "leader {from} asks node {to} to accept {} entr{} (decided up to index {})",
            m.entry_count,
            if m.entry_count == 1 { "y" } else { "ies" },
            idx(m.decided_idx)
        ),
        MessageKind::Accepted => format!(
            "node {from} tells leader {to} it has accepted up to index {}; with a majority the \
             entries are decided",
            idx(m.accepted_idx)
        ),
        MessageKind::NotAccepted => {
            format!("node {from} refuses node {to}: it promised a higher ballot")
        }
        MessageKind::Decide => format!(
            "leader {from} tells node {to} that entries up to index {} are decided: apply them",
            idx(m.decided_idx)
        ),
        MessageKind::ProposalForward => {
            format!("node {from} forwards a client's command to leader {to}")
        }
        MessageKind::Compaction => format!("node {from} asks node {to} to compact its log"),
        MessageKind::AcceptStopSign | MessageKind::ForwardStopSign => {
            format!("node {from} passes a reconfiguration to node {to}")
        }
        MessageKind::HeartbeatRequest | MessageKind::HeartbeatReply => {
            format!("leader election's heartbeat from node {from} to node {to}")
        }
    }
}

pub fn ballot(b: &BallotView) -> String {
    format!("({}, {}, {})", b.n, b.priority, b.pid)
}

pub fn command(c: &KVCommand) -> String {
    match c {
        KVCommand::Put { key, value, .. } => format!("put {key}={value}"),
        KVCommand::Delete { key, .. } => format!("delete {key}"),
        KVCommand::Get { key, .. } => format!("get {key}"),
        KVCommand::Txn { guards, ops, .. } => txn(guards.len(), ops.len(), c.key()),
        KVCommand::Scan { .. } => format!("scan {}", c.key()),
        KVCommand::OpenSession { .. } => "open session".into(),
    }
}

fn txn(guards: usize, ops: usize, key: &str) -> String {
    match guards {
        0 => format!("batch of {ops} ({key}...)"),
        _ => format!("txn {guards} guards, {ops} writes ({key}...)"),
    }
}

/// A compare-and-swap: one guard and one write of the same key.
fn cas(guard: &Guard, write: &TxnOp) -> String {
    let expected = match guard {
        Guard::Value { value, .. } => value.clone(),
        Guard::Absent { .. } => "absent".into(),
        Guard::ModIndex { mod_index, .. } => format!("index {mod_index}"),
    };
    match write {
        TxnOp::Put { key, value } => format!("cas {key}={value} if {expected}"),
        TxnOp::Delete { key } => format!("cas delete {key} if {expected}"),
    }
}

pub fn op(o: &ClientOp) -> String {
    match o {
        ClientOp::Put { key, value } => format!("put {key}={value}"),
        ClientOp::Get {
            key,
            read: ReadMode::Linearizable,
        } => format!("get {key}"),
        ClientOp::Get {
            key,
            read: ReadMode::Local,
        } => format!("get {key} (local)"),
        ClientOp::Delete { key } => format!("delete {key}"),
        ClientOp::Txn { guards, ops } => match (guards.as_slice(), ops.as_slice()) {
            ([guard], [write]) if guard.key() == write.key() => cas(guard, write),
            _ => {
                let key = ops
                    .first()
                    .map(|o| o.key())
                    .or(guards.first().map(|g| g.key()));
                txn(guards.len(), ops.len(), key.unwrap_or(""))
            }
        },
        ClientOp::Scan { range, .. } => {
            let from = range.prefix.as_deref().or(range.start.as_deref());
            format!("scan {}", from.unwrap_or(""))
        }
        ClientOp::OpenSession => "open session".into(),
    }
}

pub fn outcome(o: &RequestOutcome) -> String {
    match o {
        RequestOutcome::Ok { value: Some(v) } => format!("ok {v}"),
        RequestOutcome::Ok { value: None } => "ok".into(),
        RequestOutcome::Err { error } => format!("error: {error}"),
    }
}

/// The fields of a message, one `name: value` per line, for the inspector.
pub fn message_fields(m: &MessageInfo) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("kind", kind_name(m.kind).to_string()),
        ("from", m.from.to_string()),
        ("to", m.to.to_string()),
        ("msg_id", m.msg_id.to_string()),
    ];
    if let Some(b) = &m.ballot {
        f.push(("ballot", ballot(b)));
    }
    if let Some(i) = m.decided_idx {
        f.push(("decided_idx", i.to_string()));
    }
    if let Some(i) = m.accepted_idx {
        f.push(("accepted_idx", i.to_string()));
    }
    if let Some(i) = m.sync_idx {
        f.push(("sync_idx", i.to_string()));
    }
    if m.entry_count > 0 {
        f.push(("entries", m.entry_count.to_string()));
    }
    if let Some(s) = m.snapshot {
        let how = match s {
            omnikv_core::event::SnapshotCarried::Complete => "complete",
            omnikv_core::event::SnapshotCarried::Delta => "delta",
        };
        f.push(("snapshot", how.to_string()));
    }
    f
}

fn message(m: &MessageInfo) -> String {
    message_fields(m)
        .into_iter()
        .skip(1)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per event: `node=N seq=S type details`.
pub fn event_line(env: &EventEnvelope) -> String {
    let what = match &env.event {
        NodeEvent::Status(s) => format!(
            "status role={} leader={} ballot={} accepted={} decided={} applied={} compacted={}",
            crate::node_model::role_str(Some(s.role)),
            s.leader
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            ballot(&s.ballot),
            s.accepted_idx,
            s.decided_idx,
            s.applied_idx,
            s.compacted_idx
        )
        .to_ascii_lowercase(),
        NodeEvent::MessageSent(m) => format!("sent {} {}", kind_name(m.kind), message(m)),
        NodeEvent::MessageReceived(m) => format!("received {} {}", kind_name(m.kind), message(m)),
        NodeEvent::EntriesAppended {
            from_idx,
            count,
            commands,
        } => format!(
            "appended from={from_idx} count={count} [{}]",
            commands_text(commands)
        ),
        NodeEvent::EntriesDecided { from_idx, to_idx } => {
            format!("decided {from_idx}..{to_idx}")
        }
        NodeEvent::EntriesApplied {
            from_idx,
            count,
            commands,
            skipped_duplicates,
        } => format!(
            "applied from={from_idx} count={count} duplicates={skipped_duplicates} [{}]",
            commands_text(commands)
        ),
        NodeEvent::SnapshotTaken {
            compacted_idx,
            key_count,
            ..
        } => format!("snapshot_taken compacted={compacted_idx} keys={key_count}"),
        NodeEvent::SnapshotInstalled {
            compacted_idx,
            key_count,
            ..
        } => format!("snapshot_installed compacted={compacted_idx} keys={key_count}"),
        NodeEvent::LeaderChanged { leader, ballot: b } => format!(
            "leader_changed leader={} ballot={}",
            leader.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            ballot(b)
        ),
        NodeEvent::LinkChanged { peer, connected } => {
            format!("link_changed peer={peer} connected={connected}")
        }
        NodeEvent::HeldMessages {
            peer,
            held,
            waiting,
            head,
        } => format!(
            "held peer={peer} held={held} waiting={waiting} next={}",
            head.first().map_or("-", |m| kind_name(m.kind))
        ),
        NodeEvent::ClientRequest { id, op: o } => {
            format!("client_request {}/{} {}", id.client, id.seq, op(o))
        }
        NodeEvent::ClientReply {
            id,
            outcome: o,
            latency_us,
        } => format!(
            "client_reply {}/{} {} latency={}us",
            id.client,
            id.seq,
            outcome(o),
            latency_us
        ),
        NodeEvent::DetailsSampled {
            messages,
            client_events,
        } => format!("details_sampled messages={messages} client_events={client_events}"),
        NodeEvent::Lagged { dropped } => format!("lagged dropped={dropped}"),
    };
    format!("node={} seq={} {}", env.node, env.seq, what)
}

fn commands_text(commands: &[KVCommand]) -> String {
    commands.iter().map(command).collect::<Vec<_>>().join(", ")
}

/// A span of time for people: `112 ms` below a second, `4.1 s` above (integer arithmetic: float
/// formatting would bring its machinery into the wasm).
pub fn duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{}.{} s", ms / 1_000, (ms % 1_000) / 100)
    }
}

/// Wall-clock time of day of a Unix time in milliseconds: `13:22:05.123`.
pub fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}
