mod placeholder {}
mod fmt;
