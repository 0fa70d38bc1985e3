mod engine;
mod torch;
