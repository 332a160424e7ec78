//! The benchmark's baseline: a minimal tokio server that speaks the same
//! frames as Guildhall and answers every request with a canned, valid
//! response, with no game logic, no entities, no sessions and no storage.
//! Guildhall's CPU per request is reported as a ratio to this one, measured
//! in the same run with the same bots.
//!
//! guildhall-bots baseline: `baseline-server --listen 127.0.0.1:7450`

use std::net::SocketAddr;

use clap::Parser;
use futures_util::StreamExt;
use guildhall_client::{method, pb};
use guildhall_protocol::pb::envelope::Kind;
use guildhall_protocol::{decode_envelope, encode_frame, FrameCodec};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

#[derive(Parser)]
#[command(name = "baseline-server", about = "Answers Guildhall frames with canned responses (benchmark baseline)")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:7450")]
    listen: SocketAddr,
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

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut frames = FramedRead::with_capacity(r, FrameCodec::default(), 256);
    let mut seq = 0u64;
    while let Some(Ok(frame)) = frames.next().await {
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
            Err(_) => return,
        };
        if w.write_all(&encode_frame(reply)).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let listener = TcpListener::bind(cli.listen).await.expect("bind");
    println!("baseline listening tcp={}", listener.local_addr().unwrap());
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    }
}
