migration anemoi.encprocdec 0.9.0 -> 0.10.0 {
    aux graph graph_file
}
