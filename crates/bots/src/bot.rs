//! One bot: logs in, thinks, acts, sometimes drops its connection (and the
//! client resumes), sometimes leaves and comes back later.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildhall_client::{pb, Client, ClientConfig, ClientError, Status};
use tokio::sync::{mpsc, watch};

use crate::profile::{Action, Profile};
use crate::rng::Rng;
use crate::stats::Stats;

pub struct Bot {
    pub stats: Arc<Stats>,
    pub profile: Arc<Profile>,
    pub target: SocketAddr,
    pub source: Option<IpAddr>,
    pub device: String,
    /// Connect over WebSocket (`ws://target/`) instead of TCP.
    pub websocket: bool,
    pub deadline: Instant,
    pub rng: Rng,
    pub stop: watch::Receiver<bool>,
    /// What the bot last saw of itself, to choose sensible actions.
    player: Option<pb::Player>,
    /// Listings seen in the last browse or offer push, to buy from.
    offers: Vec<String>,
    /// The bot's own listings as it last knew them, oldest first (some may
    /// have sold or expired since).
    listings: VecDeque<String>,
}

/// Open listings a player may keep (the market's rule, as players learn it
/// from its refusals).
const LISTING_LIMIT: usize = 10;

/// What a bot does when it decides to sell.
#[derive(Debug, PartialEq, Eq)]
enum Sell {
    /// List a card.
    List,
    /// Take this listing (the oldest) back first: players relist what does
    /// not sell. Bots that only listed reached the limit within the first
    /// half hour, and the market's load changed from listings to refusals
    /// for the rest of a run (docs/state-growth.md).
    Cancel(String),
}

impl Bot {
    fn next_sale(&mut self) -> Sell {
        if self.listings.len() >= LISTING_LIMIT {
            if let Some(oldest) = self.listings.pop_front() {
                return Sell::Cancel(oldest);
            }
        }
        Sell::List
    }
}

/// Offers a bot remembers to buy from: enough for the buys between two
/// browses or feed pushes.
const MAX_OFFERS: usize = 10;

/// Game refusals (not enough mana...) are answers, not failures.
fn is_refusal(e: &ClientError) -> bool {
    matches!(e, ClientError::Status { status, .. } if (*status as i32) >= 100)
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Status { status, .. }
        | ClientError::SessionLost { status, .. }
        | ClientError::Closed { status, .. } => status.as_str_name().to_string(),
        ClientError::Timeout => "TIMEOUT".into(),
        ClientError::Disconnected => "DISCONNECTED".into(),
        ClientError::Io(e) => format!("IO: {}", e.kind()),
        ClientError::Decode(_) => "DECODE".into(),
        ClientError::Protocol(_) => "PROTOCOL".into(),
    }
}

impl Bot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stats: Arc<Stats>,
        profile: Arc<Profile>,
        target: SocketAddr,
        source: Option<IpAddr>,
        device: String,
        deadline: Instant,
        seed: u64,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            stats,
            profile,
            target,
            source,
            device,
            websocket: false,
            deadline,
            rng: Rng::new(seed),
            stop,
            player: None,
            offers: Vec::new(),
            listings: VecDeque::new(),
        }
    }

    fn over(&self) -> bool {
        Instant::now() >= self.deadline || *self.stop.borrow()
    }

    /// Sleeps for `d` or until the run ends (offline, or backing off: no
    /// pushes to read); false when the run ended.
    async fn pause(&mut self, d: Duration) -> bool {
        self.think(d, &mut None).await
    }

    pub async fn run(mut self) {
        let mut first = true;
        while !self.over() {
            if !first {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let Some(client) = self.connect().await else {
                // Could not get in: back off a little and try again.
                if !self.pause(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            };
            self.stats.connected.fetch_add(1, Ordering::Relaxed);
            let leaving = self.play(&client).await;
            let counted = client.stats();
            self.stats.resumes.fetch_add(counted.resumes, Ordering::Relaxed);
            self.stats.pushes.fetch_add(counted.pushes, Ordering::Relaxed);
            client.close().await;
            self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            if !leaving {
                break;
            }
            let offline = Duration::from_secs_f64(self.rng.exp(self.profile.offline_mean_secs));
            if !self.pause(offline).await {
                break;
            }
        }
    }

    async fn connect(&mut self) -> Option<Client> {
        let endpoint = if self.websocket {
            ClientConfig::ws(format!("ws://{}/", self.target))
        } else {
            ClientConfig::tcp(self.target)
        };
        let config = ClientConfig { local_addr: self.source, ..endpoint };
        let started = Instant::now();
        let result = match Client::connect(config).await {
            Ok(client) => client.login_device(&self.device).await.map(|login| (client, login)),
            Err(e) => Err(e),
        };
        match result {
            Ok((client, login)) => {
                self.stats.record(guildhall_client::method::LOGIN, started.elapsed());
                self.player = login.player;
                self.ensure_guild(&client).await;
                // Every player follows the offer stream of three card kinds.
                let kinds: Vec<u32> = (0..3).map(|_| self.rng.below(16) as u32).collect();
                let subscribed = Instant::now();
                match client.market_subscribe(&kinds).await {
                    Ok(_) => self.stats.record(guildhall_client::method::MARKET_SUBSCRIBE, subscribed.elapsed()),
                    Err(e) => self.stats.error(error_kind(&e)),
                }
                Some(client)
            }
            Err(e) => {
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                self.stats.error(format!("connect: {}", error_kind(&e)));
                *self.stats.last_connect_error.lock().expect("stats") = Some(e.to_string());
                None
            }
        }
    }

    /// A player without a guild joins the best recommended one, or founds
    /// one when none has room (as real players do on their first day).
    async fn ensure_guild(&mut self, client: &Client) {
        if self.player.as_ref().is_some_and(|p| !p.guild_id.is_empty()) {
            return;
        }
        let started = Instant::now();
        let recommended = client.guild_recommend("en", 5).await;
        self.stats.record(guildhall_client::method::GUILD_RECOMMEND, started.elapsed());
        if let Ok(r) = recommended {
            for g in r.guilds {
                let started = Instant::now();
                if let Ok(joined) = client.guild_join(&g.guild_id).await {
                    self.stats.record(guildhall_client::method::GUILD_JOIN, started.elapsed());
                    if joined.joined {
                        return;
                    }
                }
            }
        }
        let n = self.rng.next_u64();
        let started = Instant::now();
        let name = format!("Bots {:x}", n >> 16);
        let tag = format!("{:X}", n % 0xFFFFF);
        match client.guild_create(&name, &tag, "en", true).await {
            Ok(_) => self.stats.record(guildhall_client::method::GUILD_CREATE, started.elapsed()),
            Err(e) if is_refusal(&e) => self.stats.record(guildhall_client::method::GUILD_CREATE, started.elapsed()),
            Err(e) => self.stats.error(error_kind(&e)),
        }
    }

    /// Thinks for `d` or until the run ends, reading the pushes that arrive
    /// meanwhile, as a player's app does; false when the run ended.
    async fn think(&mut self, d: Duration, pushes: &mut Option<mpsc::UnboundedReceiver<pb::Push>>) -> bool {
        let until = tokio::time::sleep_until((Instant::now() + d).min(self.deadline).into());
        tokio::pin!(until);
        loop {
            let push = async {
                match pushes.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut until => return !self.over(),
                _ = self.stop.changed() => return false,
                push = push => match push {
                    Some(push) => self.on_push(push),
                    None => *pushes = None,
                },
            }
        }
    }

    /// New offers on the market stream become what the bot buys next
    /// (newest first, its own left out); other pushes are only read.
    fn on_push(&mut self, push: pb::Push) {
        let Some(pb::event::Kind::MarketFeed(feed)) = push.event.and_then(|e| e.kind) else {
            return;
        };
        let me = self.player.as_ref().map(|p| p.player_id.as_str()).unwrap_or_default();
        let fresh = feed.offers.into_iter().filter(|l| l.seller_id != me).map(|l| l.listing_id);
        self.offers.extend(fresh);
        let keep = self.offers.len().saturating_sub(MAX_OFFERS);
        self.offers.drain(..keep);
    }

    /// Plays one session; true when the player leaves to come back later.
    async fn play(&mut self, client: &Client) -> bool {
        // Read, not left to pile up in the client (up to its buffer's bound).
        let mut pushes = client.take_pushes();
        loop {
            let think = Duration::from_secs_f64(self.rng.exp(self.profile.think_mean_secs));
            if !self.think(think, &mut pushes).await {
                return false;
            }
            let action = self.profile.pick(self.rng.below(self.profile.total_weight()));
            let started = Instant::now();
            let outcome = self.act(client, action).await;
            match outcome {
                Ok(()) => self.stats.record(action.method(), started.elapsed()),
                Err(e) if is_refusal(&e) => self.stats.record(action.method(), started.elapsed()),
                Err(e) => {
                    self.stats.error(error_kind(&e));
                    if matches!(e, ClientError::Closed { .. } | ClientError::SessionLost { .. }) {
                        return true;
                    }
                }
            }
            if self.rng.unit() < self.profile.drop_chance {
                self.stats.drops.fetch_add(1, Ordering::Relaxed);
                client.drop_connection().await;
            }
            if self.rng.unit() < self.profile.leave_chance {
                return true;
            }
        }
    }

    async fn act(&mut self, client: &Client, action: Action) -> Result<(), ClientError> {
        match action {
            Action::Battle => {
                let b = client.battle().await?;
                self.player = b.player;
            }
            Action::OpenChest => {
                client.open_chest().await?;
            }
            Action::Upgrade => {
                let kind = self
                    .player
                    .as_ref()
                    .and_then(|p| p.cards.iter().find(|c| c.count > 2 * c.level && c.level < 10).map(|c| c.kind));
                match kind {
                    Some(kind) => {
                        client.upgrade_card(kind).await?;
                    }
                    None => self.player = client.get_player().await?.player,
                }
            }
            Action::Profile => self.player = client.get_player().await?.player,
            Action::ExpeditionStatus => {
                client.expedition_status().await?;
            }
            Action::MarketBrowse => {
                let filter =
                    pb::MarketBrowseRequest { kinds: vec![self.rng.below(16) as u32], limit: 10, ..Default::default() };
                let page = client.market_browse(filter).await?;
                let me = self.player.as_ref().map(|p| p.player_id.clone()).unwrap_or_default();
                self.offers = page.listings.into_iter().filter(|l| l.seller_id != me).map(|l| l.listing_id).collect();
            }
            Action::MarketList => {
                if let Sell::Cancel(oldest) = self.next_sale() {
                    match client.market_cancel(&oldest).await {
                        Ok(cancelled) => self.player = cancelled.player.or(self.player.take()),
                        // Sold or expired meanwhile: one fewer to take back.
                        Err(e) if is_refusal(&e) => {}
                        Err(e) => return Err(e),
                    }
                    return Ok(());
                }
                let card = self.player.as_ref().and_then(|p| p.cards.iter().find(|c| c.count >= 2).cloned());
                match card {
                    Some(card) => {
                        let price = 20 + self.rng.below(180);
                        match client.market_list(card.kind, 1, price).await {
                            Ok(listed) => {
                                self.listings.extend(listed.listing.map(|l| l.listing_id));
                                self.player = listed.player;
                            }
                            Err(e) if e.is_status(Status::TooManyListings) => {
                                // At the limit, with listings the bot lost
                                // track of (it ran before): learn them.
                                let mine = client.market_my_listings().await?.listings;
                                self.listings = mine.into_iter().map(|l| l.listing_id).collect();
                                return Err(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    None => self.player = client.get_player().await?.player,
                }
            }
            Action::MarketBuy => match self.offers.pop() {
                Some(listing) => {
                    let bought = client.market_buy(&listing).await?;
                    self.player = bought.player;
                }
                None => {
                    let filter = pb::MarketBrowseRequest { limit: 10, ..Default::default() };
                    let me = self.player.as_ref().map(|p| p.player_id.clone()).unwrap_or_default();
                    let page = client.market_browse(filter).await?;
                    self.offers =
                        page.listings.into_iter().filter(|l| l.seller_id != me).map(|l| l.listing_id).collect();
                }
            },
            Action::GuildChat => {
                let lines = ["gg", "need mana", "who wants a trade?", "nice win!", "expedition tonight"];
                client.guild_chat_post(lines[self.rng.below(lines.len() as u64) as usize]).await?;
            }
            Action::GuildHelpAsk => {
                client.guild_help_ask(self.rng.below(8) as u32, 0).await?;
            }
            Action::GuildHelpDonate => {
                let guild = client.guild_get("").await?.guild.unwrap_or_default();
                let me = self.player.as_ref().map(|p| p.player_id.clone()).unwrap_or_default();
                let owned = |kind: u32| {
                    self.player.as_ref().is_some_and(|p| p.cards.iter().any(|c| c.kind == kind && c.count > 1))
                };
                let request = guild.help.iter().find(|h| h.requester_id != me && owned(h.kind));
                match request {
                    Some(h) => {
                        let donated = client.guild_help_donate(&h.requester_id, 1).await?;
                        self.player = donated.player.or(self.player.take());
                    }
                    None => self.player = client.get_player().await?.player,
                }
            }
            Action::GuildSearch => {
                let prefix = ["b", "bo", "bots", "g", "a"][self.rng.below(5) as usize];
                client
                    .guild_search(pb::GuildSearchRequest { prefix: prefix.into(), limit: 10, ..Default::default() })
                    .await?;
            }
            Action::ExpeditionSignUp => match client.expedition_sign_up().await {
                Err(e) if e.is_status(Status::ExpeditionNoGuild) => {}
                other => {
                    other?;
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(id: u32, seller: &str) -> pb::MarketListing {
        pb::MarketListing { listing_id: format!("l{id}"), seller_id: seller.into(), ..Default::default() }
    }

    fn feed(offers: Vec<pb::MarketListing>) -> pb::Push {
        let feed = pb::MarketFeed { kind: 1, offers, closed: vec![] };
        pb::Push {
            seq: 1,
            topic: "market/1".into(),
            event: Some(pb::Event { kind: Some(pb::event::Kind::MarketFeed(feed)) }),
        }
    }

    /// A bot that is never run (nothing reads its stop signal).
    fn test_bot() -> Bot {
        let (_stop_tx, stop) = watch::channel(false);
        let target = "127.0.0.1:1".parse().unwrap();
        Bot::new(Arc::default(), Arc::new(Profile::standard()), target, None, "d".into(), Instant::now(), 1, stop)
    }

    #[test]
    fn the_offer_stream_feeds_the_next_buys_newest_first_without_own_listings() {
        let mut bot = test_bot();
        bot.player = Some(pb::Player { player_id: "me".into(), ..Default::default() });
        bot.on_push(feed((0..8).map(|i| listing(i, "other")).collect()));
        bot.on_push(feed(vec![listing(8, "me"), listing(9, "other"), listing(10, "other"), listing(11, "other")]));
        assert_eq!(bot.offers.len(), MAX_OFFERS, "bounded");
        assert!(!bot.offers.contains(&"l8".to_string()), "own listing left out");
        assert_eq!(bot.offers.pop().as_deref(), Some("l11"), "newest bought first");
        assert_eq!(bot.offers.first().map(String::as_str), Some("l1"), "oldest dropped: {:?}", bot.offers);
        // Other pushes change nothing.
        let chat = pb::Push { seq: 2, topic: "guild/g".into(), event: None };
        bot.on_push(chat);
        assert_eq!(bot.offers.len(), MAX_OFFERS - 1);
    }

    #[test]
    fn a_bot_at_the_listing_limit_takes_its_oldest_listing_back_before_listing_again() {
        let mut bot = test_bot();
        assert_eq!(bot.next_sale(), Sell::List);
        bot.listings = (0..LISTING_LIMIT).map(|i| format!("l{i}")).collect();
        assert_eq!(bot.next_sale(), Sell::Cancel("l0".into()));
        assert_eq!(bot.listings.len(), LISTING_LIMIT - 1);
        assert_eq!(bot.next_sale(), Sell::List, "below the limit again");
    }
}
