mod engine;
mod fmt;
mod registry;
mod torch;
