//! Invariants: what the writer writes, the reader reads back equal (and the reference
//! `safetensors` crate reads it equal too, and writes the very same bytes); no mutation
//! of a valid file panics the reader. `PROPTEST_CASES` raises the case count (64 here).

use std::borrow::Cow;
use std::collections::BTreeMap;

use proptest::prelude::*;
use safeshift_engine::{write, Checkpoint, OutputTensor, TensorOrder, TensorSource, WriteOptions};

use crate::strategies::{arb_metadata, arb_mutation, arb_tensors, TestTensor};
use crate::util::reference_dtype;

fn outputs(tensors: &[TestTensor]) -> Vec<OutputTensor<'_>> {
    tensors
        .iter()
        .map(|tensor| OutputTensor {
            name: tensor.name.clone(),
            dtype: tensor.dtype,
            shape: tensor.shape.clone(),
            source: TensorSource::Bytes(Cow::Borrowed(&tensor.bytes)),
        })
        .collect()
}

fn reference_bytes(tensors: &[TestTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|tensor| {
            let shape = tensor.shape.iter().map(|&dim| dim as usize).collect();
            let view =
                safetensors::tensor::TensorView::new(reference_dtype(tensor.dtype), shape, &tensor.bytes).unwrap();
            (tensor.name.clone(), view)
        })
        .collect();
    let info = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    safetensors::serialize(views, info).unwrap()
}

proptest! {
    #![proptest_config(crate::strategies::config())]

    #[test]
    fn written_tensors_read_back_equal(
        tensors in arb_tensors(),
        metadata in arb_metadata(),
        as_given in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.safetensors");
        let order = if as_given { TensorOrder::AsGiven } else { TensorOrder::Safetensors };
        let options = WriteOptions { metadata: metadata.clone(), order, ..WriteOptions::default() };
        write(&path, outputs(&tensors), &options).unwrap();

        let checkpoint = Checkpoint::open(&path).unwrap();
        prop_assert_eq!(&checkpoint.layout().metadata, &metadata);
        prop_assert_eq!(checkpoint.layout().tensors.len(), tensors.len());
        if as_given {
            let names: Vec<&str> = checkpoint.layout().tensors.iter().map(|t| t.name.as_str()).collect();
            let given: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            prop_assert_eq!(names, given);
        }
        let image = std::fs::read(&path).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&image).unwrap();
        let (_, reference_metadata) = safetensors::SafeTensors::read_metadata(&image).unwrap();
        let reference_metadata: BTreeMap<String, String> =
            reference_metadata.metadata().clone().unwrap_or_default().into_iter().collect();
        prop_assert_eq!(&reference_metadata, &metadata);
        for tensor in &tensors {
            let info = checkpoint.tensor(&tensor.name).unwrap();
            prop_assert_eq!(info.dtype, tensor.dtype);
            prop_assert_eq!(&info.shape, &tensor.shape);
            prop_assert_eq!(checkpoint.tensor_bytes(&tensor.name).unwrap(), &tensor.bytes[..]);
            let view = reference.tensor(&tensor.name).unwrap();
            prop_assert_eq!(view.data(), &tensor.bytes[..]);
            prop_assert_eq!(view.dtype(), reference_dtype(tensor.dtype));
        }

        // And the other way: what the reference crate writes (metadata keys in hash
        // order when there are several) we read back equal.
        let reference_path = dir.path().join("reference.safetensors");
        std::fs::write(&reference_path, reference_bytes(&tensors, &metadata)).unwrap();
        let from_reference = Checkpoint::open(&reference_path).unwrap();
        prop_assert_eq!(&from_reference.layout().metadata, &metadata);
        for tensor in &tensors {
            prop_assert_eq!(from_reference.tensor_bytes(&tensor.name).unwrap(), &tensor.bytes[..]);
            prop_assert_eq!(&from_reference.tensor(&tensor.name).unwrap().shape, &tensor.shape);
        }
    }

    #[test]
    fn output_is_byte_identical_to_the_reference_crate(
        tensors in arb_tensors(),
        metadata in proptest::collection::btree_map("\\PC{0,6}", "\\PC{0,10}", 0..2),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.safetensors");
        let options = WriteOptions { metadata: metadata.clone(), ..WriteOptions::default() };
        write(&path, outputs(&tensors), &options).unwrap();
        prop_assert_eq!(std::fs::read(&path).unwrap(), reference_bytes(&tensors, &metadata));
    }

    #[test]
    fn mutated_files_never_panic_the_reader(
        tensors in arb_tensors(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut image = reference_bytes(&tensors, &BTreeMap::new());
        for mutation in &mutations {
            mutation.apply(&mut image);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mutated.safetensors");
        std::fs::write(&path, &image).unwrap();
        if let Ok(checkpoint) = Checkpoint::open(&path) {
            for info in &checkpoint.layout().tensors {
                let bytes = checkpoint.tensor_bytes(&info.name).unwrap();
                prop_assert_eq!(Some(bytes.len() as u64), info.byte_len());
                if !info.shape.is_empty() {
                    let _ = checkpoint.narrow(&info.name, info.shape.len() - 1, 0, info.shape[info.shape.len() - 1]);
                }
            }
            safeshift_engine::verify(&checkpoint).unwrap();
        }
    }
}

#[test]
fn narrow_borrows_contiguous_slices_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.safetensors");
    // A [2, 3] u8 tensor 0..6, a [1, 4, 2] one 0..8 and an F4 [2, 3].
    let a: Vec<u8> = (0..6).collect();
    let b: Vec<u8> = (0..8).collect();
    let packed = [0x10u8, 0x32, 0x54];
    let tensors = vec![
        TestTensor { name: "a".into(), dtype: safeshift_model::DType::U8, shape: vec![2, 3], bytes: a },
        TestTensor { name: "b".into(), dtype: safeshift_model::DType::U8, shape: vec![1, 4, 2], bytes: b },
        TestTensor { name: "p".into(), dtype: safeshift_model::DType::F4, shape: vec![2, 3], bytes: packed.to_vec() },
    ];
    write(&path, outputs(&tensors), &WriteOptions::default()).unwrap();
    let checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(checkpoint.narrow("a", 0, 1, 1).unwrap(), Some(&[3u8, 4, 5][..]));
    assert_eq!(checkpoint.narrow("a", 1, 1, 2).unwrap(), None, "columns of a [2, 3] are strided");
    assert_eq!(checkpoint.narrow("b", 1, 1, 2).unwrap(), Some(&[2u8, 3, 4, 5][..]), "leading axis of size 1");
    assert_eq!(checkpoint.narrow("b", 2, 0, 1).unwrap(), None);
    assert_eq!(checkpoint.narrow("p", 0, 1, 1).unwrap(), None, "row 1 of F4 [2, 3] starts mid-byte");
    assert_eq!(checkpoint.narrow("a", 0, 2, 0).unwrap(), Some(&[][..]));
    assert_eq!(checkpoint.narrow("a", 1, 3, 0).unwrap(), Some(&[][..]), "an empty range is contiguous");
    let err = checkpoint.narrow("a", 0, 1, 2).unwrap_err();
    assert!(err.to_string().contains("cannot take 2 elements from 1 along axis 0"), "{err}");
    assert!(checkpoint.narrow("a", 2, 0, 1).is_err());
    assert!(checkpoint.narrow("zz", 0, 0, 1).is_err());
}
