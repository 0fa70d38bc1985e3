//! `safeshift._native.open`: a checkpoint opened through the facade, seen in the target
//! layout.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::prelude::*;
use safeshift::engine::{ViewError, EXTRAS_METADATA_KEY};
use safeshift::ops::ParamValue;
use safeshift::torch::SUPPORTING_ARRAYS_PREFIX;
use safeshift::{Migrated, OpenOptions, Registry, RegistryError};

use crate::bytes::Bytes;
use crate::errors;

/// A checkpoint opened in the target layout: the facade's `Migrated` view.
///
/// Immutable and shared between threads: every method takes `&self`, and tensor reads
/// release the GIL while bytes are computed.
#[pyclass(frozen, module = "safeshift._native")]
pub struct Open {
    path: PathBuf,
    migrated: Migrated,
}

/// A migration parameter's value as Python gives it: the CLI's text (`"0"`,
/// `"era5:global,cerra:regional"`) or a dict of key to value.
#[derive(FromPyObject)]
pub enum ParamArg {
    Text(String),
    Map(BTreeMap<String, String>),
}

impl ParamArg {
    fn value(self, name: &str) -> Result<ParamValue, String> {
        let bad = |err: String| format!("parameter `{name}`: {err}");
        match self {
            ParamArg::Text(text) => ParamValue::parse(&text).map_err(bad),
            ParamArg::Map(map) => match map.iter().find(|(key, value)| key.is_empty() || value.is_empty()) {
                Some((key, value)) => Err(bad(format!("`{key}: {value}` has an empty key or value"))),
                None => Ok(ParamValue::Map(map)),
            },
        }
    }
}

/// Opens `path` with the embedded registry (or the one in the folder `registry`), detects
/// its version and plans the path to `target`; reads headers only (and, for a PyTorch
/// file, its pickle, scanned for gadgets before anything else).
#[pyfunction]
#[pyo3(signature = (
    path, *, target=None, dims=None, aux=None, registry=None, allow_lossy=false, params=None, key=None,
    allow_gadgets=false
))]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per CLI option
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    target: Option<String>,
    dims: Option<BTreeMap<String, i64>>,
    aux: Option<BTreeMap<String, PathBuf>>,
    registry: Option<PathBuf>,
    allow_lossy: bool,
    params: Option<BTreeMap<String, ParamArg>>,
    key: Option<String>,
    allow_gadgets: bool,
) -> PyResult<Open> {
    let mut values = BTreeMap::new();
    for (name, arg) in params.unwrap_or_default() {
        let value = arg.value(&name).map_err(|message| errors::raise(py, "ParamError", message))?;
        values.insert(name, value);
    }
    let options = OpenOptions {
        to: target,
        dims: dims.unwrap_or_default(),
        aux: aux.unwrap_or_default(),
        allow_lossy,
        params: values,
        state_dict_key: key,
        allow_gadgets,
    };
    let loaded;
    let registry = match &registry {
        None => embedded().map_err(|err| errors::registry_error(py, err))?,
        Some(dir) => {
            loaded = py.detach(|| Registry::load(dir)).map_err(|err| errors::registry_error(py, &err))?;
            &loaded
        }
    };
    let migrated = py.detach(|| registry.open_with(&path, &options)).map_err(|err| errors::open_error(py, &err))?;
    Ok(Open { path, migrated })
}

/// The embedded registry, checked once per process.
fn embedded() -> Result<&'static Registry, &'static RegistryError> {
    static EMBEDDED: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
    EMBEDDED.get_or_init(Registry::embedded).as_ref()
}

impl Open {
    fn bytes(slf: &Bound<'_, Open>, read: Result<Cow<'_, [u8]>, ViewError>, writable: bool) -> PyResult<Bytes> {
        match read {
            Ok(Cow::Borrowed(bytes)) => Ok(Bytes::mapped(slf.clone().unbind(), bytes, writable)),
            Ok(Cow::Owned(bytes)) => Ok(Bytes::computed(bytes)),
            Err(err) => Err(errors::view_error(slf.py(), &err)),
        }
    }
}

#[pymethods]
impl Open {
    /// The path given to `open`.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The output tensor names, in plan order.
    fn keys(&self) -> Vec<String> {
        self.migrated.names().map(str::to_owned).collect()
    }

    /// The names of the tensors that are not model state: the file's extras (an Anemoi
    /// checkpoint's graph, carried through unchanged) and its supporting arrays (in
    /// `keys()` when the schema lists them, as in the file `upgrade` writes).
    fn extras(&self) -> Vec<String> {
        // A plan that carries the extras lists them, under their new names when it renamed them.
        let planned: Option<Vec<String>> =
            self.migrated.metadata().get(EXTRAS_METADATA_KEY).and_then(|text| serde_json::from_str(text).ok());
        let mut names =
            planned.unwrap_or_else(|| self.migrated.extras().iter().map(|info| info.name.clone()).collect());
        let arrays = self.migrated.names().filter(|name| name.starts_with(SUPPORTING_ARRAYS_PREFIX));
        let arrays: Vec<String> =
            arrays.filter(|name| !names.iter().any(|known| known == name)).map(str::to_owned).collect();
        names.extend(arrays);
        names
    }

    /// `(dtype, shape)` of tensor `name` (or of an extra), the dtype in the language's spelling (`f32`, `bf16`).
    fn info(&self, py: Python<'_>, name: &str) -> PyResult<(String, Vec<u64>)> {
        let extra = || self.migrated.extras().iter().find(|info| info.name == name);
        match self.migrated.info(name).or_else(extra) {
            Some(info) => Ok((info.dtype.to_string(), info.shape.clone())),
            None => Err(errors::view_error(py, &ViewError::UnknownTensor(name.to_owned()))),
        }
    }

    /// The bytes of tensor `name`: borrowed from the map or computed (without the GIL).
    #[pyo3(signature = (name, writable=false))]
    fn tensor(slf: &Bound<'_, Open>, name: &str, writable: bool) -> PyResult<Bytes> {
        let open = slf.get();
        let read = slf.py().detach(|| open.migrated.tensor(name));
        Open::bytes(slf, read, writable)
    }

    /// The bytes of rows `start..end` of tensor `name`'s first axis, pushed down to the
    /// source: borrowed when the narrowed plan is a byte range, computed otherwise.
    #[pyo3(signature = (name, start, end, writable=false))]
    fn rows(slf: &Bound<'_, Open>, name: &str, start: u64, end: u64, writable: bool) -> PyResult<Bytes> {
        let open = slf.get();
        let read = slf.py().detach(|| open.migrated.slice(name, start..end));
        Open::bytes(slf, read, writable)
    }

    /// Writes tensor `name` into `out`, a writable, C-contiguous `uint8` array of exactly
    /// its byte count (a NumPy array over a model parameter's memory), without the GIL:
    /// borrowed bytes are read from the file with `pread`, computed ones computed straight
    /// into it.
    fn read_into(&self, py: Python<'_>, name: &str, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let (address, len) = writable_bytes(out)?;
        py.detach(|| {
            // SAFETY: `out` (borrowed for this call, so alive) describes `len` writable bytes
            // at `address` (checked by `writable_bytes`); nothing in this call touches them
            // otherwise. As with NumPy's own GIL-free kernels, a Python thread writing to the
            // same array meanwhile is the program's own race.
            let out: &mut [u8] =
                if len == 0 { &mut [] } else { unsafe { std::slice::from_raw_parts_mut(address as *mut u8, len) } };
            self.migrated.read_into(name, out)
        })
        .map_err(|err| errors::view_error(py, &err))
    }

    /// Writes tensors `names[i]` into `outs[i]` (each as `read_into` takes it) on the
    /// machine's cores, without the GIL: borrowed bytes are read from the file with
    /// `pread` in chunks the threads share, computed ones computed straight into their
    /// array (and the map pages they read released after). Every size is checked before
    /// anything is written; the arrays must not overlap.
    fn read_many_into(&self, py: Python<'_>, names: Vec<String>, outs: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        if names.len() != outs.len() {
            let message = format!("read_many_into got {} names and {} arrays", names.len(), outs.len());
            return Err(pyo3::exceptions::PyValueError::new_err(message));
        }
        let spans = outs.iter().map(writable_bytes).collect::<PyResult<Vec<_>>>()?;
        check_disjoint(&names, &spans)?;
        let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        py.detach(|| {
            let outputs = names
                .iter()
                .zip(spans)
                .map(|(name, (address, len))| {
                    // SAFETY: as in `read_into`, each array (borrowed for this call) describes
                    // `len` writable bytes at `address`; `check_disjoint` proved that no two
                    // of them share a byte, so the slices alias nothing.
                    let out: &mut [u8] = if len == 0 {
                        &mut []
                    } else {
                        unsafe { std::slice::from_raw_parts_mut(address as *mut u8, len) }
                    };
                    (name.as_str(), out)
                })
                .collect();
            self.migrated.read_many_into(outputs, threads)
        })
        .map_err(|err| errors::view_error(py, &err))
    }

    /// Unmaps this process's pages of the sources `name` reads (after copying it where it
    /// belongs); see `MigratedView::release`.
    fn release(&self, name: &str) {
        self.migrated.release(name);
    }

    /// Whether `tensor(name)` is borrowed from the memory map rather than computed.
    fn is_zero_copy(&self, name: &str) -> bool {
        self.migrated.is_zero_copy(name)
    }

    /// The output `__metadata__`.
    fn metadata(&self) -> BTreeMap<String, String> {
        self.migrated.metadata().clone()
    }

    /// The version the file is at (`family@version`).
    #[getter]
    fn source_version(&self) -> String {
        self.migrated.from_version().to_string()
    }

    /// The version the view shows (`family@version`).
    #[getter]
    fn target_version(&self) -> String {
        self.migrated.to_version().to_string()
    }

    /// The steps of the plan, as the CLI writes them: `from -> to`, with ` (undo)` for a
    /// migration run backwards.
    #[getter]
    fn steps(&self) -> Vec<String> {
        self.migrated
            .plan()
            .steps
            .iter()
            .map(|step| format!("{} -> {}{}", step.from, step.to, if step.inverse { " (undo)" } else { "" }))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "<safeshift checkpoint {} ({} -> {}, {} tensors)>",
            self.path.display(),
            self.migrated.from_version(),
            self.migrated.to_version(),
            self.migrated.names().len()
        )
    }
}

/// The address and length of `array`'s bytes, from NumPy's array interface, when it is a
/// writable, C-contiguous, flat `uint8` array; a `TypeError` otherwise.
fn writable_bytes(array: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
    let wrong = |what: &str| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "read_into needs a writable, contiguous, flat uint8 array: {what}"
        ))
    };
    let interface = array.getattr("__array_interface__").map_err(|_| wrong("no __array_interface__"))?;
    let typestr: String = interface.get_item("typestr")?.extract()?;
    if typestr != "|u1" {
        return Err(wrong(&format!("its type is {typestr}")));
    }
    let shape: Vec<usize> = interface.get_item("shape")?.extract()?;
    let [len] = shape[..] else {
        return Err(wrong(&format!("its shape is {shape:?}")));
    };
    let contiguous = match interface.get_item("strides") {
        Ok(strides) => strides.is_none() || strides.extract::<Vec<isize>>().is_ok_and(|strides| strides == [1]),
        Err(_) => true,
    };
    if !contiguous {
        return Err(wrong("it is strided"));
    }
    let (address, readonly): (usize, bool) = interface.get_item("data")?.extract()?;
    if readonly {
        return Err(wrong("it is read-only"));
    }
    if address == 0 && len > 0 {
        return Err(wrong("it has no data"));
    }
    Ok((address, len))
}

/// A `ValueError` when two of the byte spans `(address, len)` share a byte (tied
/// parameters: filling them at once from two threads would race).
fn check_disjoint(names: &[String], spans: &[(usize, usize)]) -> PyResult<()> {
    let mut order: Vec<usize> = (0..spans.len()).filter(|&i| spans[i].1 > 0).collect();
    order.sort_by_key(|&i| spans[i].0);
    for pair in order.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        if spans[first].0 + spans[first].1 > spans[second].0 {
            let message = format!("read_many_into: the arrays for `{}` and `{}` overlap", names[first], names[second]);
            return Err(pyo3::exceptions::PyValueError::new_err(message));
        }
    }
    Ok(())
}
