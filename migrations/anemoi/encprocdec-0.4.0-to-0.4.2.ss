// anemoi-models 0.4.0 -> 0.4.2: PR #47 "normalization layers" (anemoi-core 0e1c7c484).
// Line numbers cite the released wheels, `anemoi/models/...` of each version.
migration anemoi.encprocdec 0.4.0 -> 0.4.2 "named layer norms; the mapper's layer norms gain aliases" {
    // Processor blocks: layer_norm1 comes before the attention, layer_norm2 before the MLP
    // (0.4.0 layers/block.py:81,97; 0.4.2 layers/block.py:86-87).
    rename "model.model.processor.proc.{c}.blocks.{j}.layer_norm1.{w}"
        -> "model.model.processor.proc.{c}.blocks.{j}.layer_norm_attention.{w}"
    rename "model.model.processor.proc.{c}.blocks.{j}.layer_norm2.{w}"
        -> "model.model.processor.proc.{c}.blocks.{j}.layer_norm_mlp.{w}"

    // Mappers (encoder, decoder): 0.4.0 normalises the source nodes with layer_norm1 and the
    // destination nodes with layer_norm2 (0.4.0 layers/block.py:356,477, forward 491-494).
    // 0.4.2 stores one module under two keys, layer_norm_attention and its alias
    // layer_norm_attention_src, and a separate layer_norm_attention_dest
    // (0.4.2 layers/block.py:374,508-509, forward 524-525): a fan-out copy.
    copy "model.model.{mapper}.proc.layer_norm1.{w}"
        -> "model.model.{mapper}.proc.layer_norm_attention_src.{w}"
    rename "model.model.{mapper}.proc.layer_norm1.{w}"
        -> "model.model.{mapper}.proc.layer_norm_attention.{w}"
    rename "model.model.{mapper}.proc.layer_norm2.{w}"
        -> "model.model.{mapper}.proc.layer_norm_attention_dest.{w}"

    // node_dst_mlp is still Sequential(LayerNorm, Linear, act, Linear), but its LayerNorm is now
    // also the module layer_norm_mlp (0.4.2 layers/block.py:375-378): the same tensor under a
    // second key. node_dst_mlp.1 and .3 are unchanged.
    copy "model.model.{mapper}.proc.node_dst_mlp.0.{w}"
        -> "model.model.{mapper}.proc.layer_norm_mlp.{w}"
}
