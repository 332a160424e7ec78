//! What bots do: an action mix, think times, and how sessions end.

use serde::Serialize;

/// One thing a bot can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    Battle,
    OpenChest,
    Upgrade,
    Profile,
    ExpeditionStatus,
    ExpeditionSignUp,
    MarketBrowse,
    MarketList,
    MarketBuy,
    GuildChat,
    GuildHelpAsk,
    GuildHelpDonate,
    GuildSearch,
}

impl Action {
    /// The protocol method it calls, as latency is reported per method.
    pub fn method(self) -> &'static str {
        use guildhall_client::method;
        match self {
            Action::Battle => method::BATTLE,
            Action::OpenChest => method::OPEN_CHEST,
            Action::Upgrade => method::UPGRADE_CARD,
            Action::Profile => method::PLAYER_GET,
            Action::ExpeditionStatus => method::EXPEDITION_GET,
            Action::ExpeditionSignUp => method::EXPEDITION_SIGNUP,
            Action::MarketBrowse => method::MARKET_BROWSE,
            Action::MarketList => method::MARKET_LIST,
            Action::MarketBuy => method::MARKET_BUY,
            Action::GuildChat => method::GUILD_CHAT_POST,
            Action::GuildHelpAsk => method::GUILD_HELP_ASK,
            Action::GuildHelpDonate => method::GUILD_HELP_DONATE,
            Action::GuildSearch => method::GUILD_SEARCH,
        }
    }
}

/// A bot's behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: String,
    /// Mean think time between actions (exponentially distributed).
    pub think_mean_secs: f64,
    /// Actions and their relative weights.
    pub mix: Vec<(Action, u32)>,
    /// Chance per action that the connection drops briefly (the client
    /// resumes the session by itself).
    pub drop_chance: f64,
    /// Chance per action that the player ends the session and comes back
    /// after an offline pause (a new login).
    pub leave_chance: f64,
    /// Mean offline pause after leaving.
    pub offline_mean_secs: f64,
}

impl Profile {
    /// The standard profile: 5 s mean think time and a
    /// mix dominated by battles, with chests, upgrades and the social and
    /// trading actions as the server offers them.
    pub fn standard() -> Self {
        Self {
            name: "standard".into(),
            think_mean_secs: 5.0,
            mix: vec![
                (Action::Battle, 35),
                (Action::OpenChest, 10),
                (Action::Upgrade, 8),
                (Action::Profile, 10),
                (Action::ExpeditionStatus, 5),
                (Action::ExpeditionSignUp, 2),
                (Action::MarketBrowse, 8),
                (Action::MarketList, 4),
                (Action::MarketBuy, 5),
                (Action::GuildChat, 6),
                (Action::GuildHelpAsk, 2),
                (Action::GuildHelpDonate, 5),
                (Action::GuildSearch, 2),
            ],
            drop_chance: 0.01,
            leave_chance: 0.005,
            offline_mean_secs: 20.0,
        }
    }

    /// Every bot acts as fast as the server answers: for saturation tests.
    pub fn hammer() -> Self {
        Self { name: "hammer".into(), think_mean_secs: 0.0, drop_chance: 0.0, leave_chance: 0.0, ..Self::standard() }
    }

    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "standard" => Some(Self::standard()),
            "hammer" => Some(Self::hammer()),
            _ => None,
        }
    }

    /// Picks an action by weight from a uniform draw in `0..total_weight`.
    pub fn pick(&self, draw: u64) -> Action {
        let mut d = draw;
        for (action, w) in &self.mix {
            if d < *w as u64 {
                return *action;
            }
            d -= *w as u64;
        }
        self.mix[0].0
    }

    pub fn total_weight(&self) -> u64 {
        self.mix.iter().map(|(_, w)| *w as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights() {
        let p = Profile::standard();
        let total = p.total_weight();
        let battles = (0..total).filter(|d| p.pick(*d) == Action::Battle).count() as u64;
        assert_eq!(battles, 35);
        assert_eq!(p.pick(total - 1), Action::GuildSearch);
    }
}
