mod catalogue;
mod engine;
mod faults;
mod fmt;
mod torch;
