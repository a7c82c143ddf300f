//! A client history in the JSON shape of Porcupine's `Operation` (`ClientId`, `Input`, `Call`,
//! `Output`, `Return`), so a history recorded by the page or a nemesis run can be checked or
//! drawn by Porcupine too (`omnikv history --porcupine TRACE`).
//!
//! Inputs and outputs are a key-value register's: `Input` is `{"Op", "Key"}` with `"Value"`
//! for a put or a compare-and-swap's new value and `"Expect"` for what it expected (`null`:
//! absent); `Output` has the value a get read (`null`: absent) or whether a compare-and-swap
//! swapped (`"Ok"`), and `"Unknown": true` when the outcome is unknown. Times are microseconds
//! since the Unix epoch; an operation with an unknown outcome returns at the largest 64-bit
//! time, as the checker treats it: it may take effect at any time after its call, or never.

use omnikv_core::linearizability::{Op, Operation};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PorcupineOperation<'a> {
    client_id: u64,
    input: Input<'a>,
    call: i64,
    output: Output<'a>,
    #[serde(rename = "Return")]
    ret: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Input<'a> {
    op: &'static str,
    key: &'a str,
    /// `Some(None)` is written as `null`; `None` leaves the field out.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<Option<&'a str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Output<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unknown: bool,
}

/// The history in Porcupine's shape, in invocation order.
pub fn operations<'a>(history: &[&'a Operation]) -> Vec<PorcupineOperation<'a>> {
    let mut out: Vec<PorcupineOperation> = history.iter().map(|&o| of(o)).collect();
    out.sort_by_key(|o| o.call);
    out
}

fn of(o: &Operation) -> PorcupineOperation<'_> {
    let time = |us: u64| i64::try_from(us).unwrap_or(i64::MAX);
    let mut output = Output {
        value: None,
        ok: None,
        unknown: o.ret_us.is_none(),
    };
    let (op, value, expect) = match &o.op {
        Op::Put(v) => ("put", Some(Some(v.as_str())), None),
        Op::Delete => ("delete", None, None),
        Op::Get(seen) => {
            output.value = Some(seen.as_deref());
            ("get", None, None)
        }
        Op::Cas {
            expect,
            new,
            succeeded,
        } => {
            output.ok = *succeeded;
            ("cas", Some(new.as_deref()), Some(expect.as_deref()))
        }
    };
    PorcupineOperation {
        client_id: o.client,
        input: Input {
            op,
            key: &o.key,
            value,
            expect,
        },
        call: time(o.call_us),
        output,
        ret: o.ret_us.map_or(i64::MAX, time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, op: Op, call_us: u64, ret_us: Option<u64>) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op,
            call_us,
            ret_us,
        }
    }

    #[test]
    fn a_history_is_written_in_porcupines_shape_in_invocation_order() {
        let history = [
            op(2, Op::Get(Some("a".into())), 30, Some(40)),
            op(1, Op::Put("a".into()), 10, Some(20)),
            op(3, Op::Delete, 35, None),
            op(
                4,
                Op::Cas {
                    expect: None,
                    new: Some("b".into()),
                    succeeded: Some(false),
                },
                50,
                Some(60),
            ),
            op(5, Op::Get(None), 70, Some(80)),
        ];
        let refs: Vec<&Operation> = history.iter().collect();
        let json = serde_json::to_value(operations(&refs)).unwrap();
        let expected = serde_json::json!([
            {"ClientId": 1, "Input": {"Op": "put", "Key": "k", "Value": "a"}, "Call": 10,
             "Output": {}, "Return": 20},
            {"ClientId": 2, "Input": {"Op": "get", "Key": "k"}, "Call": 30,
             "Output": {"Value": "a"}, "Return": 40},
            {"ClientId": 3, "Input": {"Op": "delete", "Key": "k"}, "Call": 35,
             "Output": {"Unknown": true}, "Return": i64::MAX},
            {"ClientId": 4, "Input": {"Op": "cas", "Key": "k", "Value": "b", "Expect": null},
             "Call": 50, "Output": {"Ok": false}, "Return": 60},
            {"ClientId": 5, "Input": {"Op": "get", "Key": "k"}, "Call": 70,
             "Output": {"Value": null}, "Return": 80},
        ]);
        assert_eq!(json, expected);
    }
}
