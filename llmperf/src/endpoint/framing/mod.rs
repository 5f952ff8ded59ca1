//! How the protocols cut a response body into events, apart from what the
//! events say: Server-Sent Events ([`sse`]), AWS's binary event stream
//! ([`eventstream`]) and a streamed JSON array ([`json_array`]).
//!
//! Each is incremental: bytes are fed as they arrive, in whatever pieces
//! the network delivers, and an event is handed over as soon as its last
//! byte is in, so the endpoint kinds decoding them stamp every event with
//! the read that completed it.

pub mod eventstream;
pub mod json_array;
pub mod sse;
