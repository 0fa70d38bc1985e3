//! `safeshift._native`: the Rust half of the `safeshift` Python package.
//!
//! A thin client of the facade: [`safeshift::Registry::open_with`] gives a [`Migrated`]
//! view, which [`open::Open`] wraps; tensor bytes leave Rust as [`bytes::Bytes`], an
//! object NumPy reads through `__array_interface__` without copying. The Python side
//! (`python/safeshift/`) turns them into arrays and tensors, parses slices and maps the
//! errors raised here (by class name, from `safeshift.errors`) into its hierarchy.
//!
//! [`Migrated`]: safeshift::Migrated

mod bytes;
mod errors;
mod open;

use pyo3::prelude::*;

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<open::Open>()?;
    module.add_class::<bytes::Bytes>()?;
    module.add_function(wrap_pyfunction!(open::open, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
