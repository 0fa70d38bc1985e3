//! Property: random bytes and mutations of the real fixtures never panic, and never make
//! the reader allocate more than a small multiple of the input (a counting allocator
//! measures the peak of each case). Runs `PROPTEST_CASES` cases per property (default 64).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use proptest::prelude::*;
use safeshift_torch::{open_bytes, scan_bytes, ConvertOptions, Limits};

/// Counts the bytes live on the current thread, and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            live.set(live.get() + layout.size());
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
        });
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(layout.size())));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The small positive fixtures (the zip bomb is left out: it is 1 MB and tested directly).
const FIXTURES: [&str; 7] = [
    "plain_state_dict.pt",
    "lightning.ckpt",
    "shared_storage.pt",
    "full_module.pt",
    "legacy_format.pt",
    "anemoi_style.ckpt",
    "protocol4_state_dict.pt",
];

fn fixture(index: usize) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(FIXTURES[index])).unwrap()
}

fn options() -> ConvertOptions {
    let limits = Limits { max_expanded_bytes: 1 << 20, max_metadata_bytes: 1 << 20, ..Limits::default() };
    // No CRC check: mutations must reach the parsers, not stop at the checksum.
    ConvertOptions { keep_optimizer: true, verify_crc: false, limits, ..ConvertOptions::default() }
}

/// Converts and scans `bytes`, touching every tensor's data; returns the peak bytes allocated.
fn exercise(bytes: Vec<u8>) -> usize {
    let input_len = bytes.len();
    let copy = bytes.clone();
    let baseline = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(baseline));
    if let Ok(converted) = open_bytes("fuzz.pt", bytes, &options()) {
        for index in 0..converted.tensors().len() {
            let data = converted.data(index);
            std::hint::black_box(data.len());
        }
        std::hint::black_box(converted.layout());
    }
    let _ = std::hint::black_box(scan_bytes("fuzz.pt", &copy));
    let peak = PEAK.with(Cell::get).saturating_sub(baseline);
    assert!(peak <= 256 * input_len + (8 << 20), "peak allocation {peak} bytes for a {input_len}-byte input");
    peak
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    #[test]
    fn random_bytes_never_panic(prefix in prop::sample::select(vec![&b""[..], b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95"]),
                                body in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = prefix.to_vec();
        bytes.extend(body);
        exercise(bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(index in 0..FIXTURES.len(),
                                    edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                    truncate in prop::option::weighted(0.2, any::<prop::sample::Index>())) {
        let mut bytes = fixture(index);
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        exercise(bytes);
    }

    /// Mutations aimed at the pickle (the first member of every zip fixture and the start of
    /// the legacy file), where a random byte is most likely to change an opcode or a length.
    #[test]
    fn mutated_pickles_never_panic(index in 0..FIXTURES.len(),
                                   edits in prop::collection::vec((0usize..3000, any::<u8>()), 1..6)) {
        let mut bytes = fixture(index);
        for (at, byte) in edits {
            let at = at.min(bytes.len() - 1);
            bytes[at] = byte;
        }
        exercise(bytes);
    }
}

#[test]
fn unmutated_fixtures_stay_within_the_bound() {
    for index in 0..FIXTURES.len() {
        exercise(fixture(index));
    }
}

#[test]
fn the_zip_bomb_is_refused_within_the_bound() {
    let bomb =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malicious/mal_g_zip_bomb_storage.pt"))
            .unwrap();
    let len = bomb.len();
    // The bound is relative to the input; the bomb would inflate to 1 GiB.
    let peak = exercise(bomb);
    assert!(peak < 4 * len + (8 << 20), "{peak}");
}
