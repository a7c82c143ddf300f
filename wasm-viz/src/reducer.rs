//! The reducer: one recorded input in, the view model updated. Pure and deterministic, so a
//! recording replays to exactly the picture it produced live, and host tests can feed it event
//! sequences and assert on leaders, logs, tables and snapshots.

use omnikv_core::{
    admin::NodeHead,
    client::ClientOp,
    control::{ClusterView, ProcessState},
    event::{BallotView, EventEnvelope, MessageInfo, NodeEvent, NodeStatus, Role},
    session::{self, KvState, Versioned},
    KVCommand, NodeId, RequestId,
};

use crate::{model::*, record::Record};

impl ClusterModel {
    pub fn apply(&mut self, record: &Record) {
        self.version += 1;
        self.inputs += 1;
        self.now_ms = self.now_ms.max(record.at_ms());
        self.story
            .observe(record, self.inputs, self.now_ms, &self.nodes);
        match record {
            Record::Event(env) => self.apply_event(env),
            Record::Cluster { view, .. } => self.apply_cluster(view),
            Record::Stream {
                node, connected, ..
            } => self.node_mut(*node).stream_connected = *connected,
            Record::Dump { dump, .. } => self.apply_head(&NodeHead::of_dump(
                dump,
                KV_KEYS_MAX + 1,
                LOG_WINDOW_ENTRIES,
                SNAPSHOT_KEYS_KEPT,
            )),
            Record::Head { head, .. } => self.apply_head(head),
            Record::Notice { at_ms, text } => self.notice(*at_ms, text.clone()),
            Record::Control { path, .. } => {
                // The launcher answers a node action once it is carried out: the picture shows
                // it from here, as the story tells it, not from the next cluster view.
                if let Some((id, state)) = crate::control::process_after(path) {
                    self.process_changed(id, state);
                }
            }
            Record::Operation { .. } => {}
        }
        self.story.settle(self.inputs, self.now_ms, &self.nodes);
    }

    fn apply_cluster(&mut self, view: &ClusterView) {
        self.leader = view.leader;
        self.links = view.links.clone();
        for nv in &view.nodes {
            self.process_changed(nv.id, nv.state);
            let node = self.node_mut(nv.id);
            node.ws = nv.ws.clone();
            node.data_dir = nv.data_dir.clone();
            node.peer_addr = nv.peer_addr.clone();
            node.pid = nv.pid;
            if nv.role.is_some() {
                node.role = nv.role;
            }
            if nv.ballot.is_some() {
                node.ballot = nv.ballot;
            }
        }
    }

    fn max_decided_idx(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.decided_idx)
            .max()
            .unwrap_or(0)
    }

    /// Node `id`'s process is now in `state`; a restarted node is recovering until it has
    /// reached the highest decided index any node reported.
    fn process_changed(&mut self, id: NodeId, state: ProcessState) {
        let was = self.node_mut(id).process.replace(state);
        let restarted = state == ProcessState::Up && was == Some(ProcessState::Down);
        let target = restarted.then(|| self.max_decided_idx());
        let node = self.node_mut(id);
        match state {
            ProcessState::Up if restarted => {
                node.recovering_target_idx = target;
                check_recovered(node);
            }
            ProcessState::Down => {
                node.recovering_target_idx = None;
                node.stream_connected = false;
            }
            _ => {}
        }
    }

    fn apply_event(&mut self, env: &EventEnvelope) {
        let (at_ms, id) = (env.time_ms, env.node);
        self.check_sequence(env);
        match &env.event {
            NodeEvent::Status(s) => self.apply_status(id, s),
            NodeEvent::MessageSent(info) => self.message_sent(info, at_ms),
            NodeEvent::MessageReceived(info) => self.message_received(info, at_ms),
            NodeEvent::EntriesAppended {
                from_idx,
                count,
                commands,
            } => self.node_mut(id).appended(*from_idx, *count, commands),
            NodeEvent::EntriesDecided { to_idx, .. } => {
                let node = self.node_mut(id);
                node.decided_idx = *to_idx;
                node.accepted_idx = node.accepted_idx.max(*to_idx);
                check_recovered(node);
            }
            NodeEvent::EntriesApplied {
                from_idx,
                count,
                commands,
                ..
            } => self.node_mut(id).applied(*from_idx, *count, commands),
            NodeEvent::SnapshotTaken {
                compacted_idx,
                keys,
                key_count,
            } => self.apply_snapshot(id, at_ms, *compacted_idx, keys, *key_count, false),
            NodeEvent::SnapshotInstalled {
                compacted_idx,
                keys,
                key_count,
            } => self.apply_snapshot(id, at_ms, *compacted_idx, keys, *key_count, true),
            NodeEvent::LeaderChanged { leader, ballot } => {
                self.node_mut(id).leader_changed(*leader, *ballot)
            }
            NodeEvent::LinkChanged { peer, connected } => {
                self.node_mut(id).link_changed(*peer, *connected)
            }
            NodeEvent::HeldMessages {
                peer,
                held,
                waiting,
                head,
            } => self.node_mut(id).held_changed(*peer, *held, *waiting, head),
            NodeEvent::ClientRequest { id: req, op } => self.client_request(id, *req, op, at_ms),
            NodeEvent::ClientReply {
                id: req,
                outcome,
                latency_us,
            } => {
                if let Some(row) = self.client_log.iter_mut().rev().find(|r| r.id == *req) {
                    row.node = id;
                    row.outcome = Some(outcome.clone());
                    row.latency_us = Some(*latency_us);
                }
            }
            NodeEvent::DetailsSampled {
                messages,
                client_events,
            } => self.node_mut(id).details_sampled += messages + client_events,
            NodeEvent::Lagged { dropped } => {
                self.notice(
                    at_ms,
                    format!("node {id}: the page fell behind; {dropped} events skipped"),
                );
                self.node_mut(id).kv_partial = true;
            }
        }
    }

    /// Notes the event's sequence number; a gap means events were lost, and the table may be
    /// missing writes.
    fn check_sequence(&mut self, env: &EventEnvelope) {
        let id = env.node;
        let node = self.node_mut(id);
        let last = node.last_seq;
        node.last_seq = env.seq;
        node.last_event_ms = env.time_ms;
        if last != 0 && env.seq > last + 1 {
            let missed = env.seq - last - 1;
            self.notice(
                env.time_ms,
                format!("node {id}: {missed} events missed (sequence gap)"),
            );
            self.node_mut(id).kv_partial = true;
        }
    }

    /// A send whose receive was seen first completes that message: a second one would never be
    /// received, and the page would draw both under one key.
    fn message_sent(&mut self, info: &MessageInfo, at_ms: u64) {
        match self.newest_message(info, |m| !m.sent_seen) {
            Some(m) => {
                m.sent_ms = at_ms.min(m.sent_ms);
                m.sent_seen = true;
            }
            None => self.push_message(info.clone(), at_ms, None),
        }
    }

    fn message_received(&mut self, info: &MessageInfo, at_ms: u64) {
        match self.newest_message(info, |_| true) {
            Some(m) => m.received_ms = Some(at_ms),
            None => self.push_message(info.clone(), at_ms, Some(at_ms)),
        }
    }

    /// The newest message kept under `info`'s key `(from, msg_id)` that `also` accepts.
    fn newest_message(
        &mut self,
        info: &MessageInfo,
        also: impl Fn(&MessageView) -> bool,
    ) -> Option<&mut MessageView> {
        (self.messages.iter_mut().rev())
            .find(|m| m.info.from == info.from && m.info.msg_id == info.msg_id && also(m))
    }

    fn client_request(&mut self, node: NodeId, req: RequestId, op: &ClientOp, at_ms: u64) {
        if let Some(row) = self.client_log.iter_mut().rev().find(|r| r.id == req) {
            row.node = node;
            row.attempts += 1;
            return;
        }
        if self.client_log.len() == CLIENT_ROWS_KEPT {
            self.client_log.remove(0);
        }
        self.client_log.push(ClientRow {
            id: req,
            op: op.clone(),
            node,
            attempts: 1,
            sent_ms: at_ms,
            outcome: None,
            latency_us: None,
        });
    }

    fn apply_status(&mut self, id: NodeId, s: &NodeStatus) {
        let node = self.node_mut(id);
        let new_process = node.started_at_ms != s.started_at_ms;
        if new_process && s.applied_idx > node.kv_applied_idx {
            // A (re)started process applied entries from disk or a snapshot this stream never
            // showed: its table is only known after a dump.
            node.kv_partial = true;
        }
        if s.compacted_idx > node.kv_applied_idx {
            node.kv_partial = true;
        }
        node.role = Some(s.role);
        node.leader = s.leader;
        node.ballot = Some(s.ballot);
        node.promise = Some(s.promise);
        node.accepted_idx = s.accepted_idx;
        node.decided_idx = s.decided_idx;
        node.applied_idx = s.applied_idx;
        node.digest = s
            .kv_digest
            .map(|d| (d, s.kv_digest_idx.unwrap_or(s.applied_idx)));
        node.log.truncate_from(s.accepted_idx);
        if s.compacted_idx > node.compacted_idx {
            node.compacted_idx = s.compacted_idx;
            let block = node.snapshot.get_or_insert_with(SnapshotBlock::default);
            block.compacted_idx = s.compacted_idx;
            node.log.drop_before(s.compacted_idx);
        }
        node.peers = s.peers.clone();
        let peers = &node.peers;
        (node.held_heads).retain(|(p, _)| peers.iter().any(|x| x.id == *p && x.held));
        node.data_dir = s.data_dir.clone();
        node.started_at_ms = s.started_at_ms;
        node.pid = Some(s.pid);
        if node.process.is_none() {
            node.process = Some(ProcessState::Up);
        }
        check_recovered(node);
    }

    fn apply_snapshot(
        &mut self,
        id: NodeId,
        at_ms: u64,
        compacted_idx: u64,
        keys: &[String],
        key_count: u64,
        installed: bool,
    ) {
        let node = self.node_mut(id);
        node.compacted_idx = node.compacted_idx.max(compacted_idx);
        node.log.drop_before(compacted_idx);
        node.snapshot = Some(SnapshotBlock {
            compacted_idx,
            key_count,
            keys: keys.iter().take(SNAPSHOT_KEYS_KEPT).cloned().collect(),
            installed,
            at_ms,
        });
        if installed {
            // The table was replaced; the stream names the keys but not their values.
            node.kv.clear();
            for k in keys.iter().take(KV_KEYS_MAX) {
                let unknown = Versioned {
                    value: String::new(),
                    mod_index: 0,
                };
                node.kv.insert(k.clone(), unknown);
            }
            // Every key left is one of the snapshot's; the table's order keeps them sorted.
            node.kv_unknown = node.kv.keys().cloned().collect();
            // Values are only known again after a dump.
            node.kv_partial = true;
            node.kv_applied_idx = node.kv_applied_idx.max(compacted_idx);
            node.applied_idx = node.applied_idx.max(compacted_idx);
            node.decided_idx = node.decided_idx.max(compacted_idx);
            node.accepted_idx = node.accepted_idx.max(compacted_idx);
            check_recovered(node);
        }
    }

    fn apply_head(&mut self, head: &NodeHead) {
        let node = self.node_mut(head.id);
        // Inserted one by one, not collected: a map collected from an iterator sorts it first,
        // and each such sort is kilobytes of the wasm's code.
        node.kv.clear();
        for (k, v) in head.kv.iter().take(KV_KEYS_MAX) {
            node.kv.insert(k.clone(), v.clone());
        }
        node.kv_unknown.clear();
        node.sessions = head.sessions.clone();
        node.kv_partial = false;
        node.kv_truncated = !head.kv_complete || head.kv.len() > KV_KEYS_MAX;
        node.kv_applied_idx = head.applied_idx;
        node.applied_idx = head.applied_idx;
        node.decided_idx = head.decided_idx;
        node.accepted_idx = node.accepted_idx.max(head.decided_idx);
        node.compacted_idx = head.compacted_idx;
        if head.compacted_idx > 0 {
            let block = node.snapshot.get_or_insert_with(SnapshotBlock::default);
            block.compacted_idx = head.compacted_idx;
            block.key_count = head.snapshot_key_count;
            block.keys = head
                .snapshot_keys
                .iter()
                .take(SNAPSHOT_KEYS_KEPT)
                .cloned()
                .collect();
        }
        node.log = LogWindow::default();
        let skip = head.decided_tail.len().saturating_sub(LOG_WINDOW_ENTRIES);
        for (i, cmd) in head.decided_tail.iter().enumerate().skip(skip) {
            node.log.push(
                head.tail_from_idx + i as u64,
                Some(cmd.clone()),
                LOG_WINDOW_ENTRIES,
            );
        }
        check_recovered(node);
    }

    fn push_message(
        &mut self,
        info: omnikv_core::event::MessageInfo,
        sent_ms: u64,
        received_ms: Option<u64>,
    ) {
        if self.messages.len() == MESSAGES_KEPT {
            self.messages.pop_front();
        }
        self.messages.push_back(MessageView {
            info,
            sent_ms,
            received_ms,
            sent_seen: received_ms.is_none(),
        });
    }
}

impl NodeModel {
    /// Entries accepted at `from_idx..from_idx + count` (`commands` may be fewer, or none).
    fn appended(&mut self, from_idx: u64, count: u64, commands: &[KVCommand]) {
        // An append at from_idx replaces whatever the log held from there on.
        self.log.truncate_from(from_idx);
        // Only the newest entries are kept, so a long run skips straight to them.
        let first = count.saturating_sub(LOG_WINDOW_ENTRIES as u64);
        for i in first..count {
            let cmd = commands.get(i as usize).cloned();
            self.log.push(from_idx + i, cmd, LOG_WINDOW_ENTRIES);
        }
        self.accepted_idx = from_idx + count;
        self.decided_idx = self.decided_idx.min(self.accepted_idx);
    }

    /// Entries applied to the node's table, applied to the page's copy by the same rule.
    fn applied(&mut self, from_idx: u64, count: u64, commands: &[KVCommand]) {
        if from_idx > self.kv_applied_idx || (commands.len() as u64) < count {
            self.kv_partial = true;
        }
        for (i, cmd) in commands.iter().enumerate() {
            let index = from_idx + i as u64;
            if let Some(slot) = self.log.get_mut(index) {
                if slot.is_none() {
                    *slot = Some(cmd.clone());
                }
            }
            if index >= self.kv_applied_idx {
                apply_to_table(self, cmd, index);
            }
        }
        self.kv_applied_idx = self.kv_applied_idx.max(from_idx + count);
        self.applied_idx = self.applied_idx.max(from_idx + count);
        self.decided_idx = self.decided_idx.max(self.applied_idx);
        self.accepted_idx = self.accepted_idx.max(self.decided_idx);
        check_recovered(self);
    }

    fn leader_changed(&mut self, leader: Option<NodeId>, ballot: BallotView) {
        self.leader = leader;
        self.ballot = Some(ballot);
        if leader != Some(self.id) {
            self.role = Some(Role::Follower);
        } else if self.role != Some(Role::Leader) {
            // Elected; it leads once the prepare phase ends (a status will say so).
            self.role = Some(Role::Candidate);
        }
    }

    fn link_changed(&mut self, peer: NodeId, connected: bool) {
        match self.peers.iter_mut().find(|p| p.id == peer) {
            Some(p) => p.connected = connected,
            None => self.peers.push(omnikv_core::event::PeerStatus {
                id: peer,
                connected,
                link_enabled: true,
                held: false,
                waiting: 0,
            }),
        }
    }

    fn held_changed(&mut self, peer: NodeId, held: bool, waiting: u64, head: &[MessageInfo]) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.held = held;
            p.waiting = waiting;
        }
        self.held_heads.retain(|(p, _)| *p != peer);
        if held && !head.is_empty() {
            self.held_heads.push((peer, head.to_vec()));
        }
    }
}

/// The node's table as the page keeps it: bounded, and aware of which keys it knows.
struct TableView<'a> {
    kv: &'a mut std::collections::BTreeMap<String, Versioned>,
    unknown: &'a mut Vec<String>,
    truncated: &'a mut bool,
}

impl KvState for TableView<'_> {
    /// A key whose value the page does not know (from an installed snapshot, or beyond the
    /// keys it keeps) reads as absent: the view may then differ from the node until a dump.
    fn read(&self, key: &str) -> Option<Versioned> {
        let known = self
            .unknown
            .binary_search_by(|k| k.as_str().cmp(key))
            .is_err();
        self.kv.get(key).filter(|_| known).cloned()
    }

    fn write(&mut self, key: &str, value: Option<&str>, index: u64) {
        if let Ok(k) = self.unknown.binary_search_by(|k| k.as_str().cmp(key)) {
            self.unknown.remove(k);
        }
        match value {
            Some(v) => {
                if self.kv.len() >= KV_KEYS_MAX && !self.kv.contains_key(key) {
                    *self.truncated = true;
                    return;
                }
                let versioned = Versioned {
                    value: v.to_owned(),
                    mod_index: index,
                };
                self.kv.insert(key.to_owned(), versioned);
            }
            None => {
                self.kv.remove(key);
            }
        }
    }
}

/// Applies a decided command at `index` by the node's own rule (`omnikv_core::session`).
fn apply_to_table(node: &mut NodeModel, cmd: &KVCommand, index: u64) {
    let mut view = TableView {
        kv: &mut node.kv,
        unknown: &mut node.kv_unknown,
        truncated: &mut node.kv_truncated,
    };
    session::apply(&mut node.sessions, &mut view, cmd, index);
}

fn check_recovered(node: &mut NodeModel) {
    if let Some(target) = node.recovering_target_idx {
        if node.decided_idx >= target && node.applied_idx >= target {
            node.recovering_target_idx = None;
        }
    }
}
