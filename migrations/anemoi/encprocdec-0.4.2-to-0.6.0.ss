// anemoi-models 0.4.2 -> 0.6.0: PR #182 "Kcrps" (anemoi-core 8bbe89839), released in 0.5.0.
// Processor block keys are unchanged in this step.
migration anemoi.encprocdec 0.4.2 -> 0.6.0 "the mapper's layer_norm_attention changes meaning; node_dst_mlp loses its layer norm" {
    // The trap. In 0.4.2 the key layer_norm_attention is the alias of the *source* norm
    // (layer_norm_attention_src = self.layer_norm_attention). From 0.5 it is the alias of the
    // *destination* norm: layer_norm_attention_src is a new LayerNorm and
    // layer_norm_attention_dest = self.layer_norm_attention (0.6.0 layers/block.py:401,589-590,
    // forward 620-621). Passing the key through under its name would feed the source norm to
    // the destination nodes (a forward pass then differs by up to 0.45). So: the old key's
    // bytes (a copy of layer_norm_attention_src, which keeps its name and meaning) go, and the
    // destination norm fans out under both of its new names.
    drop "model.model.{mapper}.proc.layer_norm_attention.{w}" derived
    copy "model.model.{mapper}.proc.layer_norm_attention_dest.{w}"
        -> "model.model.{mapper}.proc.layer_norm_attention.{w}"

    // node_dst_mlp loses its leading LayerNorm, which becomes layer_norm_mlp_dst
    // (0.6.0 layers/block.py:402-410). 0.4.2 stores that norm twice (node_dst_mlp.0 and its
    // alias layer_norm_mlp): keep one copy under the new name.
    drop "model.model.{mapper}.proc.node_dst_mlp.0.{w}" derived
    rename "model.model.{mapper}.proc.layer_norm_mlp.{w}"
        -> "model.model.{mapper}.proc.layer_norm_mlp_dst.{w}"

    // The Linear layers move down one index (1 -> 0, 3 -> 2). node_dst_mlp.0 is then a
    // different tensor, [mlp_hidden, hidden] instead of [hidden]: not a shape change of one tensor.
    rename "model.model.{mapper}.proc.node_dst_mlp.{k}.{w}"
        -> "model.model.{mapper}.proc.node_dst_mlp.{k - 1}.{w}"

    // Dropping an alias has no automatic inverse: the downgrade re-creates both aliases.
    down {
        rename "model.model.{mapper}.proc.node_dst_mlp.{k}.{w}"
            -> "model.model.{mapper}.proc.node_dst_mlp.{k + 1}.{w}"
        rename "model.model.{mapper}.proc.layer_norm_mlp_dst.{w}"
            -> "model.model.{mapper}.proc.layer_norm_mlp.{w}"
        copy "model.model.{mapper}.proc.layer_norm_mlp.{w}"
            -> "model.model.{mapper}.proc.node_dst_mlp.0.{w}"
        drop "model.model.{mapper}.proc.layer_norm_attention.{w}" derived
        copy "model.model.{mapper}.proc.layer_norm_attention_src.{w}"
            -> "model.model.{mapper}.proc.layer_norm_attention.{w}"
    }
}
