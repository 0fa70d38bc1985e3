//! Crate-level properties: lazy = eager over random tensors and random operation chains,
//! row slices = the whole, inverse ∘ forward = identity, shape rules = kernel shapes; and
//! the zero-copy guarantee. Case count: `PROPTEST_CASES` (default 64).

use std::borrow::Cow;

use proptest::prelude::*;
use safeshift_dsl::ast::{self, Value};
use safeshift_model::{DType, Sym};

use crate::byte_range::byte_range;
use crate::cast::{lossless, supported};
use crate::expr::Leaf;
use crate::kernel::{evaluate, evaluate_slice, evaluate_unsimplified, narrow_rows};
use crate::operation::Operation;
use crate::ops::testing::*;
use crate::tensor_set::{EagerSet, EagerTensor, OpContext, TensorSet};

/// Every dtype whose elements are whole bytes (the kernels move any of them; only the
/// cast-supported ones are cast, padded or filled).
fn whole_byte_dtypes() -> Vec<DType> {
    DType::ALL.into_iter().filter(|dtype| dtype.size().is_some()).collect()
}

/// Deterministic bytes from a seed (xorshift), so random data covers NaN payloads,
/// subnormals and every bit pattern.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Sets the quiet bit of every signalling NaN: widening casts quiet them (in PyTorch as in
/// IEEE hardware), so a cast round trip gives them back quiet; that is the one documented
/// exception to bit-exact round trips (`cast::restore_bytes`).
fn quiet_nans(dtype: DType, data: &mut [u8]) {
    fn quiet<const N: usize>(data: &mut [u8], exponent: u64, quiet: u64) {
        for chunk in data.chunks_exact_mut(N) {
            let mut wide = [0u8; 8];
            wide[..N].copy_from_slice(chunk);
            let bits = u64::from_le_bytes(wide);
            let mantissa = quiet * 2 - 1;
            if bits & exponent == exponent && bits & mantissa != 0 {
                chunk.copy_from_slice(&(bits | quiet).to_le_bytes()[..N]);
            }
        }
    }
    match dtype {
        DType::F16 => quiet::<2>(data, 0x7C00, 0x0200),
        DType::BF16 => quiet::<2>(data, 0x7F80, 0x0040),
        DType::F32 => quiet::<4>(data, 0x7F80_0000, 0x0040_0000),
        DType::F64 => quiet::<8>(data, 0x7FF0_0000_0000_0000, 0x0008_0000_0000_0000),
        _ => {}
    }
}

/// Chains of operations over one tensor `t`, built from random choices, tracking its
/// dtype and shape so every op is well-formed.
struct Chain {
    ops: Vec<ast::Op>,
    aux: Vec<(String, EagerTensor)>,
    dtype: DType,
    shape: Vec<u64>,
    name: String,
    invertible: bool,
}

impl Chain {
    fn step(&mut self, index: usize, choice: u64) {
        let rank = self.shape.len();
        let axis = (choice / 16) as usize % rank;
        let size = self.shape[axis];
        let t = self.name.clone();
        let computable = supported(self.dtype);
        match choice % 13 {
            0 if rank == 2 => {
                self.shape.swap(0, 1);
                self.ops.push(op("transpose", vec![pats(&[&t])]));
            }
            1 if rank >= 2 => {
                let mut axes: Vec<i64> = (0..rank as i64).collect();
                axes.rotate_left(1 + axis % (rank - 1));
                self.shape = axes.iter().map(|&a| self.shape[a as usize]).collect();
                self.ops.push(op("permute", vec![pats(&[&t]), clause_list("axes", &axes)]));
            }
            2 => {
                let numel: u64 = self.shape.iter().product();
                self.shape = if rank > 1 || numel % 2 != 0 { vec![numel] } else { vec![2, numel / 2] };
                let dims: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
                self.ops.push(op("reshape", vec![pats(&[&t]), clause_list("to", &dims)]));
            }
            3 if size >= 2 => {
                let first = 1 + (choice / 256) % (size - 1);
                let rest = format!("r{index}");
                self.ops.push(op(
                    "split",
                    vec![
                        pats(&[&t]),
                        clause_int("axis", axis as i64),
                        clause_pats("into", &[&t, &rest]),
                        clause_list("sizes", &[first as i64, (size - first) as i64]),
                    ],
                ));
                self.shape[axis] = first;
            }
            4 if !self.invertible => {
                let keep = (choice / 256) % (size + 1);
                self.ops.push(op(
                    "truncate",
                    vec![pats(&[&t]), clause_int("axis", axis as i64), clause_int("to", keep as i64), flag("lossy")],
                ));
                self.shape[axis] = keep;
            }
            5 if computable => {
                let grow = 1 + (choice / 256) % 3;
                let value = ((choice / 1024) % 5) as i64 - 2;
                self.ops.push(op(
                    "pad",
                    vec![
                        pats(&[&t]),
                        clause_int("axis", axis as i64),
                        clause_int("to", (size + grow) as i64),
                        clause_int("value", value),
                    ],
                ));
                self.shape[axis] += grow;
            }
            6 if computable => {
                let targets: Vec<DType> = DType::ALL
                    .into_iter()
                    .filter(|target| {
                        supported(*target)
                            && *target != self.dtype
                            && (!self.invertible || lossless(self.dtype, *target))
                    })
                    .collect();
                if let Some(&target) = targets.get((choice / 256) as usize % targets.len().max(1)) {
                    let mut operands = vec![pats(&[&t]), clause_word("to", target.language_name())];
                    if !lossless(self.dtype, target) {
                        operands.push(flag("lossy"));
                    }
                    self.ops.push(op("cast", operands));
                    self.dtype = target;
                }
            }
            7 => {
                let heads = (1..=self.shape[0]).rev().find(|h| self.shape[0] % h == 0 && (self.shape[0] / h) % 2 == 0);
                if let Some(heads) = heads.filter(|_| self.shape[0] > 0) {
                    let (from, to) =
                        if choice & 256 == 0 { ("interleaved", "rotate_half") } else { ("rotate_half", "interleaved") };
                    self.ops.push(op(
                        "permute-heads",
                        vec![
                            pats(&[&t]),
                            clause_int("heads", heads as i64),
                            clause_word("from", from),
                            clause_word("to", to),
                        ],
                    ));
                }
            }
            8 => {
                let rows = self.shape[0];
                let fits = [(4i64, 2i64), (2, 1), (1, 1), (2, 2)]
                    .into_iter()
                    .find(|(h, k)| rows > 0 && rows % (h + 2 * k) as u64 == 0);
                if let Some((heads, kv)) = fits {
                    let layouts =
                        if choice & 256 == 0 { ["chunked", "interleaved"] } else { ["interleaved", "chunked"] };
                    let parts = [format!("q{index}"), format!("k{index}"), format!("v{index}")];
                    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                    let counts = |layout: &str| {
                        vec![clause_word("layout", layout), clause_int("heads", heads), clause_int("kv_heads", kv)]
                    };
                    let mut split = vec![pats(&[&t]), clause_pats("into", &parts)];
                    split.extend(counts(layouts[0]));
                    let mut merge = vec![pats(&parts), clause_pats("into", &[&t])];
                    merge.extend(counts(layouts[1]));
                    self.ops.push(op("split-heads", split));
                    self.ops.push(op("merge-heads", merge));
                }
            }
            9 => {
                let perm_name = format!("perm{index}");
                let mut perm: Vec<i64> = (0..size as i64).collect();
                let rotation = (choice / 256) as usize % perm.len().max(1);
                perm.rotate_left(rotation);
                perm.reverse();
                let data = perm.iter().flat_map(|value| value.to_le_bytes()).collect();
                self.aux.push((perm_name.clone(), tensor(DType::I64, &[size], data)));
                self.ops.push(op(
                    "gather",
                    vec![pats(&[&t]), clause_int("axis", axis as i64), clause_aux("index", "graph", &perm_name)],
                ));
            }
            10 => {
                let copy = format!("c{index}");
                self.ops.push(op("copy", vec![pats(&[&t]), arrow(&[&copy])]));
                self.ops.push(op(
                    "concat",
                    vec![pats(&[&t, &copy]), clause_int("axis", axis as i64), clause_pats("into", &[&t])],
                ));
                self.shape[axis] *= 2;
            }
            11 => {
                let moved = format!("x{index}.{t}");
                self.ops.push(op("rename", vec![pats(&[&t]), arrow(&[&moved])]));
                self.name = moved;
            }
            12 if computable => {
                let dims: Vec<ast::Expr> = self.shape.iter().map(|&d| int(d as i64)).collect();
                let init = if choice & 256 == 0 { ident("ones") } else { ident("zeros") };
                let inserted = format!("z{index}");
                self.ops.push(op(
                    "insert",
                    vec![pats(&[&inserted]), type_spec(self.dtype.language_name(), dims), assign(Value::Expr(init))],
                ));
            }
            _ => {}
        }
    }
}

fn arb_case() -> impl Strategy<Value = (DType, Vec<u64>, u64, Vec<u64>, bool)> {
    let dtype = proptest::sample::select(whole_byte_dtypes());
    // Small dims, 0 included rarely: empty tensors are an edge case every kernel must get
    // right, but most chains should move real data.
    let dim = prop_oneof![1 => Just(0u64), 12 => 1u64..7];
    let shape = proptest::collection::vec(dim, 1..4);
    (dtype, shape, any::<u64>(), proptest::collection::vec(any::<u64>(), 1..7), any::<bool>())
}

fn run_chain(ops: &[Box<dyn Operation>], set: &EagerSet, ctx: &OpContext) -> (TensorSet, EagerSet, Vec<TensorSet>) {
    let mut lazy = lazy_of(set);
    let mut eager = set.clone();
    let mut befores = Vec::new();
    for op in ops {
        befores.push(lazy.clone());
        op.apply(&mut lazy, ctx).unwrap_or_else(|err| panic!("apply {op:?}: {err}"));
        op.eager(&mut eager, ctx).unwrap_or_else(|err| panic!("eager {op:?}: {err}"));
    }
    (lazy, eager, befores)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chains_lazy_equals_eager_and_invert((dtype, shape, seed, choices, invertible) in arb_case()) {
        let numel: u64 = shape.iter().product();
        let mut data = bytes(seed, numel as usize * dtype.size().unwrap());
        if dtype == DType::Bool {
            // Only 0 and 1 are booleans; other bytes are not valid data.
            data.iter_mut().for_each(|byte| *byte &= 1);
        }
        quiet_nans(dtype, &mut data);
        let mut chain = Chain { ops: Vec::new(), aux: Vec::new(), dtype, shape: shape.clone(), name: "t".into(), invertible, };
        for (index, &choice) in choices.iter().enumerate() {
            chain.step(index, choice);
        }
        let mut set = eager_set(&[("t", tensor(dtype, &shape, data)), ("other", iota(&[2]))]);
        for (name, aux) in &chain.aux {
            set.aux.insert(("graph".into(), name.clone()), aux.clone());
        }
        let ctx = with_aux(&OpContext::default(), &set);
        let ops: Vec<Box<dyn Operation>> = chain.ops.iter().map(|op| lower_ok(op.clone())).collect();
        let (lazy, eager, befores) = run_chain(&ops, &set, &ctx);

        // Lazy = eager (evaluate_all also checks simplified = unsimplified, any row
        // partition = the whole, and shape rule = the kernel's byte count).
        let mut computed = evaluate_all(&lazy, &set);
        computed.aux = eager.aux.clone();
        prop_assert_eq!(&computed, &eager);

        // Inverse after forward gives the original bytes.
        if ops.iter().all(|op| !op.lossy()) {
            let mut inverses = Vec::new();
            for (op, before) in ops.iter().zip(&befores).rev() {
                match op.inverse(before, &ctx) {
                    Ok(found) => inverses.extend(found),
                    Err(_) => return Ok(()),
                }
            }
            let mut back = lazy.clone();
            let mut eager_back = eager.clone();
            for inverse in &inverses {
                inverse.apply(&mut back, &ctx).unwrap_or_else(|err| panic!("inverse apply {inverse:?}: {err}"));
                inverse.eager(&mut eager_back, &ctx).unwrap_or_else(|err| panic!("inverse eager {inverse:?}: {err}"));
            }
            let restored = evaluate_all(&back, &set);
            for (name, tensor) in set.iter() {
                prop_assert_eq!(restored.get(name), Some(tensor), "lazy round trip of `{}`", name);
                prop_assert_eq!(eager_back.get(name), Some(tensor), "eager round trip of `{}`", name);
            }
            prop_assert_eq!(restored.iter().count(), set.iter().count());
        }
    }

    #[test]
    fn full_row_range_is_the_whole((dtype, shape, seed, _choices, _) in arb_case()) {
        let numel: u64 = shape.iter().product();
        let source = bytes(seed, numel as usize * dtype.size().unwrap());
        let mut lazy = TensorSet::new();
        lazy.insert("t", crate::TensorValue::source("t", safeshift_model::DTypeClass::Exact(dtype), crate::eager::sym_shape(&shape)));
        let expr = crate::expr::Expr::Permute {
            input: Box::new(lazy.get("t").unwrap().expr().clone()),
            axes: (0..shape.len()).rev().collect(),
        };
        let read = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Borrowed(source.as_slice()));
        let whole = evaluate(&expr, &read).unwrap();
        let rows = shape[shape.len() - 1];
        prop_assert_eq!(&evaluate_slice(&expr, 0..rows, &read).unwrap(), &whole);
        prop_assert_eq!(&evaluate_unsimplified(&expr, &read).unwrap(), &whole);
    }
}

/// Acceptance: rename, reshape, a first-axis split and a truncation leave each result a
/// byte range of the source, and reading that range gives what the kernels compute.
#[test]
fn zero_copy_chain_is_a_byte_range() {
    let ops = [
        op("rename", vec![pats(&["layer.{i}.w"]), arrow(&["block.{i}.weight"])]),
        op("reshape", vec![pats(&["block.{i}.weight"]), clause_list("to", &[4, 2, 8])]),
        op(
            "split",
            vec![
                pats(&["block.{i}.weight"]),
                clause_int("axis", 0),
                clause_pats("into", &["block.{i}.a", "block.{i}.b"]),
            ],
        ),
        op("truncate", vec![pats(&["block.{i}.b"]), clause_int("axis", 0), clause_int("to", 1), flag("lossy")]),
    ];
    let source: Vec<u8> = bytes(7, 8 * 8 * 4);
    let set = eager_set(&[("layer.0.w", tensor(DType::F32, &[8, 8], source.clone()))]);
    let ctx = OpContext::default();
    let ops: Vec<Box<dyn Operation>> = ops.into_iter().map(lower_ok).collect();
    let (lazy, eager, _) = run_chain(&ops, &set, &ctx);
    let read = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Borrowed(source.as_slice()));
    let expected = [("block.0.a", 0, 128), ("block.0.b", 128, 192)];
    for (name, start, end) in expected {
        let value = lazy.get(name).unwrap();
        let range =
            byte_range(value.expr()).unwrap_or_else(|| panic!("`{name}` is not a byte range: {}", value.expr()));
        assert_eq!(
            (range.source.as_str(), range.aux.as_deref(), range.start, range.end),
            ("layer.0.w", None, start, end)
        );
        let borrowed = &source[range.start as usize..range.end as usize];
        assert_eq!(borrowed, evaluate_unsimplified(value.expr(), &read).unwrap(), "`{name}`");
        assert_eq!(borrowed, eager.get(name).unwrap().data, "`{name}`");
        // A row slice (one rank's share) is a byte range too; rows are 2 × 8 × 4 bytes.
        let rows = value.shape()[0].as_int().unwrap() as u64;
        let slice = byte_range(&narrow_rows(value.expr(), 1..rows).unwrap()).unwrap();
        assert_eq!((slice.start, slice.end), (start + 64, end));
    }
}

/// A row slice of a chunked split-heads part is again a byte range of the fused source.
#[test]
fn row_slices_of_chunked_heads_stay_zero_copy() {
    let chunked = lower_ok(op(
        "split-heads",
        vec![
            pats(&["qkv"]),
            clause_pats("into", &["q", "k", "v"]),
            clause_word("layout", "chunked"),
            clause_int("heads", 4),
            clause_int("kv_heads", 2),
        ],
    ));
    let set = eager_set(&[("qkv", iota(&[16, 3]))]);
    let (lazy, _, _) = run_chain(&[chunked], &set, &OpContext::default());
    let k = lazy.get("k").unwrap().expr();
    let slice = byte_range(&narrow_rows(k, 1..3).unwrap()).unwrap();
    // k starts at fused row 8 (4 heads × 2 rows); rows 1..3 are fused rows 9..11, 12 bytes each.
    assert_eq!((slice.start, slice.end), (9 * 12, 11 * 12));
    let interleaved = lower_ok(op(
        "split-heads",
        vec![
            pats(&["qkv"]),
            clause_pats("into", &["q", "k", "v"]),
            clause_word("layout", "interleaved"),
            clause_int("heads", 4),
            clause_int("kv_heads", 2),
        ],
    ));
    let (lazy, _, _) = run_chain(&[interleaved], &set, &OpContext::default());
    // Interleaved, K = 2 groups of [q, q, k, v] × 2 rows: k of group 0 is fused rows 4..6.
    let k = lazy.get("k").unwrap().expr();
    let slice = byte_range(&narrow_rows(k, 0..2).unwrap()).unwrap();
    assert_eq!((slice.start, slice.end), (4 * 12, 6 * 12));
    assert_eq!(byte_range(k), None, "the whole interleaved k is two separate runs");
}

#[test]
fn bad_sources_are_errors_not_panics() {
    let leaf = Leaf {
        aux: None,
        name: "w".into(),
        dtype: safeshift_model::DTypeClass::Exact(DType::F32),
        shape: vec![Sym::int(2)],
    };
    let expr = crate::expr::Expr::Source(leaf);
    let short = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Owned(vec![0u8; 7]));
    assert_eq!(evaluate(&expr, &short).unwrap_err().to_string(), "`w` has 7 bytes, expected 8");
    let failing = |_: &Leaf| Err::<Cow<[u8]>, _>(std::io::Error::other("disk on fire"));
    assert_eq!(evaluate(&expr, &failing).unwrap_err().to_string(), "cannot read `w`");
    let rows = evaluate_slice(&expr, 1..3, &short).unwrap_err();
    assert_eq!(rows.to_string(), "rows 1..3 are out of range for a first axis of size 2");
    let index = crate::expr::Expr::Fill {
        dtype: safeshift_model::DTypeClass::Exact(DType::I64),
        shape: vec![Sym::int(1)],
        init: crate::expr::Init::Value(5.0),
    };
    let gather = crate::expr::Expr::Gather { input: Box::new(expr), axis: 0, index: Box::new(index) };
    let fine = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Owned(vec![0u8; 8]));
    assert_eq!(evaluate(&gather, &fine).unwrap_err().to_string(), "index 5 is out of range for an axis of size 2");
}

#[test]
fn unknown_op_suggests_a_builtin() {
    let diagnostics = lower_err(op("split_heads", vec![]));
    assert_eq!(codes(&diagnostics), ["unknown-op"]);
    assert_eq!(diagnostics[0].hints, ["did you mean `split-heads`?"]);
}

#[test]
fn unexpected_and_duplicate_operands_are_reported() {
    let diagnostics = lower_err(op("transpose", vec![pats(&["w"]), clause_int("axis", 0)]));
    assert_eq!(codes(&diagnostics), ["unexpected-operand"]);
    assert_eq!(diagnostics[0].message, "`transpose` does not take `axis`");
    assert_eq!(diagnostics[0].hints, ["`transpose` takes: PATTERN, optional"]);
    let diagnostics =
        lower_err(op("pad", vec![pats(&["w"]), clause_int("axis", 0), clause_int("axis", 1), clause_int("to", 3)]));
    assert_eq!(codes(&diagnostics), ["duplicate-operand"]);
}

/// Every row of the language reference's operation table, as text, lowers (with the
/// parser's operand forms, not hand-built ones).
#[test]
fn language_table_syntax_lowers() {
    let statements = [
        r#"rename "a.{x}" -> "b.{x}" optional"#,
        r#"copy "a" -> "b""#,
        r#"drop "a", "b.{x}" lossy"#,
        r#"drop "a" derived optional"#,
        r#"reshape "a" to [3, hidden / 3]"#,
        r#"transpose "a""#,
        r#"permute "a" axes [1, 0, 2]"#,
        r#"split "a" axis 0 into "q", "k", "v""#,
        r#"split "a" axis -1 into "q", "kv" sizes [hidden, 2 * kv]"#,
        r#"concat "q", "k", "v" axis 0 into "qkv""#,
        r#"split-heads "qkv" into "q", "k", "v" layout interleaved heads 32 kv_heads 8"#,
        r#"split-heads "qkv" into "q", "k", "v" layout chunked heads heads head_dim 64 axis 0"#,
        r#"merge-heads "q", "k", "v" into "qkv" layout chunked heads 16"#,
        r#"permute-heads "q" heads heads from interleaved to rotate_half"#,
        r#"insert "n.{i < layers}.w" : f32[head_dim] = ones"#,
        r#"insert "e" : bf16[4, 4] = eye"#,
        r#"insert "f" : f16[2] = fill(0.5)"#,
        r#"insert "g" : i32[2] = fill(-3)"#,
        r#"pad "a" axis 1 to vars value 0"#,
        r#"pad "a" axis 1 to 10 value -1.5"#,
        r#"truncate "a" axis 0 to 32000 lossy"#,
        r#"cast "a" to bf16 lossy"#,
        r#"cast "a" to f32"#,
        r#"gather "a" axis 0 index graph["perm"]"#,
        r#"meta-set "version" = "0.5.0""#,
        r#"meta-set "config" at "model.heads" = 16"#,
        r#"meta-set "config" at "model.flags" = {"a": [1, true, null]}"#,
        r#"meta-rename "a" -> "b""#,
        r#"meta-delete "config" at "training.seed" lossy"#,
    ];
    for statement in statements {
        let ops = parse_ops(statement);
        assert_eq!(ops.len(), 1, "{statement}");
        if let Err(diagnostics) = crate::lower(safeshift_dsl::SourceId(0), &ops[0]) {
            panic!("{statement}: {diagnostics:#?}");
        }
    }
}

/// Parsed text applies like the hand-built trees: the Hugging Face LLaMA permutation, the
/// fused-qkv split, and metadata edits with JSON values.
#[test]
fn parsed_operations_apply() {
    let set = eager_set(&[("qkv", iota(&[8, 1]))]);
    let split = lower_text(r#"split-heads "qkv" into "q", "k", "v" layout interleaved heads 4 kv_heads 2"#);
    let out = check_lazy_eager(&*split, &set, &OpContext::default());
    assert_eq!(i32_values(out.get("q").unwrap()), [0, 1, 4, 5]);

    let permute = lower_text(r#"permute-heads "w" heads kv from interleaved to rotate_half"#);
    let ctx = ctx_with(&[("kv", 2)]);
    let out = check_lazy_eager(&*permute, &eager_set(&[("w", iota(&[8]))]), &ctx);
    assert_eq!(i32_values(out.get("w").unwrap()), [0, 2, 1, 3, 4, 6, 5, 7]);

    let mut set = EagerSet::new();
    set.metadata.insert("config".into(), r#"{"model":{}}"#.into());
    for statement in
        [r#"meta-set "version" = "0.5.0""#, r#"meta-set "config" at "model.flags" = {"a": [1.5, true, null]}"#]
    {
        lower_text(statement).eager(&mut set, &ctx).unwrap();
    }
    assert_eq!(set.metadata["version"], "0.5.0");
    assert_eq!(set.metadata["config"], r#"{"model":{"flags":{"a":[1.5,true,null]}}}"#);
}

/// Every migration shipped in the repository's registry lowers without diagnostics.
#[test]
fn shipped_migrations_lower() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("migrations folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "ss") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let file = safeshift_dsl::parse(safeshift_dsl::SourceId(0), &text)
            .unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()));
        for item in &file.items {
            let ast::Item::Migration(migration) = item else { continue };
            let down = migration.down.as_ref().map(|block| block.ops.as_slice()).unwrap_or_default();
            for ops in [migration.ops.as_slice(), down] {
                let (_, diagnostics) = crate::lower_all(safeshift_dsl::SourceId(0), ops);
                assert!(diagnostics.is_empty(), "{}: {diagnostics:#?}", path.display());
            }
        }
    }
}

/// A shape too large for memory (a typo in a registry) is an error, not an abort.
#[test]
fn impossible_sizes_are_errors() {
    let huge = crate::expr::Expr::Fill {
        dtype: safeshift_model::DTypeClass::Exact(DType::F32),
        shape: vec![Sym::int(1 << 40), Sym::int(1 << 30)],
        init: crate::expr::Init::Ones,
    };
    let nothing = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Borrowed(&[][..]));
    assert!(matches!(evaluate(&huge, &nothing), Err(crate::kernel::EvalError::TooLarge)));
}

/// The plans of the head operations, simplified, as the `plan` output shows them.
#[test]
fn head_operation_plans() {
    let set = eager_set(&[("qkv", iota(&[16, 4])), ("wq", iota(&[8, 4]))]);
    let statements = [
        r#"split-heads "qkv" into "q", "k", "v" layout interleaved heads 4 kv_heads 2"#,
        r#"permute-heads "wq" heads 2 from interleaved to rotate_half"#,
    ];
    let mut lazy = lazy_of(&set);
    for statement in statements {
        lower_text(statement).apply(&mut lazy, &OpContext::default()).unwrap();
    }
    let plans: Vec<String> = lazy.iter().map(|(name, value)| format!("{name} = {}", crate::simplify(value.expr().clone()))).collect();
    insta::assert_snapshot!("head_operation_plans", plans.join("\n"));
}
