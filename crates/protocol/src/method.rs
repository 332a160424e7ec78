//! Method names carried by [`crate::pb::Request::method`]. Each names the
//! request and response messages of `proto/guildhall.proto` in its comment.

/// `LoginRequest` -> `LoginResponse`
pub const LOGIN: &str = "auth.login";
/// `ResumeRequest` -> `ResumeResponse`
pub const RESUME: &str = "auth.resume";
/// `LogoutRequest` -> `LogoutResponse`
pub const LOGOUT: &str = "auth.logout";
/// `GetPlayerRequest` -> `GetPlayerResponse`
pub const PLAYER_GET: &str = "player.get";
/// `OpenChestRequest` -> `OpenChestResponse`
pub const OPEN_CHEST: &str = "player.open_chest";
/// `UpgradeCardRequest` -> `UpgradeCardResponse`
pub const UPGRADE_CARD: &str = "player.upgrade_card";
/// `BattleRequest` -> `BattleResponse`
pub const BATTLE: &str = "player.battle";

/// `GuildCreateRequest` -> `GuildCreateResponse`
pub const GUILD_CREATE: &str = "guild.create";
/// `GuildGetRequest` -> `GuildGetResponse`
pub const GUILD_GET: &str = "guild.get";
/// `GuildJoinRequest` -> `GuildJoinResponse`
pub const GUILD_JOIN: &str = "guild.join";
/// `GuildDecideJoinRequest` -> `GuildDecideJoinResponse`
pub const GUILD_DECIDE_JOIN: &str = "guild.decide_join";
/// `GuildLeaveRequest` -> `GuildLeaveResponse`
pub const GUILD_LEAVE: &str = "guild.leave";
/// `GuildKickRequest` -> `GuildKickResponse`
pub const GUILD_KICK: &str = "guild.kick";
/// `GuildSetRoleRequest` -> `GuildSetRoleResponse`
pub const GUILD_PROMOTE: &str = "guild.promote";
/// `GuildSetRoleRequest` -> `GuildSetRoleResponse`
pub const GUILD_DEMOTE: &str = "guild.demote";
/// `GuildChatPostRequest` -> `GuildChatPostResponse`
pub const GUILD_CHAT_POST: &str = "guild.chat_post";
/// `GuildChatHistoryRequest` -> `GuildChatHistoryResponse`
pub const GUILD_CHAT_HISTORY: &str = "guild.chat_history";
/// `GuildHelpAskRequest` -> `GuildHelpAskResponse`
pub const GUILD_HELP_ASK: &str = "guild.help_ask";
/// `GuildHelpDonateRequest` -> `GuildHelpDonateResponse`
pub const GUILD_HELP_DONATE: &str = "guild.help_donate";
/// `GuildSearchRequest` -> `GuildSearchResponse`
pub const GUILD_SEARCH: &str = "guild.search";
/// `GuildRecommendRequest` -> `GuildRecommendResponse`
pub const GUILD_RECOMMEND: &str = "guild.recommend";

/// `MarketListRequest` -> `MarketListResponse`
pub const MARKET_LIST: &str = "market.list";
/// `MarketBrowseRequest` -> `MarketBrowseResponse`
pub const MARKET_BROWSE: &str = "market.browse";
/// `MarketBuyRequest` -> `MarketBuyResponse`
pub const MARKET_BUY: &str = "market.buy";
/// `MarketCancelRequest` -> `MarketCancelResponse`
pub const MARKET_CANCEL: &str = "market.cancel";
/// `MarketSubscribeRequest` -> `MarketSubscribeResponse`
pub const MARKET_SUBSCRIBE: &str = "market.subscribe";
/// `MarketMyListingsRequest` -> `MarketMyListingsResponse`
pub const MARKET_MY_LISTINGS: &str = "market.my_listings";

/// `ExpeditionStatusRequest` -> `ExpeditionStatusResponse`
pub const EXPEDITION_GET: &str = "expedition.get";
/// `ExpeditionSignUpRequest` -> `ExpeditionSignUpResponse`
pub const EXPEDITION_SIGNUP: &str = "expedition.signup";

/// Every method, for documentation and tests.
pub const ALL: &[&str] = &[
    LOGIN,
    RESUME,
    LOGOUT,
    PLAYER_GET,
    OPEN_CHEST,
    UPGRADE_CARD,
    BATTLE,
    GUILD_CREATE,
    GUILD_GET,
    GUILD_JOIN,
    GUILD_DECIDE_JOIN,
    GUILD_LEAVE,
    GUILD_KICK,
    GUILD_PROMOTE,
    GUILD_DEMOTE,
    GUILD_CHAT_POST,
    GUILD_CHAT_HISTORY,
    GUILD_HELP_ASK,
    GUILD_HELP_DONATE,
    GUILD_SEARCH,
    GUILD_RECOMMEND,
    MARKET_LIST,
    MARKET_BROWSE,
    MARKET_BUY,
    MARKET_CANCEL,
    MARKET_SUBSCRIBE,
    MARKET_MY_LISTINGS,
    EXPEDITION_GET,
    EXPEDITION_SIGNUP,
];
