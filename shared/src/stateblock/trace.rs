//! The trace ring: a fixed-size file in the runtime directory ([`TRACE_FILE`]),
//! present only while someone traces, holding the latest [`SLOTS`] traced SIP
//! messages ([`Record`]s). Same protocol as the event ring of the state block:
//! the daemon maps it read-write and never waits for anyone; each slot carries
//! its own stamp (`seq + 1`, `u64::MAX` while being written), so a reader that
//! fell behind loses the oldest records and knows exactly how many; readers copy
//! with `pread` (stamp, record, stamp again) and sleep in `futex(2)` on the low
//! half of the head, which the daemon wakes after each turn of its loop that
//! wrote records.
//!
//! Layout: a 128-byte header (magic, ABI, slot size, slot count, pid, head),
//! then [`SLOTS`] slots of [`SLOT_SIZE`] bytes: a 256-byte record header of
//! little-endian fields (see [`encode`]) and up to [`DATA_SIZE`] bytes of the
//! message (a longer one is cut; its length is kept).

use crate::runtime::{self, Kind, SafeDir, TrustError};
use crate::stateblock::{get_str, put_str, OpenError};
pub use crate::trace::TRACE_FILE;
use crate::trace::{Direction, Record, Transport};
use memmap2::{Mmap, MmapMut, MmapOptions};
use rustix::thread::futex;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// First eight bytes of a trace ring.
pub const MAGIC: [u8; 8] = *b"COVTRACE";
/// Layout version; readers refuse any other.
pub const ABI_VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_SIZE: usize = 128;
/// Size of a record's header in its slot.
pub const RECORD_HEADER: usize = 256;
/// Most bytes of one message kept (the switch's default `max_message`).
pub const DATA_SIZE: usize = 8192;
/// Size of one slot.
pub const SLOT_SIZE: usize = RECORD_HEADER + DATA_SIZE;
/// Slots in the ring.
pub const SLOTS: usize = 512;
/// Size of the file.
pub const TOTAL_SIZE: usize = HEADER_SIZE + SLOTS * SLOT_SIZE;

const ABI_OFFSET: usize = 8;
const SLOT_SIZE_OFFSET: usize = 12;
const SLOTS_OFFSET: usize = 16;
const PID_OFFSET: usize = 20;
const HEAD_OFFSET: usize = 24;
/// The futex word: the low 32 bits of the head.
const WAKE_OFFSET: usize = if cfg!(target_endian = "little") {
    HEAD_OFFSET
} else {
    HEAD_OFFSET + 4
};

fn slot_offset(seq: u64) -> usize {
    HEADER_SIZE + (seq % SLOTS as u64) as usize * SLOT_SIZE
}

/// The record header of `rec` (its bytes follow it in the slot, up to
/// [`DATA_SIZE`]). Fields, little-endian: 0 stamp (written apart), 8 time_ms,
/// 16 length, 20 bytes kept, 24 direction, 25 transport, 26 leases, 27 address
/// family (4 or 6), 28 port, 30 status, 32 address (16 bytes), 48 CSeq number,
/// 56 method (16), 72 CSeq method (16), 88 reason (40), 128 Call-ID (128).
pub fn encode(time_ms: u64, rec: &Record) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    let kept = rec.bytes.len().min(DATA_SIZE) as u32;
    h[8..16].copy_from_slice(&time_ms.to_le_bytes());
    h[16..20].copy_from_slice(&rec.len.max(kept).to_le_bytes());
    h[20..24].copy_from_slice(&kept.to_le_bytes());
    h[24] = match rec.dir {
        Direction::In => 1,
        Direction::Out => 2,
    };
    h[25] = match rec.transport {
        Transport::Udp => 1,
        Transport::Tcp => 2,
    };
    h[26] = rec.leases;
    match rec.peer.ip() {
        IpAddr::V4(a) => {
            h[27] = 4;
            h[32..36].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            h[27] = 6;
            h[32..48].copy_from_slice(&a.octets());
        }
    }
    h[28..30].copy_from_slice(&rec.peer.port().to_le_bytes());
    h[30..32].copy_from_slice(&rec.status.to_le_bytes());
    h[48..52].copy_from_slice(&rec.cseq.to_le_bytes());
    put_str(&mut h[56..72], &rec.method);
    put_str(&mut h[72..88], &rec.cseq_method);
    put_str(&mut h[88..128], &rec.reason);
    put_str(&mut h[128..256], &rec.call_id);
    h
}

/// The record of a slot's header `h` and its kept bytes (`seq` is the caller's).
pub fn decode(seq: u64, h: &[u8; RECORD_HEADER], data: &[u8]) -> Option<Record> {
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&h[8..16]);
    let ip = match h[27] {
        4 => IpAddr::V4(Ipv4Addr::new(h[32], h[33], h[34], h[35])),
        6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&h[32..48]);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(Record {
        seq,
        time_ms: u64::from_le_bytes(t),
        dir: match h[24] {
            1 => Direction::In,
            2 => Direction::Out,
            _ => return None,
        },
        transport: match h[25] {
            1 => Transport::Udp,
            2 => Transport::Tcp,
            _ => return None,
        },
        peer: SocketAddr::new(ip, u16_at(28)),
        leases: h[26],
        method: get_str(&h[56..72]),
        status: u16_at(30),
        reason: get_str(&h[88..128]),
        call_id: get_str(&h[128..256]),
        cseq: u32_at(48),
        cseq_method: get_str(&h[72..88]),
        len: u32_at(16),
        bytes: data.to_vec(),
    })
}

/// The daemon's read-write mapping of the trace ring.
pub struct TraceWriter {
    map: MmapMut,
    path: PathBuf,
}

impl TraceWriter {
    /// Create the ring at `path` (mode 0640, like the state block), replacing
    /// any old one: built under an unpredictable temporary name in the daemon's
    /// own directory and renamed into place. Sparse: only the slots written take
    /// memory.
    pub fn create(path: &Path) -> io::Result<TraceWriter> {
        let (dir, name) = SafeDir::of_own_file(path)?;
        let tmp = dir.create_temp(&name, 0o640)?;
        tmp.file().set_len(TOTAL_SIZE as u64)?;
        // SAFETY: created by us, exclusively, under a temporary name, at its final
        // length; nobody maps it before the rename, and it is never truncated.
        let mut map = unsafe { MmapMut::map_mut(tmp.file())? };
        map[..8].copy_from_slice(&MAGIC);
        map[ABI_OFFSET..ABI_OFFSET + 4].copy_from_slice(&ABI_VERSION.to_le_bytes());
        map[SLOT_SIZE_OFFSET..SLOT_SIZE_OFFSET + 4]
            .copy_from_slice(&(SLOT_SIZE as u32).to_le_bytes());
        map[SLOTS_OFFSET..SLOTS_OFFSET + 4].copy_from_slice(&(SLOTS as u32).to_le_bytes());
        map[PID_OFFSET..PID_OFFSET + 4].copy_from_slice(&std::process::id().to_le_bytes());
        tmp.commit(&name, false)?;
        Ok(TraceWriter {
            map,
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn atomic(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is the head or a slot stamp: 8-aligned (the header
        // and slot sizes are multiples of 8) inside the map, which lives as long
        // as &self. Concurrent access to these words goes through atomics only.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset).cast::<u64>().cast_mut()) }
    }

    /// Append a record (its `seq` is ignored); its sequence number.
    pub fn push(&mut self, time_ms: u64, rec: &Record) -> u64 {
        let n = self.atomic(HEAD_OFFSET).load(Ordering::Relaxed);
        let off = slot_offset(n);
        let header = encode(time_ms, rec);
        let kept = rec.bytes.len().min(DATA_SIZE);
        self.atomic(off).store(u64::MAX, Ordering::Relaxed);
        fence(Ordering::Release);
        // The stamp word stays as stored above; the rest of the slot is copied.
        self.map[off + 8..off + RECORD_HEADER].copy_from_slice(&header[8..]);
        self.map[off + RECORD_HEADER..off + RECORD_HEADER + kept]
            .copy_from_slice(&rec.bytes[..kept]);
        self.atomic(off).store(n + 1, Ordering::Release);
        self.atomic(HEAD_OFFSET).store(n + 1, Ordering::Release);
        n
    }

    /// Wake every reader sleeping in [`TraceReader::wait`].
    pub fn wake_readers(&self) {
        // SAFETY: WAKE_OFFSET is the 4-aligned low word of the head, inside the
        // map, which lives as long as &self; only atomics and futex(2) use it.
        let word = unsafe {
            AtomicU32::from_ptr(self.map.as_ptr().add(WAKE_OFFSET).cast::<u32>().cast_mut())
        };
        let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
    }
}

/// A reader's handle on the trace ring (pbxctl, the console).
pub struct TraceReader {
    file: File,
    /// The header page mapped read-only for its address only (the futex word);
    /// never read through, so a cut file cannot fault.
    wake_page: Option<Mmap>,
    path: PathBuf,
    dev_ino: (u64, u64),
}

/// Records read by one [`TraceReader::poll`].
#[derive(Debug, Default)]
pub struct Polled {
    /// Records in order.
    pub records: Vec<Record>,
    /// Records overwritten before this reader got to them.
    pub lost: u64,
}

impl TraceReader {
    /// Open the ring at `path`, its directory and the file checked the way every
    /// reader must ([`runtime::open_trusted`]).
    pub fn open(path: &Path) -> Result<TraceReader, OpenError> {
        let file = runtime::open_trusted(path, Kind::Regular, false).map_err(|e| match e {
            TrustError::Missing(_) => OpenError::Missing(path.to_path_buf()),
            TrustError::Io(p, e) => OpenError::Io(p, e),
            e @ TrustError::Untrusted(..) => OpenError::Untrusted(e.to_string()),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
        let mut h = [0u8; HEADER_SIZE];
        if meta.len() < TOTAL_SIZE as u64 || file.read_exact_at(&mut h, 0).is_err() {
            return Err(OpenError::Truncated {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if h[..8] != MAGIC
            || u32_at(ABI_OFFSET) != ABI_VERSION
            || u32_at(SLOT_SIZE_OFFSET) as usize != SLOT_SIZE
            || u32_at(SLOTS_OFFSET) as usize != SLOTS
        {
            return Err(OpenError::Invalid(format!(
                "{}: not a trace ring of ABI {ABI_VERSION}",
                path.display()
            )));
        }
        // SAFETY: mapped read-only and never dereferenced here; only its address
        // goes to futex(2), which reports a fault as an error.
        let wake_page = unsafe { MmapOptions::new().len(HEADER_SIZE).map(&file) }.ok();
        Ok(TraceReader {
            file,
            wake_page,
            path: path.to_path_buf(),
            dev_ino: (meta.dev(), meta.ino()),
        })
    }

    /// The 8-byte word at `offset`, read until two copies agree.
    fn load(&self, offset: usize) -> Option<u64> {
        super::load_word(&self.file, offset)
    }

    /// The number of records written so far: a cursor at the newest end.
    pub fn head(&self) -> u64 {
        self.load(HEAD_OFFSET).unwrap_or(0)
    }

    /// Whether the file at the path is no longer the one read (the trace ended
    /// and a new one began, or none is running).
    pub fn replaced(&self) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.dev_ino,
            Err(_) => true,
        }
    }

    /// Read up to `max` records from `cursor` on, advancing it; records the
    /// daemon overwrote first are counted in `lost`, exactly.
    pub fn poll(&self, cursor: &mut u64, max: usize) -> Polled {
        let mut out = Polled::default();
        let Some(mut head) = self.load(HEAD_OFFSET) else {
            return out;
        };
        if *cursor > head {
            *cursor = head;
        }
        // Bounded: every round reads one record, counts it lost or stops.
        for _ in 0..(SLOTS + max + 1) {
            let oldest = head.saturating_sub(SLOTS as u64);
            if *cursor < oldest {
                out.lost += oldest - *cursor;
                *cursor = oldest;
            }
            if *cursor >= head || out.records.len() >= max {
                break;
            }
            let n = *cursor;
            match self.read_slot(n) {
                Some(Some(r)) => {
                    out.records.push(r);
                    *cursor = n + 1;
                }
                Some(None) => *cursor = n + 1, // undecodable: skipped
                None => {
                    // Being rewritten under us: the daemon lapped this reader.
                    head = self.load(HEAD_OFFSET).unwrap_or(head).max(n + 1);
                    if head.saturating_sub(SLOTS as u64) <= n {
                        out.lost += 1;
                        *cursor = n + 1;
                    }
                }
            }
        }
        out
    }

    /// Record `n`: `None` when its slot no longer (or not yet) holds it.
    fn read_slot(&self, n: u64) -> Option<Option<Record>> {
        let off = slot_offset(n);
        if self.load(off)? != n + 1 {
            return None;
        }
        fence(Ordering::Acquire);
        let mut h = [0u8; RECORD_HEADER];
        self.file.read_exact_at(&mut h, off as u64).ok()?;
        let kept = u32::from_le_bytes([h[20], h[21], h[22], h[23]]) as usize;
        let mut data = vec![0u8; kept.min(DATA_SIZE)];
        self.file
            .read_exact_at(&mut data, (off + RECORD_HEADER) as u64)
            .ok()?;
        fence(Ordering::Acquire);
        if self.load(off)? != n + 1 {
            return None;
        }
        Some(decode(n, &h, &data))
    }

    /// Sleep until a record past `cursor` is written, `timeout` passes or a
    /// signal comes; at once when one is there already.
    pub fn wait(&self, cursor: u64, timeout: Duration) {
        let Some(head) = self.load(HEAD_OFFSET) else {
            return;
        };
        if head != cursor || timeout.is_zero() {
            return;
        }
        super::wait_on_head(self.wake_page.as_ref(), WAKE_OFFSET, head, timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32, len: usize) -> Record {
        Record {
            seq: 0,
            time_ms: 0,
            dir: if i & 1 == 0 {
                Direction::In
            } else {
                Direction::Out
            },
            transport: Transport::Udp,
            peer: "[::1]:5062".parse().unwrap_or_else(|_| unreachable!()),
            leases: 1,
            method: "INVITE".into(),
            status: 0,
            reason: String::new(),
            call_id: format!("call-{i}"),
            cseq: i,
            cseq_method: "INVITE".into(),
            len: len as u32,
            bytes: vec![b'x'; len],
        }
    }

    #[test]
    fn records_round_trip_and_a_slow_reader_is_told_what_it_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(TRACE_FILE);
        let mut w = TraceWriter::create(&path).expect("create");
        let r = TraceReader::open(&path).expect("open");
        let mut cursor = r.head();
        assert_eq!(cursor, 0);
        w.push(7, &rec(1, 10));
        w.push(8, &rec(2, DATA_SIZE + 100));
        let got = r.poll(&mut cursor, 100);
        assert_eq!((got.records.len(), got.lost), (2, 0));
        let mut want = rec(1, 10);
        want.time_ms = 7;
        assert_eq!(got.records[0], want);
        assert_eq!(got.records[1].len as usize, DATA_SIZE + 100);
        assert_eq!(got.records[1].bytes.len(), DATA_SIZE, "cut, length kept");
        assert_eq!(got.records[1].seq, 1);
        // A reader that falls a ring and more behind.
        for i in 0..(SLOTS as u32 + 10) {
            w.push(9, &rec(i, 20));
        }
        let got = r.poll(&mut cursor, 10_000);
        assert_eq!(got.lost, 10);
        assert_eq!(got.records.len(), SLOTS);
        assert_eq!(got.records[0].call_id, "call-10");
        assert_eq!(cursor, r.head());
        assert!(!r.replaced());
        std::fs::remove_file(&path).expect("rm");
        assert!(r.replaced());
    }
}
