//! Filling a loader's buffers (a model's parameters) with a view's tensors.
//!
//! A loader that already owns the destination memory wants each byte copied once, from
//! the page cache straight into it. A tensor borrowed from a file is read with `pread`:
//! one kernel copy, no page of the map faulted in (so none to release afterwards, and the
//! resident set never holds the file). A computed tensor is computed into its buffer by
//! the kernels. [`MigratedView::read_many_into`] spreads the work over threads, cutting
//! borrowed tensors into chunks so that a few large tensors still keep every thread busy.

use std::sync::Mutex;

use crate::view::{MigratedView, Origin, ViewError};

/// The bytes one `pread` of a borrowed tensor reads in [`MigratedView::read_many_into`]:
/// small enough to balance a few large tensors over the threads, large enough that the
/// system calls cost nothing next to the copy.
const READ_CHUNK: usize = 4 << 20;

/// One piece of work: part of one output.
struct Part<'view, 'out> {
    origin: Origin<'view>,
    /// Where `out` starts within the output tensor.
    offset: u64,
    out: &'out mut [u8],
}

impl MigratedView {
    /// Writes the bytes of tensor `name` (not an extra) into `out`, which must be exactly
    /// its byte count: a loader's destination (a model's parameter) filled with no buffer
    /// in between. Borrowed tensors are read from the file with `pread` (the map is not
    /// touched); computed ones are computed straight into `out` by the kernels, as the
    /// writer does.
    pub fn read_into(&self, name: &str, out: &mut [u8]) -> Result<(), ViewError> {
        let index = self.sized_index(name, out.len())?;
        let origin = self.origin(index)?;
        self.fill(Part { origin, offset: 0, out })
    }

    /// Like [`read_into`](MigratedView::read_into) for many tensors at once, on up to
    /// `threads` threads: every buffer is checked against its tensor's byte count before
    /// anything is written. Borrowed tensors are read in chunks of a few MiB, so the
    /// threads share large tensors too. After a computed tensor is written, the map pages
    /// of the sources it read are released ([`release`](MigratedView::release)), so the
    /// resident set stays bounded. On an error, buffers may be partly written.
    pub fn read_many_into(&self, outputs: Vec<(&str, &mut [u8])>, threads: usize) -> Result<(), ViewError> {
        let mut computed = Vec::new();
        let mut read = Vec::new();
        for (name, out) in outputs {
            let index = self.sized_index(name, out.len())?;
            match self.origin(index)? {
                origin @ Origin::Range { mapped: true, .. } => {
                    for (number, chunk) in out.chunks_mut(READ_CHUNK).enumerate() {
                        let offset = (number * READ_CHUNK) as u64;
                        read.push(Part { origin, offset, out: chunk });
                    }
                }
                origin => computed.push(Part { origin, offset: 0, out }),
            }
        }
        // The longest jobs first (tensors computed or built whole), so that no thread is
        // left with one of them while the others have finished.
        computed.append(&mut read);
        let parts = computed;
        let threads = threads.clamp(1, parts.len().max(1));
        if threads == 1 {
            return parts.into_iter().try_for_each(|part| self.fill_and_release(part));
        }
        let queue = Mutex::new(parts.into_iter());
        let failure: Mutex<Option<ViewError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    if failure.lock().expect("no panics while holding the lock").is_some() {
                        break;
                    }
                    let Some(part) = queue.lock().expect("no panics while holding the lock").next() else {
                        break;
                    };
                    if let Err(err) = self.fill_and_release(part) {
                        failure.lock().expect("no panics while holding the lock").get_or_insert(err);
                        break;
                    }
                });
            }
        });
        match failure.into_inner().expect("no panics while holding the lock") {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn fill_and_release(&self, part: Part<'_, '_>) -> Result<(), ViewError> {
        let computed = match part.origin {
            Origin::Computed { name, expr } => Some((name, expr)),
            Origin::Range { .. } => None,
        };
        self.fill(part)?;
        if let Some((name, expr)) = computed {
            self.release_sources(name, expr);
        }
        Ok(())
    }

    fn fill(&self, part: Part<'_, '_>) -> Result<(), ViewError> {
        let Part { origin, offset, out } = part;
        match origin {
            Origin::Range { checkpoint, leaf, start, .. } => Ok(checkpoint.read_range(leaf, start + offset, out)?),
            Origin::Computed { name, expr } => {
                debug_assert_eq!(offset, 0, "computed tensors are filled whole");
                self.compute_into(name, expr, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;
    use std::path::Path;

    use safeshift_model::{DType, DTypeClass, Sym};
    use safeshift_ops::{Expr, Leaf, PlannedTensor, TensorValue};

    use super::*;
    use crate::writer::{OutputTensor, TensorSource, WriteOptions};
    use crate::Checkpoint;

    /// A file with `count` tensors `w{i}` of `rows` x 256 bytes each, every byte different
    /// from its neighbours', and a view that borrows every third one whole, borrows a row
    /// range of the next and transposes the last (computed).
    fn many(dir: &Path, count: usize, rows: u64) -> MigratedView {
        let path = dir.join("many.safetensors");
        let tensors: Vec<OutputTensor<'_>> = (0..count)
            .map(|i| {
                let bytes = (0..rows * 256).map(|b| ((b * 7 + i as u64 * 13) % 251) as u8).collect();
                OutputTensor {
                    name: format!("w{i}"),
                    dtype: DType::U8,
                    shape: vec![rows, 256],
                    source: TensorSource::Bytes(Cow::Owned(bytes)),
                }
            })
            .collect();
        crate::write(&path, tensors, &WriteOptions::default()).unwrap();
        let leaf = |i: usize| {
            Expr::Source(Leaf {
                aux: None,
                name: format!("w{i}"),
                dtype: DTypeClass::Exact(DType::U8),
                shape: vec![Sym::int(rows as i64), Sym::int(256)],
            })
        };
        let planned = (0..count)
            .map(|i| {
                let expr = match i % 3 {
                    0 => leaf(i),
                    1 => Expr::Narrow {
                        input: Box::new(leaf(i)),
                        axis: 0,
                        start: Sym::int(1),
                        len: Sym::int(rows as i64 - 1),
                    },
                    _ => Expr::Permute { input: Box::new(leaf(i)), axes: vec![1, 0] },
                };
                PlannedTensor::new(format!("out{i}"), TensorValue::new(expr).unwrap()).unwrap()
            })
            .collect();
        MigratedView::new(Checkpoint::open(&path).unwrap(), BTreeMap::new(), planned, BTreeMap::new()).unwrap()
    }

    fn buffers(view: &MigratedView) -> Vec<Vec<u8>> {
        view.layout().tensors.iter().map(|info| vec![0xAA; info.byte_len().unwrap() as usize]).collect()
    }

    fn fill_all(view: &MigratedView, buffers: &mut [Vec<u8>], threads: usize) -> Result<(), ViewError> {
        let outputs =
            view.names().zip(buffers.iter_mut()).map(|(name, buffer)| (name, buffer.as_mut_slice())).collect();
        view.read_many_into(outputs, threads)
    }

    /// Many small tensors on several threads: every buffer holds what `tensor` gives,
    /// borrowed (read with `pread`) or computed.
    #[test]
    fn many_small_tensors_are_filled_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let view = many(dir.path(), 60, 3);
        for threads in [1, 2, 7] {
            let mut filled = buffers(&view);
            fill_all(&view, &mut filled, threads).unwrap();
            for (name, buffer) in view.names().zip(&filled) {
                assert_eq!(buffer.as_slice(), view.tensor(name).unwrap().as_ref(), "{name} on {threads} thread(s)");
            }
        }
        assert!(view.is_zero_copy("out0") && view.is_zero_copy("out1") && !view.is_zero_copy("out2"));
    }

    /// Tensors larger than a chunk are read in several `pread`s, by several threads,
    /// each chunk landing at its place (a row range of a source starts mid-tensor).
    #[test]
    fn large_tensors_are_read_in_chunks_at_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let rows = (READ_CHUNK as u64 * 5 / 2) / 256 + 3; // two and a half chunks, and a bit
        let view = many(dir.path(), 3, rows);
        let mut filled = buffers(&view);
        fill_all(&view, &mut filled, 3).unwrap();
        for (name, buffer) in view.names().zip(&filled) {
            assert_eq!(buffer.as_slice(), view.tensor(name).unwrap().as_ref(), "{name}");
        }
        // The same bytes as the map gives for the borrowed ones, one by one too.
        let mut one = vec![0; filled[1].len()];
        view.read_into("out1", &mut one).unwrap();
        assert_eq!(one, filled[1]);
    }

    /// Every size is checked before a byte is written.
    #[test]
    fn a_wrong_size_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let view = many(dir.path(), 4, 3);
        let mut filled = buffers(&view);
        filled[3].push(0xAA);
        let err = fill_all(&view, &mut filled, 2).unwrap_err();
        assert_eq!(err.to_string(), "cannot read `out3` into a buffer of 769 bytes: the tensor has 768");
        assert!(filled.iter().all(|buffer| buffer.iter().all(|&byte| byte == 0xAA)));
        let unknown = view.read_many_into(vec![("nope", &mut [][..])], 2).unwrap_err();
        assert!(matches!(unknown, ViewError::UnknownTensor(_)), "{unknown}");
    }

    /// A file cut short after opening gives a typed error, not a fault (the bytes are read
    /// with `pread`, not through the map).
    #[test]
    fn a_truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let view = many(dir.path(), 3, 5000);
        let file = std::fs::OpenOptions::new().write(true).open(dir.path().join("many.safetensors")).unwrap();
        file.set_len(1000).unwrap();
        let mut filled = buffers(&view);
        let outputs = vec![("out0", filled[0].as_mut_slice())];
        let err = view.read_many_into(outputs, 2).unwrap_err();
        assert!(err.to_string().contains("many.safetensors"), "{err}");
    }
}
