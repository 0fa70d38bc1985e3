//! A checkpoint written to safetensors as it is, no migration: what `safeshift convert`
//! does. Any input the engine reads (a PyTorch pickle, run nothing; a sharded set of
//! pickles or safetensors files) is opened once and written through its pass-through
//! view: contiguous tensors copied as file ranges, views materialised one at a time by the
//! writer, the extras after the state dict (their names under
//! [`EXTRAS_KEY`](safeshift_model::keys::EXTRAS_KEY)), the reader's metadata kept.

use std::path::{Path, PathBuf};

use safeshift_engine::{
    Checkpoint, InputFormat, MigratedView, ReadError, ReadOptions, TensorOrder, ViewError, WriteError, WriteOptions,
};
use safeshift_torch::ConvertOptions;

/// A written conversion: the view it was written from, and the output's size.
pub struct Conversion {
    view: MigratedView,
    bytes: u64,
}

impl Conversion {
    /// The output's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The input as read (its layout, extras, files).
    pub fn checkpoint(&self) -> &Checkpoint {
        self.view.source()
    }

    /// For a single PyTorch file, what its reader found (classes read as data, gadgets,
    /// aliases of tied tensors, metadata).
    pub fn pickle(&self) -> Option<&safeshift_torch::Converted> {
        self.view.source().pickle()
    }
}

/// Why a checkpoint could not be converted. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input could not be read (or holds gadgets and they were not allowed).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A single input that is a safetensors file already.
    #[error("`{}`: not a PyTorch checkpoint: it is a safetensors file already", .0.display())]
    AlreadySafetensors(PathBuf),
    /// The tensors do not fit the files.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The output could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Converts `input` (a PyTorch file, or a sharded set's index) to the safetensors file
/// `output`, written atomically, as `options` say which tensors to take.
pub fn convert(input: &Path, output: &Path, options: &ConvertOptions) -> Result<Conversion, ConvertError> {
    let checkpoint = Checkpoint::open_with(input, &ReadOptions { pickle: options.clone(), ..ReadOptions::default() })?;
    if *checkpoint.format() == InputFormat::Safetensors && checkpoint.index_metadata().is_none() {
        return Err(ConvertError::AlreadySafetensors(input.to_owned()));
    }
    let view = MigratedView::pass_through(checkpoint)?;
    let summary = view.write_to(output, &WriteOptions { order: TensorOrder::AsGiven, ..WriteOptions::default() })?;
    Ok(Conversion { view, bytes: summary.bytes })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use safeshift_model::keys::{EXTRAS_KEY, TORCH_CHECKPOINT_KEY};

    use super::*;

    fn data(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
    }

    /// An Anemoi training checkpoint: its state dict, then its graph and supporting arrays
    /// as extras, every tensor with the bytes the pickle holds.
    #[test]
    fn a_pickle_is_written_with_its_extras_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.safetensors");
        let input = data("anemoi-checkpoints/0.4.0/training.ckpt");
        let conversion = convert(&input, &output, &ConvertOptions::default()).unwrap();
        let pickle = conversion.pickle().expect("a single PyTorch file");
        assert!(!pickle.extras().is_empty(), "the graph is kept");
        assert_eq!(conversion.bytes(), std::fs::metadata(&output).unwrap().len());

        let written = Checkpoint::open(&output).unwrap();
        let names = |infos: &[safeshift_model::TensorInfo]| -> Vec<String> {
            infos.iter().map(|info| info.name.clone()).collect()
        };
        let expected: Vec<String> = pickle.tensors().iter().map(|tensor| tensor.name.clone()).collect();
        assert_eq!(names(&written.layout().tensors), expected, "the state dict, in state-dict order");
        let extras: Vec<String> = pickle.extras().iter().map(|tensor| tensor.name.clone()).collect();
        assert_eq!(names(written.extras()), extras);
        for (index, tensor) in pickle.tensors().iter().enumerate() {
            assert_eq!(written.tensor_bytes(&tensor.name).unwrap(), pickle.data(index), "{}", tensor.name);
        }
        let metadata: &BTreeMap<String, String> = &written.layout().metadata;
        assert!(metadata.contains_key(TORCH_CHECKPOINT_KEY));
        assert!(!metadata.contains_key(EXTRAS_KEY), "the extras' record is read back as extras");
    }

    #[test]
    fn a_safetensors_file_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.safetensors");
        let input = data("anemoi/0.4.0/state_dict.safetensors");
        let err = convert(&input, &output, &ConvertOptions::default()).err().expect("not a pickle");
        assert!(matches!(err, ConvertError::AlreadySafetensors(_)), "{err}");
        assert!(!output.exists());
    }
}
