// anemoi-models 0.17.0 -> 0.18.0: no state-dict change.
migration anemoi.encprocdec 0.17.0 -> 0.18.0 "no state-dict change: torch >= 2.7 for the custom ops, imputer masks no longer buffers" {
    // Built from the same seed under both releases, every tensor is bit-identical and the
    // key lists are equal (tests/data/anemoi/README.md, "0.17.0 -> 0.18.0"). What changed
    // does not reach the state dict: distributed/primitives.py:305 and triton/gt.py:390,451
    // register custom ops (hence torch >= 2.7), and preprocessing/imputer.py:50-51 keeps
    // nan_locations / loss_mask_training as plain attributes instead of non-persistent
    // buffers. The official 1779202136_trainable_edge_perm_fix.py became tolerant of missing
    // trainable tensors (73-91), which changes nothing for a checkpoint the 0.17 step wrote.
    // The step exists so that a checkpoint whose provenance says 0.18 is named as such.
}
