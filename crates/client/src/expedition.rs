//! Typed calls of the expedition methods.

use guildhall_protocol::{method, pb};

use crate::{Client, ClientError};

impl Client {
    /// `expedition.get`: the current period and the guild's bracket.
    pub async fn expedition_status(&self) -> Result<pb::ExpeditionStatusResponse, ClientError> {
        self.call(method::EXPEDITION_GET, &pb::ExpeditionStatusRequest {}).await
    }

    /// `expedition.signup`: signs the player's guild up for this period.
    pub async fn expedition_sign_up(&self) -> Result<pb::ExpeditionSignUpResponse, ClientError> {
        self.call(method::EXPEDITION_SIGNUP, &pb::ExpeditionSignUpRequest {}).await
    }
}
