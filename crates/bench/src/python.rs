//! The Python baselines' environment: a virtual environment created with
//! `python3 -m venv` and filled from PyPI with pip, cached outside the checkout
//! (`~/.cache/safeshift/bench-venv` by default).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The script doing the bench's migrations the Python way (`bench/python_way.py`).
pub const PYTHON_WAY: &str = include_str!("../../../bench/python_way.py");
/// The script doing the pickle conversion the torch way (`bench/torch_way.py`).
pub const TORCH_WAY: &str = include_str!("../../../bench/torch_way.py");

/// A ready virtual environment.
pub struct Venv {
    /// Its interpreter.
    pub python: PathBuf,
    /// Whether `torch` imports in it.
    pub has_torch: bool,
}

/// Creates (or reuses) `dir` as a virtual environment with `safetensors`, `numpy` and
/// `ml_dtypes`, and `torch` when `with_torch`. `Err` says why the Python
/// baselines are skipped.
pub fn prepare(dir: &Path, with_torch: bool) -> Result<Venv, String> {
    let python = dir.join("bin/python");
    if !python.exists() {
        eprintln!("creating a Python virtual environment in {}", dir.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(dir), "python3 -m venv")?;
    }
    if !imports(&python, "safetensors, numpy, ml_dtypes") {
        eprintln!("installing safetensors, numpy and ml_dtypes from PyPI");
        run(
            Command::new(&python).args(["-m", "pip", "install", "--quiet", "safetensors", "numpy", "ml_dtypes"]),
            "pip install safetensors numpy ml_dtypes",
        )?;
    }
    if with_torch && !imports(&python, "torch, safetensors.torch") {
        // PyPI's wheel (with its CUDA libraries, several GB): downloaded once per machine,
        // since the environment is cached outside the checkout.
        eprintln!("installing torch from PyPI (large, once per machine)");
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "torch"]), "pip install torch")?;
    }
    let has_torch = imports(&python, "torch, safetensors.torch");
    Ok(Venv { python, has_torch })
}

/// Writes the embedded scripts into `dir` and returns (python_way, torch_way) paths.
pub fn write_scripts(dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let python_way = dir.join("python_way.py");
    let torch_way = dir.join("torch_way.py");
    std::fs::write(&python_way, PYTHON_WAY)?;
    std::fs::write(&torch_way, TORCH_WAY)?;
    Ok((python_way, torch_way))
}

fn imports(python: &Path, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|err| format!("{what}: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("");
        return Err(format!("{what} failed: {last}"));
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/safeshift/bench-venv`, else `~/.cache/safeshift/bench-venv`, else
/// `bench-venv` in the system's temporary directory.
pub fn default_venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").filter(|dir| !dir.is_empty()).map(|home| PathBuf::from(home).join(".cache"))
    });
    match cache {
        Some(cache) => cache.join("safeshift/bench-venv"),
        None => std::env::temp_dir().join("bench-venv"),
    }
}
