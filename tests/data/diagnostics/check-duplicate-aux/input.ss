migration anemoi.encprocdec 0.9.0 -> 0.10.0 {
    aux graph "the graph file of the new model"
    aux graph "the graph file again"

    gather "model.edges" axis 0 index graph["perm"]
}
