// anemoi-models 0.6.0 -> 0.10.0: PR #179 "transformer mapper" (anemoi-core 2cea7db51), released in 0.7.0.
// The processor keeps its chunked layout in this step.
migration anemoi.encprocdec 0.6.0 -> 0.10.0 "split the processor's fused qkv projection" {
    // 0.6.0 layers/attention.py:113 `self.lin_qkv = linear(embed_dim, 3 * embed_dim, bias=qkv_bias)`
    // and :139 `query, key, value = self.lin_qkv(x).chunk(3, -1)`: the output features (the
    // weight's rows) are cut into three contiguous blocks in the order q, k, v, and the heads
    // are split afterwards, per tensor. So rows [0, C) are lin_q, [C, 2C) lin_k, [2C, 3C) lin_v
    // (0.10.0 layers/attention.py:131-133, 215-217), not interleaved per head (a forward pass
    // would differ by up to 0.24). A bias (qkv_bias=True; False by default) splits the same way.
    split "model.model.processor.proc.{c}.blocks.{j}.attention.lin_qkv.{w}" axis 0
        into "model.model.processor.proc.{c}.blocks.{j}.attention.lin_q.{w}", "model.model.processor.proc.{c}.blocks.{j}.attention.lin_k.{w}", "model.model.processor.proc.{c}.blocks.{j}.attention.lin_v.{w}"
}
