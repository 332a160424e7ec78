//! Typed calls of the guild methods (`guild.*`): guilds, roles, chat, help
//! requests and the guild directory. Guild events (joins, leaves, role
//! changes, chat, help) arrive as pushes on the guild's topic once the
//! player is a member; see [`Client::pushes`].

use guildhall_protocol::{method, pb};

use crate::{Client, ClientError};

impl Client {
    /// `guild.create`: founds a guild (costs gold) led by the caller.
    pub async fn guild_create(
        &self,
        name: &str,
        tag: &str,
        language: &str,
        open: bool,
    ) -> Result<pb::GuildCreateResponse, ClientError> {
        let req = pb::GuildCreateRequest {
            name: name.into(),
            tag: tag.into(),
            language: language.into(),
            open,
            description: String::new(),
        };
        self.call(method::GUILD_CREATE, &req).await
    }

    /// `guild.get`: a guild by id; `""` for the caller's own.
    pub async fn guild_get(&self, guild_id: &str) -> Result<pb::GuildGetResponse, ClientError> {
        self.call(method::GUILD_GET, &pb::GuildGetRequest { guild_id: guild_id.into() }).await
    }

    /// `guild.join`: joins an open guild, or files a join request with a
    /// closed one (`joined` false).
    pub async fn guild_join(&self, guild_id: &str) -> Result<pb::GuildJoinResponse, ClientError> {
        self.call(method::GUILD_JOIN, &pb::GuildJoinRequest { guild_id: guild_id.into() }).await
    }

    /// `guild.decide_join`: an officer approves or rejects a join request.
    pub async fn guild_decide_join(
        &self,
        player_id: &str,
        approve: bool,
    ) -> Result<pb::GuildDecideJoinResponse, ClientError> {
        self.call(method::GUILD_DECIDE_JOIN, &pb::GuildDecideJoinRequest { player_id: player_id.into(), approve }).await
    }

    /// `guild.leave`
    pub async fn guild_leave(&self) -> Result<pb::GuildLeaveResponse, ClientError> {
        self.call(method::GUILD_LEAVE, &pb::GuildLeaveRequest {}).await
    }

    /// `guild.kick`
    pub async fn guild_kick(&self, player_id: &str) -> Result<pb::GuildKickResponse, ClientError> {
        self.call(method::GUILD_KICK, &pb::GuildKickRequest { player_id: player_id.into() }).await
    }

    /// `guild.promote`: member to officer (the leader only).
    pub async fn guild_promote(&self, player_id: &str) -> Result<pb::GuildSetRoleResponse, ClientError> {
        self.call(method::GUILD_PROMOTE, &pb::GuildSetRoleRequest { player_id: player_id.into() }).await
    }

    /// `guild.demote`: officer to member (the leader only).
    pub async fn guild_demote(&self, player_id: &str) -> Result<pb::GuildSetRoleResponse, ClientError> {
        self.call(method::GUILD_DEMOTE, &pb::GuildSetRoleRequest { player_id: player_id.into() }).await
    }

    /// `guild.chat_post`
    pub async fn guild_chat_post(&self, text: &str) -> Result<pb::GuildChatPostResponse, ClientError> {
        self.call(method::GUILD_CHAT_POST, &pb::GuildChatPostRequest { text: text.into() }).await
    }

    /// `guild.chat_history`: the last `limit` messages (0: all kept).
    pub async fn guild_chat_history(&self, limit: u32) -> Result<pb::GuildChatHistoryResponse, ClientError> {
        self.call(method::GUILD_CHAT_HISTORY, &pb::GuildChatHistoryRequest { limit }).await
    }

    /// `guild.help_ask`: asks guildmates for `count` cards of `kind` (0: the
    /// most allowed).
    pub async fn guild_help_ask(&self, kind: u32, count: u32) -> Result<pb::GuildHelpAskResponse, ClientError> {
        self.call(method::GUILD_HELP_ASK, &pb::GuildHelpAskRequest { kind, count }).await
    }

    /// `guild.help_donate`: gives cards to a guildmate's open request.
    pub async fn guild_help_donate(
        &self,
        requester_id: &str,
        count: u32,
    ) -> Result<pb::GuildHelpDonateResponse, ClientError> {
        self.call(method::GUILD_HELP_DONATE, &pb::GuildHelpDonateRequest { requester_id: requester_id.into(), count })
            .await
    }

    /// `guild.search`: by name prefix and filters (see `GuildSearchRequest`).
    pub async fn guild_search(&self, req: pb::GuildSearchRequest) -> Result<pb::GuildSearchResponse, ClientError> {
        self.call(method::GUILD_SEARCH, &req).await
    }

    /// `guild.recommend`: guilds with room that fit the caller.
    pub async fn guild_recommend(&self, language: &str, limit: u32) -> Result<pb::GuildRecommendResponse, ClientError> {
        self.call(method::GUILD_RECOMMEND, &pb::GuildRecommendRequest { language: language.into(), limit }).await
    }
}
