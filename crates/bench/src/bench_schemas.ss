// The bench's synthetic Anemoi-like model (crates/bench/src/synth.rs) at three versions.

schema bench.model @ 1.0.0 "fused qkv projection, blocks under model.model.processor.proc" {
    dim hidden
    dim layers

    tensor "model.model.encoder.proj.weight" : f32[hidden, 128]
    tensor "model.model.encoder.proj.bias" : f32[hidden]
    tensor "model.model.trainable_data.trainable" : f32[40320, 8]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_qkv.weight" : f32[3 * hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_qkv.bias" : f32[3 * hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.projection.weight" : f32[hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.projection.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm1.weight" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm1.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm2.weight" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm2.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.0.weight" : bf16[4 * hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.0.bias" : f32[4 * hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.2.weight" : bf16[hidden, 4 * hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.2.bias" : f32[hidden]
    tensor "model.model.decoder.proj.weight" : f32[128, hidden]
    tensor "model.model.decoder.proj.bias" : f32[128]
}

schema bench.model @ 1.1.0 "blocks under model.processor.layers, qkv bias [3, hidden]" {
    dim hidden
    dim layers

    tensor "model.model.encoder.proj.weight" : f32[hidden, 128]
    tensor "model.model.encoder.proj.bias" : f32[hidden]
    tensor "model.model.trainable_data.trainable" : f32[40320, 8]
    tensor "model.processor.layers.{i < layers}.attention.lin_qkv.weight" : f32[3 * hidden, hidden]
    tensor "model.processor.layers.{i < layers}.attention.lin_qkv.bias" : f32[3, hidden]
    tensor "model.processor.layers.{i < layers}.attention.projection.weight" : f32[hidden, hidden]
    tensor "model.processor.layers.{i < layers}.attention.projection.bias" : f32[hidden]
    tensor "model.processor.layers.{i < layers}.layer_norm1.weight" : f32[hidden]
    tensor "model.processor.layers.{i < layers}.layer_norm1.bias" : f32[hidden]
    tensor "model.processor.layers.{i < layers}.layer_norm2.weight" : f32[hidden]
    tensor "model.processor.layers.{i < layers}.layer_norm2.bias" : f32[hidden]
    tensor "model.processor.layers.{i < layers}.mlp.0.weight" : bf16[4 * hidden, hidden]
    tensor "model.processor.layers.{i < layers}.mlp.0.bias" : f32[4 * hidden]
    tensor "model.processor.layers.{i < layers}.mlp.2.weight" : bf16[hidden, 4 * hidden]
    tensor "model.processor.layers.{i < layers}.mlp.2.bias" : f32[hidden]
    tensor "model.model.decoder.proj.weight" : f32[128, hidden]
    tensor "model.model.decoder.proj.bias" : f32[128]
}

schema bench.model @ 2.0.0 "separate q, k, v; bf16 attention weights; transposed projections" {
    dim hidden
    dim layers

    tensor "model.model.encoder.proj.weight" : f32[hidden, 128]
    tensor "model.model.encoder.proj.bias" : f32[hidden]
    tensor "model.model.trainable_data.trainable" : f32[40320, 8]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_q.weight" : bf16[hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_k.weight" : bf16[hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_v.weight" : bf16[hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_q.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_k.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.lin_v.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.projection.weight" : bf16[hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.attention.projection.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm1.weight" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm1.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm2.weight" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.layer_norm2.bias" : f32[hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.0.weight" : bf16[4 * hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.0.bias" : f32[4 * hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.2.weight" : bf16[4 * hidden, hidden]
    tensor "model.model.processor.proc.{i < layers}.mlp.2.bias" : f32[hidden]
    tensor "model.model.decoder.proj.weight" : f32[128, hidden]
    tensor "model.model.decoder.proj.bias" : f32[128]
}
