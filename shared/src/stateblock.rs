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
//! This is the only module of Coventry with `unsafe` code.
#![allow(unsafe_code)]

use crate::dialplan::{Plan, MAX_EXTENSIONS};
use crate::event::{Event, EventRecord, EventSlot};
use memmap2::{Mmap, MmapMut};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// First eight bytes of every state block.
pub const MAGIC: [u8; 8] = *b"COVNTRY\0";
/// Layout version; readers refuse any other.
pub const ABI_VERSION: u32 = 2;
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
    /// Reserved, zero.
    pub reserved: [u8; 280],
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
    pub user_agent: [u8; 64],
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
    /// Calls started (calls issue).
    pub calls: u64,
    /// Digest responses compared with a computed digest (the guessing work done).
    pub digests_checked: u64,
    /// Requests refused unchecked because their source or user name has to wait
    /// after failed authentications (`[security]`).
    pub auth_refused: u64,
    /// Reserved, zero.
    pub reserved: [u64; 18],
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
    /// Daemon start, ms since the epoch.
    pub start_ms: u64,
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
    /// atomically: it is built under a temporary name and renamed into place.
    pub fn create(path: &Path, init: &BlockInit) -> io::Result<StateWriter> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".state.{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        file.set_len(TOTAL_SIZE as u64)?;
        // SAFETY: the file was just created by us under a private temporary name and
        // has its final length; nobody else maps it until the rename below, and the
        // daemon never truncates it while mapped.
        let map = unsafe { MmapMut::map_mut(&file)? };
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
        std::fs::rename(&tmp, path)?;
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
            reserved: [0; 280],
        };
        put_str(&mut h.bound, &init.bound);
        put_str(&mut h.realm, &init.realm);
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
            OpenError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// A read-only mapping held by pbxctl, pbx-tui or any reader.
pub struct StateReader {
    map: Mmap,
    path: PathBuf,
    dev_ino: (u64, u64),
    plan: Plan,
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

impl StateReader {
    /// Map the state block at `path` read-only and check its header.
    pub fn open(path: &Path) -> Result<StateReader, OpenError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OpenError::Missing(path.to_path_buf()),
            _ => OpenError::Io(path.to_path_buf(), e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
        if meta.len() < TOTAL_SIZE as u64 {
            return Err(OpenError::Invalid(format!(
                "{} is {} bytes, expected {TOTAL_SIZE}",
                path.display(),
                meta.len()
            )));
        }
        // SAFETY: read-only shared mapping of a file the daemon never truncates while
        // it runs; a replacement is a new file (rename), so our mapping stays valid.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
        // SAFETY: the map is at least TOTAL_SIZE ≥ size_of::<Header>() bytes and
        // page-aligned; Header is plain old data.
        let h: Header = unsafe { std::ptr::read_volatile(map.as_ptr().cast::<Header>()) };
        if h.magic != MAGIC {
            return Err(OpenError::Invalid(format!("{}: bad magic", path.display())));
        }
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
        Ok(StateReader {
            map,
            path: path.to_path_buf(),
            dev_ino: (meta.dev(), meta.ino()),
            plan,
        })
    }

    /// The dial plan.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    fn atomic(&self, field: usize) -> &AtomicU64 {
        // SAFETY: `field` is the offset of an 8-aligned u64 inside the map (a header
        // counter or a slot stamp); the writer accesses these words atomically too.
        // We only load through this reference; the page is read-only.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(field).cast::<u64>().cast_mut()) }
    }

    /// Header facts (heartbeat and event head read now).
    pub fn header(&self) -> HeaderInfo {
        // SAFETY: as in `open`.
        let h: Header = unsafe { std::ptr::read_volatile(self.map.as_ptr().cast::<Header>()) };
        HeaderInfo {
            pid: h.pid,
            plan: self.plan,
            start_ms: h.start_ms,
            heartbeat_ms: self
                .atomic(std::mem::offset_of!(Header, heartbeat_ms))
                .load(Ordering::Acquire),
            bound: get_str(&h.bound),
            realm: get_str(&h.realm),
            event_head: self
                .atomic(std::mem::offset_of!(Header, event_head))
                .load(Ordering::Acquire),
        }
    }

    /// Whether the file at the path is no longer the one mapped (daemon restarted
    /// or stopped): re-open then.
    pub fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.dev_ino,
            Err(_) => true,
        }
    }

    /// Whether the daemon process named in the header still exists.
    pub fn daemon_alive(&self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.header().pid as i32);
        !matches!(
            nix::sys::signal::kill(pid, None),
            Err(nix::errno::Errno::ESRCH)
        )
    }

    /// A consistent snapshot of the body. Retries while the writer is inside an
    /// update; gives up (None) after `max_tries` attempts.
    pub fn snapshot_with(&self, max_tries: usize) -> Option<Snapshot> {
        let seq = self.atomic(std::mem::offset_of!(Header, seq));
        let mut body = Body::boxed_zeroed();
        for attempt in 0..max_tries {
            let s1 = seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                if attempt > 16 {
                    std::thread::yield_now();
                }
                continue;
            }
            // SAFETY: BODY_OFFSET..RING_OFFSET lies inside the map; Body is plain old
            // data, so whatever bytes we copy form a valid value. A copy torn by a
            // concurrent writer is detected by the sequence check below and discarded.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.map.as_ptr().add(BODY_OFFSET),
                    (&mut *body as *mut Body).cast::<u8>(),
                    std::mem::size_of::<Body>(),
                );
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
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
    /// already overwritten are counted in `lost`, exactly.
    pub fn poll_events(&self, cursor: &mut EventCursor, max: usize) -> Polled {
        let mut out = Polled::default();
        let head_a = self.atomic(std::mem::offset_of!(Header, event_head));
        let mut head = head_a.load(Ordering::Acquire);
        if cursor.next > head {
            // A cursor from another daemon's block: start at the end.
            cursor.next = head;
        }
        // Bounded: at most RING_SLOTS + max iterations of real work.
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
            let off = RING_OFFSET + idx * std::mem::size_of::<EventSlot>();
            let stamp = self.atomic(off);
            let s1 = stamp.load(Ordering::Acquire);
            // SAFETY: slot `idx` lies inside the map, 8-aligned; EventSlot is plain
            // old data. A torn read is detected by comparing the stamp before and after.
            let slot: EventSlot =
                unsafe { std::ptr::read_volatile(self.map.as_ptr().add(off).cast::<EventSlot>()) };
            fence(Ordering::Acquire);
            let s2 = stamp.load(Ordering::Relaxed);
            if s1 == n + 1 && s2 == n + 1 {
                if let Some(event) = slot.decode() {
                    out.events.push(EventRecord {
                        seq: n,
                        time_ms: slot.time_ms,
                        event,
                    });
                }
                cursor.next = n + 1;
            } else {
                // Overwritten (or being overwritten) under us: the writer lapped this
                // reader. Re-read the head and skip what is gone.
                head = head_a.load(Ordering::Acquire).max(n + 1);
                if head.saturating_sub(RING_SLOTS as u64) <= n {
                    // Being written for the first time or a stale head: treat as gone.
                    out.lost += 1;
                    cursor.next = n + 1;
                }
            }
        }
        out
    }
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
            size_of::<Body>(),
            600 * 1160 + 400 + 128 * 144 + 256 + 4 * 224
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
