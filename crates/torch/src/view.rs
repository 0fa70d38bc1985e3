//! Strided views of storages: checking that a view fits its storage, and materialising it as
//! C-contiguous little-endian bytes (borrowed when it already is).

use std::borrow::Cow;
use std::ops::Range;

use safeshift_model::DType;

/// A checked view: where its storage lies in the file and how to read it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct View {
    /// The storage's bytes in the source.
    pub storage: Range<usize>,
    pub dtype: DType,
    /// Offset in elements.
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
    /// The storage is big-endian: swap each element (each half of a complex).
    pub big_endian: bool,
}

impl View {
    /// Checks that every element the view reads lies inside the storage; returns the number
    /// of bytes the materialised tensor has.
    pub fn check(&self) -> Result<u64, String> {
        let size = self.dtype.size().ok_or_else(|| format!("dtype {} is not whole bytes", self.dtype))? as u64;
        let numel = self.shape.iter().try_fold(1u64, |acc, &dim| acc.checked_mul(dim)).ok_or("shape overflows")?;
        let bytes = numel.checked_mul(size).ok_or("byte size overflows")?;
        if numel == 0 {
            return Ok(0);
        }
        let storage_elements = (self.storage.len() as u64) / size;
        let last = self.shape.iter().zip(&self.stride).try_fold(self.offset, |acc, (&dim, &stride)| {
            (dim - 1).checked_mul(stride).and_then(|step| acc.checked_add(step))
        });
        match last {
            Some(last) if last < storage_elements => Ok(bytes),
            _ => Err(format!(
                "view (offset {}, size {:?}, stride {:?}) reads past its storage of {storage_elements} elements",
                self.offset, self.shape, self.stride
            )),
        }
    }

    /// Whether the elements are consecutive in C order (dims of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&dim, &stride) in self.shape.iter().zip(&self.stride).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(dim);
        }
        true
    }

    /// The tensor's bytes in C order, little-endian; borrowed from `source` when possible.
    /// The view must have passed [`View::check`].
    pub fn materialise<'a>(&self, source: &'a [u8]) -> Cow<'a, [u8]> {
        let size = self.dtype.size().expect("checked");
        let numel: u64 = self.shape.iter().product();
        let storage = &source[self.storage.clone()];
        if numel == 0 {
            return Cow::Borrowed(&[]);
        }
        let mut bytes = if self.is_contiguous() {
            let start = self.offset as usize * size;
            Cow::Borrowed(&storage[start..start + numel as usize * size])
        } else {
            Cow::Owned(self.gather(storage, size, numel as usize))
        };
        if self.big_endian && size > 1 {
            let unit = if self.dtype == DType::C64 { 4 } else { size };
            for element in bytes.to_mut().chunks_exact_mut(unit) {
                element.reverse();
            }
        }
        bytes
    }

    /// Copies a strided view element by element, innermost runs at a time.
    fn gather(&self, storage: &[u8], size: usize, numel: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(numel * size);
        let rank = self.shape.len();
        if rank == 0 {
            let start = self.offset as usize * size;
            out.extend_from_slice(&storage[start..start + size]);
            return out;
        }
        let inner_dim = self.shape[rank - 1] as usize;
        let inner_stride = self.stride[rank - 1] as usize;
        let mut index = vec![0u64; rank - 1];
        loop {
            let base = self.offset + index.iter().zip(&self.stride).map(|(&i, &stride)| i * stride).sum::<u64>();
            let base = base as usize;
            if inner_stride == 1 {
                out.extend_from_slice(&storage[base * size..(base + inner_dim) * size]);
            } else {
                for i in 0..inner_dim {
                    let at = (base + i * inner_stride) * size;
                    out.extend_from_slice(&storage[at..at + size]);
                }
            }
            // Odometer over the outer dims.
            let mut dim = rank - 1;
            loop {
                if dim == 0 {
                    return out;
                }
                dim -= 1;
                index[dim] += 1;
                if index[dim] < self.shape[dim] {
                    break;
                }
                index[dim] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(storage_len: usize, offset: u64, shape: &[u64], stride: &[u64]) -> View {
        View {
            storage: 0..storage_len,
            dtype: DType::U8,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            big_endian: false,
        }
    }

    #[test]
    fn contiguous_views_are_borrowed() {
        let source: Vec<u8> = (0..12).collect();
        let v = view(12, 2, &[2, 3], &[3, 1]);
        assert_eq!(v.check(), Ok(6));
        assert!(matches!(v.materialise(&source), Cow::Borrowed(&[2, 3, 4, 5, 6, 7])));
    }

    #[test]
    fn transposed_expanded_and_overlapping_views_are_gathered_in_c_order() {
        let source: Vec<u8> = (0..12).collect();
        assert_eq!(&*view(12, 0, &[3, 2], &[1, 3]).materialise(&source), &[0, 3, 1, 4, 2, 5]);
        assert_eq!(&*view(12, 1, &[2, 3], &[0, 1]).materialise(&source), &[1, 2, 3, 1, 2, 3]);
        assert_eq!(&*view(12, 0, &[3, 2], &[1, 1]).materialise(&source), &[0, 1, 1, 2, 2, 3]);
        assert_eq!(&*view(12, 5, &[], &[]).materialise(&source), &[5]);
    }

    #[test]
    fn views_past_their_storage_are_refused() {
        assert!(view(12, 0, &[4, 4], &[4, 1]).check().is_err());
        assert!(view(12, 11, &[2], &[1]).check().is_err());
        assert!(view(12, 0, &[u64::MAX, 2], &[u64::MAX, 1]).check().is_err());
        assert_eq!(view(0, 100, &[0, 4], &[4, 1]).check(), Ok(0));
    }

    #[test]
    fn big_endian_elements_are_swapped() {
        let source = [0x3f, 0x80, 0, 0];
        let v = View { dtype: DType::F32, big_endian: true, ..view(4, 0, &[1], &[1]) };
        assert_eq!(f32::from_le_bytes(v.materialise(&source).as_ref().try_into().unwrap()), 1.0);
    }

    /// The reference: element `(i0, i1, …)` read from `storage[offset + Σ i_k * stride_k]`,
    /// one index at a time.
    fn naive(view: &View, source: &[u8]) -> Vec<u8> {
        let size = view.dtype.size().unwrap();
        let numel: u64 = view.shape.iter().product();
        let mut out = Vec::new();
        for flat in 0..numel {
            let mut rest = flat;
            let mut at = view.offset;
            for (dim, stride) in view.shape.iter().zip(&view.stride).rev() {
                at += (rest % dim) * stride;
                rest /= dim;
            }
            let at = view.storage.start + at as usize * size;
            out.extend_from_slice(&source[at..at + size]);
        }
        out
    }

    fn arb_view() -> impl proptest::strategy::Strategy<Value = (View, Vec<u8>)> {
        use proptest::prelude::*;
        // Ranks 0-4 with dims 0-4 cover 0-d, empty, expanded (stride 0) and overlapping views.
        (
            prop::collection::vec((0u64..5, 0u64..7), 0..5),
            0u64..6,
            prop::sample::select(vec![DType::U8, DType::BF16, DType::F32, DType::C64]),
        )
            .prop_map(|(dims, offset, dtype)| {
                let shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
                let stride: Vec<u64> = dims.iter().map(|d| d.1).collect();
                let size = dtype.size().unwrap();
                let last = offset + shape.iter().zip(&stride).map(|(&d, &s)| d.saturating_sub(1) * s).sum::<u64>();
                let storage_len = (last as usize + 1) * size;
                let source: Vec<u8> = (0..storage_len + 3).map(|i| (i * 7 + 3) as u8).collect();
                let view = View { storage: 3..storage_len + 3, dtype, offset, shape, stride, big_endian: false };
                (view, source)
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
        ))]

        /// Materialising (borrowed or gathered) equals the element-by-element reference, and a
        /// view sized to fit its storage passes the check. `PROPTEST_CASES` sets the case count.
        #[test]
        fn materialise_equals_the_reference((view, source) in arb_view()) {
            let bytes = view.check().unwrap();
            let got = view.materialise(&source);
            proptest::prop_assert_eq!(got.len() as u64, bytes);
            let expected = naive(&view, &source);
            proptest::prop_assert_eq!(got.as_ref(), expected.as_slice());
        }

        /// One element less of storage makes any non-empty view fail the check.
        #[test]
        fn a_storage_one_element_short_is_refused((view, _source) in arb_view()) {
            let size = view.dtype.size().unwrap();
            if view.shape.iter().product::<u64>() > 0 {
                let short = View { storage: view.storage.start..view.storage.end - size, ..view };
                proptest::prop_assert!(short.check().is_err());
            }
        }
    }
}
