//! Rust client SDK for the Guildhall game backend.
//!
//! [`Client`] speaks the Guildhall protocol (`proto/guildhall.proto`) over TCP
//! or WebSocket and hides the parts every client would otherwise get wrong:
//!
//! * **calls** are pipelined and matched to responses by id; each call gets
//!   exactly one result, or an error saying why not ([`ClientError`]);
//! * **sequence numbers** of the session are tracked, duplicates dropped, and
//!   acknowledged: on the next request, after 16 messages, and at least
//!   every 10 seconds;
//! * **pings** from the server are answered at once;
//! * **dropped connections** are reconnected with backoff and the session
//!   resumed: the server replays what was missed (pushes arrive once and in
//!   order) and unanswered requests are re-sent with their original ids, so
//!   none runs twice and none is lost;
//! * what cannot be hidden is surfaced: a lost session
//!   ([`ClientEvent::SessionLost`], the app decides whether to log in again),
//!   a session taken over by another device ([`ClientEvent::Closed`]).
//!
//! [`RawConnection`] is the frame-level tool underneath, public for tests
//! that must send exact frames.
//!
//! # Example
//!
//! ```no_run
//! use guildhall_client::{Client, ClientConfig, ClientEvent};
//!
//! # async fn run() -> Result<(), guildhall_client::ClientError> {
//! let client = Client::connect(ClientConfig::tcp("127.0.0.1:7350".parse().unwrap())).await?;
//! let login = client.login_device("device-1234").await?;
//! println!("player {} (new: {})", login.player_id, login.created);
//!
//! let mut pushes = client.pushes();
//! tokio::spawn(async move {
//!     while let Some(push) = pushes.recv().await {
//!         println!("push #{} on {}", push.seq, push.topic);
//!     }
//! });
//!
//! match client.battle().await {
//!     Ok(b) => println!("won: {}, gold +{}", b.won, b.gold_earned),
//!     Err(e) if e.is_status(guildhall_client::Status::NotEnoughMana) => println!("resting"),
//!     Err(e) => return Err(e),
//! }
//!
//! // Connection trouble is handled inside; events tell what happened.
//! let mut events = client.events();
//! client.drop_connection().await; // test hook: simulate a network drop
//! while let Ok(event) = events.recv().await {
//!     if let ClientEvent::Resumed { replayed } = event {
//!         println!("resumed, {replayed} messages replayed");
//!         break;
//!     }
//! }
//! client.logout().await?;
//! client.close().await;
//! # Ok(())
//! # }
//! ```

mod backoff;
mod client;
mod config;
mod conn;
mod error;
mod event;
mod expedition;
mod guild;
mod market;
mod seq;
mod shared;
mod stats;
mod task;

pub use backoff::Backoff;
pub use client::Client;
pub use config::{ClientConfig, Endpoint};
pub use conn::{Connection, RawConnection};
pub use error::ClientError;
pub use event::ClientEvent;
pub use stats::ClientStats;

/// The protocol crate's generated messages and helpers, re-exported so that
/// users need no second dependency for `pb::*`, `Status` or method names.
pub use guildhall_protocol::{method, pb, Status};
