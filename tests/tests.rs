mod engine;
mod graph;
mod fmt;
mod torch;
