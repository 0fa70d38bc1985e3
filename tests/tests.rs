mod engine;
mod fmt;
mod torch;
