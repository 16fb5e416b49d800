//! lab
pub mod ssh;
