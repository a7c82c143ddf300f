//! Size limits. Every decoder checks these before parsing so that hostile or broken input costs
//! a bounded amount of memory and gets a clear error.

/// Largest client request frame (a Put carries the value inline).
pub const CLIENT_FRAME_BYTES_MAX: usize = 1 << 20;
/// Largest key a client may write.
pub const KEY_BYTES_MAX: usize = 1024;
/// Largest value a client may write.
pub const VALUE_BYTES_MAX: usize = 256 * 1024;
/// Largest admin request frame.
pub const ADMIN_FRAME_BYTES_MAX: usize = 64 * 1024;
/// Largest body accepted by the launcher's control API.
pub const CONTROL_BODY_BYTES_MAX: usize = 16 * 1024;
/// Entries carried by one appended/applied event; longer runs are summarised by count.
pub const EVENT_COMMANDS_MAX: usize = 64;
/// Bytes of keys and values carried by one appended/applied event: no command is added once
/// they pass this (so an event's commands take at most this plus one value).
pub const EVENT_COMMAND_BYTES_MAX: usize = 64 * 1024;
/// Keys listed in a snapshot event.
pub const EVENT_SNAPSHOT_KEYS_MAX: usize = 256;
/// Keys a full dump may hold; a larger table is read by pages.
pub const DUMP_KEYS_MAX: usize = 10_000;
/// Keys in one dump page.
pub const DUMP_PAGE_KEYS_MAX: u32 = 1000;
/// Bytes of keys and values in one dump page (a page holds at least one entry).
pub const DUMP_PAGE_BYTES_MAX: usize = 1 << 20;
/// Keys in a dump head: what a viewer shows of a table, and one more to tell it is larger.
pub const DUMP_HEAD_KEYS_MAX: u32 = 2_001;
/// Bytes of keys and values in a dump head's keys (it holds at least one entry).
pub const DUMP_HEAD_BYTES_MAX: usize = 2 << 20;
/// Decided entries at the end of a dump head.
pub const DUMP_HEAD_LOG_MAX: u32 = 256;
/// Bytes of keys and values of a dump head's decided entries (it holds one entry at least).
pub const DUMP_HEAD_LOG_BYTES_MAX: usize = 1 << 20;
/// Keys of the stored snapshot named in a dump head.
pub const DUMP_HEAD_SNAPSHOT_KEYS_MAX: usize = EVENT_SNAPSHOT_KEYS_MAX;
/// Messages a node holds on one link before it gives up holding and cuts the link.
pub const HELD_MESSAGES_MAX: usize = 10_000;
/// Held messages listed in one event.
pub const EVENT_HELD_HEAD_MAX: usize = 16;
/// Guards and writes in one transaction: one log entry, applied in one step on every replica.
pub const TXN_PARTS_MAX: usize = 128;
