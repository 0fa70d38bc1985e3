//! Kernels against `memcpy` of the same bytes, in the same run:
//! `cargo run --release -p safeshift-ops --example throughput [-- ROUNDS [FILTER]]`
//! (FILTER: only the kernels whose label contains it).
//!
//! Each kernel computes one tensor with `evaluate_into` into a buffer allocated once, as
//! the writer does; its baseline copies as many bytes (`copy_from_slice`, i.e. `memcpy`):
//! the output's, or for a cast the larger of its input and output. Kernel and baseline alternate
//! for ROUNDS rounds (default 7) so the load of a shared machine falls on both; the
//! medians and their ratio are printed as a markdown table, with the ratio of the fastest
//! runs (less sensitive to other processes than the medians).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use safeshift_model::{DType, DTypeClass, Sym};
use safeshift_ops::cast::CastMode;
use safeshift_ops::{evaluate_into, Expr, Leaf};

fn leaf(dtype: DType, shape: &[i64]) -> Expr {
    Expr::Source(Leaf {
        aux: None,
        name: "w".into(),
        dtype: DTypeClass::Exact(dtype),
        shape: shape.iter().map(|&dim| Sym::int(dim)).collect(),
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Times `expr` over `source` (producing `out_len` bytes) and `memcpy` of `out_len` bytes
/// from `copy_from`, alternating.
fn measure(label: &str, expr: &Expr, source: &[u8], copy_from: &[u8], out_len: usize, rounds: usize) {
    if std::env::args().nth(2).is_some_and(|filter| !label.contains(&filter)) {
        return;
    }
    // A cast reads more (narrowing) or writes more (widening) than its output's bytes:
    // its baseline copies the larger side.
    let copy_len = match expr {
        Expr::Cast { input, dtype, .. } => {
            let from = match safeshift_ops::dtype_of(input) {
                DTypeClass::Exact(from) => from.bits(),
                _ => dtype.bits(),
            };
            out_len / dtype.bits() * from.max(dtype.bits())
        }
        _ => out_len,
    };
    let read = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Borrowed(source));
    let mut out = vec![0u8; out_len];
    // Touched once, so that neither side pays for first-touch page faults.
    let mut copy_to = vec![1u8; copy_len];
    evaluate_into(expr, &mut out, &read).expect("evaluate");
    let (mut kernel, mut copy) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        evaluate_into(expr, &mut out, &read).expect("evaluate");
        kernel.push(start.elapsed());
        std::hint::black_box(&out);
        let start = Instant::now();
        copy_to[..copy_len].copy_from_slice(&copy_from[..copy_len]);
        copy.push(start.elapsed());
        std::hint::black_box(&copy_to);
    }
    let best =
        kernel.iter().min().expect("rounds > 0").as_secs_f64() / copy.iter().min().expect("rounds > 0").as_secs_f64();
    let (kernel, copy) = (median(kernel), median(copy));
    let gib = out_len as f64 / (1u64 << 30) as f64;
    println!(
        "| {label} | {:.1} MiB | {:.2} ms ({:.2} GiB/s) | {:.2} ms ({:.1} MiB) | {:.2}× | {best:.2}× |",
        out_len as f64 / (1u64 << 20) as f64,
        kernel.as_secs_f64() * 1e3,
        gib / kernel.as_secs_f64(),
        copy.as_secs_f64() * 1e3,
        copy_len as f64 / (1u64 << 20) as f64,
        kernel.as_secs_f64() / copy.as_secs_f64(),
    );
}

/// LLaMA's permute-heads (interleaved → rotate_half) of a `[rows, cols]` weight.
fn permute_heads(input: Expr, heads: i64, rows: i64, cols: i64) -> Expr {
    Expr::Reshape {
        input: Box::new(Expr::Permute {
            input: Box::new(Expr::Reshape {
                input: Box::new(input),
                shape: [heads, rows / heads / 2, 2, cols].map(Sym::int).to_vec(),
            }),
            axes: vec![0, 2, 1, 3],
        }),
        shape: vec![Sym::int(rows), Sym::int(cols)],
    }
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(7).max(1);
    let n = 4096i64;
    let f32_source: Vec<u8> = (0..n * n).flat_map(|i| (i as f32 * 0.25).to_le_bytes()).collect();
    let bf16_source: Vec<u8> = f32_source[..f32_source.len() / 2].to_vec();
    let w = leaf(DType::F32, &[n, n]);
    let w16 = leaf(DType::BF16, &[n, n]);
    let (f32_len, bf16_len) = (f32_source.len(), bf16_source.len());
    // What memcpy copies from: as large as the largest output (a widening cast's).
    let copy_from: Vec<u8> = f32_source.iter().chain(&f32_source).copied().collect();

    println!("| kernel | output | kernel time | memcpy of the same bytes | ratio | ratio of the fastest runs |");
    println!("|---|---:|---:|---:|---:|---:|");
    measure(
        "transpose f32 4096×4096",
        &Expr::Permute { input: Box::new(w.clone()), axes: vec![1, 0] },
        &f32_source,
        &copy_from,
        f32_len,
        rounds,
    );
    measure(
        "transpose bf16 4096×4096",
        &Expr::Permute { input: Box::new(w16.clone()), axes: vec![1, 0] },
        &bf16_source,
        &copy_from,
        bf16_len,
        rounds,
    );
    measure(
        "columns 0..2048 f32 4096×4096",
        &Expr::Narrow { input: Box::new(w.clone()), axis: 1, start: Sym::int(0), len: Sym::int(2048) },
        &f32_source,
        &copy_from,
        f32_len / 2,
        rounds,
    );
    measure(
        "permute-heads bf16 4096×4096, 32 heads (LLaMA q)",
        &permute_heads(w16.clone(), 32, n, n),
        &bf16_source,
        &copy_from,
        bf16_len,
        rounds,
    );
    let kv = leaf(DType::BF16, &[1024, n]);
    measure(
        "permute-heads bf16 1024×4096, 8 heads (LLaMA k, GQA)",
        &permute_heads(kv, 8, 1024, n),
        &bf16_source[..bf16_len / 4],
        &copy_from,
        bf16_len / 4,
        rounds,
    );
    // split-heads interleaved: the query part of a [3072, 4096] fused weight whose rows are
    // [8 heads, 3, 128], cast to bf16 (one pass over the query rows).
    let fused = leaf(DType::F32, &[3 * 1024, 1024 * 4]);
    let query = Expr::Cast {
        input: Box::new(Expr::Reshape {
            input: Box::new(Expr::Narrow {
                input: Box::new(Expr::Reshape {
                    input: Box::new(fused),
                    shape: [8, 3, 128, 4096].map(Sym::int).to_vec(),
                }),
                axis: 1,
                start: Sym::int(0),
                len: Sym::int(1),
            }),
            shape: vec![Sym::int(1024), Sym::int(4096)],
        }),
        dtype: DType::BF16,
        mode: CastMode::Torch,
    };
    measure(
        "split-heads query part, cast f32→bf16",
        &query,
        &f32_source[..3 * 1024 * 4096 * 4],
        &copy_from,
        1024 * 4096 * 2,
        rounds,
    );
    for (from, to, source) in [
        (DType::F32, DType::BF16, &f32_source),
        (DType::F32, DType::F16, &f32_source),
        (DType::BF16, DType::F32, &bf16_source),
        (DType::F32, DType::F64, &f32_source),
    ] {
        let cast = Expr::Cast { input: Box::new(leaf(from, &[n, n])), dtype: to, mode: CastMode::Torch };
        let out_len = (n * n) as usize * to.bits() / 8;
        measure(&format!("cast {from} → {to} 4096×4096"), &cast, source, &copy_from, out_len, rounds);
    }
}
