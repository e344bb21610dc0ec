//! Live capture (being written).
