//! The Guildhall server: client gateway (TCP and WebSocket), sessions, auth,
//! admin HTTP, metrics and logs, around the entity runtime and the game.
//!
//! [`Server::start`] takes already-bound listeners, so tests bind port 0 and
//! read the addresses back.
//!
//! Architecture invariant: no game rule lives here. This crate decodes
//! protobuf, calls entities with domain messages, and encodes their replies.

mod admin;
pub mod alloc;
pub mod auth;
mod config;
mod conn;
mod dispatch;
mod metric_help;
mod ratelimit;
mod refusal_log;
mod server;
pub mod session;
mod shared;
pub mod telemetry;
mod transport;
mod ws;

pub use config::Config;
pub use server::{Listeners, Server, ServerOptions, StartError};
