// anemoi-models 0.10.0 -> 0.11.2: PR #629 "chunking fix", released in 0.11.0.
migration anemoi.encprocdec 0.10.0 -> 0.11.2 "flatten the chunked processor: proc.<chunk>.blocks.<block> -> proc.<layer>" {
    // Old: a ModuleList of chunks (0.10.0 layers/processor.py:70) of blocks (layers/chunk.py:51);
    // new: one ModuleList of layers (0.11.2 layers/processor.py:87). Layer = chunk *
    // blocks_per_chunk + block, where blocks_per_chunk = num_layers / num_chunks, bound here by
    // counting the block indices of the source (the official
    // migrations/scripts/1762857428_chunking_fix.py does the same arithmetic).
    rename "model.model.processor.proc.{c}.blocks.{j}.{rest..}"
        -> "model.model.processor.proc.{c * blocks_per_chunk + j}.{rest}"
}
