// anemoi-models 0.12.1 -> 0.15.1: PR #895 "fused per-dataset graphs" (0.13.0), and the normaliser's new buffer.
migration anemoi.encprocdec 0.12.1 -> 0.15.1 "one node-attribute table for the fused graph; the normaliser's _model_output_idx" {
    // 0.12 builds one graph per dataset, each with its own `hidden` nodes; 0.13 fuses them
    // into one NamedNodesAttributes (0.15.1 models/base.py:82), with one `hidden` entry. The
    // official migrations/scripts/1773048851_fuse_multiple_perdataset_graphs.py keeps the
    // first dataset's copy and deletes the others unread: here equal copies merge, and copies
    // that differ make the upgrade lossy (refused unless allowed, naming them).
    merge "model.model.node_attributes.{dataset}.latlons_hidden"
        -> "model.model.node_attributes.latlons_hidden"
    merge "model.model.node_attributes.{dataset}.trainable_tensors.hidden.trainable"
        -> "model.model.node_attributes.trainable_tensors.hidden.trainable" optional

    // Each dataset's `data` nodes are named after the dataset in the fused graph.
    rename "model.model.node_attributes.{dataset}.latlons_data"
        -> "model.model.node_attributes.latlons_{dataset}"
    rename "model.model.node_attributes.{dataset}.trainable_tensors.data.trainable"
        -> "model.model.node_attributes.trainable_tensors.{dataset}.trainable" optional

    // New buffer _model_output_idx (0.15.1 preprocessing/normalizer.py:109-127): _output_idx
    // restricted to the variables the model outputs. A checkpoint from before target-only
    // variables existed has none, so it equals _output_idx: a copy of its sibling. No official
    // migration script covers this buffer.
    copy "model.{side}_processors.{dataset}.processors.normalizer._output_idx"
        -> "model.{side}_processors.{dataset}.processors.normalizer._model_output_idx"
}
