mod engine;
mod fmt;
mod graph;
mod torch;
