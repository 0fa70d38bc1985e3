// anemoi-models 0.11.2 -> 0.11.3: PR #574 "refactor mapper" (graph providers).
migration anemoi.encprocdec 0.11.2 -> 0.11.3 "graph providers own the trainable edge features; edge_inc is no longer stored" {
    // model.model.<block>.trainable.trainable -> model.model.<block>_graph_provider.trainable.trainable.
    // The official migrations/scripts/1763479918_refactor_mapper.py loops over encoder,
    // processor and decoder with pop()/del and no default, so it raises KeyError on a
    // TransformerProcessor checkpoint (no processor graph, no processor keys) and on a model
    // trained with trainable_size 0 (no trainable tensor at all): here they are optional.
    rename "model.model.{block}.trainable.trainable"
        -> "model.model.{block}_graph_provider.trainable.trainable" optional

    // edge_inc (int64 [2, 1], a persistent buffer in 0.11.2 layers/mapper.py:170) is a
    // non-persistent buffer of the graph provider in 0.11.3 (layers/graph_provider.py:166):
    // the new code recomputes it from the graph.
    drop "model.model.encoder.edge_inc" derived
    drop "model.model.decoder.edge_inc" derived
    drop "model.model.processor.edge_inc" derived optional
}
