//! Every wire type has one schema (its serde derives) and two encodings of it: JSON, read with
//! [`decode_json`], and postcard, read with [`decode_postcard`] (the page's). Every generated
//! value of every type reads back as itself, as compact or pretty-printed JSON and as postcard;
//! a frame with a few random edits is either refused or read as a value that itself
//! round-trips; and the schema refuses what it must (unknown fields where denied, unknown
//! variants, sessions out of order).

use std::collections::BTreeMap;
use std::fmt::Debug;

use omnikv_core::{
    admin::{AdminRequest, AdminResponse, DumpPage, NodeDump, NodeHead},
    client::{ClientError, ClientOp, ClientResponse, ReadMode},
    control::{
        ActionReply, ClusterView, DeliverRequest, HeldView, HoldRequest, LinkPair, LinkView,
        NodeView, ProcessState,
    },
    decode_json,
    event::{
        BallotView, EventEnvelope, MessageInfo, MessageKind, NodeEvent, NodeStatus, PeerStatus,
        RequestOutcome, Role, SnapshotCarried,
    },
    linearizability::{Op, Operation},
    scan::{ScanEntry, ScanPage, ScanRange},
    session::{AppliedWrite, Session, Sessions, Versioned},
    snapshot::Unresolved,
    txn::{Found, Guard, TxnOp, TxnResult},
    watch::{Change, WatchFrame, WatchRequest},
    wire::{decode_postcard, encode_postcard},
    KVCommand, KVSnapshot, RequestId,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde::{de::DeserializeOwned, Serialize};

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, omnikv_core::DecodeError> {
    decode_json(text.as_bytes(), LIMIT)
}

const LIMIT: usize = 1 << 20;

fn text() -> impl Strategy<Value = String> {
    // Mostly short keys, sometimes any Unicode (control characters, quotes and backslashes
    // exercise the escapes).
    prop_oneof![3 => "[a-z0-9]{0,4}", 1 => any::<String>()]
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0..1000u64, any::<u64>()]
}

fn request_id() -> impl Strategy<Value = RequestId> {
    (number(), number()).prop_map(|(client, seq)| RequestId { client, seq })
}

fn guard() -> impl Strategy<Value = Guard> {
    prop_oneof![
        (text(), text()).prop_map(|(key, value)| Guard::Value { key, value }),
        text().prop_map(|key| Guard::Absent { key }),
        (text(), number()).prop_map(|(key, mod_index)| Guard::ModIndex { key, mod_index }),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (text(), text()).prop_map(|(key, value)| TxnOp::Put { key, value }),
        text().prop_map(|key| TxnOp::Delete { key }),
    ]
}

fn scan_range() -> impl Strategy<Value = ScanRange> {
    let bound = || proptest::option::of(text());
    (bound(), bound(), bound(), bound(), any::<u32>()).prop_map(
        |(prefix, start, end, after, limit)| ScanRange {
            prefix,
            start,
            end,
            after,
            limit,
        },
    )
}

fn versioned() -> impl Strategy<Value = Versioned> {
    (text(), number()).prop_map(|(value, mod_index)| Versioned { value, mod_index })
}

fn command() -> impl Strategy<Value = KVCommand> {
    prop_oneof![
        (
            request_id(),
            proptest::collection::vec(guard(), 0..3),
            proptest::collection::vec(txn_op(), 0..3),
            number()
        )
            .prop_map(|(id, guards, ops, forget_below)| KVCommand::Txn {
                id,
                guards,
                ops,
                forget_below
            }),
        (request_id(), scan_range()).prop_map(|(id, range)| KVCommand::Scan {
            id,
            range: Box::new(range)
        }),
        (request_id(), text(), text(), number()).prop_map(|(id, key, value, forget_below)| {
            KVCommand::Put {
                id,
                key,
                value,
                forget_below,
            }
        }),
        (request_id(), text(), number()).prop_map(|(id, key, forget_below)| KVCommand::Delete {
            id,
            key,
            forget_below
        }),
        (request_id(), text()).prop_map(|(id, key)| KVCommand::Get { id, key }),
        request_id().prop_map(|id| KVCommand::OpenSession { id }),
    ]
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        (text(), text()).prop_map(|(key, value)| ClientOp::Put { key, value }),
        (
            text(),
            select(vec![ReadMode::Linearizable, ReadMode::Local])
        )
            .prop_map(|(key, read)| ClientOp::Get { key, read }),
        text().prop_map(|key| ClientOp::Delete { key }),
        (
            proptest::collection::vec(guard(), 0..3),
            proptest::collection::vec(txn_op(), 0..3)
        )
            .prop_map(|(guards, ops)| ClientOp::Txn { guards, ops }),
        (
            scan_range(),
            select(vec![ReadMode::Linearizable, ReadMode::Local])
        )
            .prop_map(|(range, read)| ClientOp::Scan { range, read }),
        Just(ClientOp::OpenSession),
    ]
}

fn client_error() -> impl Strategy<Value = ClientError> {
    prop_oneof![
        text().prop_map(|reason| ClientError::BadRequest { reason }),
        number().prop_map(|timeout_ms| ClientError::Timeout { timeout_ms }),
        (0..u32::MAX as usize).prop_map(|in_flight| ClientError::Overloaded { in_flight }),
        text().prop_map(|reason| ClientError::Unavailable { reason }),
        text().prop_map(|reason| ClientError::SessionExpired { reason }),
    ]
}

fn client_response() -> impl Strategy<Value = ClientResponse> {
    prop_oneof![
        (
            request_id(),
            proptest::option::of(text()),
            number(),
            proptest::option::of(number())
        )
            .prop_map(|(id, value, node, index)| ClientResponse::Ok {
                id,
                value,
                node,
                index,
                mod_index: None,
                txn: None,
                scan: None,
            }),
        (
            request_id(),
            proptest::option::of(number()),
            proptest::option::of(txn_result()),
            proptest::option::of(scan_page())
        )
            .prop_map(|(id, mod_index, txn, scan)| ClientResponse::Ok {
                id,
                value: None,
                node: 1,
                index: Some(2),
                mod_index,
                txn,
                scan,
            }),
        (proptest::option::of(request_id()), client_error())
            .prop_map(|(id, error)| ClientResponse::Err { id, error }),
    ]
}

fn txn_result() -> impl Strategy<Value = TxnResult> {
    let found = (
        text(),
        proptest::option::of(number()),
        proptest::option::of(text()),
    )
        .prop_map(|(key, mod_index, value)| Found {
            key,
            mod_index,
            value,
        });
    (any::<bool>(), proptest::collection::vec(found, 0..3))
        .prop_map(|(succeeded, found)| TxnResult { succeeded, found })
}

fn scan_page() -> impl Strategy<Value = ScanPage> {
    let entry = (text(), text(), number()).prop_map(|(key, value, mod_index)| ScanEntry {
        key,
        value,
        mod_index,
    });
    (
        proptest::collection::vec(entry, 0..3),
        proptest::option::of(text()),
    )
        .prop_map(|(entries, next_after)| ScanPage {
            entries,
            next_after,
        })
}

fn ballot() -> impl Strategy<Value = BallotView> {
    (any::<u32>(), any::<u32>(), number()).prop_map(|(n, priority, pid)| BallotView {
        n,
        priority,
        pid,
    })
}

fn role() -> impl Strategy<Value = Role> {
    select(vec![Role::Leader, Role::Candidate, Role::Follower])
}

fn status() -> impl Strategy<Value = NodeStatus> {
    (
        (
            number(),
            role(),
            proptest::option::of(number()),
            ballot(),
            ballot(),
        ),
        (number(), number(), number(), number()),
        proptest::collection::vec(
            (
                number(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                number(),
            )
                .prop_map(|(id, connected, link_enabled, held, waiting)| PeerStatus {
                    id,
                    connected,
                    link_enabled,
                    held,
                    waiting,
                }),
            0..4,
        ),
        (text(), number(), any::<u32>(), any::<Option<u64>>()),
    )
        .prop_map(
            |(
                (id, role, leader, ballot, promise),
                (accepted_idx, decided_idx, compacted_idx, applied_idx),
                peers,
                (data_dir, started_at_ms, pid, kv_digest),
            )| NodeStatus {
                id,
                role,
                leader,
                ballot,
                promise,
                accepted_idx,
                decided_idx,
                compacted_idx,
                applied_idx,
                kv_digest: kv_digest.map(omnikv_core::digest::TableDigest),
                kv_digest_idx: kv_digest.map(|d| d / 2),
                peers,
                data_dir,
                started_at_ms,
                pid,
            },
        )
}

fn message() -> impl Strategy<Value = MessageInfo> {
    use MessageKind::*;
    let kinds = vec![
        PrepareReq,
        Prepare,
        Promise,
        AcceptSync,
        AcceptDecide,
        Accepted,
        NotAccepted,
        Decide,
        ProposalForward,
        Compaction,
        AcceptStopSign,
        ForwardStopSign,
        HeartbeatRequest,
        HeartbeatReply,
    ];
    let idx = || proptest::option::of(number());
    (
        (number(), number(), number(), select(kinds)),
        (
            proptest::option::of(ballot()),
            idx(),
            idx(),
            idx(),
            number(),
        ),
        proptest::option::of(select(vec![
            SnapshotCarried::Complete,
            SnapshotCarried::Delta,
        ])),
    )
        .prop_map(
            |(
                (msg_id, from, to, kind),
                (ballot, decided_idx, accepted_idx, sync_idx, entry_count),
                snapshot,
            )| MessageInfo {
                msg_id,
                from,
                to,
                kind,
                ballot,
                decided_idx,
                accepted_idx,
                sync_idx,
                entry_count,
                snapshot,
            },
        )
}

fn node_event() -> impl Strategy<Value = NodeEvent> {
    let commands = || proptest::collection::vec(command(), 0..3);
    let keys = || proptest::collection::vec(text(), 0..3);
    prop_oneof![
        status().prop_map(NodeEvent::Status),
        message().prop_map(NodeEvent::MessageSent),
        message().prop_map(NodeEvent::MessageReceived),
        (number(), number(), commands()).prop_map(|(from_idx, count, commands)| {
            NodeEvent::EntriesAppended {
                from_idx,
                count,
                commands,
            }
        }),
        (number(), number())
            .prop_map(|(from_idx, to_idx)| NodeEvent::EntriesDecided { from_idx, to_idx }),
        (number(), number(), commands(), number()).prop_map(
            |(from_idx, count, commands, skipped_duplicates)| NodeEvent::EntriesApplied {
                from_idx,
                count,
                commands,
                skipped_duplicates,
            }
        ),
        (number(), keys(), number()).prop_map(|(compacted_idx, keys, key_count)| {
            NodeEvent::SnapshotTaken {
                compacted_idx,
                keys,
                key_count,
            }
        }),
        (number(), keys(), number()).prop_map(|(compacted_idx, keys, key_count)| {
            NodeEvent::SnapshotInstalled {
                compacted_idx,
                keys,
                key_count,
            }
        }),
        (proptest::option::of(number()), ballot())
            .prop_map(|(leader, ballot)| NodeEvent::LeaderChanged { leader, ballot }),
        (number(), any::<bool>())
            .prop_map(|(peer, connected)| NodeEvent::LinkChanged { peer, connected }),
        (request_id(), client_op()).prop_map(|(id, op)| NodeEvent::ClientRequest { id, op }),
        (
            request_id(),
            prop_oneof![
                proptest::option::of(text()).prop_map(|value| RequestOutcome::Ok { value }),
                client_error().prop_map(|error| RequestOutcome::Err { error }),
            ],
            number()
        )
            .prop_map(|(id, outcome, latency_us)| NodeEvent::ClientReply {
                id,
                outcome,
                latency_us
            }),
        (number(), number()).prop_map(|(messages, client_events)| NodeEvent::DetailsSampled {
            messages,
            client_events
        }),
        number().prop_map(|dropped| NodeEvent::Lagged { dropped }),
        (
            number(),
            any::<bool>(),
            number(),
            proptest::collection::vec(message(), 0..3)
        )
            .prop_map(|(peer, held, waiting, head)| NodeEvent::HeldMessages {
                peer,
                held,
                waiting,
                head
            }),
    ]
}

fn envelope() -> impl Strategy<Value = EventEnvelope> {
    (number(), number(), number(), node_event()).prop_map(|(node, seq, time_ms, event)| {
        EventEnvelope {
            node,
            seq,
            time_ms,
            event,
        }
    })
}

fn sessions() -> impl Strategy<Value = Sessions> {
    let applied = (number(), number(), number(), any::<bool>()).prop_map(
        |(seq, index, digest, guards_failed)| AppliedWrite {
            seq,
            index,
            digest,
            guards_failed,
        },
    );
    let session = (number(), number(), proptest::collection::vec(applied, 0..3)).prop_map(
        |(floor, last_index, applied)| Session {
            floor,
            last_index,
            applied,
        },
    );
    proptest::collection::btree_map(number(), session, 0..3).prop_map(|m| {
        let mut s = Sessions::default();
        for (client, session) in m {
            s.insert(client, session);
        }
        s
    })
}

fn snapshot() -> impl Strategy<Value = KVSnapshot> {
    (
        proptest::collection::btree_map(text(), versioned(), 0..3),
        sessions(),
        number(),
        proptest::collection::vec(
            (number(), command()).prop_map(|(at, command)| Unresolved { at, command }),
            0..2,
        ),
        number(),
    )
        .prop_map(
            |(snapshotted, sessions, len, unresolved, state_len)| KVSnapshot {
                snapshotted,
                sessions,
                len,
                unresolved,
                state_len,
            },
        )
}

fn admin_response() -> impl Strategy<Value = AdminResponse> {
    let dump = (
        (number(), number(), number(), number()),
        proptest::collection::btree_map(text(), versioned(), 0..3),
        sessions(),
        proptest::option::of(snapshot()),
        proptest::collection::vec(command(), 0..3),
    )
        .prop_map(
            |(
                (id, applied_idx, decided_idx, compacted_idx),
                kv,
                sessions,
                snapshot,
                decided_suffix,
            )| NodeDump {
                id,
                applied_idx,
                decided_idx,
                compacted_idx,
                kv,
                sessions,
                snapshot,
                decided_suffix,
            },
        )
        .boxed();
    let head = (
        dump.clone(),
        (0usize..4, 0usize..4, 0usize..4),
        any::<bool>(),
    )
        .prop_map(|(d, (keys, log, snapshot_keys), complete)| NodeHead {
            kv_complete: complete,
            ..NodeHead::of_dump(&d, keys, log, snapshot_keys)
        });
    prop_oneof![
        Just(AdminResponse::Ok),
        status().prop_map(AdminResponse::Status),
        dump.prop_map(|d| AdminResponse::Dump(Box::new(d))),
        head.prop_map(|h| AdminResponse::DumpHead(Box::new(h))),
        text().prop_map(|message| AdminResponse::Error { message }),
        (
            number(),
            proptest::collection::vec((text(), text()), 0..3),
            proptest::option::of(text())
        )
            .prop_map(|(applied_idx, entries, next_after)| {
                AdminResponse::DumpPage(DumpPage {
                    applied_idx,
                    entries,
                    next_after,
                })
            }),
        any::<u32>().prop_map(|count| AdminResponse::Held { count }),
    ]
}

fn admin_request() -> impl Strategy<Value = AdminRequest> {
    prop_oneof![
        (number(), any::<bool>())
            .prop_map(|(peer, connected)| AdminRequest::SetLink { peer, connected }),
        Just(AdminRequest::Status),
        Just(AdminRequest::Dump),
        (proptest::option::of(text()), any::<u32>())
            .prop_map(|(after, limit)| AdminRequest::DumpPage { after, limit }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(keys, log_entries)| AdminRequest::DumpHead { keys, log_entries }),
        (number(), any::<bool>()).prop_map(|(peer, held)| AdminRequest::HoldLink { peer, held }),
        (number(), any::<u32>())
            .prop_map(|(peer, count)| AdminRequest::DeliverHeld { peer, count }),
        number().prop_map(|peer| AdminRequest::DropHeld { peer }),
    ]
}

fn cluster_view() -> impl Strategy<Value = ClusterView> {
    let node = (
        (
            number(),
            select(vec![
                ProcessState::Up,
                ProcessState::Down,
                ProcessState::Paused,
            ]),
            proptest::option::of(role()),
            proptest::option::of(ballot()),
        ),
        (text(), proptest::option::of(any::<u32>()), text(), text()),
    )
        .prop_map(
            |((id, state, role, ballot), (ws, pid, data_dir, peer_addr))| NodeView {
                id,
                state,
                role,
                ballot,
                ws,
                pid,
                data_dir,
                peer_addr,
            },
        );
    let held = (number(), number(), number()).prop_map(|(from, to, waiting)| HeldView {
        from,
        to,
        waiting,
    });
    let link = (
        number(),
        number(),
        any::<bool>(),
        proptest::collection::vec(held, 0..2),
    )
        .prop_map(|(a, b, connected, held)| LinkView {
            a,
            b,
            connected,
            held,
        });
    (
        proptest::option::of(number()),
        proptest::collection::vec(node, 0..4),
        proptest::collection::vec(link, 0..4),
    )
        .prop_map(|(leader, nodes, links)| ClusterView {
            leader,
            nodes,
            links,
        })
}

/// An edit that keeps the text valid UTF-8: delete a span, or insert a JSON-ish token.
fn edits() -> impl Strategy<Value = Vec<(usize, usize, &'static str)>> {
    let tokens = vec![
        "",
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "0",
        "1",
        "-",
        ".5",
        "e3",
        "null",
        "true",
        " ",
        "\\",
        "\\n",
        "\\u0041",
        "\\ud800",
        "\\udc00",
        "\"x\"",
        "\"x\":1,",
        "{}",
        "[]",
        "\"ok\"",
        "00",
        "\u{1}",
        "[[[[[",
        "]]]]]",
        r#""x":[{"y":"\ud800"},[[]]],"#,
    ];
    proptest::collection::vec((any::<usize>(), 0usize..4, select(tokens)), 1..4)
}

fn apply_edits(text: &str, edits: &[(usize, usize, &str)]) -> String {
    let mut s = text.to_owned();
    for &(at, delete, insert) in edits {
        let mut start = at % (s.len() + 1);
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + delete).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        s.replace_range(start..end, insert);
    }
    s
}

fn apply_byte_edits(bytes: &[u8], edits: &[(usize, usize, &str)]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(at, delete, insert) in edits {
        let start = at % (b.len() + 1);
        let end = (start + delete).min(b.len());
        b.splice(start..end, insert.bytes());
    }
    b
}

fn round_trips<T>(value: &T, edits: &[(usize, usize, &str)]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for written in [
        serde_json::to_string(value).unwrap(),
        serde_json::to_string_pretty(value).unwrap(),
    ] {
        prop_assert_eq!(&decode::<T>(&written).unwrap(), value, "{}", written);
        let edited = apply_edits(&written, edits);
        if let Ok(read) = decode::<T>(&edited) {
            let again = serde_json::to_string(&read).unwrap();
            prop_assert_eq!(decode::<T>(&again).unwrap(), read, "{}", edited);
        }
    }
    // Postcard reads fields by position: a field a writer skipped would shift every later one.
    let written = encode_postcard(value);
    prop_assert_eq!(
        &decode_postcard::<T>(&written, LIMIT).unwrap(),
        value,
        "{:?}",
        written
    );
    let edited = apply_byte_edits(&written, edits);
    if let Ok(read) = decode_postcard::<T>(&edited, LIMIT) {
        let again = encode_postcard(&read);
        prop_assert_eq!(
            decode_postcard::<T>(&again, LIMIT).unwrap(),
            read,
            "{:?}",
            edited
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn events_round_trip(v in envelope(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn client_responses_round_trip(v in client_response(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn admin_responses_round_trip(v in admin_response(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn admin_requests_round_trip(v in admin_request(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn held_link_bodies_round_trip(
        (a, b, held, both, count) in (number(), number(), any::<bool>(), any::<bool>(), any::<u32>()),
        e in edits(),
    ) {
        round_trips(&HoldRequest { a, b, held, both }, &e)?;
        round_trips(&DeliverRequest { a, b, count }, &e)?;
        round_trips(&LinkPair { a, b }, &e)?;
    }

    #[test]
    fn cluster_views_round_trip(v in cluster_view(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn action_replies_round_trip(ok in any::<bool>(), message in text(), e in edits()) {
        round_trips(&ActionReply { ok, message }, &e)?;
    }

    #[test]
    fn snapshots_round_trip(v in snapshot(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn watch_requests_round_trip(
        range in scan_range(),
        from_index in proptest::option::of(number()),
        e in edits()
    ) {
        round_trips(&WatchRequest { range, from_index }, &e)?;
    }

    #[test]
    fn watch_frames_round_trip(v in watch_frame(), e in edits()) {
        round_trips(&v, &e)?;
    }

    #[test]
    fn history_operations_round_trip(v in history_operation(), e in edits()) {
        round_trips(&v, &e)?;
    }
}

fn history_operation() -> impl Strategy<Value = Operation> {
    let maybe = || proptest::option::of(text());
    let op = prop_oneof![
        text().prop_map(Op::Put),
        Just(Op::Delete),
        maybe().prop_map(Op::Get),
        (maybe(), maybe(), proptest::option::of(any::<bool>())).prop_map(
            |(expect, new, succeeded)| Op::Cas {
                expect,
                new,
                succeeded
            }
        ),
    ];
    (
        number(),
        text(),
        op,
        number(),
        proptest::option::of(number()),
    )
        .prop_map(|(client, key, op, call_us, ret_us)| Operation {
            client,
            key,
            op,
            call_us,
            ret_us,
        })
}

fn watch_frame() -> impl Strategy<Value = WatchFrame> {
    let change = (number(), text(), proptest::option::of(text()))
        .prop_map(|(index, key, value)| Change { index, key, value });
    prop_oneof![
        (proptest::collection::vec(change, 0..3), number())
            .prop_map(|(changes, up_to)| WatchFrame::Changes { changes, up_to }),
        number().prop_map(|oldest_index| WatchFrame::Compacted { oldest_index }),
        text().prop_map(|message| WatchFrame::Error { message }),
    ]
}

#[test]
fn the_schema_refuses_what_it_must() {
    fn refused<T: DeserializeOwned + Debug>(text: &str) {
        let read = decode::<T>(text);
        assert!(read.is_err(), "took {text}: {read:?}");
    }
    // Unknown field where the type denies them; unknown variant; missing and duplicate fields.
    refused::<ClientResponse>(r#"{"ok":{"id":{"client":1,"seq":2},"node":1,"x":1}}"#);
    refused::<ClientResponse>(r#"{"maybe":{}}"#);
    refused::<ClientResponse>(r#"{"ok":{"node":1}}"#);
    refused::<RequestId>(r#"{"client":1,"client":1,"seq":2}"#);
    // A struct variant written as a bare name, a unit variant with a value.
    refused::<ClientError>(r#""timeout""#);
    refused::<Role>(r#"{"leader":1}"#);
    // Out of range, a second value, a wrong type.
    refused::<BallotView>(r#"{"n":4294967296,"priority":0,"pid":1}"#);
    refused::<BallotView>(r#"{"n":1,"priority":0,"pid":1} {}"#);
    refused::<BallotView>(r#"{"n":"1","priority":0,"pid":1}"#);
    refused::<KVSnapshot>(r#"{"snapshotted":{},"sessions":{"a":1}}"#);
    let session = r#"{"floor":0,"last_index":0,"applied":[]}"#;
    refused::<KVSnapshot>(&format!(
        r#"{{"snapshotted":{{}},"sessions":{{"2":{session},"1":{session}}}}}"#
    ));
    refused::<KVSnapshot>(&format!(
        r#"{{"snapshotted":{{}},"sessions":{{"1":{session},"1":{session}}}}}"#
    ));
    refused::<KVSnapshot>(r#"{"snapshotted":{},"deleted_keys":[],"sessions":{}}"#);
    refused::<BTreeMap<u64, u64>>(r#"{"-0":1}"#);
    refused::<u64>("-0");
    // A lone surrogate in a string that is read.
    refused::<String>(r#""\ud800""#);
    refused::<ActionReply>(r#"{"ok":true,"message":"\udc00"}"#);
    // serde_json skips an unknown field's value with a loop, not recursion, so a skipped value
    // may nest at any depth; values that are read refuse more than 128 levels
    // (`tests/decoders.rs`). Neither can exhaust the stack.
    let deep = |levels: usize| {
        format!(
            r#"{{"n":1,"x":{}0{},"priority":2,"pid":3}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert!(decode::<BallotView>(&deep(100_000)).is_ok());
    refused::<BallotView>(&deep(100_000).replace("0]", "0"));
    assert!(matches!(
        decode::<EventEnvelope>("x".repeat(LIMIT + 1).as_str()),
        Err(omnikv_core::DecodeError::TooLarge { .. })
    ));
}

#[test]
fn what_the_schema_takes_beyond_what_it_writes() {
    // Unknown fields are skipped where the type allows them; an absent `Option` is `None`; a
    // unit variant may be written `{"name":null}`; a defaulted field may be left out.
    let b: BallotView = decode(r#"{"n":1,"extra":[{"a":null}],"priority":2,"pid":3}"#).unwrap();
    assert_eq!(
        b,
        BallotView {
            n: 1,
            priority: 2,
            pid: 3
        }
    );
    let view: ClusterView = decode(r#"{"nodes":[],"links":[]}"#).unwrap();
    assert_eq!(view.leader, None);
    assert_eq!(decode::<Role>(r#"{"leader":null}"#).unwrap(), Role::Leader);
    let snap: KVSnapshot = decode(r#"{"snapshotted":{},"sessions":{}}"#).unwrap();
    assert_eq!(snap, KVSnapshot::default());
}
