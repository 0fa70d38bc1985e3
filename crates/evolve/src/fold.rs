//! Folding repeated indexed blocks: `layers.0.w`, `layers.1.w`, … become one entry
//! `layers.{i < layers_2}.w` (see [`count_name`]).
//!
//! A numeric segment folds when, for the name prefix before it, the indices found are
//! exactly `0..n` with `n >= 2` and every index holds the same block: the same name
//! suffixes with the same dtypes and shapes. Inner blocks fold first, so
//! `proc.{c}.blocks.{j}` folds in two rounds. Indices with gaps (`mlp.0`, `mlp.2`) and
//! blocks that differ (`extractor.0` a norm, `extractor.1` a linear layer) stay literal.

use std::collections::{BTreeMap, HashMap, HashSet};

use safeshift_model::{DType, Layout};

/// One segment of a (possibly folded) tensor name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Literal text between dots.
    Literal(String),
    /// A folded index: `{i < dim}`, the dim a count dim.
    Counted(String),
}

/// One tensor pattern of an inferred schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name's segments.
    pub segments: Vec<Segment>,
    /// The exact dtype.
    pub dtype: DType,
    /// The concrete shape (the same for every tensor the entry stands for).
    pub shape: Vec<u64>,
}

/// The folded entries, in the order of their first tensor, and the count dims with their
/// values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Count dim → number of blocks.
    pub counts: BTreeMap<String, u64>,
}

/// A segment that reads as a `{i < n}` index: decimal digits without a leading zero.
pub fn index_of(segment: &str) -> Option<u64> {
    let well_formed = !segment.is_empty()
        && segment.bytes().all(|byte| byte.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    if well_formed {
        segment.parse().ok()
    } else {
        None
    }
}

/// Folds the layout's tensor names; `reserved` are names a count dim must not take.
pub fn fold(layout: &Layout, reserved: &dyn Fn(&str) -> bool) -> Folded {
    // Each entry remembers the position of its first tensor, so output keeps file order.
    let mut entries: Vec<(usize, Entry)> = layout
        .tensors
        .iter()
        .enumerate()
        .map(|(position, info)| {
            let segments = info.name.split('.').map(|text| Segment::Literal(text.to_owned())).collect();
            (position, Entry { segments, dtype: info.dtype, shape: info.shape.clone() })
        })
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let folds = one_round(&entries, &mut counts, reserved);
        if folds.is_empty() {
            break;
        }
        let mut consumed: HashSet<usize> = HashSet::new();
        let mut added = Vec::new();
        for fold in folds {
            consumed.extend(fold.members);
            added.extend(fold.result);
        }
        let mut next: Vec<(usize, Entry)> =
            entries.into_iter().enumerate().filter(|(index, _)| !consumed.contains(index)).map(|(_, e)| e).collect();
        next.extend(added);
        next.sort_by_key(|(position, _)| *position);
        entries = next;
    }
    Folded { entries: entries.into_iter().map(|(_, entry)| entry).collect(), counts }
}

/// One tensor of an indexed block: its name after the index, dtype and shape.
type Block<'e> = (&'e [Segment], DType, &'e [u64]);

struct Fold {
    members: Vec<usize>,
    result: Vec<(usize, Entry)>,
}

/// The folds of one round: deepest index positions first, each entry in at most one fold.
fn one_round(
    entries: &[(usize, Entry)],
    counts: &mut BTreeMap<String, u64>,
    reserved: &dyn Fn(&str) -> bool,
) -> Vec<Fold> {
    // (prefix segments, index position) → members.
    let mut sites: HashMap<&[Segment], Vec<usize>> = HashMap::new();
    for (index, (_, entry)) in entries.iter().enumerate() {
        for (position, segment) in entry.segments.iter().enumerate() {
            if let Segment::Literal(text) = segment {
                if index_of(text).is_some() {
                    sites.entry(&entry.segments[..position]).or_default().push(index);
                }
            }
        }
    }
    let mut ordered: Vec<(&[Segment], Vec<usize>)> = sites.into_iter().collect();
    // Deepest first; then a fixed order, so the result does not depend on hashing.
    ordered.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
    let mut used: HashSet<usize> = HashSet::new();
    let mut folds = Vec::new();
    for (prefix, members) in ordered {
        if members.iter().any(|member| used.contains(member)) {
            continue;
        }
        let position = prefix.len();
        // index → the block: (suffix, dtype, shape), sorted.
        let mut blocks: BTreeMap<u64, Vec<Block<'_>>> = BTreeMap::new();
        for &member in &members {
            let entry = &entries[member].1;
            let Segment::Literal(text) = &entry.segments[position] else { continue };
            let Some(index) = index_of(text) else { continue };
            blocks.entry(index).or_default().push((&entry.segments[position + 1..], entry.dtype, &entry.shape));
        }
        let n = blocks.len() as u64;
        if n < 2 || blocks.keys().copied().ne(0..n) {
            continue;
        }
        for block in blocks.values_mut() {
            block.sort();
        }
        let first = &blocks[&0];
        if blocks.values().any(|block| block != first) {
            continue;
        }
        let dim = count_dim(prefix, n, counts, reserved);
        let mut result = Vec::new();
        for &member in &members {
            let (position_in_file, entry) = &entries[member];
            if entry.segments[position] != Segment::Literal("0".into()) {
                continue;
            }
            let mut segments = prefix.to_vec();
            segments.push(Segment::Counted(dim.clone()));
            segments.extend_from_slice(&entry.segments[position + 1..]);
            // The folded entry takes the place of its block's first tensor in the file.
            let first_seen = members
                .iter()
                .filter(|&&other| entries[other].1.segments[position + 1..] == entry.segments[position + 1..])
                .map(|&other| entries[other].0)
                .min()
                .unwrap_or(*position_in_file);
            result.push((first_seen, Entry { segments, dtype: entry.dtype, shape: entry.shape.clone() }));
        }
        used.extend(members.iter().copied());
        folds.push(Fold { members, result });
    }
    folds
}

/// The count dim for blocks under `prefix`: named after the segment before the index and
/// the count ([`count_name`]: `layers_4`, `blocks_2`), shared by every fold of that name.
fn count_dim(
    prefix: &[Segment],
    n: u64,
    counts: &mut BTreeMap<String, u64>,
    reserved: &dyn Fn(&str) -> bool,
) -> String {
    let segment = match prefix.last() {
        Some(Segment::Literal(text)) => text.as_str(),
        _ => "n",
    };
    let base = count_name(segment, n);
    let mut name = base.clone();
    let mut suffix = 2;
    loop {
        match counts.get(&name) {
            Some(&value) if value == n => return name,
            None if !reserved(&name) => {
                counts.insert(name.clone(), n);
                return name;
            }
            _ => {
                name = format!("{base}_{suffix}");
                suffix += 1;
            }
        }
    }
}

/// The name of the count dim of `n` blocks under a segment: the segment and the count
/// (`layers_4`). The count is in the name for the reason size dims are `d24`: schemas
/// inferred from two versions of a model then share a dim name only where they share its
/// value, which the static checker assumes of a shared name (a chunked processor's
/// `proc.{c}.blocks.{j}`, `proc_2` chunks, flattened into `proc.{i}`, `proc_4` layers, must
/// not be one dim `proc`).
pub fn count_name(segment: &str, n: u64) -> String {
    format!("{}_{n}", identifier(segment))
}

/// `text` made a language identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn identifier(text: &str) -> String {
    let mut out: String =
        text.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '_' { ch } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|ch: char| ch.is_ascii_digit()) {
        out.insert_str(0, "n_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_model::TensorInfo;

    fn layout(tensors: &[(&str, &[u64])]) -> Layout {
        Layout {
            tensors: tensors
                .iter()
                .map(|(name, shape)| TensorInfo { name: (*name).into(), dtype: DType::F32, shape: shape.to_vec() })
                .collect(),
            metadata: Default::default(),
        }
    }

    fn text(folded: &Folded) -> Vec<String> {
        folded
            .entries
            .iter()
            .map(|entry| {
                entry
                    .segments
                    .iter()
                    .map(|segment| match segment {
                        Segment::Literal(text) => text.clone(),
                        Segment::Counted(dim) => format!("<{dim}>"),
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect()
    }

    #[test]
    fn nested_blocks_fold_and_odd_ones_stay() {
        let folded = fold(
            &layout(&[
                ("emb", &[4]),
                ("proc.0.blocks.0.w", &[4]),
                ("proc.0.blocks.1.w", &[4]),
                ("proc.1.blocks.0.w", &[4]),
                ("proc.1.blocks.1.w", &[4]),
                ("mlp.0.w", &[4]),
                ("mlp.2.w", &[4]),
                ("ex.0.w", &[4]),
                ("ex.1.w", &[5]),
                ("one.0.w", &[4]),
                ("pad.00.w", &[4]),
                ("pad.01.w", &[4]),
            ]),
            &|_| false,
        );
        assert_eq!(
            text(&folded),
            [
                "emb",
                "proc.<proc_2>.blocks.<blocks_2>.w",
                "mlp.0.w",
                "mlp.2.w",
                "ex.0.w",
                "ex.1.w",
                "one.0.w",
                "pad.00.w",
                "pad.01.w"
            ]
        );
        assert_eq!(folded.counts, BTreeMap::from([("blocks_2".into(), 2), ("proc_2".into(), 2)]));
    }

    #[test]
    fn blocks_of_different_counts_get_different_dims() {
        let folded = fold(
            &layout(&[("a.l.0.w", &[1]), ("a.l.1.w", &[1]), ("b.l.0.w", &[1]), ("b.l.1.w", &[1]), ("b.l.2.w", &[1])]),
            &|name| name == "l_3",
        );
        assert_eq!(text(&folded), ["a.l.<l_2>.w", "b.l.<l_3_2>.w"]);
        assert_eq!(identifier("0.x-y"), "n_0_x_y");
    }
}
