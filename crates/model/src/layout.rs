//! The layout of one concrete checkpoint: names, dtypes, shapes and metadata, no bytes.

use std::collections::BTreeMap;

use crate::DType;

/// One tensor of a concrete checkpoint, as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape; empty for a 0-d tensor.
    pub shape: Vec<u64>,
}

impl TensorInfo {
    /// The number of elements (1 for a 0-d tensor), `None` on overflow.
    pub fn numel(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, &dim| acc.checked_mul(dim))
    }

    /// The number of bytes, `None` on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        self.dtype.byte_len(self.numel()?)
    }
}

/// What a checkpoint's header says: its tensors in file order, and its string metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The tensors, in the order the file lists them.
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

impl Layout {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|tensor| tensor.name == name)
    }
}
