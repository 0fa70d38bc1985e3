//! What changed between two layouts: tensor by tensor, by names and shapes, or by content.
//!
//! By names and shapes: a name in both with the same dtype and shape is unchanged; a
//! changed dtype is re-typed, a changed shape with the same element count reshaped.
//! Names on one side only are paired: a removed tensor is split into added ones when
//! their names differ in one segment and their sizes along one axis add up to its own; a
//! removed and an added tensor of one dtype and shape are a rename when the same edit of
//! the name (a segment replaced, inserted or removed, an index shifted) explains the most
//! pairs. What is left is dropped (lossy) or inserted.
//!
//! By content (both sides hold the same weights): every new tensor is looked up by its
//! bytes, so renames and swaps that keep names (a key reused for another tensor) are
//! found; a new tensor whose bytes are a row range of an old one is a split part; an old
//! tensor whose bytes survive elsewhere is dropped as `derived`, one whose bytes vanish
//! as `lossy`; a constant new tensor is inserted with its value; a new tensor whose rows
//! are an old one's in another order is that tensor permuted, with the order found.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use safeshift_model::{DType, Layout, TensorInfo};
use sha2::{Digest, Sha256};

/// The bytes of a checkpoint's tensors (little-endian, row-major), by name.
pub trait Content {
    /// The bytes of `name`, if the checkpoint holds it.
    fn bytes(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>>;
}

/// How a new tensor gets its values.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// The identity matrix.
    Eye,
    /// Every element this value (JSON number text).
    Fill(String),
    /// Nothing known: the author decides.
    Unknown,
}

/// One difference.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Moved to another name.
    Renamed {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// Also stored under another name (the old one stays).
    Copied {
        /// The tensor copied.
        from: String,
        /// The new name.
        to: String,
    },
    /// Same name, same element count, another shape.
    Reshaped {
        /// The tensor.
        name: String,
        /// The old shape.
        from: Vec<u64>,
        /// The new shape.
        to: Vec<u64>,
    },
    /// Same name and shape, another dtype.
    Retyped {
        /// The tensor.
        name: String,
        /// The old dtype.
        from: DType,
        /// The new dtype.
        to: DType,
    },
    /// One tensor cut into parts along an axis.
    Split {
        /// The old tensor.
        from: String,
        /// The parts, in order.
        into: Vec<String>,
        /// The axis.
        axis: usize,
        /// Each part's size along the axis.
        sizes: Vec<u64>,
        /// Whether the order of the parts is known (content, or the names spell it).
        ordered: bool,
    },
    /// Parts joined along an axis.
    Merged {
        /// The old parts, in order.
        from: Vec<String>,
        /// The new tensor.
        into: String,
        /// The axis.
        axis: usize,
        /// Whether the order of the parts is known.
        ordered: bool,
    },
    /// The rows of an old tensor in another order: `to[i] = from[index[i]]` along axis 0.
    Permuted {
        /// The old tensor.
        from: String,
        /// The new name (the old one, or where it is renamed to).
        to: String,
        /// For each new row, the old row it is.
        index: Vec<u64>,
    },
    /// A new tensor.
    Inserted {
        /// Its name, dtype and shape.
        tensor: TensorInfo,
        /// Its values, as far as known.
        init: Init,
    },
    /// A tensor gone.
    Dropped {
        /// The old tensor.
        name: String,
        /// Whether its bytes survive under another name (`derived`) or are lost.
        derived: bool,
    },
    /// A metadata key only in the new layout, with its value.
    MetaAdded {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// A metadata key only in the old layout.
    MetaRemoved {
        /// The key.
        key: String,
    },
}

impl Change {
    /// The kind as the table names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Renamed { .. } => "renamed",
            Change::Copied { .. } => "copied",
            Change::Reshaped { .. } => "reshaped",
            Change::Retyped { .. } => "re-typed",
            Change::Split { .. } => "split",
            Change::Merged { .. } => "merged",
            Change::Permuted { .. } => "permuted",
            Change::Inserted { .. } => "inserted",
            Change::Dropped { .. } => "dropped",
            Change::MetaAdded { .. } => "meta added",
            Change::MetaRemoved { .. } => "meta removed",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Renamed { from, to } | Change::Copied { from, to } => write!(f, "{from} -> {to}"),
            Change::Reshaped { name, from, to } => write!(f, "{name}: {from:?} -> {to:?}"),
            Change::Retyped { name, from, to } => {
                write!(f, "{name}: {} -> {}", from.language_name(), to.language_name())
            }
            Change::Split { from, into, axis, sizes, .. } => {
                write!(f, "{from} -> {} (axis {axis}, sizes {sizes:?})", into.join(", "))
            }
            Change::Merged { from, into, axis, .. } => write!(f, "{} -> {into} (axis {axis})", from.join(", ")),
            Change::Permuted { from, to, .. } if from == to => write!(f, "{to} (rows reordered)"),
            Change::Permuted { from, to, .. } => write!(f, "{from} -> {to} (rows reordered)"),
            Change::Inserted { tensor, .. } => {
                write!(f, "{} {}{:?}", tensor.name, tensor.dtype.language_name(), tensor.shape)
            }
            Change::Dropped { name, derived } => {
                write!(f, "{name} ({})", if *derived { "derived: its bytes survive" } else { "lossy" })
            }
            Change::MetaAdded { key, .. } | Change::MetaRemoved { key } => write!(f, "{key}"),
        }
    }
}

/// The differences between two layouts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Every change, grouped by kind in table order.
    pub changes: Vec<Change>,
    /// Tensors unchanged.
    pub unchanged: usize,
}

impl Diff {
    /// Whether the layouts are the same (tensors and metadata keys).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes as a text table: kind, then what.
    pub fn table(&self) -> String {
        let width = self.changes.iter().map(|change| change.kind().len()).max().unwrap_or(0);
        let mut out = String::new();
        for change in &self.changes {
            out.push_str(&format!("{:<width$}  {change}\n", change.kind()));
        }
        out.push_str(&format!("{} changed, {} unchanged\n", self.changes.len(), self.unchanged));
        out
    }
}

/// Both sides' bytes, when the diff is by content.
pub struct Contents<'c> {
    /// The old checkpoint's bytes.
    pub old: &'c dyn Content,
    /// The new checkpoint's bytes.
    pub new: &'c dyn Content,
}

/// Compares `old` with `new`; by content when `contents` is given.
pub fn diff(old: &Layout, new: &Layout, contents: Option<&Contents<'_>>) -> Diff {
    let mut state = State::new(old, new, contents);
    state.same_names();
    if state.contents.is_some() {
        state.by_content();
    } else {
        state.splits_by_shape();
        state.merges_by_shape();
        state.renames_by_name();
    }
    state.finish()
}

struct State<'a, 'c> {
    old: &'a Layout,
    new: &'a Layout,
    contents: Option<&'a Contents<'c>>,
    /// Old names not (yet) accounted for, in file order.
    removed: Vec<&'a TensorInfo>,
    /// New names not (yet) accounted for, in file order.
    added: Vec<&'a TensorInfo>,
    changes: Vec<Change>,
    unchanged: usize,
    old_hash: HashMap<&'a str, [u8; 32]>,
    new_hash: HashMap<&'a str, [u8; 32]>,
}

impl<'a, 'c> State<'a, 'c> {
    fn new(old: &'a Layout, new: &'a Layout, contents: Option<&'a Contents<'c>>) -> State<'a, 'c> {
        let mut old_hash = HashMap::new();
        let mut new_hash = HashMap::new();
        if let Some(contents) = contents {
            for info in &old.tensors {
                if let Some(bytes) = contents.old.bytes(&info.name) {
                    old_hash.insert(info.name.as_str(), hash(&bytes));
                }
            }
            for info in &new.tensors {
                if let Some(bytes) = contents.new.bytes(&info.name) {
                    new_hash.insert(info.name.as_str(), hash(&bytes));
                }
            }
        }
        State {
            old,
            new,
            contents,
            removed: Vec::new(),
            added: Vec::new(),
            changes: Vec::new(),
            unchanged: 0,
            old_hash,
            new_hash,
        }
    }

    fn same_names(&mut self) {
        for info in &self.old.tensors {
            let Some(other) = self.new.tensor(&info.name) else {
                self.removed.push(info);
                continue;
            };
            let same_type = info.dtype == other.dtype && info.shape == other.shape;
            if self.contents.is_some() {
                let same_bytes = self.old_hash.get(info.name.as_str()) == self.new_hash.get(info.name.as_str());
                if same_type && same_bytes {
                    self.unchanged += 1;
                } else {
                    // A reused name: the new tensor comes from elsewhere.
                    self.removed.push(info);
                    self.added.push(other);
                }
            } else if same_type {
                self.unchanged += 1;
            } else if info.shape == other.shape {
                self.changes.push(Change::Retyped { name: info.name.clone(), from: info.dtype, to: other.dtype });
            } else if info.dtype == other.dtype && info.numel() == other.numel() {
                self.changes.push(Change::Reshaped {
                    name: info.name.clone(),
                    from: info.shape.clone(),
                    to: other.shape.clone(),
                });
            } else {
                self.removed.push(info);
                self.added.push(other);
            }
        }
        for info in &self.new.tensors {
            if self.old.tensor(&info.name).is_none() {
                self.added.push(info);
            }
        }
        // Keep new tensors in the new file's order.
        let order: HashMap<&str, usize> =
            self.new.tensors.iter().enumerate().map(|(index, info)| (info.name.as_str(), index)).collect();
        self.added.sort_by_key(|info| order[info.name.as_str()]);
    }

    fn by_content(&mut self) {
        let survives_unchanged = |state: &State<'_, '_>, name: &str| {
            !state.removed.iter().any(|info| info.name == name) && state.new.tensor(name).is_some()
        };
        let mut moved: BTreeSet<String> = BTreeSet::new();
        let mut renames = Vec::new();
        let mut copies = Vec::new();
        let mut left = Vec::new();
        for &target in &self.added.clone() {
            let Some(digest) = self.new_hash.get(target.name.as_str()) else {
                left.push(target);
                continue;
            };
            let candidates: Vec<&TensorInfo> = self
                .old
                .tensors
                .iter()
                .filter(|info| {
                    info.dtype == target.dtype
                        && info.shape == target.shape
                        && self.old_hash.get(info.name.as_str()) == Some(digest)
                })
                .collect();
            if candidates.is_empty() {
                left.push(target);
                continue;
            }
            // A source that leaves its name (and has not moved yet) is renamed; otherwise copied.
            let movable: Vec<&TensorInfo> = candidates
                .iter()
                .copied()
                .filter(|info| !survives_unchanged(self, &info.name) && !moved.contains(&info.name))
                .collect();
            if let Some(source) = closest(&movable, &target.name) {
                moved.insert(source.name.clone());
                renames.push(Change::Renamed { from: source.name.clone(), to: target.name.clone() });
            } else if let Some(source) = closest(&candidates, &target.name) {
                copies.push(Change::Copied { from: source.name.clone(), to: target.name.clone() });
            }
        }
        self.removed.retain(|info| !moved.contains(&info.name));
        self.added = left;
        self.changes.extend(copies);
        self.changes.extend(renames);
        self.splits_by_content();
        self.permutations_by_content();
        for info in std::mem::take(&mut self.removed) {
            let digest = self.old_hash.get(info.name.as_str());
            let derived = digest.is_some() && self.new_hash.values().any(|other| Some(other) == digest);
            self.changes.push(Change::Dropped { name: info.name.clone(), derived });
        }
        for info in std::mem::take(&mut self.added) {
            let init = self
                .contents
                .and_then(|contents| contents.new.bytes(&info.name))
                .map_or(Init::Unknown, |bytes| constant_init(info, &bytes));
            self.changes.push(Change::Inserted { tensor: info.clone(), init });
        }
    }

    /// New tensors whose bytes are consecutive row ranges of one old tensor, covering it.
    fn splits_by_content(&mut self) {
        let Some(contents) = self.contents else { return };
        let mut splits = Vec::new();
        for source in self.removed.clone() {
            let Some(whole) = contents.old.bytes(&source.name) else { continue };
            let Some((&rows, rest)) = source.shape.split_first() else { continue };
            let row_bytes = whole.len() / rows.max(1) as usize;
            if row_bytes == 0 {
                continue;
            }
            // (offset in rows, part)
            let mut parts: Vec<(u64, &TensorInfo)> = Vec::new();
            for &part in &self.added {
                let fits = part.dtype == source.dtype
                    && part.shape.len() == source.shape.len()
                    && part.shape[1..] == *rest
                    && part.shape[0] < rows;
                let Some(bytes) = contents.new.bytes(&part.name).filter(|_| fits) else { continue };
                if let Some(offset) = (0..=rows - part.shape[0])
                    .find(|&k| whole.get(k as usize * row_bytes..).is_some_and(|rest| rest.starts_with(&bytes)))
                {
                    parts.push((offset, part));
                }
            }
            parts.sort_by_key(|(offset, _)| *offset);
            let mut next = 0;
            let tiles = parts.iter().all(|(offset, part)| {
                let ok = *offset == next;
                next += part.shape[0];
                ok
            });
            if parts.len() >= 2 && tiles && next == rows {
                splits.push((source, parts));
            }
        }
        for (source, parts) in splits {
            let names: Vec<String> = parts.iter().map(|(_, part)| part.name.clone()).collect();
            self.removed.retain(|info| info.name != source.name);
            self.added.retain(|info| !names.contains(&info.name));
            let sizes = parts.iter().map(|(_, part)| part.shape[0]).collect();
            self.changes.push(Change::Split { from: source.name.clone(), into: names, axis: 0, sizes, ordered: true });
        }
    }

    /// New tensors whose rows are the rows of an old tensor of the same dtype and shape in
    /// another order (each old row once; rows that repeat make the order ambiguous, so
    /// such tensors are left alone).
    fn permutations_by_content(&mut self) {
        let Some(contents) = self.contents else { return };
        let mut found: Vec<(String, String, Vec<u64>)> = Vec::new();
        for &target in &self.added {
            let Some(rows) = target.shape.first().copied().filter(|&rows| rows >= 2) else { continue };
            let Some(new_bytes) = contents.new.bytes(&target.name) else { continue };
            let row_bytes = new_bytes.len() / rows as usize;
            if row_bytes == 0 || new_bytes.len() % rows as usize != 0 {
                continue;
            }
            let mut matches: Vec<(&TensorInfo, Vec<u64>)> = Vec::new();
            for &source in &self.removed {
                let taken = found.iter().any(|(from, _, _)| *from == source.name);
                if taken || source.dtype != target.dtype || source.shape != target.shape {
                    continue;
                }
                let Some(old_bytes) = contents.old.bytes(&source.name) else { continue };
                if old_bytes.len() != new_bytes.len() {
                    continue;
                }
                let mut where_row: HashMap<&[u8], u64> = HashMap::new();
                let unique = old_bytes
                    .chunks(row_bytes)
                    .enumerate()
                    .all(|(row, bytes)| where_row.insert(bytes, row as u64).is_none());
                let index: Option<Vec<u64>> =
                    new_bytes.chunks(row_bytes).map(|bytes| where_row.get(bytes).copied()).collect();
                if let (true, Some(index)) = (unique, index) {
                    matches.push((source, index));
                }
            }
            let sources: Vec<&TensorInfo> = matches.iter().map(|(source, _)| *source).collect();
            let Some(source) = closest(&sources, &target.name) else { continue };
            if let Some((_, index)) = matches.into_iter().find(|(candidate, _)| candidate.name == source.name) {
                found.push((source.name.clone(), target.name.clone(), index));
            }
        }
        for (from, to, index) in found {
            self.removed.retain(|info| info.name != from);
            self.added.retain(|info| info.name != to);
            if from != to {
                self.changes.push(Change::Renamed { from: from.clone(), to: to.clone() });
            }
            self.changes.push(Change::Permuted { from, to, index });
        }
    }

    /// A removed tensor whose added siblings (names differing in one segment) tile it
    /// along one axis.
    fn splits_by_shape(&mut self) {
        for tiling in claim_tilings(&mut self.removed, &mut self.added) {
            let sizes = tiling.parts.iter().map(|part| part.shape[tiling.axis]).collect();
            let into = tiling.parts.iter().map(|part| part.name.clone()).collect();
            let (from, axis, ordered) = (tiling.whole.name.clone(), tiling.axis, tiling.ordered);
            self.changes.push(Change::Split { from, into, axis, sizes, ordered });
        }
    }

    /// The mirror image: added tensors tiled by removed siblings.
    fn merges_by_shape(&mut self) {
        for tiling in claim_tilings(&mut self.added, &mut self.removed) {
            let from = tiling.parts.iter().map(|part| part.name.clone()).collect();
            let (into, axis, ordered) = (tiling.whole.name.clone(), tiling.axis, tiling.ordered);
            self.changes.push(Change::Merged { from, into, axis, ordered });
        }
    }

    /// Pairs removed and added tensors of one dtype and shape by the name edit that
    /// explains the most pairs.
    fn renames_by_name(&mut self) {
        let mut support: HashMap<String, BTreeSet<&str>> = HashMap::new();
        let mut candidates: Vec<(&TensorInfo, &TensorInfo, String)> = Vec::new();
        for &from in &self.removed {
            for &to in &self.added {
                if from.dtype != to.dtype || from.shape != to.shape {
                    continue;
                }
                let key = edit_key(&from.name, &to.name);
                support.entry(key.clone()).or_default().insert(from.name.as_str());
                candidates.push((from, to, key));
            }
        }
        candidates.sort_by(|a, b| {
            let (sa, sb) = (support[&a.2].len(), support[&b.2].len());
            sb.cmp(&sa)
                .then_with(|| similarity(&b.0.name, &b.1.name).cmp(&similarity(&a.0.name, &a.1.name)))
                .then_with(|| a.2.cmp(&b.2))
        });
        let mut taken_from: BTreeSet<&str> = BTreeSet::new();
        let mut taken_to: BTreeSet<&str> = BTreeSet::new();
        let mut renames = Vec::new();
        for (from, to, _) in candidates {
            if taken_from.contains(from.name.as_str()) || taken_to.contains(to.name.as_str()) {
                continue;
            }
            taken_from.insert(&from.name);
            taken_to.insert(&to.name);
            renames.push(Change::Renamed { from: from.name.clone(), to: to.name.clone() });
        }
        self.removed.retain(|info| !taken_from.contains(info.name.as_str()));
        self.added.retain(|info| !taken_to.contains(info.name.as_str()));
        self.changes.extend(renames);
    }

    fn finish(mut self) -> Diff {
        if self.contents.is_none() {
            for info in std::mem::take(&mut self.removed) {
                self.changes.push(Change::Dropped { name: info.name.clone(), derived: false });
            }
            for info in std::mem::take(&mut self.added) {
                let init = guess_init(info);
                self.changes.push(Change::Inserted { tensor: info.clone(), init });
            }
        }
        let tool = |key: &String| key.starts_with(crate::TOOL_METADATA_PREFIX);
        for (key, value) in &self.new.metadata {
            if !tool(key) && !self.old.metadata.contains_key(key) {
                self.changes.push(Change::MetaAdded { key: key.clone(), value: value.clone() });
            }
        }
        for key in self.old.metadata.keys() {
            if !tool(key) && !self.new.metadata.contains_key(key) {
                self.changes.push(Change::MetaRemoved { key: key.clone() });
            }
        }
        let rank = |change: &Change| match change {
            Change::Dropped { .. } => 0,
            Change::Copied { .. } => 1,
            Change::Renamed { .. } => 2,
            Change::Split { .. } => 3,
            Change::Merged { .. } => 4,
            Change::Reshaped { .. } => 5,
            Change::Retyped { .. } => 6,
            Change::Permuted { .. } => 7,
            Change::Inserted { .. } => 8,
            Change::MetaRemoved { .. } => 9,
            Change::MetaAdded { .. } => 10,
        };
        self.changes.sort_by_key(rank);
        Diff { changes: self.changes, unchanged: self.unchanged }
    }
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// How alike two names are: shared leading plus shared trailing characters.
fn similarity(a: &str, b: &str) -> usize {
    let prefix = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let suffix = a.bytes().rev().zip(b.bytes().rev()).take_while(|(x, y)| x == y).count();
    (prefix + suffix).min(a.len().max(b.len()))
}

fn closest<'t>(candidates: &[&'t TensorInfo], name: &str) -> Option<&'t TensorInfo> {
    // Most alike; on a tie, the first in file order.
    let mut best: Option<(&TensorInfo, usize)> = None;
    for &candidate in candidates {
        let score = similarity(&candidate.name, name);
        if best.is_none_or(|(_, top)| score > top) {
            best = Some((candidate, score));
        }
    }
    best.map(|(candidate, _)| candidate)
}

/// The edit that turns name `a` into name `b`, with numbers in the changed part
/// replaced by their difference, so that pairs edited alike share a key.
pub(crate) fn edit_key(a: &str, b: &str) -> String {
    let sa: Vec<&str> = a.split('.').collect();
    let sb: Vec<&str> = b.split('.').collect();
    let (cp, cs) = common_ends(&sa, &sb);
    let mid_a = &sa[cp..sa.len() - cs];
    let mid_b = &sb[cp..sb.len() - cs];
    let anchor = if cp > 0 { sa[cp - 1] } else { "" };
    let numbers_a: Vec<i128> = mid_a.iter().filter_map(|s| crate::fold::index_of(s).map(i128::from)).collect();
    let shape = |mid: &[&str]| -> String {
        mid.iter().map(|s| if crate::fold::index_of(s).is_some() { "#" } else { s }).collect::<Vec<_>>().join(".")
    };
    let offsets: Vec<String> = mid_b
        .iter()
        .filter_map(|s| crate::fold::index_of(s))
        .map(|n| match numbers_a.first() {
            Some(first) if numbers_a.len() == 1 => format!("{:+}", i128::from(n) - first),
            _ => "*".to_owned(),
        })
        .collect();
    format!("{anchor}|{}|{}|{}|{}|{}", shape(mid_a), shape(mid_b), offsets.join(","), cp > 0, cs > 0)
}

/// The numbers of segments shared at the start and at the end (not overlapping).
pub(crate) fn common_ends(a: &[&str], b: &[&str]) -> (usize, usize) {
    let cp = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - cp;
    let cs = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    (cp, cs)
}

/// A tensor of one side of a diff tiled along `axis` by sibling tensors of the other side
/// (a split read forwards, a merge read backwards).
struct Tiling<'t> {
    whole: &'t TensorInfo,
    parts: Vec<&'t TensorInfo>,
    axis: usize,
    ordered: bool,
}

/// Finds every tensor of `wholes` tiled by siblings in `pieces`, and takes each one found
/// (and its parts) out of both lists — unless an earlier tiling already took one of its
/// parts.
fn claim_tilings<'t>(wholes: &mut Vec<&'t TensorInfo>, pieces: &mut Vec<&'t TensorInfo>) -> Vec<Tiling<'t>> {
    let mut found = Vec::new();
    for &whole in wholes.iter() {
        let Some((position, parts)) = siblings(whole, pieces) else { continue };
        let Some(axis) = tiling_axis(whole, &parts) else { continue };
        let (parts, ordered) = order_parts(&whole.name, position, parts);
        found.push(Tiling { whole, parts, axis, ordered });
    }
    found.retain(|tiling| {
        let available = tiling.parts.iter().all(|part| pieces.iter().any(|info| info.name == part.name));
        if available {
            wholes.retain(|info| info.name != tiling.whole.name);
            pieces.retain(|info| tiling.parts.iter().all(|part| part.name != info.name));
        }
        available
    });
    found
}

/// Tensors of `pool` whose names differ from `whole`'s in exactly one segment (the same
/// one for all), with its dtype and rank: at least two.
fn siblings<'t>(whole: &TensorInfo, pool: &[&'t TensorInfo]) -> Option<(usize, Vec<&'t TensorInfo>)> {
    let segments: Vec<&str> = whole.name.split('.').collect();
    let mut by_position: BTreeMap<usize, Vec<&TensorInfo>> = BTreeMap::new();
    for &info in pool {
        let other: Vec<&str> = info.name.split('.').collect();
        if info.dtype != whole.dtype || info.shape.len() != whole.shape.len() || other.len() != segments.len() {
            continue;
        }
        let differing: Vec<usize> = (0..segments.len()).filter(|&i| segments[i] != other[i]).collect();
        if let [position] = differing[..] {
            if crate::fold::index_of(other[position]).is_none() {
                by_position.entry(position).or_default().push(info);
            }
        }
    }
    by_position.into_iter().find(|(_, parts)| parts.len() >= 2)
}

/// The axis along which `parts` tile `whole` (equal elsewhere, sizes adding up).
fn tiling_axis(whole: &TensorInfo, parts: &[&TensorInfo]) -> Option<usize> {
    (0..whole.shape.len()).find(|&axis| {
        let others_equal = parts
            .iter()
            .all(|part| (0..whole.shape.len()).all(|other| other == axis || part.shape[other] == whole.shape[other]));
        let total: u64 = parts.iter().map(|part| part.shape[axis]).sum();
        others_equal && total == whole.shape[axis]
    })
}

/// The parts in the order the whole's name spells them (`qkv` → `q`, `k`, `v`), else in
/// file order, unordered.
fn order_parts<'t>(whole: &str, position: usize, parts: Vec<&'t TensorInfo>) -> (Vec<&'t TensorInfo>, bool) {
    let whole_segment = whole.split('.').nth(position).unwrap_or("");
    let segments: Vec<&str> = parts.iter().map(|part| part.name.split('.').nth(position).unwrap_or("")).collect();
    // What all parts and the whole share (`lin_`), then each part's tail in the whole's.
    let shared =
        segments.iter().fold(whole_segment.len(), |shared, segment| shared.min(common_prefix(whole_segment, segment)));
    let mut keyed = Vec::new();
    for (part, segment) in parts.iter().zip(&segments) {
        let tail = &segment[shared..];
        match whole_segment[shared..].find(tail).filter(|_| !tail.is_empty()) {
            Some(at) => keyed.push((at, *part)),
            None => return (parts, false),
        }
    }
    keyed.sort_by_key(|(at, _)| *at);
    let distinct = keyed.windows(2).all(|pair| pair[0].0 != pair[1].0);
    if !distinct {
        return (parts, false);
    }
    (keyed.into_iter().map(|(_, part)| part).collect(), true)
}

/// The length in bytes of the longest common prefix, on a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices().zip(b.chars()).take_while(|((_, x), y)| x == y).last().map_or(0, |((i, x), _)| i + x.len_utf8())
}

/// The value of a constant tensor, from its bytes.
fn constant_init(info: &TensorInfo, bytes: &[u8]) -> Init {
    let Some(size) = info.dtype.size() else { return Init::Unknown };
    if size == 0 || bytes.is_empty() || bytes.len() % size != 0 {
        return Init::Unknown;
    }
    let values: Vec<f64> = match bytes.chunks_exact(size).map(|chunk| element(info.dtype, chunk)).collect() {
        Some(values) => values,
        None => return Init::Unknown,
    };
    if let [rows, cols] = info.shape[..] {
        if rows == cols && rows > 1 {
            let eye = values.iter().enumerate().all(|(i, &v)| v == if i as u64 % (cols + 1) == 0 { 1.0 } else { 0.0 });
            if eye {
                return Init::Eye;
            }
        }
    }
    let first = values[0];
    if values.iter().any(|&v| v != first) {
        return Init::Unknown;
    }
    if first == 0.0 {
        Init::Zeros
    } else if first == 1.0 {
        Init::Ones
    } else {
        Init::Fill(serde_json::Number::from_f64(first).map_or_else(|| first.to_string(), |n| n.to_string()))
    }
}

fn element(dtype: DType, chunk: &[u8]) -> Option<f64> {
    let bytes8 = |n: usize| -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..n].copy_from_slice(&chunk[..n]);
        out
    };
    Some(match dtype {
        DType::F32 => f64::from(f32::from_le_bytes(chunk.try_into().ok()?)),
        DType::F64 => f64::from_le_bytes(chunk.try_into().ok()?),
        DType::I64 => i64::from_le_bytes(chunk.try_into().ok()?) as f64,
        DType::I32 => f64::from(i32::from_le_bytes(chunk.try_into().ok()?)),
        DType::I16 => f64::from(i16::from_le_bytes(chunk.try_into().ok()?)),
        DType::I8 => f64::from(chunk[0] as i8),
        DType::U8 | DType::Bool => f64::from(chunk[0]),
        DType::U16 => f64::from(u16::from_le_bytes(chunk.try_into().ok()?)),
        DType::U32 => f64::from(u32::from_le_bytes(chunk.try_into().ok()?)),
        DType::U64 => u64::from_le_bytes(bytes8(8)) as f64,
        DType::BF16 => f64::from(f32::from_bits(u32::from(u16::from_le_bytes(chunk.try_into().ok()?)) << 16)),
        _ => return None,
    })
}

/// A suggestion from the name alone: norms scale by one, biases add zero.
fn guess_init(info: &TensorInfo) -> Init {
    let lower = info.name.to_ascii_lowercase();
    let last = lower.rsplit('.').next().unwrap_or("");
    let norm = lower.contains("norm") || lower.contains(".ln") || last == "gamma" || last == "scale";
    if last == "bias" || last == "beta" {
        Init::Zeros
    } else if norm && info.shape.len() == 1 {
        Init::Ones
    } else {
        Init::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, shape: &[u64]) -> TensorInfo {
        TensorInfo { name: name.into(), dtype: DType::F32, shape: shape.to_vec() }
    }

    fn layout(tensors: &[(&str, &[u64])]) -> Layout {
        Layout { tensors: tensors.iter().map(|(n, s)| info(n, s)).collect(), metadata: BTreeMap::new() }
    }

    #[test]
    fn names_alone_find_renames_splits_and_leftovers() {
        let old = layout(&[
            ("b.0.norm1.weight", &[4]),
            ("b.1.norm1.weight", &[4]),
            ("b.0.attn.qkv.weight", &[12, 4]),
            ("b.0.mlp.1.weight", &[8, 4]),
            ("b.0.mlp.3.weight", &[4, 8]),
            ("gone", &[3]),
        ]);
        let new = layout(&[
            ("b.0.norm_attn.weight", &[4]),
            ("b.1.norm_attn.weight", &[4]),
            ("b.0.attn.q.weight", &[4, 4]),
            ("b.0.attn.k.weight", &[4, 4]),
            ("b.0.attn.v.weight", &[4, 4]),
            ("b.0.mlp.0.weight", &[8, 4]),
            ("b.0.mlp.2.weight", &[4, 8]),
            ("b.0.q_norm.weight", &[4]),
        ]);
        let found = diff(&old, &new, None);
        insta::assert_snapshot!(found.table(), @r"
        dropped   gone (lossy)
        renamed   b.0.mlp.1.weight -> b.0.mlp.0.weight
        renamed   b.0.mlp.3.weight -> b.0.mlp.2.weight
        renamed   b.0.norm1.weight -> b.0.norm_attn.weight
        renamed   b.1.norm1.weight -> b.1.norm_attn.weight
        split     b.0.attn.qkv.weight -> b.0.attn.q.weight, b.0.attn.k.weight, b.0.attn.v.weight (axis 0, sizes [4, 4, 4])
        inserted  b.0.q_norm.weight f32[4]
        7 changed, 0 unchanged
        ");
        assert!(found.changes.iter().any(|c| matches!(c, Change::Split { ordered: true, .. })));
    }

    /// Bytes by name, for by-content tests.
    struct Bytes(BTreeMap<&'static str, Vec<u8>>);

    impl Content for Bytes {
        fn bytes(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
            self.0.get(name).map(|bytes| std::borrow::Cow::Borrowed(bytes.as_slice()))
        }
    }

    #[test]
    fn reordered_rows_are_a_permutation_drafted_as_a_gather() {
        // Rows 0..4 of two bytes each; the new file holds them as old rows [2, 0, 3, 1].
        let rows: Vec<u8> = vec![10, 11, 20, 21, 30, 31, 40, 41];
        let reordered: Vec<u8> =
            [2usize, 0, 3, 1].iter().flat_map(|&row| rows[2 * row..2 * row + 2].to_vec()).collect();
        let layout_of = |name: &str| Layout {
            tensors: vec![TensorInfo { name: name.into(), dtype: DType::U8, shape: vec![4, 2] }],
            metadata: BTreeMap::new(),
        };
        let (old, new) = (layout_of("edges.trainable"), layout_of("provider.trainable"));
        let old_bytes = Bytes(BTreeMap::from([("edges.trainable", rows.clone())]));
        let new_bytes = Bytes(BTreeMap::from([("provider.trainable", reordered)]));
        let found = diff(&old, &new, Some(&Contents { old: &old_bytes, new: &new_bytes }));
        assert_eq!(
            found.changes,
            [
                Change::Renamed { from: "edges.trainable".into(), to: "provider.trainable".into() },
                Change::Permuted {
                    from: "edges.trainable".into(),
                    to: "provider.trainable".into(),
                    index: vec![2, 0, 3, 1]
                },
            ]
        );
        // Without an aux input that explains the order, a question; with one, the gather.
        let schema = crate::infer(&old);
        let options = crate::DraftOptions { family: "m".into(), from: "1.0.0".into(), to: "2.0.0".into(), aux: vec![] };
        let open = crate::draft(&old, &found, &schema, &options).unwrap();
        assert_eq!(open.unresolved, 1, "{}", open.text);
        assert!(
            open.text.contains(r#"gather "provider.trainable" axis 0 index row_order["provider.trainable"]"#),
            "{}",
            open.text
        );
        // Destinations [1, 3, 0, 2]: their stable argsort is [2, 0, 3, 1].
        let edge_index: Vec<u8> = [7i64, 7, 7, 7, 1, 3, 0, 2].iter().flat_map(|value| value.to_le_bytes()).collect();
        let graph = crate::AuxInput {
            name: "graph".into(),
            doc: "the graph".into(),
            tensors: vec![crate::AuxTensor {
                name: "e.edge_index".into(),
                dtype: DType::I64,
                shape: vec![2, 4],
                bytes: edge_index,
            }],
        };
        let options = crate::DraftOptions { aux: vec![graph], ..options };
        let answered = crate::draft(&old, &found, &schema, &options).unwrap();
        assert_eq!(answered.unresolved, 0);
        insta::assert_snapshot!(answered.text, @r#"
        // Drafted by `safeshift diff --draft`: review every operation; answer and delete each question marked UNRESOLVED.
        migration m 1.0.0 -> 2.0.0 {
            aux graph "the graph"

            rename "edges.{s..}" -> "provider.{s}"
            gather "provider.trainable" axis 0 index argsort(graph["e.edge_index"], 1)
        }
        "#);
    }

    #[test]
    fn edit_keys_share_shifts_and_insertions() {
        assert_eq!(edit_key("p.mlp.1.w", "p.mlp.0.w"), edit_key("q.r.mlp.3.b", "q.r.mlp.2.b"));
        assert_eq!(edit_key("x.mlp.0.w", "x.mlp.mlp.0.w"), edit_key("y.mlp.2.b", "y.mlp.mlp.2.b"));
        assert_ne!(edit_key("p.mlp.1.w", "p.mlp.0.w"), edit_key("p.mlp.1.w", "p.mlp.2.w"));
    }
}
