//! Membership: founding, joining (open, or by request), leaving, kicking,
//! roles, and keeping each player's own record of its guild in step.

use guildhall_entity::{Ctx, Runtime};

use super::directory::{DirectoryMsg, GuildDirectory, DIRECTORY_KEY};
use super::model::*;
use super::msg::{GuildEvent, GuildReply};
use super::rules::*;
use super::state::{step_refusal, Guild};
use crate::player::{Change, ChangeKind, PlayerMsg};
use crate::tx::{self, StepError, TxStep};
use crate::{player_topic, GameError, GameEvent, GuildError};

impl Guild {
    /// Sets a member's role (marks only that member changed).
    pub(super) fn set_member_role(&mut self, player: &str, role: GuildRole) {
        if let Some(m) = self.member_key(player).and_then(|k| self.members.get_mut(&k)) {
            m.role = role;
        }
    }

    pub(super) fn add_member(&mut self, player: &str, role: GuildRole, now_ms: u64) {
        let seq = self.next();
        self.members.insert(seq, Member { player_id: player.to_string(), role, joined_at_ms: now_ms, joined_seq: seq });
    }

    /// The successor of a leaving leader: the longest-serving officer, else
    /// the longest-serving member.
    pub fn successor(&self) -> Option<String> {
        let by_seniority = |role| self.members.values().filter(move |m| m.role == role).min_by_key(|m| m.joined_seq);
        by_seniority(GuildRole::Officer).or_else(|| by_seniority(GuildRole::Member)).map(|m| m.player_id.clone())
    }

    /// Casts this guild's listing (and next wake-up) to the directory.
    /// Membership changes pass `force`; activity alone goes at most every
    /// [`DIRECTORY_PUSH_MS`].
    pub(super) fn push_directory(&mut self, ctx: &Ctx, force: bool) {
        let now = ctx.now_ms();
        if !force && now.saturating_sub(self.dir_pushed_ms) < DIRECTORY_PUSH_MS {
            return;
        }
        self.dir_seq += 1;
        self.dir_pushed_ms = now;
        let msg = DirectoryMsg::Update { summary: self.summary(now), seq: self.dir_seq, wake_at: self.next_wake(now) };
        ctx.runtime().spawn_cast::<GuildDirectory>(DIRECTORY_KEY, msg);
    }

    /// Claims `player` for this guild at the player (see
    /// `PlayerMsg::ClaimGuild`): refused when the player is in another guild.
    pub(super) async fn claim(&self, rt: &Runtime, player: &str) -> Result<(), StepError> {
        tx::call_player(rt, player, PlayerMsg::ClaimGuild { guild: self.id.clone() }).await.map(|_| ())
    }

    /// Tells a player which guild it is in; remembered for `Tick` if the
    /// player does not answer.
    pub(super) async fn sync_player(&mut self, rt: &Runtime, player: &str, guild: Option<String>) {
        // Leaving releases only this guild's claim: never a newer one.
        let msg = match &guild {
            Some(g) => PlayerMsg::SetGuild { guild: Some(g.clone()) },
            None => PlayerMsg::ReleaseGuild { guild: self.id.clone() },
        };
        match tx::call_player(rt, player, msg).await {
            Ok(_) => {
                self.unsynced.remove(player);
            }
            Err(_) => {
                self.unsynced.insert(player.to_string(), guild);
            }
        }
    }

    /// Checks that `player` is in no other guild (the player's own record
    /// is the authority).
    pub(super) async fn check_not_elsewhere(&self, rt: &Runtime, player: &str) -> Result<(), GameError> {
        let p = tx::player_view(rt, player).await.map_err(step_refusal)?;
        match p.guild {
            // A player whose record names this guild but who is not listed
            // (a crash between the two writes) may enter again.
            Some(g) if g != self.id => Err(GuildError::AlreadyInGuild(g).into()),
            _ => Ok(()),
        }
    }

    /// Checks that `player` may enter: in no other guild, room left.
    pub(super) async fn check_can_enter(&self, rt: &Runtime, player: &str) -> Result<(), GameError> {
        self.check_not_elsewhere(rt, player).await?;
        if self.members.len() as u32 >= self.capacity {
            return Err(GuildError::GuildFull(self.capacity).into());
        }
        Ok(())
    }

    /// Admits `player`: claims it at the player first (the authority on
    /// membership), then lists it.
    pub(super) async fn admit(&mut self, ctx: &Ctx, player: &str) -> Result<(), StepError> {
        self.claim(ctx.runtime(), player).await?;
        self.add_member(player, GuildRole::Member, ctx.now_ms());
        self.join_requests.retain(|(p, _)| p != player);
        // The claim above already made the player's session follow the
        // guild's topic, so it receives its own join event.
        self.publish(
            ctx,
            GuildEvent::MemberJoined {
                guild_id: self.id.clone(),
                player_id: player.to_string(),
                role: GuildRole::Member,
            },
        );
        self.push_directory(ctx, true);
        Ok(())
    }

    /// Removes a member (left or kicked): passes leadership on, closes their
    /// help request, disbands the guild when nobody is left.
    pub(super) async fn remove_member(
        &mut self,
        ctx: &Ctx,
        player: &str,
        kicked_by: Option<String>,
    ) -> (Option<String>, bool) {
        let Some(gone) = self.member_key(player).and_then(|k| self.members.remove(&k)) else {
            return (None, false);
        };
        let mut new_leader = None;
        if gone.role == GuildRole::Leader {
            if let Some(next) = self.successor() {
                self.set_member_role(&next, GuildRole::Leader);
                new_leader = Some(next);
            }
        }
        self.close_help_of(ctx, player);
        self.chat_times.remove(player);
        // The event first, while the player's session still follows the
        // guild's topic: a kicked player learns who kicked them.
        self.publish(
            ctx,
            GuildEvent::MemberLeft {
                guild_id: self.id.clone(),
                player_id: player.to_string(),
                kicked_by,
                new_leader: new_leader.clone(),
            },
        );
        self.sync_player(ctx.runtime(), player, None).await;
        let disbanded = self.members.is_empty();
        if disbanded {
            self.disbanded = true;
            self.join_requests.clear();
            ctx.runtime()
                .spawn_cast::<GuildDirectory>(DIRECTORY_KEY, DirectoryMsg::Remove { guild_id: self.id.clone() });
        } else {
            self.push_directory(ctx, true);
        }
        (new_leader, disbanded)
    }

    /// Promotes a member to officer or demotes an officer to member; only
    /// the leader may.
    pub(super) fn set_role(
        &mut self,
        ctx: &Ctx,
        by: String,
        player: String,
        promote: bool,
    ) -> Result<GuildReply, GameError> {
        self.live()?;
        let now = ctx.now_ms();
        if self.role_of(&by)? != GuildRole::Leader {
            return Err(GuildError::NoGuildPermission("only the leader promotes and demotes".into()).into());
        }
        let target = self.role_of(&player)?;
        let role = match (promote, target) {
            (true, GuildRole::Member) => GuildRole::Officer,
            (false, GuildRole::Officer) => GuildRole::Member,
            _ => return Err(GuildError::GuildRoleUnchanged(player).into()),
        };
        self.set_member_role(&player, role);
        self.publish(
            ctx,
            GuildEvent::RoleChanged { guild_id: self.id.clone(), player_id: player, role, by: by.clone() },
        );
        Ok(GuildReply::View(self.view(&by, now)))
    }

    /// Founds the guild reserved under this id (see `GuildMsg::Found`).
    pub(super) async fn found(
        &mut self,
        ctx: &mut Ctx,
        founder: String,
        input: GuildInput,
    ) -> Result<GuildReply, GameError> {
        let GuildInput { name, tag, language, open, description } = input;
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        if self.founded {
            ctx.unchanged();
            return if self.founder == founder && !self.disbanded {
                Ok(GuildReply::View(self.view(&founder, now)))
            } else {
                Err(GuildError::GuildNotFound(self.id.clone()).into())
            };
        }
        self.check_not_elsewhere(&rt, &founder).await?;
        // Claim the founder first: founding and joining elsewhere at
        // the same moment cannot both succeed.
        self.claim(&rt, &founder).await.map_err(step_refusal)?;
        let fee = Change { gold: -(GUILD_CREATE_COST as i64), kind: ChangeKind::Burn, ..Change::default() };
        if let Err(e) = tx::apply(&rt, &founder, TxStep::new(format!("guild/{}/create", self.id), fee)).await {
            let _ = tx::call_player(&rt, &founder, PlayerMsg::ReleaseGuild { guild: self.id.clone() }).await;
            return Err(step_refusal(e));
        }
        *self = Guild {
            id: self.id.clone(),
            founded: true,
            founder: founder.clone(),
            name,
            tag,
            description,
            language,
            open,
            capacity: GUILD_CAPACITY,
            created_at_ms: now,
            activity_week: week_of(now),
            ..Guild::default()
        };
        self.add_member(&founder, GuildRole::Leader, now);
        self.sync_player(&rt, &founder, Some(self.id.clone())).await;
        self.publish(
            ctx,
            GuildEvent::MemberJoined { guild_id: self.id.clone(), player_id: founder.clone(), role: GuildRole::Leader },
        );
        self.push_directory(ctx, true);
        ctx.durable();
        Ok(GuildReply::View(self.view(&founder, now)))
    }

    /// Joins an open guild, or files a join request for a closed one.
    pub(super) async fn join(&mut self, ctx: &mut Ctx, player: String) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        self.live()?;
        if self.member(&player).is_some() {
            return Ok(GuildReply::Joined { joined: true, view: self.view(&player, now) });
        }
        self.check_can_enter(&rt, &player).await?;
        if !self.open {
            if !self.join_requests.iter().any(|(p, _)| *p == player) {
                self.join_requests.push((player.clone(), now));
                if self.join_requests.len() > MAX_JOIN_REQUESTS {
                    self.join_requests.remove(0);
                }
                self.publish(ctx, GuildEvent::JoinRequested { guild_id: self.id.clone(), player_id: player.clone() });
            }
            return Ok(GuildReply::Joined { joined: false, view: self.view(&player, now) });
        }
        self.admit(ctx, &player).await.map_err(step_refusal)?;
        ctx.durable();
        Ok(GuildReply::Joined { joined: true, view: self.view(&player, now) })
    }

    /// An officer approves or declines a join request.
    pub(super) async fn decide_join(
        &mut self,
        ctx: &mut Ctx,
        officer: String,
        player: String,
        approve: bool,
    ) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        self.live()?;
        if self.role_of(&officer)? < GuildRole::Officer {
            return Err(
                GuildError::NoGuildPermission("only officers and the leader decide join requests".into()).into()
            );
        }
        if !self.join_requests.iter().any(|(p, _)| *p == player) {
            return Err(GuildError::JoinRequestNotFound(player).into());
        }
        if approve {
            match self.check_can_enter(&rt, &player).await {
                Ok(()) => {}
                Err(e @ GameError::Guild(GuildError::AlreadyInGuild(_))) => {
                    self.join_requests.retain(|(p, _)| *p != player);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = self.admit(ctx, &player).await {
                if matches!(e, StepError::Refused(GameError::Guild(GuildError::AlreadyInGuild(_)))) {
                    self.join_requests.retain(|(p, _)| *p != player);
                    ctx.durable();
                }
                return Err(step_refusal(e));
            }
            ctx.durable();
        } else {
            self.join_requests.retain(|(p, _)| *p != player);
            let text = format!("Your request to join {} [{}] was declined", self.name, self.tag);
            ctx.publish(&player_topic(&player), GameEvent::Notice { text }.encode());
        }
        Ok(GuildReply::View(self.view(&officer, now)))
    }

    /// A member leaves; a player whose record names this guild but who is not listed is released.
    pub(super) async fn leave(&mut self, ctx: &mut Ctx, player: String) -> Result<GuildReply, GameError> {
        let rt = ctx.runtime().clone();
        self.live()?;
        if self.member(&player).is_none() {
            // Heal a player whose record still names this guild.
            let p = tx::player_view(&rt, &player).await.map_err(step_refusal)?;
            if p.guild.as_deref() == Some(self.id.as_str()) {
                self.sync_player(&rt, &player, None).await;
                return Ok(GuildReply::Left { new_leader: None, disbanded: false });
            }
            return Err(GuildError::NotGuildMember(player).into());
        }
        let (new_leader, disbanded) = self.remove_member(ctx, &player, None).await;
        ctx.durable();
        Ok(GuildReply::Left { new_leader, disbanded })
    }

    /// Removes a member: officers kick members, the leader kicks anyone.
    pub(super) async fn kick(&mut self, ctx: &mut Ctx, by: String, player: String) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        self.live()?;
        let by_role = self.role_of(&by)?;
        let target = self.role_of(&player)?;
        if by == player {
            return Err(GuildError::NoGuildPermission("leave the guild instead of kicking yourself".into()).into());
        }
        let allowed = match by_role {
            GuildRole::Leader => true,
            GuildRole::Officer => target == GuildRole::Member,
            GuildRole::Member => false,
        };
        if !allowed {
            return Err(
                GuildError::NoGuildPermission("officers kick members; only the leader kicks officers".into()).into()
            );
        }
        self.remove_member(ctx, &player, Some(by)).await;
        ctx.durable();
        Ok(GuildReply::View(self.view(&player, now)))
    }
}
