//! All proptest strategies of the engine tests.

use proptest::prelude::*;
use safeshift_model::DType;

/// 64 cases, or `PROPTEST_CASES` when set.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

/// A tensor to write: name, dtype, shape, bytes.
#[derive(Clone, Debug)]
pub struct TestTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

/// Any dtype the format defines, packed ones included.
pub fn arb_dtype() -> impl Strategy<Value = DType> {
    proptest::sample::select(DType::ALL.to_vec())
}

/// Shapes of rank 0 to 3; dims 0 to 5 so that empty tensors (a 0 dim) and 0-d tensors
/// (rank 0) come up often, and bytes stay small.
pub fn arb_shape() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(0u64..6, 0..4)
}

/// Names: unicode, quotes and backslashes (JSON escaping), control characters, empty.
pub fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.]{1,12}",
        "\\PC{0,8}",
        Just("quote\"back\\slash".to_owned()),
        Just("tab\tnew\nline\u{1}".to_owned()),
        Just("ünïcødé.权重".to_owned()),
    ]
}

/// One tensor whose element count fills whole bytes (packed dtypes need even counts
/// for `F4`, multiples of 4 for `F6_*`), with random bytes.
pub fn arb_tensor() -> impl Strategy<Value = TestTensor> {
    (arb_name(), arb_dtype(), arb_shape())
        .prop_filter_map("element count must fill whole bytes", |(name, dtype, shape)| {
            let numel: u64 = shape.iter().product();
            let len = dtype.byte_len(numel)?;
            Some((name, dtype, shape, len))
        })
        .prop_flat_map(|(name, dtype, shape, len)| {
            proptest::collection::vec(any::<u8>(), len as usize).prop_map(move |bytes| TestTensor {
                name: name.clone(),
                dtype,
                shape: shape.clone(),
                bytes,
            })
        })
}

/// Up to 8 tensors with distinct names.
pub fn arb_tensors() -> impl Strategy<Value = Vec<TestTensor>> {
    proptest::collection::vec(arb_tensor(), 0..8).prop_map(|mut tensors| {
        let mut seen = std::collections::HashSet::new();
        tensors.retain(|tensor| seen.insert(tensor.name.clone()));
        tensors
    })
}

/// Metadata: up to 3 entries with unicode keys and values.
pub fn arb_metadata() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
    proptest::collection::btree_map("\\PC{0,6}", "\\PC{0,10}", 0..3)
}

/// A mutation of a file image.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR the byte at this position (modulo the length) with a non-zero mask.
    Flip(usize, u8),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
    /// Insert bytes at this position (modulo the length + 1).
    Insert(usize, Vec<u8>),
}

/// Byte flips weighted toward the header (where the parser lives), truncations, insertions.
pub fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (0usize..160, 1u8..=255).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ]
}

impl Mutation {
    /// Applies the mutation.
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Mutation::Flip(at, mask) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            Mutation::Flip(..) => {}
            Mutation::Truncate(len) => bytes.truncate(len % (bytes.len() + 1)),
            Mutation::Insert(at, inserted) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
        }
    }
}
