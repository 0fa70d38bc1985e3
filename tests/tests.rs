mod engine;
mod fmt;
mod graph;
mod registry;
mod torch;
mod upgrade;
