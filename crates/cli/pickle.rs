//! What every command that reads checkpoints shares for PyTorch inputs: `--key` (which
//! entry holds the state dict) and `--allow-gadgets` (the hazard override).

use clap::Args;
use safeshift::open::OpenOptions;
use safeshift_engine::ReadOptions;

/// How PyTorch files are read (safetensors files ignore these).
#[derive(Args, Debug, Clone, Default)]
pub struct PickleArgs {
    /// For PyTorch inputs: the top-level entry holding the state dict (default:
    /// `state_dict`, `model_state_dict`, `model`, `module`, `net`, `network`, else the whole
    /// object).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// For PyTorch inputs: read a file even when it holds code-execution gadgets
    /// (`os.system`, `builtins.eval`, a call of a computed callable…; `safeshift scan`
    /// lists them). Nothing in the file runs either way; without this flag such a file is
    /// refused, each gadget named with its byte offset.
    #[arg(long)]
    pub allow_gadgets: bool,
}

impl PickleArgs {
    /// The facade's options with these two set (the rest default).
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions { state_dict_key: self.key.clone(), allow_gadgets: self.allow_gadgets, ..OpenOptions::default() }
    }

    /// How the engine opens a checkpoint for these flags (as `upgrade` does).
    pub fn read_options(&self) -> ReadOptions {
        self.open_options().read_options()
    }
}
