//! Where a row order found by content comes from: an index an aux input holds
//! (`graph["t"]`), or the stable argsort of one (`argsort(graph["t"])`, of a row of a 2-d
//! tensor: `argsort(graph["t"], 1)`), the forms a migration's `gather … index` reads.

use safeshift_model::DType;

/// An auxiliary input the draft may read: a file given as `--aux NAME=FILE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuxInput {
    /// The input's name in the migration (`graph`).
    pub name: String,
    /// What it is, for the migration's `aux` declaration.
    pub doc: String,
    /// Its integer tensors, as a migration names them.
    pub tensors: Vec<AuxTensor>,
}

/// One tensor of an aux input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuxTensor {
    /// The name a migration reads it by (`data_to_hidden.edge_index`).
    pub name: String,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its bytes, little-endian, row-major.
    pub bytes: Vec<u8>,
}

/// Every way the aux inputs give `index` (for each new row, the old row), simplest first:
/// `(input, index expression)`.
pub fn explain(index: &[u64], aux: &[AuxInput]) -> Vec<(String, String)> {
    let mut direct = Vec::new();
    let mut sorted = Vec::new();
    for input in aux {
        for tensor in &input.tensors {
            let Some(values) = integers(tensor) else { continue };
            let at = format!("{}[{}]", input.name, crate::quoted(&tensor.name));
            match tensor.shape.as_slice() {
                [length] if *length as usize == index.len() => {
                    if values.iter().zip(index).all(|(&value, &row)| u64::try_from(value).ok() == Some(row)) {
                        direct.push((input.name.clone(), at.clone()));
                    }
                    if argsort(&values) == index {
                        sorted.push((input.name.clone(), format!("argsort({at})")));
                    }
                }
                [rows, length] if *length as usize == index.len() => {
                    for (row, chunk) in values.chunks(*length as usize).enumerate().take(*rows as usize) {
                        if argsort(chunk) == index {
                            sorted.push((input.name.clone(), format!("argsort({at}, {row})")));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    direct.extend(sorted);
    direct
}

/// The values of an integer tensor, if it is one.
fn integers(tensor: &AuxTensor) -> Option<Vec<i64>> {
    let width = match tensor.dtype {
        DType::I64 | DType::U64 => 8,
        DType::I32 | DType::U32 => 4,
        DType::I16 | DType::U16 => 2,
        DType::I8 | DType::U8 => 1,
        _ => return None,
    };
    let signed = matches!(tensor.dtype, DType::I64 | DType::I32 | DType::I16 | DType::I8);
    if tensor.bytes.len() % width != 0 {
        return None;
    }
    let values = tensor.bytes.chunks(width).map(|chunk| {
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(chunk);
        let unsigned = u64::from_le_bytes(raw);
        let shift = 64 - 8 * width as u32;
        if signed {
            ((unsigned << shift) as i64) >> shift
        } else {
            unsigned as i64
        }
    });
    Some(values.collect())
}

/// The stable argsort (equal values keep their order), as the language's `argsort`.
fn argsort(values: &[i64]) -> Vec<u64> {
    let mut order: Vec<u64> = (0..values.len() as u64).collect();
    order.sort_by_key(|&position| values[position as usize]);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[u64], values: &[i64]) -> AuxTensor {
        AuxTensor {
            name: name.into(),
            dtype: DType::I64,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|value| value.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn an_index_is_found_held_or_sorted() {
        // Edges 0..4 with destinations [2, 0, 2, 1]: sorted by destination, stably.
        let edges = tensor("e.edge_index", &[2, 4], &[9, 9, 9, 9, 2, 0, 2, 1]);
        let perm = tensor("e.perm", &[4], &[1, 3, 0, 2]);
        let floats = AuxTensor { dtype: DType::F32, ..tensor("e.x", &[4], &[0; 2]) };
        let graph = AuxInput { name: "graph".into(), doc: String::new(), tensors: vec![edges, perm, floats] };
        assert_eq!(
            explain(&[1, 3, 0, 2], std::slice::from_ref(&graph)),
            [
                ("graph".to_owned(), r#"graph["e.perm"]"#.to_owned()),
                ("graph".to_owned(), r#"argsort(graph["e.edge_index"], 1)"#.to_owned()),
            ]
        );
        // The first row is all equal: its stable argsort is the identity.
        assert_eq!(
            explain(&[0, 1, 2, 3], std::slice::from_ref(&graph)),
            [("graph".to_owned(), r#"argsort(graph["e.edge_index"], 0)"#.to_owned())]
        );
        assert!(explain(&[3, 2, 1, 0], &[graph]).is_empty());
        let small = tensor("s", &[2], &[-1, 0]);
        assert_eq!(integers(&AuxTensor { dtype: DType::I8, bytes: vec![0xff, 0], ..small }), Some(vec![-1, 0]));
    }
}
