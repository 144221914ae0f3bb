//! The one integration-test binary (`cargo test --test it`).
//!
//! `harness` starts throwaway PostgreSQL servers and holds client sessions in chosen states;
//! each feature file below tests pgkick's behaviour against them.

mod audit;
mod backends;
mod chains;
mod completions;
mod conn;
mod conninfo;
mod escapes;
mod fakepg;
mod fleet;
mod forged;
mod hardening;
mod harness;
mod holders;
mod list;
mod lock;
mod pgbouncer;
mod privileges;
mod signal;
mod statements;
mod tls;
mod usage;
