//! Decoding traffic into what a technician asks of it: who asked what, what answered, how
//! slowly, which requests failed, who wrote what. Above the capture pipeline (`capture/`: packets
//! → PDUs → transactions) and beside the device layer; `decode` uses it on files, and a live
//! capture will feed it the same way.
//!
//! - [`pipeline`]: a capture file through the decoder and its analysis, rows streamed out.
//! - [`rows`]: how a transaction or a PDU becomes a row: the one place their cells are made.
//! - [`summary`]: the summary as a results document.
//! - [`terminal`]: the summary as a person reads it.

pub mod live;
pub mod pipeline;
pub mod ring;
pub mod rows;
pub mod summary;
pub mod terminal;
