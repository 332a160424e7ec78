//! [`Client`]: the handle applications, tests and bots use.
//!
//! A `Client` is a cheap clone (an `Arc`) around a channel to the background
//! task of [`crate::task`], which owns the connection. Calls from many tasks
//! at once are pipelined on the one connection and matched to their answers
//! by id. The handle never touches the socket, so a call cannot corrupt the
//! stream by being cancelled halfway: dropping a call's future only means
//! nobody waits for its result.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, login_request::Credential};
use prost::Message;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::shared::Shared;
use crate::stats::{bump, ClientStats};
use crate::task::{Command, Task};

/// A connection to a Guildhall server with session semantics: login, calls,
/// pushes, and transparent reconnect + resume. Cheap to clone; the
/// connection ends when [`close`](Client::close) is called or the last clone
/// is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Dropping the last handle drops this sender, which ends the task.
    cmd_tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint)
            .field("player_id", &self.player_id())
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

impl Client {
    /// Connects to the server (no login yet) and starts the background task.
    /// Must be called inside a Tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let conn = tokio::time::timeout(
            config.connect_timeout,
            Connection::connect(&config.endpoint, config.local_addr, config.max_frame),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(push_rx));
        let task = Task::new(config.clone(), shared.clone(), cmd_rx, push_tx, conn);
        tokio::spawn(task.run());
        Ok(Client { inner: Arc::new(Inner { cmd_tx, shared, config }) })
    }

    /// [`connect`](Self::connect) over TCP with default settings.
    pub async fn connect_tcp(addr: SocketAddr) -> Result<Client, ClientError> {
        Self::connect(ClientConfig::tcp(addr)).await
    }

    /// [`connect`](Self::connect) over WebSocket (`ws://host:port/`) with
    /// default settings.
    pub async fn connect_ws(url: &str) -> Result<Client, ClientError> {
        Self::connect(ClientConfig::ws(url)).await
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn command(&self, cmd: Command) -> Result<(), ClientError> {
        self.inner.cmd_tx.send(cmd).map_err(|_| self.shared().terminal())
    }

    // --------------------------------------------------------------- auth --

    /// Logs in by device id (the server creates the player on first login).
    /// Starts a new session; another session of the same player elsewhere
    /// is taken over.
    pub async fn login_device(&self, device_id: &str) -> Result<pb::LoginResponse, ClientError> {
        let req = pb::LoginRequest { credential: Some(Credential::DeviceId(device_id.to_string())) };
        self.call(method::LOGIN, &req).await
    }

    /// Logs in with a session token from an earlier login.
    pub async fn login_token(&self, token: &str) -> Result<pb::LoginResponse, ClientError> {
        let req = pb::LoginRequest { credential: Some(Credential::Token(token.to_string())) };
        self.call(method::LOGIN, &req).await
    }

    /// Ends the session now (the server keeps no resume window for it).
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call::<_, pb::LogoutResponse>(method::LOGOUT, &pb::LogoutRequest {}).await.map(|_| ())
    }

    /// Re-attaches the session by hand on a new connection (auth.resume with
    /// the current token and `last_seq`), then re-sends unanswered requests.
    /// Only needed with `auto_reconnect` off, or to retry after
    /// [`ClientEvent::ReconnectFailed`].
    pub async fn resume(&self) -> Result<pb::ResumeResponse, ClientError> {
        let (reply, rx) = oneshot::channel();
        let payload = self.wait(Command::Resume { reply }, rx).await?;
        Ok(pb::ResumeResponse::decode(payload)?)
    }

    // -------------------------------------------------------------- calls --

    /// Calls `method` with request message `req` and decodes the response
    /// message. A refusal is [`ClientError::Status`] (RATE_LIMITED included:
    /// nothing is retried automatically, except re-sending after a resume).
    /// Exactly one result per call, whatever reconnects happen meanwhile.
    pub async fn call<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, ClientError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let payload = self.call_raw(method, req.encode_to_vec().into()).await?;
        Ok(Resp::decode(payload)?)
    }

    /// [`call`](Self::call) with an encoded payload in and out.
    pub async fn call_raw(&self, method: &str, payload: Bytes) -> Result<Bytes, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.wait(Command::Call { method: method.to_string(), payload, reply, drop_after: false }, rx).await
    }

    /// Sends a command and waits for its reply within the request timeout,
    /// counting the call in the stats.
    async fn wait(
        &self,
        cmd: Command,
        rx: oneshot::Receiver<Result<Bytes, ClientError>>,
    ) -> Result<Bytes, ClientError> {
        let stats = &self.shared().stats;
        bump(&stats.requests);
        let result = match self.command(cmd) {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(self.inner.config.request_timeout, rx).await {
                Err(_) => {
                    bump(&stats.timeouts);
                    Err(ClientError::Timeout)
                }
                // The task ended without answering.
                Ok(Err(_)) => Err(self.shared().terminal()),
                Ok(Ok(result)) => result,
            },
        };
        if result.is_err() {
            bump(&stats.errors);
        }
        result
    }

    /// `player.get`
    pub async fn get_player(&self) -> Result<pb::GetPlayerResponse, ClientError> {
        self.call(method::PLAYER_GET, &pb::GetPlayerRequest {}).await
    }

    /// `player.open_chest`
    pub async fn open_chest(&self) -> Result<pb::OpenChestResponse, ClientError> {
        self.call(method::OPEN_CHEST, &pb::OpenChestRequest {}).await
    }

    /// `player.upgrade_card`
    pub async fn upgrade_card(&self, kind: u32) -> Result<pb::UpgradeCardResponse, ClientError> {
        self.call(method::UPGRADE_CARD, &pb::UpgradeCardRequest { kind }).await
    }

    /// `player.battle`
    pub async fn battle(&self) -> Result<pb::BattleResponse, ClientError> {
        self.call(method::BATTLE, &pb::BattleRequest {}).await
    }

    /// Sends a Ping and returns the time until its Pong.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Ping { reply })?;
        match tokio::time::timeout(self.inner.config.request_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(self.shared().terminal()),
            Ok(Ok(r)) => r,
        }
    }

    // ------------------------------------------------------ notifications --

    /// The pushes of the session, each once and in seq order (replayed ones
    /// included), across reconnects and re-logins. `None` after the first
    /// call: there is one receiver. Until it is taken, at most
    /// [`ClientConfig::max_buffered_pushes`] are kept (oldest dropped).
    pub fn take_pushes(&self) -> Option<mpsc::UnboundedReceiver<pb::Push>> {
        self.shared().take_pushes()
    }

    /// [`take_pushes`](Self::take_pushes), for code that takes it once.
    ///
    /// # Panics
    /// When the receiver was already taken.
    pub fn pushes(&self) -> mpsc::UnboundedReceiver<pb::Push> {
        self.take_pushes().expect("Client::pushes: the push receiver was already taken")
    }

    /// A new subscription to connection events, from now on (subscribe
    /// *before* causing what you want to wait for, e.g. before
    /// [`drop_connection`](Self::drop_connection)). A subscriber that falls
    /// more than 256 events behind gets `RecvError::Lagged`.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.shared().subscribe()
    }

    // ---------------------------------------------------------- accessors --

    /// The logged-in player (kept after a lost session, cleared by logout).
    pub fn player_id(&self) -> Option<String> {
        self.shared().session().player_id.clone()
    }

    /// The current session token (kept after a lost session, cleared by
    /// logout).
    pub fn token(&self) -> Option<String> {
        self.shared().session().token.clone()
    }

    /// Expiry of [`token`](Self::token), Unix milliseconds (0 if none).
    pub fn token_expires_at_ms(&self) -> u64 {
        self.shared().session().token_expires_at_ms
    }

    /// The resume window the server announced at login, in milliseconds.
    pub fn resume_window_ms(&self) -> u64 {
        self.shared().session().resume_window_ms
    }

    /// The highest server seq received without a hole.
    pub fn last_seq(&self) -> u64 {
        self.shared().last_seq.load(Ordering::Relaxed)
    }

    /// Whether the client holds a session (logged in and not lost, even if
    /// momentarily reconnecting).
    pub fn is_logged_in(&self) -> bool {
        self.shared().logged_in.load(Ordering::Relaxed)
    }

    /// Whether the client ended (see [`ClientEvent::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.inner.cmd_tx.is_closed()
    }

    pub fn stats(&self) -> ClientStats {
        self.shared().stats.snapshot()
    }

    // ---------------------------------------------------------- lifecycle --

    /// Ends the client: closes the connection (the server keeps the session
    /// for its resume window; call [`logout`](Self::logout) first to end it),
    /// fails pending calls with [`ClientError::Closed`] (status OK).
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.command(Command::Close { done }).is_ok() {
            let _ = rx.await;
        }
    }

    // ---------------------------------------------------------- test hooks --

    /// **Test hook.** Kills the current connection abruptly, as a network
    /// failure would, without telling the server. With `auto_reconnect` and
    /// a session, the client then reconnects and resumes on its own (watch
    /// [`events`](Self::events) for [`ClientEvent::Resumed`]). Returns once
    /// the connection is gone.
    pub async fn drop_connection(&self) {
        let (done, rx) = oneshot::channel();
        if self.command(Command::DropConnection { done }).is_ok() {
            let _ = rx.await;
        }
    }

    /// **Test hook.** Writes a request, then immediately drops the connection
    /// so that the response is lost on the way back (or the request never
    /// arrives). The returned future still resolves with the one result,
    /// after the automatic resume: from the server's replay if it executed
    /// the request, otherwise from the re-sent request. If the client is
    /// reconnecting when called, the request just waits for the resume and
    /// nothing is dropped.
    pub async fn send_and_drop<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, ClientError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let (reply, rx) = oneshot::channel();
        let cmd =
            Command::Call { method: method.to_string(), payload: req.encode_to_vec().into(), reply, drop_after: true };
        let payload = self.wait(cmd, rx).await?;
        Ok(Resp::decode(payload)?)
    }
}
