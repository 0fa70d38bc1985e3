// anemoi-models 0.15.1 -> 0.17.0: PR #943 "glu mlp implementation" and the trainable edge
// permutation, released in 0.16.0.
migration anemoi.encprocdec 0.15.1 -> 0.17.0 "MLP class (.mlp.mlp.N); trainable_layout_version; trainable edges sorted by destination" {
    aux graph "the graph the model was trained with, as a safetensors file holding, for each edge set, `<edges>.perm_sort_by_dst` (int64 [edges]): the stable argsort of the edge set's destination indices edge_index[1]; here `data_to_hidden.perm_sort_by_dst` and `hidden_to_data.perm_sort_by_dst`"

    // The MLP class wraps its Sequential in `.mlp` (0.17.0 layers/block.py:164,564,
    // layers/mlp.py:169). The official migrations/scripts/1778688800_glu_mlp_implementation.py
    // rewrites only .node_dst_mlp. / .node_src_mlp.; the TransformerProcessor's
    // .mlp.<n> -> .mlp.mlp.<n> is missing there, and needed.
    rename "model.model.{mapper}.data.proc.node_dst_mlp.{n}.{w}"
        -> "model.model.{mapper}.data.proc.node_dst_mlp.mlp.{n}.{w}"
    rename "model.model.{mapper}.data.proc.node_src_mlp.{n}.{w}"
        -> "model.model.{mapper}.data.proc.node_src_mlp.mlp.{n}.{w}" optional
    rename "model.model.processor.proc.{i}.mlp.{n}.{w}"
        -> "model.model.processor.proc.{i}.mlp.mlp.{n}.{w}"

    // A persistent int64 scalar buffer: the layout of the trainable edge features below
    // (0.17.0 layers/graph_provider.py:153,195-199). 1 = sorted by destination.
    insert "model.model.encoder_graph_provider.data.trainable_layout_version" : i64[] = fill(1)
    insert "model.model.decoder_graph_provider.data.trainable_layout_version" : i64[] = fill(1)

    // 0.16 sorts each edge set by destination at construction, `edge_index, perm =
    // sort_edge_index_by_dst(graph.edge_index)`, a stable index_sort of edge_index[1]
    // (0.17.0 layers/graph_provider.py:185, distributed/khop_edges.py:39), and indexes the
    // trainable edge features in that order: new = old[perm]. perm depends on the graph, not on
    // the checkpoint, hence the aux input. Identity if the graph was already sorted. Official:
    // migrations/scripts/1779202136_trainable_edge_perm_fix.py (needs the instantiated model).
    gather "model.model.encoder_graph_provider.data.trainable.trainable" axis 0 index graph["data_to_hidden.perm_sort_by_dst"] optional
    gather "model.model.decoder_graph_provider.data.trainable.trainable" axis 0 index graph["hidden_to_data.perm_sort_by_dst"] optional
}
