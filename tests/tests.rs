mod engine;
mod fmt;
