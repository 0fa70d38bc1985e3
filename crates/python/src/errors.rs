//! Rust errors as the package's Python exceptions, with the messages the CLI prints.
//!
//! The classes live in `safeshift/errors.py` (so they can also derive from `KeyError`,
//! `OSError`, …); this file only picks the class and writes the message.

use std::error::Error;

use pyo3::prelude::*;
use safeshift::engine::{ReadErrorKind, ViewError};
use safeshift::{OpenError, RegistryError};

/// A Python exception of class `safeshift.errors.<class>` with `message`.
pub fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import("safeshift.errors")
        .and_then(|errors| errors.getattr(class))
        .and_then(|class| class.call1((message.clone(),)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        // The package is broken (the module is missing): still say what went wrong.
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}

/// The error's message followed by its causes that it does not already show.
fn message(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

pub fn open_error(py: Python<'_>, err: &OpenError) -> PyErr {
    let class = match err {
        OpenError::Read(read)
            if matches!(read.kind, ReadErrorKind::Torch(safeshift::torch::ErrorKind::Forbidden(_))) =>
        {
            // The CLI's advice, in the package's spelling.
            let text = message(err).replace("pass --allow-gadgets", "pass allow_gadgets=True");
            return raise(py, "GadgetError", text);
        }
        OpenError::Read(_) => "ReadError",
        OpenError::Detect { .. } => "DetectError",
        OpenError::Plan { source, .. }
            if matches!(
                source.as_ref(),
                safeshift::graph::PlanError::BadTarget { .. } | safeshift::graph::PlanError::NoDefaultTarget { .. }
            ) =>
        {
            "TargetError"
        }
        OpenError::Plan { .. } => "PlanError",
        OpenError::Lossy { .. } => "LossyError",
        OpenError::Compile { source, .. }
            if matches!(source.as_ref(), safeshift::graph::CompileError::UnknownParam { .. }) =>
        {
            "ParamError"
        }
        OpenError::Compile { .. } | OpenError::View { .. } => "CompileError",
        _ => "SafeshiftError",
    };
    raise(py, class, message(err))
}

pub fn registry_error(py: Python<'_>, err: &RegistryError) -> PyErr {
    let mut text = err.to_string();
    for diagnostic in err.diagnostics.iter().filter(|diagnostic| diagnostic.is_error()) {
        text.push_str(&format!("\n  error[{}]: {}", diagnostic.code, diagnostic.message));
    }
    raise(py, "RegistryError", text)
}

pub fn view_error(py: Python<'_>, err: &ViewError) -> PyErr {
    let class = match err {
        ViewError::UnknownTensor(_) => "UnknownTensorError",
        ViewError::Read(_) => "ReadError",
        _ => "ComputeError",
    };
    raise(py, class, message(err))
}
