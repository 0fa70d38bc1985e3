// anemoi-models 0.18.0 -> 0.19.0: PR #1229 "expand configurability for models with multiple encoders/decoders".
migration anemoi.encprocdec 0.18.0 -> 0.19.0 "encoders and decoders keyed by their own names instead of the dataset's" {
    // The names are the user-defined keys of `model.encoders` / `model.decoders` in the 0.19
    // config ("user-defined key. It will appear in the state-dict"); anemoi-training 0.17.1's
    // transformer.yaml and graphtransformer.yaml use "0" for the single dataset they train,
    // graphtransformer_multi.yaml `global` / `regional`. The old state dict and config cannot
    // tell them (0.18 applies one encoder config to every dataset): they are parameters.
    // With several datasets each needs its own name, given as a map: the same-shaped weights
    // of two datasets under swapped names would load and be wrong.
    param encoder_names "the encoder name of each dataset: the keys of `model.encoders` in the 0.19 config (one name for one dataset, else DATASET:NAME,…)" = "0"
    param decoder_names "the decoder name of each dataset: the keys of `model.decoders` in the 0.19 config (one name for one dataset, else DATASET:NAME,…)" = "0"

    // Old: 0.18.0 models/encoder_processor_decoder.py:40,51 `self.encoder[dataset_name] =
    // ...`, :78,88 (decoder). New: 0.19.0 encoder_processor_decoder.py:59,67 `for
    // encoder_name, encoder_config in model_config.encoders.items(): self.encoder[encoder_name]`,
    // :119,132 (decoder); routing models/base.py:107-141. schemas/models.py:239 casts the keys
    // to str, so a YAML `0` is `.0.` here too.
    // The pre-processors name the checkpoint's datasets: with one dataset, the way back
    // knows whose encoder `0` is without being told.
    relabel "model.model.encoder.{dataset}.{rest..}" at dataset by encoder_names each "model.pre_processors.{dataset}.{rest..}"
    relabel "model.model.decoder.{dataset}.{rest..}" at dataset by decoder_names each "model.pre_processors.{dataset}.{rest..}"
    // Not renamed (the trap of a blanket `.data.` -> `.0.`): the graph providers stay keyed by
    // dataset (0.19.0 encoder_processor_decoder.py:51,111), as do node_attributes, the pre- and
    // post-processors and the processor; strict loading fails otherwise.
}
