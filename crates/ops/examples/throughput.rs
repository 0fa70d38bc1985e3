//! Kernel throughput on 64 MiB tensors: `cargo run --release -p safeshift-ops --example throughput`.

use std::borrow::Cow;
use std::time::Instant;

use safeshift_model::{DType, DTypeClass, Sym};
use safeshift_ops::cast::CastMode;
use safeshift_ops::{evaluate, Expr, Leaf};

fn leaf(dtype: DType, shape: &[i64]) -> Expr {
    Expr::Source(Leaf {
        aux: None,
        name: "w".into(),
        dtype: DTypeClass::Exact(dtype),
        shape: shape.iter().map(|&dim| Sym::int(dim)).collect(),
    })
}

fn measure(label: &str, expr: &Expr, source: &[u8]) {
    let read = |_: &Leaf| Ok::<_, std::io::Error>(Cow::Borrowed(source));
    let _ = evaluate(expr, &read).expect("evaluate");
    let runs = 5;
    let start = Instant::now();
    let mut out_len = 0;
    for _ in 0..runs {
        out_len = evaluate(expr, &read).expect("evaluate").len();
    }
    let seconds = start.elapsed().as_secs_f64() / runs as f64;
    let gib = (source.len().max(out_len)) as f64 / (1u64 << 30) as f64;
    println!("{label:<40} {:>8.2} ms  {:>6.2} GiB/s", seconds * 1e3, gib / seconds);
}

fn main() {
    let n = 4096i64;
    let f32_source: Vec<u8> = (0..n * n).flat_map(|i| (i as f32 * 0.25).to_le_bytes()).collect();
    let bf16_source: Vec<u8> = f32_source[..f32_source.len() / 2].to_vec();
    let w = leaf(DType::F32, &[n, n]);
    let w16 = leaf(DType::BF16, &[n, n]);

    let start = Instant::now();
    for _ in 0..5 {
        std::hint::black_box(f32_source.to_vec());
    }
    let seconds = start.elapsed().as_secs_f64() / 5.0;
    println!("{:<40} {:>8.2} ms  {:>6.2} GiB/s", "baseline: to_vec of 64 MiB", seconds * 1e3, 0.0625 / seconds);
    measure(
        "rows 1024..3072 (byte range)",
        &Expr::Narrow { input: Box::new(w.clone()), axis: 0, start: Sym::int(1024), len: Sym::int(2048) },
        &f32_source,
    );
    measure("transpose f32 4096x4096", &Expr::Permute { input: Box::new(w.clone()), axes: vec![1, 0] }, &f32_source);
    measure(
        "transpose bf16 4096x4096",
        &Expr::Permute { input: Box::new(w16.clone()), axes: vec![1, 0] },
        &bf16_source,
    );
    measure(
        "columns 0..2048 f32",
        &Expr::Narrow { input: Box::new(w.clone()), axis: 1, start: Sym::int(0), len: Sym::int(2048) },
        &f32_source,
    );
    // permute-heads (32 heads of 128 rows), interleaved → rotate_half, bf16.
    let heads = Expr::Reshape {
        input: Box::new(Expr::Permute {
            input: Box::new(Expr::Reshape {
                input: Box::new(w16.clone()),
                shape: [32, 64, 2, n].map(Sym::int).to_vec(),
            }),
            axes: vec![0, 2, 1, 3],
        }),
        shape: vec![Sym::int(n), Sym::int(n)],
    };
    measure("permute-heads bf16 4096x4096", &heads, &bf16_source);
    for (from, to, source) in [
        (DType::F32, DType::BF16, &f32_source),
        (DType::F32, DType::F16, &f32_source),
        (DType::BF16, DType::F32, &bf16_source),
        (DType::F32, DType::F64, &f32_source),
    ] {
        let cast = Expr::Cast { input: Box::new(leaf(from, &[n, n])), dtype: to, mode: CastMode::Torch };
        measure(&format!("cast {from} -> {to}"), &cast, source);
    }
}
