//! The state block: one fixed-size file the daemon maps read-write and every reader
//! maps read-only.
//!
//! Layout (all `#[repr(C)]`, fixed widths, no pointers, little-endian host order):
//!
//! | offset            | size                        | what                         |
//! |-------------------|-----------------------------|------------------------------|
//! | 0                 | 512 ([`Header`])            | magic, ABI, pid, heartbeat…  |
//! | 512               | `size_of::<Body>()`         | extensions, bitmaps, calls, counters (seqlocked) |
//! | 512 + body        | `RING_SLOTS × 768`          | event ring ([`EventSlot`])   |
//!
//! Consistency: the body is guarded by a sequence counter (`Header::seq`, odd while
//! the writer is inside an update); a reader copies the body and retries when the
//! counter moved. Each ring slot carries its own stamp (`seq + 1`), so a reader
//! knows exactly which events it missed. Readers never block the writer.
//!
//! Readers do not map the file: they copy what they need with `pread` (see
//! [`StateReader`]), so a state block truncated or replaced under them is an error
//! they report, never a `SIGBUS`. The writer creates the file exclusively under a
//! temporary name in its own runtime directory ([`crate::runtime::SafeDir`]) and
//! renames it into place.
//!
//! This is the only module of Coventry with `unsafe` code (with its submodule
//! [`trace`], the trace ring, made the same way).
#![allow(unsafe_code)]

pub mod trace;

use crate::dialplan::{Plan, MAX_EXTENSIONS};
use crate::event::{Event, EventRecord, EventSlot};
use crate::runtime::{self, Kind, SafeDir, TrustError};
use memmap2::{Mmap, MmapMut, MmapOptions};
use rustix::thread::futex;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// First eight bytes of every state block.
pub const MAGIC: [u8; 8] = *b"COVNTRY\0";
/// Layout version; readers refuse any other. 6: ring slots hold postcard's
/// encoding of an [`Event`] (`event::EventSlot`), not fields by hand.
pub const ABI_VERSION: u32 = 6;
/// Contacts kept per extension.
pub const MAX_CONTACTS: usize = 4;
/// Calls in the call table.
pub const MAX_CALLS: usize = 128;
/// Slots in the event ring.
pub const RING_SLOTS: usize = 1024;
/// 64-bit words per state bitmap (640 bits ≥ 600 extensions).
pub const BITMAP_WORDS: usize = MAX_EXTENSIONS.div_ceil(64);
/// Size of the header area.
pub const HEADER_SIZE: usize = 512;
/// Offset of the body.
pub const BODY_OFFSET: usize = HEADER_SIZE;
/// Offset of the event ring.
pub const RING_OFFSET: usize = BODY_OFFSET + std::mem::size_of::<Body>();
/// Total size of the state block file.
pub const TOTAL_SIZE: usize = RING_OFFSET + RING_SLOTS * std::mem::size_of::<EventSlot>();

/// The fixed header at offset 0.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`ABI_VERSION`].
    pub abi: u32,
    /// [`HEADER_SIZE`].
    pub header_size: u32,
    /// [`TOTAL_SIZE`].
    pub total_size: u64,
    /// Daemon process id.
    pub pid: u32,
    /// Digits of the dial plan (2 or 3).
    pub digits: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// Daemon start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Last heartbeat, ms since the Unix epoch (updated at least once a second).
    pub heartbeat_ms: u64,
    /// Seqlock counter of the body (odd while the writer updates it).
    pub seq: u64,
    /// Number of events ever written to the ring.
    pub event_head: u64,
    /// [`BODY_OFFSET`].
    pub body_offset: u64,
    /// `size_of::<Body>()`.
    pub body_size: u64,
    /// [`RING_OFFSET`].
    pub ring_offset: u64,
    /// [`RING_SLOTS`].
    pub ring_slots: u64,
    /// `size_of::<EventSlot>()`.
    pub slot_size: u64,
    /// The UDP address:port actually bound, NUL-padded text.
    pub bound: [u8; 64],
    /// Digest realm, NUL-padded text.
    pub realm: [u8; 64],
    /// The daemon's state directory (records, run state), NUL-padded text:
    /// clients that found the daemon by its runtime directory find its state too.
    pub state_dir: [u8; 256],
    /// Reserved, zero.
    pub reserved: [u8; 24],
}

/// One registered contact.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ContactEntry {
    /// Contact URI, NUL-padded.
    pub uri: [u8; 128],
    /// Source address:port the REGISTER came from, NUL-padded.
    pub source: [u8; 48],
    /// User-Agent, NUL-padded.
    pub user_agent: [u8; 56],
    /// The digest algorithm its REGISTER authenticated with
    /// ([`crate::auth::DigestAlgorithm::code`]; 0: not recorded).
    pub algorithm: u8,
    /// Padding.
    pub _pad: [u8; 7],
    /// When it (last) registered, ms since the epoch.
    pub registered_ms: u64,
    /// When it expires, ms since the epoch; 0 = slot unused.
    pub expires_ms: u64,
}

/// `ExtEntry::flags`: the extension has a config section.
pub const EXT_CONFIGURED: u16 = 1;

/// One extension of the plan.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtEntry {
    /// Extension number (0 for a slot beyond the plan).
    pub number: u16,
    /// `EXT_*` flags.
    pub flags: u16,
    /// Contacts allowed (`lines`).
    pub lines: u8,
    /// Contacts in use (the first `contact_count` of `contacts`).
    pub contact_count: u8,
    /// Padding.
    pub _pad: [u8; 2],
    /// Display name, NUL-padded.
    pub name: [u8; 32],
    /// Forward-always target, NUL-padded (empty: none).
    pub forward_always: [u8; 24],
    /// Forward-on-busy target, NUL-padded.
    pub forward_busy: [u8; 24],
    /// Forward-on-no-answer target, NUL-padded.
    pub forward_noanswer: [u8; 24],
    /// When DND reverts by itself, ms since the epoch (0: never).
    pub dnd_until_ms: u64,
    /// When the forwards revert by themselves, ms since the epoch (0: never).
    pub forward_until_ms: u64,
    /// Reserved, zero.
    pub reserved: [u8; 8],
    /// Registered contacts.
    pub contacts: [ContactEntry; MAX_CONTACTS],
}

/// Packed per-extension state bits, indexed by plan index.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bitmaps {
    /// At least one contact registered.
    pub registered: [u64; BITMAP_WORDS],
    /// A call to it is ringing.
    pub ringing: [u64; BITMAP_WORDS],
    /// In a call.
    pub busy: [u64; BITMAP_WORDS],
    /// Do not disturb.
    pub dnd: [u64; BITMAP_WORDS],
    /// Forwarded.
    pub forwarded: [u64; BITMAP_WORDS],
}

/// Call states in `CallEntry::state`.
pub mod call_state {
    /// Slot free.
    pub const FREE: u8 = 0;
    /// INVITE sent on, nothing back yet.
    pub const DIALING: u8 = 1;
    /// Ringing.
    pub const RINGING: u8 = 2;
    /// Answered.
    pub const ANSWERED: u8 = 3;
    /// Ended (kept briefly for display).
    pub const ENDED: u8 = 4;
}

/// One call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEntry {
    /// Switch-local call number (0 = free slot). Numbers start at 1000, so they
    /// never read as an extension of either plan.
    pub id: u32,
    /// `call_state::*`.
    pub state: u8,
    /// Rings so far.
    pub ring_count: u8,
    /// SIP status of the outcome once ended.
    pub cause: u16,
    /// `event::CallOutcome` as a number once ended (state `ENDED`).
    pub outcome: u16,
    /// Caller, NUL-padded.
    pub from: [u8; 24],
    /// Callee as dialled, NUL-padded.
    pub to: [u8; 24],
    /// SIP Call-ID (cut to fit), NUL-padded.
    pub call_id: [u8; 62],
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Answer, ms since the epoch (0 = not answered).
    pub answer_ms: u64,
    /// End, ms since the epoch (0 = not ended).
    pub end_ms: u64,
}

impl CallEntry {
    /// A free slot.
    pub const FREE: CallEntry = CallEntry {
        id: 0,
        state: call_state::FREE,
        ring_count: 0,
        cause: 0,
        outcome: 0,
        from: [0; 24],
        to: [0; 24],
        call_id: [0; 62],
        start_ms: 0,
        answer_ms: 0,
        end_ms: 0,
    };
}

/// Counters, all monotonic since start.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counters {
    /// SIP datagrams received.
    pub sip_in: u64,
    /// SIP datagrams sent.
    pub sip_out: u64,
    /// Datagrams that could not be parsed.
    pub malformed: u64,
    /// Datagrams over the size limit.
    pub too_large: u64,
    /// Retransmitted requests absorbed by a transaction.
    pub retransmissions: u64,
    /// Successful REGISTERs.
    pub registers: u64,
    /// Failed authentications.
    pub auth_failures: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Messages that could not be delivered.
    pub messages_failed: u64,
    /// Control lines applied.
    pub commands_ok: u64,
    /// Control lines rejected or failed.
    pub commands_failed: u64,
    /// Calls started.
    pub calls: u64,
    /// Requests and responses refused at a trust boundary: in-dialog requests
    /// from strangers, responses from where no request went, forged branches.
    pub refused: u64,
    /// Digest responses compared with a computed digest (the guessing work done).
    pub digests_checked: u64,
    /// Requests refused unchecked because their source or user name has to wait
    /// after failed authentications (`[security]`).
    pub auth_refused: u64,
    /// Datagrams dropped unread because their source address had used its share
    /// of the switch's intake while other sources waited (a flood), or had
    /// sent more than `[security] source_rate` a second.
    pub shed: u64,
    /// Datagrams the kernel dropped on the switch's UDP socket because its
    /// receive buffer was full (SO_RXQ_OVFL): the switch's reader fell behind
    /// the wire and could not choose whom to drop. Should stay at or near zero.
    pub kernel_drops: u64,
    /// Requests refused because their authenticated sender already had as much
    /// in flight as it may: calls at once (`[calls] max_per_line`), texts
    /// being delivered (`[security] max_pending_texts`).
    pub limited: u64,
    /// SIP messages for upstream peers (TCP) dropped: no connection to send
    /// them on, or more already waiting for the peer than the connection may
    /// hold. A burst of the switch's own (a mass hang-up) is held and paced,
    /// so this stays at zero while the link is up.
    pub tcp_dropped: u64,
    /// Reserved, zero.
    pub reserved: [u64; 13],
}

/// Most upstream connections shown (one per distinct peer of `[upstream]`).
pub const MAX_ROUTES: usize = 4;

/// One upstream peer's connection (`[upstream]` route), as the switch sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// The routes it serves, `+`-joined (`default+sms`); empty: unused entry.
    pub name: [u8; 32],
    /// The peer as configured (host:port).
    pub addr: [u8; 64],
    /// A [`crate::event::RouteState`] number; 0 for an unused entry.
    pub state: u8,
    /// Padding.
    pub _pad: [u8; 7],
    /// In this state since, ms since the epoch.
    pub since_ms: u64,
    /// Next connection attempt (while not connected), ms since the epoch.
    pub retry_ms: u64,
    /// Connections established.
    pub connects: u64,
    /// Attempts that failed and connections that were lost or cut off.
    pub failures: u64,
    /// SIP messages sent to the peer.
    pub sent: u64,
    /// SIP messages received from the peer.
    pub received: u64,
    /// Calls and messages refused with 503 because the route was not connected.
    pub refused: u64,
    /// The last error (connect failure, garbage on the stream...).
    pub last_error: [u8; 64],
}

impl RouteEntry {
    /// An unused entry.
    pub const UNUSED: RouteEntry = RouteEntry {
        name: [0; 32],
        addr: [0; 64],
        state: 0,
        _pad: [0; 7],
        since_ms: 0,
        retry_ms: 0,
        connects: 0,
        failures: 0,
        sent: 0,
        received: 0,
        refused: 0,
        last_error: [0; 64],
    };

    /// Whether the entry is in use.
    pub fn in_use(&self) -> bool {
        self.state != 0
    }

    /// The state (meaningful when in use).
    pub fn state(&self) -> crate::event::RouteState {
        crate::event::RouteState::from_u8(self.state)
    }
}

/// Everything under the seqlock.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Body {
    /// Extension table, plan index order; entries past the plan's count are unused.
    pub exts: [ExtEntry; MAX_EXTENSIONS],
    /// State bitmaps.
    pub bitmaps: Bitmaps,
    /// Call table.
    pub calls: [CallEntry; MAX_CALLS],
    /// Counters.
    pub counters: Counters,
    /// Upstream connections, in `[upstream]` order.
    pub routes: [RouteEntry; MAX_ROUTES],
    /// What holds for the whole switch.
    pub site: SiteEntry,
}

/// What holds for the whole switch (not one extension, call or route).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SiteEntry {
    /// The run state in force (`day`, `night`...), NUL-padded.
    pub runstate: [u8; 32],
    /// Traces running (leases held, see [`crate::trace`]); 0: the switch copies
    /// nothing and there is no trace ring.
    pub traces: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// The token of the lease whose bit in a trace record's `leases` is `i`
    /// (0: none).
    pub trace_tokens: [u32; crate::trace::MAX_LEASES],
    /// What they follow, space-separated (cut to fit), NUL-padded.
    pub trace_filters: [u8; 96],
    /// The run states the configuration knows (`day` first), space-separated
    /// (as many as fit), NUL-padded: for completions.
    pub runstate_names: [u8; 256],
    /// The configured group numbers, space-separated (as many as fit),
    /// NUL-padded: for completions.
    pub group_numbers: [u8; 256],
    /// Zero; room for what the site will publish next (keeps the entry 768
    /// bytes).
    pub _reserved: [u8; 92],
}

/// Write `s` into a NUL-padded field, cut at a character boundary.
pub fn put_str(field: &mut [u8], s: &str) {
    let mut n = s.len().min(field.len());
    while n > 0 && !s.is_char_boundary(n) {
        n -= 1;
    }
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
    field[n..].fill(0);
}

/// Read a NUL-padded text field.
pub fn get_str(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Set or clear bit `i` of a bitmap.
pub fn set_bit(map: &mut [u64; BITMAP_WORDS], i: usize, on: bool) {
    if i < BITMAP_WORDS * 64 {
        if on {
            map[i / 64] |= 1 << (i % 64);
        } else {
            map[i / 64] &= !(1 << (i % 64));
        }
    }
}

/// Read bit `i` of a bitmap.
pub fn get_bit(map: &[u64; BITMAP_WORDS], i: usize) -> bool {
    i < BITMAP_WORDS * 64 && map[i / 64] & (1 << (i % 64)) != 0
}

impl ExtEntry {
    /// Display name.
    pub fn name(&self) -> String {
        get_str(&self.name)
    }

    /// The contacts in use.
    pub fn active_contacts(&self) -> &[ContactEntry] {
        &self.contacts[..usize::from(self.contact_count).min(MAX_CONTACTS)]
    }
}

impl Body {
    /// Allocate a zeroed body on the heap (it is too large for the stack).
    pub fn boxed_zeroed() -> Box<Body> {
        let b = Box::<Body>::new_zeroed();
        // SAFETY: Body consists only of integers and byte arrays, for which the
        // all-zero bit pattern is a valid value.
        unsafe { b.assume_init() }
    }
}

/// What one extension's lamp shows in a busy-lamp grid: the first that applies
/// of ringing, busy, DND, forwarded, registered; else offline (configured) or
/// unused. Every console and tool shows the same letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lamp {
    /// `r`: a call to it is ringing.
    Ringing,
    /// `B`: in a call.
    Busy,
    /// `D`: do not disturb.
    Dnd,
    /// `F`: forwarded.
    Forwarded,
    /// `R`: registered and idle.
    Registered,
    /// `-`: configured, not registered.
    Offline,
    /// `.`: not configured.
    Unconfigured,
}

/// The facts a lamp is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LampBits {
    /// Has a config section.
    pub configured: bool,
    /// Has a registered contact.
    pub registered: bool,
    /// A call to it rings.
    pub ringing: bool,
    /// In a call.
    pub busy: bool,
    /// Do not disturb.
    pub dnd: bool,
    /// Forwarded.
    pub forwarded: bool,
}

impl Lamp {
    /// The lamp for these facts: the first that applies wins.
    pub fn of(b: LampBits) -> Lamp {
        if b.ringing {
            Lamp::Ringing
        } else if b.busy {
            Lamp::Busy
        } else if b.dnd {
            Lamp::Dnd
        } else if b.forwarded {
            Lamp::Forwarded
        } else if b.registered {
            Lamp::Registered
        } else if b.configured {
            Lamp::Offline
        } else {
            Lamp::Unconfigured
        }
    }

    /// Every lamp, in the order of priority (and of a legend).
    pub const ALL: [Lamp; 7] = [
        Lamp::Ringing,
        Lamp::Busy,
        Lamp::Dnd,
        Lamp::Forwarded,
        Lamp::Registered,
        Lamp::Offline,
        Lamp::Unconfigured,
    ];

    /// The letter in a grid.
    pub fn letter(self) -> char {
        match self {
            Lamp::Ringing => 'r',
            Lamp::Busy => 'B',
            Lamp::Dnd => 'D',
            Lamp::Forwarded => 'F',
            Lamp::Registered => 'R',
            Lamp::Offline => '-',
            Lamp::Unconfigured => '.',
        }
    }

    /// A word for it.
    pub fn name(self) -> &'static str {
        match self {
            Lamp::Ringing => "ringing",
            Lamp::Busy => "busy",
            Lamp::Dnd => "dnd",
            Lamp::Forwarded => "forwarded",
            Lamp::Registered => "idle",
            Lamp::Offline => "offline",
            Lamp::Unconfigured => "unused",
        }
    }
}

/// Static facts from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Daemon pid.
    pub pid: u32,
    /// Dial plan.
    pub plan: Plan,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// Last heartbeat, ms since the epoch.
    pub heartbeat_ms: u64,
    /// Bound UDP address:port.
    pub bound: String,
    /// Digest realm.
    pub realm: String,
    /// The daemon's state directory (empty: not published, or too long).
    pub state_dir: String,
    /// Events written so far.
    pub event_head: u64,
}

/// A consistent copy of the body with the header facts.
pub struct Snapshot {
    /// Header facts.
    pub header: HeaderInfo,
    /// The body as of one instant.
    pub body: Box<Body>,
}

impl Snapshot {
    /// The entry of extension `n`, if `n` is in the plan.
    pub fn ext(&self, n: u16) -> Option<&ExtEntry> {
        self.header.plan.index_of(n).map(|i| &self.body.exts[i])
    }

    /// Entries of every extension of the plan.
    pub fn exts(&self) -> &[ExtEntry] {
        &self.body.exts[..self.header.plan.count()]
    }

    /// The lamp of extension `n` (`Unconfigured` outside the plan).
    pub fn lamp(&self, n: u16) -> Lamp {
        let Some(i) = self.header.plan.index_of(n) else {
            return Lamp::Unconfigured;
        };
        let b = &self.body.bitmaps;
        Lamp::of(LampBits {
            configured: self.body.exts[i].flags & EXT_CONFIGURED != 0,
            registered: get_bit(&b.registered, i),
            ringing: get_bit(&b.ringing, i),
            busy: get_bit(&b.busy, i),
            dnd: get_bit(&b.dnd, i),
            forwarded: get_bit(&b.forwarded, i),
        })
    }

    /// The upstream connections in use.
    pub fn routes(&self) -> impl Iterator<Item = &RouteEntry> {
        self.body.routes.iter().filter(|r| r.in_use())
    }

    /// Whether extension `n` has a registered contact.
    pub fn is_registered(&self, n: u16) -> bool {
        self.header
            .plan
            .index_of(n)
            .is_some_and(|i| get_bit(&self.body.bitmaps.registered, i))
    }
}

/// Parameters for a new state block.
#[derive(Debug, Clone)]
pub struct BlockInit {
    /// Dial plan.
    pub plan: Plan,
    /// Bound address:port text.
    pub bound: String,
    /// Digest realm.
    pub realm: String,
    /// The daemon's state directory.
    pub state_dir: String,
    /// Daemon start, ms since the epoch.
    pub start_ms: u64,
}

#[cfg(test)]
impl BlockInit {
    /// The block the client-side unit tests make: a 2-digit plan on
    /// 127.0.0.1:5060, realm `test`, started at 1 s.
    pub(crate) fn for_tests() -> BlockInit {
        BlockInit {
            plan: Plan::TwoDigit,
            bound: "127.0.0.1:5060".into(),
            realm: "test".into(),
            state_dir: String::new(),
            start_ms: 1_000,
        }
    }
}

/// The daemon's read-write mapping.
pub struct StateWriter {
    map: MmapMut,
    plan: Plan,
}

/// A body update in progress; the seqlock counter is odd until it is dropped.
pub struct BodyGuard<'a> {
    writer: &'a mut StateWriter,
}

impl StateWriter {
    /// Create a new state block at `path` (mode 0640), replacing any old one
    /// atomically: it is built in a file created exclusively under an unpredictable
    /// temporary name in the daemon's own directory (never through a link) and
    /// renamed into place.
    pub fn create(path: &Path, init: &BlockInit) -> io::Result<StateWriter> {
        let (dir, name) = SafeDir::of_own_file(path)?;
        let tmp = dir.create_temp(&name, 0o640)?;
        tmp.file().set_len(TOTAL_SIZE as u64)?;
        // SAFETY: the file was just created by us, exclusively, under a temporary
        // name, and has its final length; nobody else maps it until the rename
        // below, and the daemon never truncates it while mapped.
        let map = unsafe { MmapMut::map_mut(tmp.file())? };
        let mut w = StateWriter {
            map,
            plan: init.plan,
        };
        w.init_header(init);
        {
            let mut body = w.body_mut();
            for (i, e) in body.exts.iter_mut().enumerate() {
                e.number = init.plan.number_at(i).unwrap_or(0);
            }
        }
        tmp.commit(&name, false)?;
        Ok(w)
    }

    fn init_header(&mut self, init: &BlockInit) {
        let mut h = Header {
            magic: MAGIC,
            abi: ABI_VERSION,
            header_size: HEADER_SIZE as u32,
            total_size: TOTAL_SIZE as u64,
            pid: std::process::id(),
            digits: init.plan.digits(),
            _pad: [0; 3],
            start_ms: init.start_ms,
            heartbeat_ms: init.start_ms,
            seq: 0,
            event_head: 0,
            body_offset: BODY_OFFSET as u64,
            body_size: std::mem::size_of::<Body>() as u64,
            ring_offset: RING_OFFSET as u64,
            ring_slots: RING_SLOTS as u64,
            slot_size: std::mem::size_of::<EventSlot>() as u64,
            bound: [0; 64],
            realm: [0; 64],
            state_dir: [0; 256],
            reserved: [0; 24],
        };
        put_str(&mut h.bound, &init.bound);
        put_str(&mut h.realm, &init.realm);
        // A path cut short would name another directory: published whole or not.
        if init.state_dir.len() < h.state_dir.len() {
            put_str(&mut h.state_dir, &init.state_dir);
        }
        // SAFETY: the map is TOTAL_SIZE bytes, page-aligned, and HEADER_SIZE ≥
        // size_of::<Header>(); we hold it exclusively (&mut self).
        unsafe { std::ptr::write(self.map.as_mut_ptr().cast::<Header>(), h) };
    }

    /// The dial plan this block was made for.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    fn atomic(&self, field: usize) -> &AtomicU64 {
        // SAFETY: `field` is the offset of a u64 header field (seq, heartbeat_ms,
        // event_head, or a slot stamp), 8-aligned inside the map, which lives as long
        // as &self. All concurrent access to these words goes through atomics.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(field).cast::<u64>().cast_mut()) }
    }

    /// Begin a body update: the seqlock counter becomes odd until the guard drops.
    pub fn body_mut(&mut self) -> BodyGuard<'_> {
        let seq = self.atomic(std::mem::offset_of!(Header, seq));
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        BodyGuard { writer: self }
    }

    /// Record that the daemon is alive.
    pub fn heartbeat(&self, now_ms: u64) {
        self.atomic(std::mem::offset_of!(Header, heartbeat_ms))
            .store(now_ms, Ordering::Release);
    }

    /// Append an event to the ring; returns its sequence number.
    pub fn push_event(&mut self, time_ms: u64, event: &Event) -> u64 {
        let head_a = self.atomic(std::mem::offset_of!(Header, event_head));
        let n = head_a.load(Ordering::Relaxed);
        let idx = (n % RING_SLOTS as u64) as usize;
        let off = RING_OFFSET + idx * std::mem::size_of::<EventSlot>();
        let mut slot = EventSlot::encode(time_ms, event);
        let stamp = self.atomic(off);
        stamp.store(u64::MAX, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.stamp = u64::MAX;
        // SAFETY: `off` is the start of ring slot `idx`, inside the map and 8-aligned
        // (RING_OFFSET and the slot size are multiples of 8). Readers detect a slot
        // being rewritten by its stamp (u64::MAX now, n + 1 after the store below).
        unsafe {
            std::ptr::write_volatile(self.map.as_mut_ptr().add(off).cast::<EventSlot>(), slot)
        };
        self.atomic(off).store(n + 1, Ordering::Release);
        self.atomic(std::mem::offset_of!(Header, event_head))
            .store(n + 1, Ordering::Release);
        n
    }

    /// Wake every reader sleeping in [`StateReader::wait_for_events`]: one system
    /// call, made once after a batch of [`StateWriter::push_event`]s.
    pub fn wake_readers(&self) {
        // SAFETY: WAKE_OFFSET is the 4-aligned low word of `event_head`, inside the
        // map, which lives as long as &self; the word is only ever read through it.
        let word = unsafe {
            AtomicU32::from_ptr(self.map.as_ptr().add(WAKE_OFFSET).cast::<u32>().cast_mut())
        };
        // Not PRIVATE: the waiters are other processes mapping the same file.
        let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
    }

    /// Flush the map to the file (best effort; readers see changes without it).
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush_async()
    }
}

impl std::ops::Deref for BodyGuard<'_> {
    type Target = Body;
    fn deref(&self) -> &Body {
        // SAFETY: BODY_OFFSET is 8-aligned inside the map and the body fits
        // (TOTAL_SIZE accounts for it); Body is plain old data valid for any bytes.
        unsafe { &*self.writer.map.as_ptr().add(BODY_OFFSET).cast::<Body>() }
    }
}

impl std::ops::DerefMut for BodyGuard<'_> {
    fn deref_mut(&mut self) -> &mut Body {
        // SAFETY: as in `deref`; the guard holds the writer exclusively, and other
        // processes only read these bytes under the seqlock protocol.
        unsafe { &mut *self.writer.map.as_mut_ptr().add(BODY_OFFSET).cast::<Body>() }
    }
}

impl Drop for BodyGuard<'_> {
    fn drop(&mut self) {
        let seq = self.writer.atomic(std::mem::offset_of!(Header, seq));
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }
}

/// Why a state block could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No state block: the daemon is not running (or another runtime dir is in use).
    Missing(PathBuf),
    /// The file exists but is not a state block of this ABI.
    Invalid(String),
    /// A state block shorter than it must be: cut under the daemon, or half made.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The runtime directory or the file may not be trusted (see
    /// [`crate::runtime`]); the text says why and what to do.
    Untrusted(String),
    /// Any other I/O error (e.g. permission denied).
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Missing(p) => {
                write!(f, "{}: no state block (is coventryd running?)", p.display())
            }
            OpenError::Invalid(m) => write!(f, "invalid state block: {m}"),
            OpenError::Truncated { path, len } => write!(
                f,
                "{}: the state block is truncated ({len} of {TOTAL_SIZE} bytes); \
                 coventryd is restarting or the file was cut",
                path.display()
            ),
            OpenError::Untrusted(m) => f.write_str(m),
            OpenError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// A reader's handle on a state block, held by pbxctl, pbx-tui or any reader.
///
/// It copies what it reads with `pread` instead of mapping the file, so nothing a
/// reader does can fault: a block truncated under it reads short, which every
/// method turns into "nothing" (and [`StateReader::replaced`] into `true`). The
/// seqlock protocol is the same as with a mapping: the counter and the slot stamps
/// are read in separate copies before and after the data they guard (each an
/// aligned 8-byte word, which the kernel copies in one access), with fences between.
pub struct StateReader {
    file: File,
    /// The header's page mapped read-only, only for its address: the futex word
    /// readers sleep on. Never read through (a truncated file would fault); the
    /// kernel reads the word and reports a fault as an error instead.
    wake_page: Option<Mmap>,
    path: PathBuf,
    dev_ino: (u64, u64),
    plan: Plan,
    /// The header as read at opening.
    fixed: HeaderInfo,
}

/// Where a reader is in the event ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// Sequence number of the next event to read.
    pub next: u64,
}

/// Events read by one [`StateReader::poll_events`] call.
#[derive(Debug, Default)]
pub struct Polled {
    /// Events in order.
    pub events: Vec<EventRecord>,
    /// Events overwritten before this reader got to them.
    pub lost: u64,
}

const SEQ_OFFSET: usize = std::mem::offset_of!(Header, seq);
const HEARTBEAT_OFFSET: usize = std::mem::offset_of!(Header, heartbeat_ms);
const HEAD_OFFSET: usize = std::mem::offset_of!(Header, event_head);
/// The futex word readers sleep on: the low 32 bits of `event_head`, which change
/// with every event.
const WAKE_OFFSET: usize = if cfg!(target_endian = "little") {
    HEAD_OFFSET
} else {
    HEAD_OFFSET + 4
};
/// Longest single sleep in [`StateReader::wait_for_events`] when the block cannot be
/// mapped for a futex (the reader then polls).
const POLL_FALLBACK: Duration = Duration::from_millis(20);
const SLOT_SIZE: usize = std::mem::size_of::<EventSlot>();
/// Ring slots copied per `pread` when polling.
const POLL_SLOTS: usize = 64;

impl StateReader {
    /// Open the state block at `path` for reading — its directory and the file
    /// checked the way every reader must ([`runtime::open_trusted`]) — and check
    /// its header.
    pub fn open(path: &Path) -> Result<StateReader, OpenError> {
        let file = runtime::open_trusted(path, Kind::Regular, false).map_err(|e| match e {
            TrustError::Missing(_) => OpenError::Missing(path.to_path_buf()),
            TrustError::Io(p, e) => OpenError::Io(p, e),
            e @ TrustError::Untrusted(..) => OpenError::Untrusted(e.to_string()),
        })?;
        StateReader::from_file(file, path)
    }

    /// Like [`StateReader::open`], with a second descriptor of the very file
    /// read (the same open file): a trace lease ([`crate::trace::Lease`]) taken on
    /// it is on this block, never on one that replaced it meanwhile.
    pub fn open_with_file(path: &Path) -> Result<(StateReader, File), OpenError> {
        let reader = StateReader::open(path)?;
        let file = reader
            .file
            .try_clone()
            .map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
        Ok((reader, file))
    }

    /// Use `file`, opened from `path` by the caller, as a state block.
    pub fn from_file(file: File, path: &Path) -> Result<StateReader, OpenError> {
        let io_err = |e| OpenError::Io(path.to_path_buf(), e);
        let meta = file.metadata().map_err(io_err)?;
        let mut bytes = [0u8; HEADER_SIZE];
        let n = read_some_at(&file, &mut bytes, 0).map_err(io_err)?;
        if n >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(OpenError::Invalid(format!("{}: bad magic", path.display())));
        }
        if meta.len() < TOTAL_SIZE as u64 || n < HEADER_SIZE {
            return Err(OpenError::Truncated {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        // SAFETY: `bytes` holds HEADER_SIZE = size_of::<Header>() bytes; Header is
        // plain old data, valid for any bytes; read_unaligned needs no alignment.
        let h: Header = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Header>()) };
        if h.abi != ABI_VERSION || h.total_size != TOTAL_SIZE as u64 {
            return Err(OpenError::Invalid(format!(
                "{}: ABI {} (size {}), this program reads ABI {ABI_VERSION} (size {TOTAL_SIZE})",
                path.display(),
                h.abi,
                h.total_size
            )));
        }
        let plan = Plan::from_digits(h.digits)
            .ok_or_else(|| OpenError::Invalid(format!("bad dial plan digits {}", h.digits)))?;
        if h.pid == 0 {
            return Err(OpenError::Invalid(format!("{}: no pid", path.display())));
        }
        // SAFETY: mapped read-only and never dereferenced by this process (see
        // `wake_page`); only its address is handed to futex(2).
        let wake_page = unsafe { MmapOptions::new().len(HEADER_SIZE).map(&file) }.ok();
        Ok(StateReader {
            file,
            wake_page,
            path: path.to_path_buf(),
            dev_ino: (meta.dev(), meta.ino()),
            plan,
            fixed: HeaderInfo {
                pid: h.pid,
                plan,
                start_ms: h.start_ms,
                heartbeat_ms: h.heartbeat_ms,
                bound: get_str(&h.bound),
                realm: get_str(&h.realm),
                state_dir: get_str(&h.state_dir),
                event_head: h.event_head,
            },
        })
    }

    /// The dial plan.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Sleep until an event past `cursor` is in the ring, `timeout` passes or a
    /// signal arrives, whichever is first; at once if one is there already. The
    /// daemon wakes sleepers through a futex on the ring head (see
    /// [`StateWriter::wake_readers`]), so an event is seen within microseconds
    /// and nothing is polled meanwhile.
    pub fn wait_for_events(&self, cursor: &EventCursor, timeout: Duration) {
        let Some(head) = self.load(HEAD_OFFSET) else {
            return; // cut under us: the caller finds out
        };
        if head != cursor.next || timeout.is_zero() {
            return;
        }
        // WAKE_OFFSET + 4 <= HEADER_SIZE, 4-aligned (see `wake_page`).
        wait_on_head(self.wake_page.as_ref(), WAKE_OFFSET, head, timeout);
    }

    /// The 8-byte word at `offset` (8-aligned), read until two copies agree (a
    /// guard against a copy torn by a concurrent store); `None` when the file is
    /// too short.
    fn load(&self, offset: usize) -> Option<u64> {
        load_word(&self.file, offset)
    }

    /// Header facts, read now (the values read at opening when the file can no
    /// longer be read).
    pub fn header(&self) -> HeaderInfo {
        let mut h = self.fixed.clone();
        let mut bytes = [0u8; HEADER_SIZE];
        if self.file.read_exact_at(&mut bytes, 0).is_ok() {
            // SAFETY: as in `from_file`.
            let now: Header = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Header>()) };
            h.pid = now.pid;
            h.start_ms = now.start_ms;
            h.bound = get_str(&now.bound);
            h.realm = get_str(&now.realm);
            h.state_dir = get_str(&now.state_dir);
        }
        if let Some(v) = self.load(HEARTBEAT_OFFSET) {
            h.heartbeat_ms = v;
        }
        if let Some(v) = self.load(HEAD_OFFSET) {
            h.event_head = v;
        }
        h
    }

    /// Whether the file we read is shorter than a state block: cut under us.
    pub fn truncated(&self) -> bool {
        self.file
            .metadata()
            .map_or(true, |m| m.len() < TOTAL_SIZE as u64)
    }

    /// Whether the file at the path is no longer the one we read (daemon restarted
    /// or stopped), or it was truncated: re-open then.
    pub fn replaced(&self) -> bool {
        if self.truncated() {
            return true;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.dev_ino,
            Err(_) => true,
        }
    }

    /// Whether the daemon process named in the header still exists.
    pub fn daemon_alive(&self) -> bool {
        let mut b = [0u8; 4];
        let pid = match self
            .file
            .read_exact_at(&mut b, std::mem::offset_of!(Header, pid) as u64)
        {
            Ok(()) if u32::from_ne_bytes(b) != 0 => u32::from_ne_bytes(b),
            _ => self.fixed.pid,
        };
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        !matches!(
            nix::sys::signal::kill(pid, None),
            Err(nix::errno::Errno::ESRCH)
        )
    }

    /// A consistent snapshot of the body. Retries while the writer is inside an
    /// update; gives up (None) after `max_tries` attempts, or at once when the file
    /// has become too short to read.
    pub fn snapshot_with(&self, max_tries: usize) -> Option<Snapshot> {
        let mut body = Body::boxed_zeroed();
        for attempt in 0..max_tries {
            let s1 = self.load(SEQ_OFFSET)?;
            if s1 % 2 == 1 {
                if attempt > 16 {
                    std::thread::yield_now();
                }
                continue;
            }
            fence(Ordering::Acquire);
            // SAFETY: the box holds one initialised Body (zeroed, then only ever
            // written through this byte view); Body is plain old data, so whatever
            // bytes are copied in form a valid value. A copy torn by a concurrent
            // writer is detected by the sequence check below and discarded.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    (&mut *body as *mut Body).cast::<u8>(),
                    std::mem::size_of::<Body>(),
                )
            };
            self.file.read_exact_at(bytes, BODY_OFFSET as u64).ok()?;
            fence(Ordering::Acquire);
            if self.load(SEQ_OFFSET)? == s1 {
                return Some(Snapshot {
                    header: self.header(),
                    body,
                });
            }
        }
        None
    }

    /// A consistent snapshot (up to 10,000 attempts).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.snapshot_with(10_000)
    }

    /// A cursor at the newest end of the ring: polling returns only later events.
    pub fn cursor_at_end(&self) -> EventCursor {
        EventCursor {
            next: self.header().event_head,
        }
    }

    /// A cursor at the oldest event still in the ring.
    pub fn cursor_at_start(&self) -> EventCursor {
        EventCursor {
            next: self.header().event_head.saturating_sub(RING_SLOTS as u64),
        }
    }

    /// Read up to `max` events after `cursor`, advancing it. Events the writer has
    /// already overwritten are counted in `lost`, exactly. A file too short to read
    /// yields what was read before.
    pub fn poll_events(&self, cursor: &mut EventCursor, max: usize) -> Polled {
        let mut out = Polled::default();
        let Some(mut head) = self.load(HEAD_OFFSET) else {
            return out;
        };
        if cursor.next > head {
            // A cursor from another daemon's block: start at the end.
            cursor.next = head;
        }
        let mut before = Vec::new();
        let mut slots = Vec::new();
        let mut after = Vec::new();
        // Bounded: every round reads at least one slot, counts it lost or stops.
        for _ in 0..(RING_SLOTS + max + 1) {
            let oldest = head.saturating_sub(RING_SLOTS as u64);
            if cursor.next < oldest {
                out.lost += oldest - cursor.next;
                cursor.next = oldest;
            }
            if cursor.next >= head || out.events.len() >= max {
                break;
            }
            let n = cursor.next;
            let idx = (n % RING_SLOTS as u64) as usize;
            let k = (head - n)
                .min((max - out.events.len()) as u64)
                .min((RING_SLOTS - idx) as u64)
                .min(POLL_SLOTS as u64) as usize;
            let offset = (RING_OFFSET + idx * SLOT_SIZE) as u64;
            let len = k * SLOT_SIZE;
            // Three separate copies: every stamp of the first is read before any
            // byte of the second, every stamp of the third after; a slot whose
            // stamps agree was not rewritten while the second was taken.
            for buf in [&mut before, &mut slots, &mut after] {
                buf.resize(len, 0);
            }
            if self.file.read_exact_at(&mut before, offset).is_err() {
                break;
            }
            fence(Ordering::Acquire);
            if self.file.read_exact_at(&mut slots, offset).is_err() {
                break;
            }
            fence(Ordering::Acquire);
            if self.file.read_exact_at(&mut after, offset).is_err() {
                break;
            }
            let stamp = |buf: &[u8], j: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[j * SLOT_SIZE..j * SLOT_SIZE + 8]);
                u64::from_ne_bytes(b)
            };
            for j in 0..k {
                let nj = n + j as u64;
                if stamp(&before, j) == nj + 1 && stamp(&after, j) == nj + 1 {
                    // SAFETY: `slots` holds k whole slots; EventSlot is plain old
                    // data, valid for any bytes; read_unaligned needs no alignment.
                    let slot: EventSlot = unsafe {
                        std::ptr::read_unaligned(
                            slots.as_ptr().add(j * SLOT_SIZE).cast::<EventSlot>(),
                        )
                    };
                    if let Some(event) = slot.decode() {
                        out.events.push(EventRecord {
                            seq: nj,
                            time_ms: slot.time_ms,
                            event,
                        });
                    }
                    cursor.next = nj + 1;
                } else {
                    // Overwritten (or being overwritten) under us: the writer lapped
                    // this reader. Re-read the head and skip what is gone.
                    head = self.load(HEAD_OFFSET).unwrap_or(head).max(nj + 1);
                    if head.saturating_sub(RING_SLOTS as u64) <= nj {
                        // Being written for the first time or a stale head: gone.
                        out.lost += 1;
                        cursor.next = nj + 1;
                    }
                    break;
                }
            }
        }
        out
    }
}

/// Read into `buf` from `offset` until it is full or the file ends; the bytes read.
fn read_some_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Sleep until the ring's head (whose low 32 bits are at `offset` of the
/// read-only `page`) moves from `head`, or `timeout`: futex(2) on that word;
/// with no page, a short nap instead. `offset + 4` must lie in the page and be
/// 4-aligned. Shared by the state block's and the trace ring's readers.
pub(crate) fn wait_on_head(page: Option<&Mmap>, offset: usize, head: u64, timeout: Duration) {
    let Some(page) = page else {
        std::thread::sleep(timeout.min(POLL_FALLBACK));
        return;
    };
    assert!(
        offset.is_multiple_of(4) && offset + 4 <= page.len(),
        "wake word outside its page"
    );
    // SAFETY: checked just above: 4 aligned bytes inside a map that lives as
    // long as `page`. Only futex(2) reads through the reference.
    let word = unsafe { AtomicU32::from_ptr(page.as_ptr().add(offset).cast::<u32>().cast_mut()) };
    let ts = futex::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // The word is the head's low half: if the head moved since it was loaded,
    // the kernel returns at once (EAGAIN). Timeouts, signals and faults (a
    // truncated file) simply end the wait.
    let _ = futex::wait(word, futex::Flags::empty(), head as u32, Some(&ts));
}

/// The 8-byte word at `offset` of `file`, read until two copies agree (a guard
/// against a copy torn by a concurrent store); `None` when the file is too
/// short. Shared by the state block's and the trace ring's readers.
pub(crate) fn load_word(file: &std::fs::File, offset: usize) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut last = None;
    for _ in 0..4 {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, offset as u64).ok()?;
        let v = u64::from_ne_bytes(b);
        if last == Some(v) {
            break;
        }
        last = Some(v);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<Header>(), HEADER_SIZE);
        assert_eq!(offset_of!(Header, seq), 48);
        assert_eq!(offset_of!(Header, heartbeat_ms), 40);
        assert_eq!(offset_of!(Header, event_head), 56);
        assert_eq!(offset_of!(Header, bound), 104);
        assert_eq!(size_of::<ContactEntry>(), 256);
        assert_eq!(size_of::<ExtEntry>(), 1160);
        assert_eq!(offset_of!(ExtEntry, contacts), 136);
        assert_eq!(offset_of!(ExtEntry, forward_always), 40);
        assert_eq!(offset_of!(ExtEntry, dnd_until_ms), 112);
        assert_eq!(size_of::<Bitmaps>(), 5 * 80);
        assert_eq!(size_of::<CallEntry>(), 144);
        assert_eq!(offset_of!(CallEntry, outcome), 8);
        assert_eq!(offset_of!(CallEntry, call_id), 58);
        assert_eq!(offset_of!(CallEntry, start_ms), 120);
        assert_eq!(size_of::<Counters>(), 32 * 8);
        assert_eq!(offset_of!(Body, bitmaps), 600 * 1160);
        assert_eq!(offset_of!(Body, calls), 600 * 1160 + 400);
        assert_eq!(size_of::<RouteEntry>(), 224);
        assert_eq!(offset_of!(RouteEntry, since_ms), 104);
        assert_eq!(offset_of!(Body, routes), 600 * 1160 + 400 + 128 * 144 + 256);
        assert_eq!(
            offset_of!(Body, site),
            600 * 1160 + 400 + 128 * 144 + 256 + 4 * 224
        );
        assert_eq!(size_of::<SiteEntry>(), 768);
        assert_eq!(offset_of!(SiteEntry, traces), 32);
        assert_eq!(offset_of!(SiteEntry, trace_tokens), 36);
        assert_eq!(offset_of!(SiteEntry, trace_filters), 68);
        assert_eq!(
            size_of::<Body>(),
            600 * 1160 + 400 + 128 * 144 + 256 + 4 * 224 + 768
        );
        assert_eq!(RING_OFFSET % 8, 0);
        assert_eq!(TOTAL_SIZE, 512 + size_of::<Body>() + 1024 * 768);
    }

    #[test]
    fn strings_and_bits() {
        let mut f = [0xffu8; 8];
        put_str(&mut f, "héllo wörld");
        assert_eq!(get_str(&f), "héllo w");
        let mut m = [0u64; BITMAP_WORDS];
        set_bit(&mut m, 599, true);
        assert!(get_bit(&m, 599));
        set_bit(&mut m, 599, false);
        assert!(!get_bit(&m, 599));
        set_bit(&mut m, 10_000, true);
        assert!(!get_bit(&m, 10_000));
    }
}
