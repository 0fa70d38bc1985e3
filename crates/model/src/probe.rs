//! Debug-build accounting of unifications, so tests can prove that opening a checkpoint
//! unifies its layout with each schema at most once (detection binds the dims; nothing
//! after it unifies the same layout again).
//!
//! Release builds record nothing and [`take`] returns an empty list.

/// One call of [`unify`](crate::unify): which schema, and which layout (by a fingerprint
/// of its tensor names and shapes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unified {
    /// The schema's `family@version`.
    pub schema: String,
    /// A fingerprint of the layout's tensors (names, dtypes and shapes, in order).
    pub layout: u64,
}

#[cfg(debug_assertions)]
thread_local! {
    static LOG: std::cell::RefCell<Vec<Unified>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records one unification (debug builds only).
#[cfg_attr(not(debug_assertions), allow(unused_variables))]
pub(crate) fn record(schema: &crate::Schema, tensors: &[&crate::TensorInfo]) {
    #[cfg(debug_assertions)]
    LOG.with(|log| {
        let schema = format!("{}@{}", schema.family, schema.version);
        log.borrow_mut().push(Unified { schema, layout: fingerprint_tensors(tensors.iter().copied()) });
    });
}

/// The unifications this thread made since the last call, oldest first (always empty in
/// release builds).
pub fn take() -> Vec<Unified> {
    #[cfg(debug_assertions)]
    return LOG.with(|log| std::mem::take(&mut *log.borrow_mut()));
    #[cfg(not(debug_assertions))]
    Vec::new()
}

/// FNV-1a over the tensors' names, dtypes and shapes: equal layouts, equal fingerprints.
pub fn fingerprint(layout: &crate::Layout) -> u64 {
    fingerprint_tensors(layout.tensors.iter())
}

/// [`fingerprint`] of a layout with these tensors.
fn fingerprint_tensors<'t>(tensors: impl Iterator<Item = &'t crate::TensorInfo>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for tensor in tensors {
        feed(tensor.name.as_bytes());
        feed(&[0]);
        feed(tensor.dtype.to_string().as_bytes());
        for size in &tensor.shape {
            feed(&size.to_le_bytes());
        }
    }
    hash
}
