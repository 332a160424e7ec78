//! The benchmark's baseline: a minimal tokio server that speaks the same
//! frames as Guildhall and answers every request with a canned, valid
//! response, with no game logic, no entities, no sessions and no storage.
//! Guildhall's CPU per request is reported as a ratio to this one, measured
//! in the same run with the same bots.
//!
//! With `--pushes-per-request X` it also sends pushes: for every request it
//! answers, X canned pushes (on average) to the other connections of the
//! requester's "room" (connections in groups of `--room`, in the order they
//! logged in, like the members of a guild). The benchmark passes the number
//! of pushes per request the bots counted against Guildhall in the same run,
//! so that this baseline writes the same traffic, server to client as well
//! as back: Guildhall's standard profile sends several pushes per request
//! (guild chat, help and donations go to every member of the guild), and a
//! write on loopback costs more than the whole canned answer.
//!
//! guildhall-bots baseline: `baseline-server --listen 127.0.0.1:7450`

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use clap::Parser;
use futures_util::StreamExt;
use guildhall_client::{method, pb};
use guildhall_protocol::pb::envelope::Kind;
use guildhall_protocol::{decode_envelope, encode_frame, FrameCodec};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

#[derive(Parser)]
#[command(name = "baseline-server", about = "Answers Guildhall frames with canned responses (benchmark baseline)")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:7450")]
    listen: SocketAddr,
    /// Pushes sent per request answered, on average (0: none, answers only).
    #[arg(long, default_value_t = 0.0)]
    pushes_per_request: f64,
    /// Connections per room: a request's pushes go to the others in its room.
    #[arg(long, default_value_t = 30)]
    room: usize,
}

/// A canned response payload per method: valid messages of the right type,
/// so that the bots play against it as against the real server.
fn canned(m: &str) -> Vec<u8> {
    let player =
        || Some(pb::Player { player_id: "baseline".into(), gold: 1000, mana: 50, level: 1, ..Default::default() });
    match m {
        method::LOGIN => pb::LoginResponse {
            player_id: "baseline".into(),
            token: "baseline-token".into(),
            token_expires_at_ms: u64::MAX,
            resume_window_ms: 60_000,
            created: false,
            player: player(),
        }
        .encode_to_vec(),
        method::RESUME => pb::ResumeResponse { player_id: "baseline".into(), replayed_to: 0 }.encode_to_vec(),
        // A guild for every bot, so that they play their guild actions.
        method::GUILD_RECOMMEND => pb::GuildRecommendResponse { guilds: vec![] }.encode_to_vec(),
        method::GUILD_CREATE => pb::GuildCreateResponse::default().encode_to_vec(),
        method::PLAYER_GET => pb::GetPlayerResponse { player: player() }.encode_to_vec(),
        method::OPEN_CHEST => pb::OpenChestResponse { cards: vec![], gold: 900 }.encode_to_vec(),
        method::BATTLE => {
            pb::BattleResponse { won: true, gold_earned: 20, player: player(), ..Default::default() }.encode_to_vec()
        }
        method::EXPEDITION_GET => pb::ExpeditionStatusResponse { period: 1, ..Default::default() }.encode_to_vec(),
        method::EXPEDITION_SIGNUP => pb::ExpeditionSignUpResponse { period: 1, bracket: 0 }.encode_to_vec(),
        _ => Vec::new(),
    }
}

/// A canned push, the size of a guild chat line (the commonest push).
fn canned_push(seq: u64) -> Kind {
    Kind::Push(pb::Push {
        seq,
        topic: "guild/baseline".into(),
        event: Some(pb::Event {
            kind: Some(pb::event::Kind::GuildChat(pb::GuildChat {
                guild_id: "baseline".into(),
                message: Some(pb::GuildChatMessage {
                    id: seq,
                    player_id: "baseline".into(),
                    text: "gg".into(),
                    at_ms: 0,
                }),
            })),
        }),
    })
}

/// Where pushes go: one outbox per logged-in connection, by slot. A slot is
/// taken at login (a push before the login's answer would come before the
/// sequence the client starts from) and given back when the connection ends.
struct Rooms {
    room: usize,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    outboxes: Vec<Option<mpsc::UnboundedSender<()>>>,
    /// Slots given back, reused first so that rooms stay full.
    free: Vec<usize>,
}

impl Rooms {
    fn join(&self, outbox: mpsc::UnboundedSender<()>) -> usize {
        let mut s = self.slots.lock().expect("rooms");
        match s.free.pop() {
            Some(slot) => {
                s.outboxes[slot] = Some(outbox);
                slot
            }
            None => {
                s.outboxes.push(Some(outbox));
                s.outboxes.len() - 1
            }
        }
    }

    fn leave(&self, slot: usize) {
        let mut s = self.slots.lock().expect("rooms");
        s.outboxes[slot] = None;
        s.free.push(slot);
    }

    /// Sends `n` pushes to the others of `slot`'s room, one each in turn
    /// from `cursor` on (empty slots are skipped).
    fn push(&self, slot: usize, n: usize, cursor: &mut usize) {
        let s = self.slots.lock().expect("rooms");
        let first = slot - slot % self.room;
        let last = (first + self.room).min(s.outboxes.len());
        let others = last - first - 1;
        if others == 0 {
            return;
        }
        let mut sent = 0;
        for _ in 0..n * (others + 1) {
            if sent == n {
                break;
            }
            *cursor = (*cursor + 1) % (others + 1);
            let target = first + *cursor;
            if target == slot {
                continue;
            }
            if let Some(outbox) = &s.outboxes[target] {
                let _ = outbox.send(());
                sent += 1;
            }
        }
    }
}

async fn serve(stream: TcpStream, rooms: Arc<Rooms>, pushes_per_request: f64) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut frames = FramedRead::with_capacity(r, FrameCodec::default(), 256);
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let mut slot = None;
    let mut seq = 0u64;
    // Pushes owed to the room: a fraction carries over to the next request.
    let mut credit = 0.0;
    let mut cursor = 0;
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            frame = frames.next() => {
                let Some(Ok(frame)) = frame else { break };
                let reply = match decode_envelope(&frame) {
                    Ok(Kind::Request(req)) => {
                        // A resume continues the client's sequence, as the real
                        // server's replay does (nothing is buffered here to replay).
                        if req.method == method::RESUME {
                            if let Ok(r) = pb::ResumeRequest::decode(req.payload.clone()) {
                                seq = r.last_seq;
                            }
                        }
                        seq += 1;
                        Kind::Response(pb::Response {
                            id: req.id,
                            seq,
                            status: pb::Status::Ok as i32,
                            message: String::new(),
                            payload: canned(&req.method).into(),
                        })
                    }
                    Ok(Kind::Ping(p)) => Kind::Pong(pb::Pong { nonce: p.nonce }),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                // The first answer is the login's (or the resume's): from
                // then on the connection is in a session and takes pushes.
                let answered = matches!(&reply, Kind::Response(_));
                out.extend_from_slice(&encode_frame(reply));
                if answered && slot.is_none() && pushes_per_request > 0.0 {
                    slot = Some(rooms.join(outbox.clone()));
                }
                if let (true, Some(slot)) = (answered, slot) {
                    credit += pushes_per_request;
                    let n = credit as usize;
                    credit -= n as f64;
                    if n > 0 {
                        rooms.push(slot, n, &mut cursor);
                    }
                }
            }
            Some(()) = inbox.recv() => {
                // Everything queued goes out in one write.
                loop {
                    seq += 1;
                    out.extend_from_slice(&encode_frame(canned_push(seq)));
                    if inbox.try_recv().is_err() {
                        break;
                    }
                }
            }
        }
        if w.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
    }
    if let Some(slot) = slot {
        rooms.leave(slot);
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let listener = TcpListener::bind(cli.listen).await.expect("bind");
    println!("baseline listening tcp={} pushes_per_request={}", listener.local_addr().unwrap(), cli.pushes_per_request);
    let rooms = Arc::new(Rooms { room: cli.room.max(2), slots: Mutex::new(Slots::default()) });
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, rooms.clone(), cli.pushes_per_request));
        }
    }
}
