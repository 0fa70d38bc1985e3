//! Reference implementations over materialised tensors: plain index loops, written
//! independently of the expression machinery so that property tests can hold the lazy
//! plans to them.

use safeshift_model::{DType, Sym};

use crate::cast::{cast_bytes, restore_bytes, scalar_bytes, CastMode};
use crate::expr::Init;
use crate::operation::OpErrorKind;
use crate::tensor_set::EagerTensor;

/// Element size in bytes, for whole-byte dtypes.
pub(crate) fn elem_size(dtype: DType) -> Result<usize, OpErrorKind> {
    dtype.size().ok_or_else(|| OpErrorKind::Data { message: format!("`{dtype}` elements are not whole bytes") })
}

/// The shape as syms.
pub(crate) fn sym_shape(shape: &[u64]) -> Vec<Sym> {
    shape.iter().map(|&dim| Sym::int(dim as i64)).collect()
}

fn numel(shape: &[u64]) -> u64 {
    shape.iter().product()
}

fn row_major_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// Builds a tensor of `out_shape` element by element: `source(index)` gives the flat
/// input index for an output multi-index, or `None` for `fill`.
pub(crate) fn remap(
    input: &EagerTensor,
    out_shape: Vec<u64>,
    fill: Option<&[u8]>,
    source: impl Fn(&[u64]) -> Option<u64>,
) -> Result<EagerTensor, OpErrorKind> {
    let size = elem_size(input.dtype)?;
    let count = numel(&out_shape);
    let mut data = Vec::with_capacity(count as usize * size);
    let mut index = vec![0u64; out_shape.len()];
    for flat in 0..count {
        let mut rest = flat;
        for axis in (0..out_shape.len()).rev() {
            index[axis] = rest % out_shape[axis];
            rest /= out_shape[axis];
        }
        match source(&index) {
            Some(at) => {
                let at = at as usize * size;
                data.extend_from_slice(&input.data[at..at + size]);
            }
            None => data.extend_from_slice(fill.expect("a fill value for out-of-input elements")),
        }
    }
    Ok(EagerTensor { dtype: input.dtype, shape: out_shape, data })
}

/// Axes reordered: output axis `i` is input axis `axes[i]`.
pub(crate) fn permute(input: &EagerTensor, axes: &[usize]) -> Result<EagerTensor, OpErrorKind> {
    let strides = row_major_strides(&input.shape);
    let out_shape = axes.iter().map(|&axis| input.shape[axis]).collect();
    remap(input, out_shape, None, |index| Some(index.iter().zip(axes).map(|(&i, &axis)| i * strides[axis]).sum()))
}

/// Indices `start..start + len` along `axis`.
pub(crate) fn narrow(input: &EagerTensor, axis: usize, start: u64, len: u64) -> Result<EagerTensor, OpErrorKind> {
    if start + len > input.shape[axis] {
        return Err(OpErrorKind::invalid(format!(
            "{start}..{} is beyond axis {axis} of size {}",
            start + len,
            input.shape[axis]
        )));
    }
    let strides = row_major_strides(&input.shape);
    let mut out_shape = input.shape.clone();
    out_shape[axis] = len;
    remap(input, out_shape, None, |index| {
        Some(index.iter().enumerate().map(|(i, &at)| (if i == axis { at + start } else { at }) * strides[i]).sum())
    })
}

/// `after` elements of `value` appended along `axis`.
pub(crate) fn pad(input: &EagerTensor, axis: usize, after: u64, value: f64) -> Result<EagerTensor, OpErrorKind> {
    let fill = scalar_bytes(value, input.dtype).map_err(|err| OpErrorKind::Data { message: err.to_string() })?;
    let strides = row_major_strides(&input.shape);
    let size = input.shape[axis];
    let mut out_shape = input.shape.clone();
    out_shape[axis] += after;
    remap(input, out_shape, Some(&fill), |index| {
        (index[axis] < size).then(|| index.iter().zip(&strides).map(|(&i, &stride)| i * stride).sum())
    })
}

/// Indices along `axis` picked by `indices`.
pub(crate) fn gather(input: &EagerTensor, axis: usize, indices: &[u64]) -> Result<EagerTensor, OpErrorKind> {
    if let Some(bad) = indices.iter().find(|&&index| index >= input.shape[axis]) {
        return Err(OpErrorKind::Data {
            message: format!("index {bad} is out of range for an axis of size {}", input.shape[axis]),
        });
    }
    let strides = row_major_strides(&input.shape);
    let mut out_shape = input.shape.clone();
    out_shape[axis] = indices.len() as u64;
    remap(input, out_shape, None, |index| {
        Some(
            index
                .iter()
                .enumerate()
                .map(|(i, &at)| (if i == axis { indices[at as usize] } else { at }) * strides[i])
                .sum(),
        )
    })
}

/// Tensors joined along `axis`.
pub(crate) fn concat(parts: &[&EagerTensor], axis: usize) -> Result<EagerTensor, OpErrorKind> {
    let first = parts[0];
    let size = elem_size(first.dtype)?;
    for part in parts {
        let agrees = part.dtype == first.dtype
            && part.shape.len() == first.shape.len()
            && (0..first.shape.len()).all(|i| i == axis || part.shape[i] == first.shape[i]);
        if !agrees {
            return Err(OpErrorKind::invalid(format!(
                "cannot concatenate {:?} and {:?} along axis {axis}",
                first.shape, part.shape
            )));
        }
    }
    let mut out_shape = first.shape.clone();
    out_shape[axis] = parts.iter().map(|part| part.shape[axis]).sum();
    // Element by element: find the part holding output index `i` along the axis.
    let count = numel(&out_shape);
    let mut data = Vec::with_capacity(count as usize * size);
    let mut index = vec![0u64; out_shape.len()];
    for flat in 0..count {
        let mut rest = flat;
        for i in (0..out_shape.len()).rev() {
            index[i] = rest % out_shape[i];
            rest /= out_shape[i];
        }
        let mut along = index[axis];
        let part = parts
            .iter()
            .find(|part| {
                let found = along < part.shape[axis];
                if !found {
                    along -= part.shape[axis];
                }
                found
            })
            .expect("index within the sum of the parts");
        let strides = row_major_strides(&part.shape);
        let at: u64 = index.iter().enumerate().map(|(i, &at)| (if i == axis { along } else { at }) * strides[i]).sum();
        let at = at as usize * size;
        data.extend_from_slice(&part.data[at..at + size]);
    }
    Ok(EagerTensor { dtype: first.dtype, shape: out_shape, data })
}

/// Each element converted on its own.
pub(crate) fn cast(input: &EagerTensor, dtype: DType, mode: CastMode) -> Result<EagerTensor, OpErrorKind> {
    let size = elem_size(input.dtype)?;
    let mut data = Vec::new();
    for element in input.data.chunks_exact(size) {
        let converted = match mode {
            CastMode::Torch => cast_bytes(element, input.dtype, dtype),
            CastMode::Restore => restore_bytes(element, input.dtype, dtype),
        };
        data.extend(converted.map_err(|err| OpErrorKind::Data { message: err.to_string() })?);
    }
    Ok(EagerTensor { dtype, shape: input.shape.clone(), data })
}

/// A new tensor.
pub(crate) fn fill(dtype: DType, shape: &[u64], init: Init) -> Result<EagerTensor, OpErrorKind> {
    let convert = |value: f64| scalar_bytes(value, dtype).map_err(|err| OpErrorKind::Data { message: err.to_string() });
    let (zero, one) = (convert(0.0)?, convert(1.0)?);
    let count = numel(shape);
    let mut data = Vec::new();
    for flat in 0..count {
        let value = match init {
            Init::Zeros => zero.clone(),
            Init::Ones => one.clone(),
            Init::Value(value) => convert(value)?,
            Init::Eye => {
                if flat / shape[1] == flat % shape[1] {
                    one.clone()
                } else {
                    zero.clone()
                }
            }
        };
        data.extend(value);
    }
    Ok(EagerTensor { dtype, shape: shape.to_vec(), data })
}

/// The values of an integer tensor.
pub(crate) fn int_values(tensor: &EagerTensor) -> Result<Vec<i64>, OpErrorKind> {
    if !tensor.dtype.is_int() {
        return Err(OpErrorKind::Data { message: format!("an index tensor must be integer, not `{}`", tensor.dtype) });
    }
    let wide = cast_bytes(&tensor.data, tensor.dtype, DType::I64)
        .map_err(|err| OpErrorKind::Data { message: err.to_string() })?;
    Ok(wide.chunks_exact(8).map(|chunk| i64::from_le_bytes(chunk.try_into().expect("8 bytes"))).collect())
}
