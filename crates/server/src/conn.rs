//! One task per client connection.
//!
//! The task reads frames, answers requests through the session, writes what
//! the session queued, pings a silent peer and closes an idle one. Requests
//! of one connection run one after another, in order; the entity calls they
//! make are where the concurrency between players lives.
//!
//! Bad input never reaches further than this connection: a frame over the
//! maximum, bytes that are not an envelope, or a broken stream close *this*
//! connection with a reason; a well-framed request that is wrong in any other
//! way gets an error response and the connection stays.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::{decode_envelope, method, OutFrame, Status};
use prost::Message;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::auth::{check_device_id, player_id_for_device, random_session_id, TokenError};
use crate::dispatch;
use crate::ratelimit::TokenBucket;
use crate::refusal_log;
use crate::session::{fingerprint, Answer, AttachError, Begin, Pending, Session};
use crate::shared::Shared;
use crate::transport::{RecvError, Transport};

/// The largest request id a client may use: a session refuses any id at or
/// below the highest it has seen, so an id near 2^64 would leave a client no
/// id to go on with. 2^53 - 1 is the largest integer every client language
/// holds exactly (a JavaScript number), and far more than a session sends.
pub const MAX_REQUEST_ID: u64 = (1 << 53) - 1;

/// How a connection ends.
enum Exit {
    /// Tell the client why, then close.
    Close(Status, String),
    /// The peer went away (or another connection took its session over).
    Quiet,
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    session: Option<Arc<Session>>,
    bucket: TokenBucket,
    /// Envelopes to write that belong to no session (before login, pongs).
    direct: Vec<OutFrame>,
    /// The metric name of the request being answered, to label its errors.
    method: &'static str,
    /// A request was refused for the rate limit: the loop, which has the
    /// transport and so the peer's address, logs it.
    rate_limited: bool,
}

/// Serves one connection until it closes. `permit` holds a place under the
/// connection cap for as long as the connection lives.
///
/// A function returning an `async move` block, not an `async fn`: an
/// `async fn` keeps its arguments twice in its future (as captured and as
/// locals), 104 bytes here, in every connection's task (`-Zprint-type-sizes`).
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
pub fn serve<T: Transport>(
    shared: Arc<Shared>,
    mut transport: T,
    permit: OwnedSemaphorePermit,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let now = shared.now_ms();
        let mut conn = Conn {
            id: shared.next_conn_id(),
            bucket: TokenBucket::new(shared.config.rate_limit_per_sec, shared.config.rate_limit_burst, now),
            shared,
            session: None,
            direct: Vec::new(),
            method: "none",
            rate_limited: false,
        };
        metrics::gauge!("guildhall_connections").increment(1.0);
        conn.shared.connections.send_modify(|n| *n += 1);
        let exit = conn.run(&mut transport).await;
        if let Exit::Close(status, reason) = exit {
            tracing::debug!(conn = conn.id, status = status.as_str_name(), reason, "closing connection");
            if refusal_log::is_refusal(status) {
                let now = conn.shared.now_ms();
                refusal_log::log(&conn.shared.refusal_log, now, transport.peer_addr(), status, &reason);
            }
            metrics::counter!("guildhall_connections_closed_total", "reason" => status.as_str_name()).increment(1);
            conn.direct
                .push(OutFrame::unsequenced(Kind::Close(pb::Close { status: status as i32, reason: reason.clone() })));
            let _ = tokio::time::timeout(Duration::from_secs(1), transport.send(&conn.direct)).await;
            // Boxed: the closing is rare, and its future would otherwise be
            // part of every connection's task.
            Box::pin(transport.close(Some((status, &reason)))).await;
        } else {
            Box::pin(transport.close(None)).await;
        }
        if let Some(session) = conn.session.take() {
            session.detach(conn.id, conn.shared.now_ms());
        }
        conn.shared.connections.send_modify(|n| *n -= 1);
        metrics::gauge!("guildhall_connections").decrement(1.0);
        // Named here so that the block owns it (a block captures only what
        // it uses): the place is given back when the connection is done.
        drop(permit);
    }
}

impl Conn {
    /// Ping a connection silent for this long (from the config: a local kept
    /// across the loop's awaits would be a place in every connection's task).
    fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.shared.config.heartbeat_secs.max(1))
    }

    /// Close a connection silent for this long.
    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.shared.config.idle_timeout_secs.max(1))
    }

    /// Close a connection without a session this long after it connected
    /// or logged out.
    fn login_deadline(&self) -> Duration {
        Duration::from_secs(self.shared.config.login_deadline_secs.max(1))
    }

    async fn run<T: Transport>(&mut self, t: &mut T) -> Exit {
        let mut shutdown = self.shared.shutdown.clone();
        if *shutdown.borrow_and_update() {
            return Exit::Close(Status::ShuttingDown, "server is shutting down".into());
        }
        // In a session, the timer runs from the last frame heard:
        // `heartbeat` to a ping, then `idle_timeout` (from the same frame)
        // to the close. When the last frame was heard follows from its
        // deadline: no local for it. Without a session it is the login
        // deadline, which no frame moves: a socket that pings but never
        // logs in must not hold a connection slot for ever.
        let mut pinged = false;
        let timer = tokio::time::sleep(self.login_deadline());
        tokio::pin!(timer);

        // Set when the session woke us: a graceful stop wakes every session.
        let mut woken = false;

        loop {
            if let Err(exit) = self.write_pending(t).await {
                return exit;
            }
            if std::mem::take(&mut woken) && *shutdown.borrow() {
                return Exit::Close(Status::ShuttingDown, "server is shutting down".into());
            }
            // Borrows the session rather than cloning its `Arc`: smaller,
            // and two atomic operations fewer per wake-up.
            let session_wake = async {
                match &self.session {
                    Some(s) => s.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                // Only before login. A `changed()` future made and dropped on
                // every pass took the watch's waiter lock two or three times
                // (2 % of the server's samples at 19,500 players); a
                // connection in a session hears of the stop from its session
                // instead, which the server wakes when it begins to stop.
                _ = shutdown.changed(), if self.session.is_none() => {
                    return Exit::Close(Status::ShuttingDown, "server is shutting down".into());
                }
                _ = session_wake => woken = true,
                frame = t.recv() => match frame {
                    Ok(Some(frame)) => {
                        let had_session = self.session.is_some();
                        // Boxed: the idle connection future stays small.
                        if let Err(exit) = Box::pin(self.on_frame(frame)).await {
                            // Write what was answered before closing.
                            let _ = self.write_pending(t).await;
                            return exit;
                        }
                        if std::mem::take(&mut self.rate_limited) {
                            let why = format!("over {} requests per second", self.shared.config.rate_limit_per_sec);
                            let now = self.shared.now_ms();
                            refusal_log::log(&self.shared.refusal_log, now, t.peer_addr(), Status::RateLimited, &why);
                        }
                        if self.session.is_some() {
                            pinged = false;
                            timer.as_mut().reset(Instant::now() + self.heartbeat());
                        } else if had_session {
                            // Logged out: a new login deadline from now.
                            timer.as_mut().reset(Instant::now() + self.login_deadline());
                        }
                    }
                    Ok(None) => return Exit::Quiet,
                    Err(RecvError::TooLarge { len, max }) => {
                        return Exit::Close(
                            Status::FrameTooLarge,
                            format!("frame of {len} bytes exceeds the maximum of {max} bytes"),
                        );
                    }
                    Err(RecvError::Protocol(reason)) => return Exit::Close(Status::MalformedFrame, reason),
                    Err(RecvError::Io(e)) => {
                        tracing::debug!(conn = self.id, error = %e, "connection broke");
                        return Exit::Quiet;
                    }
                },
                _ = &mut timer => {
                    if self.session.is_none() {
                        let why = format!("no login within {} s of connecting", self.login_deadline().as_secs());
                        return Exit::Close(Status::LoginTimeout, why);
                    }
                    let (heartbeat, idle_timeout) = (self.heartbeat(), self.idle_timeout());
                    if pinged || heartbeat >= idle_timeout {
                        // Bytes of a frame still arriving do not count: only whole frames.
                        let why = format!("no complete frame in {} s", idle_timeout.as_secs());
                        return Exit::Close(Status::IdleTimeout, why);
                    }
                    self.direct.push(OutFrame::unsequenced(Kind::Ping(pb::Ping { nonce: self.shared.now_ms() })));
                    pinged = true;
                    let last_heard = timer.deadline() - heartbeat;
                    timer.as_mut().reset(last_heard + idle_timeout);
                }
            }
        }
    }

    /// Takes `session` as this connection's. From here on the connection
    /// hears of a graceful stop through the session's wake-up: if the stop
    /// began before (and the server's wake of every session missed this
    /// one), wake it now.
    fn enter(&mut self, session: Arc<Session>) {
        if *self.shared.shutdown.borrow() {
            session.wake();
        }
        self.session = Some(session);
    }

    /// Writes direct envelopes and whatever the session queued for us.
    async fn write_pending<T: Transport>(&mut self, t: &mut T) -> Result<(), Exit> {
        if !self.direct.is_empty() {
            let direct = std::mem::take(&mut self.direct);
            t.send(&direct).await.map_err(|_| Exit::Quiet)?;
        }
        if let Some(session) = &self.session {
            match session.pending(self.id) {
                Pending::Frames(frames) if frames.is_empty() => {}
                Pending::Frames(frames) => t.send(&frames).await.map_err(|_| Exit::Quiet)?,
                Pending::Replaced => {
                    // Told, not just dropped: a client that saw a bare EOF
                    // would resume straight back, and two auto-resuming
                    // devices would take the session from each other in turn.
                    self.session = None;
                    let why = "the session was resumed on another connection";
                    return Err(Exit::Close(Status::SessionTakenOver, why.into()));
                }
                Pending::Ended(status, reason) => {
                    self.session = None;
                    return Err(Exit::Close(status, reason));
                }
            }
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Bytes) -> Result<(), Exit> {
        let kind = decode_envelope(&frame)
            .map_err(|e| Exit::Close(Status::MalformedFrame, format!("frame is not a valid envelope: {e}")))?;
        match kind {
            Kind::Request(req) => {
                self.on_request(req).await;
                Ok(())
            }
            Kind::Ack(ack) => {
                if let Some(s) = &self.session {
                    s.ack(ack.seq);
                }
                Ok(())
            }
            Kind::Ping(ping) => {
                self.direct.push(OutFrame::unsequenced(Kind::Pong(pb::Pong { nonce: ping.nonce })));
                Ok(())
            }
            Kind::Pong(_) => Ok(()),
            Kind::Close(_) => Err(Exit::Quiet),
            Kind::Response(_) | Kind::Push(_) => Err(Exit::Close(
                Status::MalformedFrame,
                "clients send requests, acks, pings, pongs and closes only".into(),
            )),
        }
    }

    /// Answers a request: through the session (sequenced) when there is one,
    /// directly (seq 0) before login.
    fn reply(&mut self, id: u64, answer: Answer) {
        count_error(self.method, answer.status);
        match &self.session {
            Some(s) => {
                s.emit_response(id, &answer);
            }
            None => self.direct.push(answer.frame(id, 0)),
        }
    }

    async fn on_request(&mut self, req: pb::Request) {
        if req.ack != 0 {
            if let Some(s) = &self.session {
                s.ack(req.ack);
            }
        }
        let metric = dispatch::metric_name(&req.method);
        self.method = metric;
        let now = self.shared.now_ms();
        if !self.bucket.try_take(now) {
            let limit = self.shared.config.rate_limit_per_sec;
            self.rate_limited = true;
            return self.reply(req.id, Answer::err(Status::RateLimited, format!("over {limit} requests per second")));
        }
        if req.id > MAX_REQUEST_ID {
            let why = format!("request ids are 1 to {MAX_REQUEST_ID} (2^53 - 1)");
            return self.reply(req.id, Answer::err(Status::BadRequest, why));
        }
        let started = Instant::now();
        match req.method.as_str() {
            method::LOGIN => self.login(req).await,
            method::RESUME => self.resume(req),
            method::LOGOUT => self.logout(req).await,
            m if !dispatch::is_game_method(m) => {
                let msg = format!("unknown method {:?}", req.method);
                self.reply(req.id, Answer::err(Status::UnknownMethod, msg));
            }
            _ => {
                let Some(session) = self.session.clone() else {
                    return self.reply(req.id, Answer::err(Status::Unauthenticated, "log in first (auth.login)"));
                };
                match session.begin_request(req.id, fingerprint(&req.method, &req.payload)) {
                    Begin::Execute => {
                        let answer =
                            dispatch::dispatch(&self.shared.runtime, &session, &req.method, &req.payload).await;
                        count_error(metric, answer.status);
                        session.finish_request(req.id, answer);
                    }
                    Begin::Replay(answer) => {
                        metrics::counter!("guildhall_requests_replayed_total").increment(1);
                        session.emit_response(req.id, &answer);
                    }
                    Begin::InProgress => {}
                    Begin::Mismatch => self.reply(
                        req.id,
                        Answer::err(
                            Status::RequestIdReused,
                            "this request id was used for another request (method or payload); use a new id",
                        ),
                    ),
                    Begin::TooOld => self.reply(
                        req.id,
                        Answer::err(
                            Status::DuplicateRequest,
                            "request id already answered and acknowledged, or older than the remembered window",
                        ),
                    ),
                }
            }
        }
        metrics::histogram!("guildhall_request_seconds", "method" => metric).record(started.elapsed().as_secs_f64());
    }

    async fn login(&mut self, req: pb::Request) {
        if self.session.is_some() {
            return self.reply(req.id, Answer::err(Status::AlreadyLoggedIn, "this connection has a session"));
        }
        let login = match pb::LoginRequest::decode(req.payload) {
            Ok(l) => l,
            Err(e) => return self.reply(req.id, Answer::err(Status::BadRequest, format!("LoginRequest: {e}"))),
        };
        let (player_id, generation) = match login.credential {
            Some(pb::login_request::Credential::DeviceId(d)) => match check_device_id(&d) {
                Ok(()) => (player_id_for_device(&d), None),
                Err(why) => return self.reply(req.id, Answer::err(Status::BadRequest, why)),
            },
            Some(pb::login_request::Credential::Token(t)) => match self.shared.signer.verify(&t) {
                Ok(claims) => (claims.player_id, Some(claims.generation)),
                Err(e) => return self.reply(req.id, token_error(e)),
            },
            None => return self.reply(req.id, Answer::err(Status::BadRequest, "a device_id or token is required")),
        };
        let (player, created, generation) =
            match dispatch::login_player(&self.shared.runtime, &player_id, generation).await {
                Ok(login) => (login.player, login.created, login.token_generation),
                Err(answer) => return self.reply(req.id, answer),
            };
        let session_id = random_session_id();
        let mut topics = vec![("player", guildhall_game::player_topic(&player_id))];
        if let Some(guild) = &player.guild {
            topics.push(("guild", guildhall_game::guild_topic(guild)));
        }
        let session =
            self.shared.sessions.open(session_id, &player_id, &topics, &self.shared.runtime, dispatch::deliver_event);
        let player = dispatch::player_pb(&player);
        // A second login of the same player racing this one may already have
        // taken the new session over: then this login lost, and says so.
        if session.attach(self.id, 0).is_err() {
            return self.reply(req.id, Answer::err(Status::SessionTakenOver, "logged in on another device"));
        }
        let (token, expires) = self.shared.signer.issue(&player_id, session_id, generation);
        let resp = pb::LoginResponse {
            player_id,
            token,
            token_expires_at_ms: expires,
            resume_window_ms: self.shared.config.resume_window_secs * 1000,
            created,
            player: Some(player),
        };
        session.emit_response(req.id, &Answer::ok(resp.encode_to_vec().into()));
        self.enter(session);
        metrics::counter!("guildhall_logins_total").increment(1);
    }

    fn resume(&mut self, req: pb::Request) {
        if self.session.is_some() {
            return self.reply(req.id, Answer::err(Status::AlreadyLoggedIn, "this connection has a session"));
        }
        let resume = match pb::ResumeRequest::decode(req.payload) {
            Ok(r) => r,
            Err(e) => return self.reply(req.id, Answer::err(Status::BadRequest, format!("ResumeRequest: {e}"))),
        };
        let claims = match self.shared.signer.verify(&resume.token) {
            Ok(c) => c,
            Err(e) => return self.reply(req.id, token_error(e)),
        };
        let expired = || Answer::err(Status::SessionExpired, "session ended; log in again");
        let Some(session) = self.shared.sessions.get(claims.session_id) else {
            return self.reply(req.id, expired());
        };
        if *session.player_id != claims.player_id {
            return self.reply(req.id, Answer::err(Status::TokenInvalid, "token does not match the session"));
        }
        let window_ms = self.shared.config.resume_window_secs * 1000;
        if crate::session::Sessions::is_expired(&session, self.shared.now_ms(), window_ms) {
            self.shared.sessions.end(
                session.id,
                Status::SessionExpired,
                "resume window passed",
                self.shared.runtime.pubsub(),
            );
            return self.reply(req.id, expired());
        }
        match session.attach(self.id, resume.last_seq) {
            Ok(replayed_to) => {
                let resp = pb::ResumeResponse { player_id: claims.player_id, replayed_to };
                session.emit_response(req.id, &Answer::ok(resp.encode_to_vec().into()));
                self.enter(session);
                metrics::counter!("guildhall_resumes_total").increment(1);
            }
            Err(AttachError::Ended(_, reason)) => self
                .reply(req.id, Answer::err(Status::SessionExpired, format!("session ended ({reason}); log in again"))),
            Err(AttachError::ReplayGap { last_seq, oldest }) => self.reply(
                req.id,
                Answer::err(
                    Status::ReplayGap,
                    format!("messages after {last_seq} are no longer buffered (oldest is {oldest}); log in again"),
                ),
            ),
            Err(AttachError::AheadOfServer { last_seq, sent }) => self.reply(
                req.id,
                Answer::err(
                    Status::BadRequest,
                    format!("last_seq {last_seq} is beyond the last message the session sent ({sent})"),
                ),
            ),
        }
    }

    /// Ends the session and revokes the player's tokens: a token copied
    /// off the device before the logout logs in no more. The revocation is
    /// durable before the answer; if it fails the session stays, and the
    /// client is told to retry.
    async fn logout(&mut self, req: pb::Request) {
        let Some(session) = self.session.clone() else {
            return self.reply(req.id, Answer::err(Status::Unauthenticated, "not logged in"));
        };
        if let Err(answer) = dispatch::revoke_tokens(&self.shared.runtime, &session.player_id).await {
            return self.reply(req.id, answer);
        }
        self.session = None;
        self.shared.sessions.end(session.id, Status::Ok, "logged out", self.shared.runtime.pubsub());
        self.reply(req.id, Answer::ok(pb::LogoutResponse {}.encode_to_vec().into()));
    }
}

/// Counts a refused request under its method and status.
fn count_error(method: &'static str, status: Status) {
    if status != Status::Ok {
        let labels = [("method", method), ("status", status.as_str_name())];
        metrics::counter!("guildhall_request_errors_total", &labels).increment(1);
    }
}

fn token_error(e: TokenError) -> Answer {
    match e {
        TokenError::Invalid => Answer::err(Status::TokenInvalid, e.to_string()),
        TokenError::Expired => Answer::err(Status::TokenExpired, "token expired; log in again"),
    }
}
