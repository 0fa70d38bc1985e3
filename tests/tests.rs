mod catalogue;
mod engine;
mod faults;
mod fmt;
mod graph;
mod registry;
mod torch;
mod upgrade;
