//! Tensor bytes handed to Python without a copy.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::open::Open;

/// The bytes of one tensor (or slice of one), as a flat `uint8` array interface.
///
/// Borrowed bytes point into the open checkpoint's map and hold a reference to the
/// [`Open`] object, so the map outlives every array made from them; computed bytes are the
/// one allocation the kernels produced.
#[pyclass(frozen, module = "safeshift._native")]
pub struct Bytes {
    data: Data,
    writable: bool,
}

enum Data {
    /// Inside the map of `owner`'s checkpoint (copy-on-write, so writes stay private).
    Mapped {
        owner: Py<Open>,
        address: usize,
        len: usize,
    },
    Computed(Vec<u8>),
}

impl Bytes {
    pub fn mapped(owner: Py<Open>, bytes: &[u8], writable: bool) -> Bytes {
        Bytes { data: Data::Mapped { owner, address: bytes.as_ptr() as usize, len: bytes.len() }, writable }
    }

    pub fn computed(bytes: Vec<u8>) -> Bytes {
        Bytes { data: Data::Computed(bytes), writable: true }
    }

    fn address_and_len(&self) -> (usize, usize) {
        match &self.data {
            Data::Mapped { address, len, .. } => (*address, *len),
            Data::Computed(bytes) => (bytes.as_ptr() as usize, bytes.len()),
        }
    }
}

#[pymethods]
impl Bytes {
    /// NumPy's array interface (version 3): a flat `uint8` array over these bytes.
    /// Writable computed bytes are this object's own; mapped bytes are read-only unless
    /// asked for otherwise (torch tensors, which cannot be read-only).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (address, len) = self.address_and_len();
        let interface = PyDict::new(py);
        interface.set_item("version", 3)?;
        interface.set_item("typestr", "|u1")?;
        interface.set_item("shape", (len,))?;
        interface.set_item("data", (address, !self.writable))?;
        Ok(interface)
    }

    /// Whether the bytes are borrowed from the checkpoint's memory map.
    #[getter]
    fn borrowed(&self) -> bool {
        matches!(self.data, Data::Mapped { .. })
    }

    /// The address of the first byte (for tests that check where the bytes live).
    #[getter]
    fn address(&self) -> usize {
        self.address_and_len().0
    }

    fn __len__(&self) -> usize {
        self.address_and_len().1
    }

    /// The open checkpoint the bytes are borrowed from, if any.
    #[getter]
    fn owner(&self, py: Python<'_>) -> Option<Py<Open>> {
        match &self.data {
            Data::Mapped { owner, .. } => Some(owner.clone_ref(py)),
            Data::Computed(_) => None,
        }
    }
}
