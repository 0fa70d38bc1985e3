// anemoi-models 0.15.1 -> 0.17.0: PR #943 "glu mlp implementation" and the trainable edge
// permutation, released in 0.16.0.
migration anemoi.encprocdec 0.15.1 -> 0.17.0 "MLP class (.mlp.mlp.N); trainable_layout_version; trainable edges sorted by destination" {
    aux graph "the graph the model was trained with: taken from the checkpoint itself when it holds one (an inference checkpoint's `graph_data`, a training checkpoint's `hyper_parameters.graph_data`), else given as `--aux graph=FILE`, the `graph.pt` anemoi-graphs saved or a safetensors file holding `<edges>.edge_index` (int64 [2, edges]) per edge set, e.g. `data_to_hidden.edge_index`"

    // The MLP class wraps its Sequential in `.mlp` (0.17.0 layers/block.py:164,564,
    // layers/mlp.py:169). The official migrations/scripts/1778688800_glu_mlp_implementation.py
    // rewrites only .node_dst_mlp. / .node_src_mlp.; the TransformerProcessor's
    // .mlp.<n> -> .mlp.mlp.<n> is missing there, and needed.
    rename "model.model.{mapper}.{dataset}.proc.node_dst_mlp.{n}.{w}"
        -> "model.model.{mapper}.{dataset}.proc.node_dst_mlp.mlp.{n}.{w}"
    rename "model.model.{mapper}.{dataset}.proc.node_src_mlp.{n}.{w}"
        -> "model.model.{mapper}.{dataset}.proc.node_src_mlp.mlp.{n}.{w}" optional
    rename "model.model.processor.proc.{i}.mlp.{n}.{w}"
        -> "model.model.processor.proc.{i}.mlp.mlp.{n}.{w}"

    // A persistent int64 scalar buffer of each dataset's graph providers: the layout of the
    // trainable edge features below (0.17.0 layers/graph_provider.py:153,195-199). 1 = sorted
    // by destination.
    insert "model.model.encoder_graph_provider.{dataset}.trainable_layout_version" : i64[] = fill(1) each "model.model.encoder.{dataset}.{rest..}"
    insert "model.model.decoder_graph_provider.{dataset}.trainable_layout_version" : i64[] = fill(1) each "model.model.decoder.{dataset}.{rest..}"

    // 0.16 sorts each edge set by destination at construction, `edge_index, perm =
    // sort_edge_index_by_dst(graph.edge_index)`, a stable index_sort of edge_index[1]
    // (0.17.0 layers/graph_provider.py:185, distributed/khop_edges.py:39), and indexes the
    // trainable edge features in that order: new = old[perm], perm the stable argsort of the
    // destination row of the edge set's edge_index. It depends on the graph, not on the state
    // dict, hence the aux input; the identity if the graph was already sorted. In the fused
    // graph a dataset's nodes carry its name: its edge sets are `<dataset>_to_hidden` and
    // `hidden_to_<dataset>`. Official: migrations/scripts/1779202136_trainable_edge_perm_fix.py
    // (needs the instantiated model).
    gather "model.model.encoder_graph_provider.{dataset}.trainable.trainable" axis 0 index argsort(graph["{dataset}_to_hidden.edge_index"], 1) optional
    gather "model.model.decoder_graph_provider.{dataset}.trainable.trainable" axis 0 index argsort(graph["hidden_to_{dataset}.edge_index"], 1) optional
}
