// anemoi-models 0.11.3 -> 0.12.1: PR #594 "multiple datasets", released in 0.12.0.
migration anemoi.encprocdec 0.11.3 -> 0.12.1 "one ModuleDict level per dataset; a single-dataset checkpoint's dataset is `data`" {
    // 0.12.1 models/encoder_processor_decoder.py:33-98, models/base.py:73-77,
    // interface/__init__.py:164. The processor is shared by all datasets and keeps its keys.
    // Official: migrations/scripts/1767108147_move_to_multiple_datasets.py (which also moves
    // hyper_parameters entries of the Lightning checkpoint; those are not tensors).
    rename "model.{side}_processors.{rest..}" -> "model.{side}_processors.data.{rest}"
    rename "model.model.node_attributes.{rest..}" -> "model.model.node_attributes.data.{rest}"
    rename "model.model.encoder.{rest..}" -> "model.model.encoder.data.{rest}"
    rename "model.model.decoder.{rest..}" -> "model.model.decoder.data.{rest}"

    // A graph provider holds nothing but the trainable edge features, absent when trainable_size is 0.
    rename "model.model.encoder_graph_provider.{rest..}"
        -> "model.model.encoder_graph_provider.data.{rest}" optional
    rename "model.model.decoder_graph_provider.{rest..}"
        -> "model.model.decoder_graph_provider.data.{rest}" optional

    // What the file holds beside the state dict follows: the supporting arrays (latitudes,
    // longitudes) are kept per dataset from 0.12 (the anemoi-metadata member holds
    // `data/latitudes.numpy`), and the metadata says so.
    rename "anemoi.supporting_arrays.{name}" -> "anemoi.supporting_arrays.data.{name}" optional
    meta-rename "anemoi" at "supporting_arrays_paths" -> "supporting_arrays_paths.data" optional

    // The Lightning checkpoint's hyper_parameters, as the official script moves them.
    meta-rename "torch.checkpoint" at "hyper_parameters.data_indices"
        -> "hyper_parameters.data_indices.data" optional
    meta-rename "torch.checkpoint" at "hyper_parameters.statistics"
        -> "hyper_parameters.statistics.data" optional
    meta-rename "torch.checkpoint" at "hyper_parameters.statistics_tendencies"
        -> "hyper_parameters.statistics_tendencies.data" optional
    meta-rename "torch.checkpoint" at "hyper_parameters.supporting_arrays"
        -> "hyper_parameters.supporting_arrays.data" optional
}
