//! A 16 MiB pickle of chained one-byte TUPLE1 opcodes (each wraps the previous tuple) is
//! refused at the opcode that crosses the depth limit, well under 256 MiB of memory; so are
//! floods of objects and memo entries, by the parse's memory budget. Peak memory is measured
//! by a counting allocator (this test binary's global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use safeshift_torch::{open_bytes, scan_bytes, ConvertOptions};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The tests measure one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const INPUT: usize = 16 << 20;
const BOUND: usize = 256 << 20;

/// A legacy-format stream (so both `open` and `scan` parse it) whose object pickle is `body`.
fn legacy_with(body: &[u8]) -> Vec<u8> {
    let mut data = b"\x80\x02\x8a\x0a".to_vec();
    data.extend_from_slice(&0x1950_a86a_20f9_469c_fc6cu128.to_le_bytes()[..10]);
    data.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}.");
    data.extend_from_slice(body);
    data
}

/// Peak bytes allocated (beyond the input) while `open` and `scan` refuse `data`, with
/// both refusals' messages.
fn refuse(data: Vec<u8>) -> (usize, String, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let report = scan_bytes("amplification.pt", &data).unwrap();
    let scanned = report.problem.expect("scan stops early");
    let opened = match open_bytes("amplification.pt", data, &ConvertOptions::default()) {
        Ok(_) => panic!("converted"),
        Err(err) => err.to_string(),
    };
    (PEAK.load(Ordering::Relaxed) - base, scanned, opened)
}

#[test]
fn chained_tuples_stop_at_the_depth_limit_while_parsing() {
    let mut body = b"\x80\x02N".to_vec();
    body.resize(INPUT, 0x85);
    body.push(b'.');
    let (peak, scanned, opened) = refuse(legacy_with(&body));
    for message in [&scanned, &opened] {
        assert!(message.contains("nesting depth exceeds the limit of 100"), "{message}");
        // The 101st TUPLE1 (byte 103 of the object pickle, which starts at byte 25 of the
        // file): the parse stopped there, not after reading 16 MiB.
        assert!(message.contains("byte 128"), "{message}");
    }
    assert!(peak < BOUND, "peak {peak} bytes");
}

#[test]
fn floods_of_objects_and_memo_entries_stop_at_the_memory_budget() {
    // `]0` (an empty list, popped) and `N` + MEMOIZE repeated: shallow, and each byte
    // makes something the parse must keep. 4 MiB: its budget is 8 × 4 MiB + 64 MiB.
    const INPUT: usize = 4 << 20;
    let lists: Vec<u8> = b"\x80\x02".iter().chain(b"]0".iter().cycle().take(INPUT)).chain(b"N.").copied().collect();
    let memo: Vec<u8> = b"\x80\x04N".iter().chain(std::iter::repeat_n(&0x94, INPUT)).chain(b".").copied().collect();
    for body in [lists, memo] {
        let (peak, scanned, opened) = refuse(legacy_with(&body));
        for message in [&scanned, &opened] {
            assert!(message.contains("exceeds the limit"), "{message}");
        }
        assert!(peak < BOUND, "peak {peak} bytes");
    }
}
