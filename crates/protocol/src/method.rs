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

// @guild-methods

// @market-methods

/// `ExpeditionStatusRequest` -> `ExpeditionStatusResponse`
pub const EXPEDITION_GET: &str = "expedition.get";
/// `ExpeditionSignUpRequest` -> `ExpeditionSignUpResponse`
pub const EXPEDITION_SIGNUP: &str = "expedition.signup";
// @expedition-methods

/// Every method, for documentation and tests.
pub const ALL: &[&str] = &[
    LOGIN,
    RESUME,
    LOGOUT,
    PLAYER_GET,
    OPEN_CHEST,
    UPGRADE_CARD,
    BATTLE,
    // @guild-all
    // @market-all
    EXPEDITION_GET,
    EXPEDITION_SIGNUP,
    // @expedition-all
];
