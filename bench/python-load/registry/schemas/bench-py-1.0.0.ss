// The Python benchmark's synthetic model (bench/python-load/bench.py), as first released:
// a fused qkv projection, blocks under `blocks.N`.
schema benchpy.model @ 1.0.0 "fused qkv, blocks.N" {
    dim hidden
    dim layers

    tensor "blocks.{i < layers}.attn.qkv.weight" : f32[3 * hidden, hidden]
    tensor "blocks.{i < layers}.attn.proj.weight" : f32[hidden, hidden]
    tensor "blocks.{i < layers}.mlp.fc1.weight" : f32[4 * hidden, hidden]
    tensor "blocks.{i < layers}.mlp.fc2.weight" : f32[hidden, 4 * hidden]
    tensor "blocks.{i < layers}.norm.weight" : f32[hidden]
}
