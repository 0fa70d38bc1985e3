// Meta's checkpoints as released store `rope.freqs`; the reference code builds its rotary
// frequencies with precompute_freqs_cis and never loads them, and transformers'
// convert_llama_weights_to_hf.py ignores the key.
migration llama.meta 0.9.0 -> 1.0.0 "drop the stored rotary frequencies, which every implementation recomputes" {
    drop "rope.freqs" derived
}
