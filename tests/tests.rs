mod engine;
mod fmt;
mod torch;
mod registry;
