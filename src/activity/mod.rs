//! pg_stat_activity as pgkick reads it: its columns on each server version (`columns`), and
//! finding the sessions a filter matches (`find`, `probe`), reading each row by column name.
//!
//! Modules depend one way: `session` (the data) ← `columns` ← `crate::filter` (the filter and
//! its SQL) ← `find` (runs it and reads the rows).

pub mod columns;
mod find;

pub use find::{find, probe, Matched};
