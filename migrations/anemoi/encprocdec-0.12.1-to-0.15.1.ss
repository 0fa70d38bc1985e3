// anemoi-models 0.12.1 -> 0.15.1: PR #895 "fused per-dataset graphs" (0.13.0), and the normaliser's new buffer.
migration anemoi.encprocdec 0.12.1 -> 0.15.1 "one node-attribute table for the fused graph; the normaliser's _model_output_idx" {
    // One NamedNodesAttributes for the fused graph (0.15.1 models/base.py:82). Official:
    // migrations/scripts/1773048851_fuse_multiple_perdataset_graphs.py.
    rename "model.model.node_attributes.data.{rest..}" -> "model.model.node_attributes.{rest}"

    // New buffer _model_output_idx (0.15.1 preprocessing/normalizer.py:109-127): _output_idx
    // restricted to the variables the model outputs. A checkpoint from before target-only
    // variables existed has none, so it equals _output_idx: a copy of its sibling. No official
    // migration script covers this buffer.
    copy "model.{side}_processors.data.processors.normalizer._output_idx"
        -> "model.{side}_processors.data.processors.normalizer._model_output_idx"
}
