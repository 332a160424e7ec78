//! Donations to help requests: an intent recorded durably, then steps on
//! the donor and the requester, each an idempotent transaction step, so that
//! a crash between two steps is finished by running the same steps again.

use guildhall_entity::Ctx;

use super::model::*;
use super::msg::{GuildEvent, GuildReply};
use super::rules::*;
use super::state::{step_refusal, Guild};
use crate::catalogue::card_def;
use crate::player::{Change, ChangeKind};
use crate::tx::{self, StepError, TxStep};
use crate::{GameError, GuildError, PlayerError, Rarity};

impl Guild {
    /// Runs a donation from its current step to the end. Every step is a
    /// player `Apply` with the donation's own tx id, so running it again
    /// (after a crash or an unreachable player) never applies anything twice.
    pub(super) async fn run_donation(
        &mut self,
        ctx: &Ctx,
        n: u64,
        by_tick: bool,
    ) -> Result<DonationOutcome, GameError> {
        let rt = ctx.runtime().clone();
        let now = ctx.now_ms();
        let Some(mut d) = self.pending.get(&n).cloned() else {
            return self.outcome_of(n);
        };
        let name = card_def(d.kind).map_or("card", |c| c.name);
        let mut donor_view = None;
        let result = loop {
            let step = match d.step {
                DonationStep::Take => {
                    let change = Change { cards: vec![(d.kind, -(d.count as i64))], ..Change::default() };
                    tx::apply(&rt, &d.donor, TxStep::new(d.tx(&self.id, "take"), change).notify(by_tick))
                        .await
                        .map(|_| DonationStep::Give)
                }
                DonationStep::Give => {
                    let change = Change { cards: vec![(d.kind, d.count as i64)], ..Change::default() };
                    let notice = format!("{} donated {} × {name}", d.donor, d.count);
                    match tx::apply(&rt, &d.requester, TxStep::new(d.tx(&self.id, "give"), change).notice(Some(notice)))
                        .await
                    {
                        Ok(_) => {
                            self.delivered(ctx, &d);
                            Ok(DonationStep::Reward)
                        }
                        // Giving cards of a catalogue kind cannot be refused;
                        // should it ever be, the donor gets them back.
                        Err(StepError::Refused(_)) => Ok(DonationStep::Refund),
                        Err(e) => Err(e),
                    }
                }
                DonationStep::Reward => {
                    let change = Change { gold: d.reward_gold as i64, kind: ChangeKind::Reward, ..Change::default() };
                    match tx::apply(&rt, &d.donor, TxStep::new(d.tx(&self.id, "reward"), change).notify(by_tick)).await
                    {
                        Ok(v) => {
                            donor_view = Some(v);
                            self.gold_rewarded += d.reward_gold;
                            break Ok(());
                        }
                        Err(e) => Err(e),
                    }
                }
                DonationStep::Refund => {
                    let change = Change { cards: vec![(d.kind, d.count as i64)], ..Change::default() };
                    match tx::apply(&rt, &d.donor, TxStep::new(d.tx(&self.id, "refund"), change).notify(true)).await {
                        Ok(_) => break Err(GuildError::HelpRequestClosed.into()),
                        Err(e) => Err(e),
                    }
                }
            };
            match step {
                Ok(next) => {
                    d.step = next;
                    self.pending.insert(n, d.clone());
                }
                Err(StepError::Refused(e)) => {
                    // Only Take can be refused (the donor lacks the cards):
                    // nothing moved, the pledge is released.
                    break Err(e);
                }
                Err(StepError::Unknown(why)) => {
                    // Outcome unknown: keep the intent, retry from Tick.
                    d.retry_at_ms = now + STEP_RETRY_MS;
                    self.pending.insert(n, d.clone());
                    self.push_directory(ctx, true);
                    return Err(GuildError::GuildRetryLater(why).into());
                }
            }
        };
        self.pending.remove(&n);
        if d.step == DonationStep::Take || d.step == DonationStep::Refund {
            if let Some(h) = self.help.get_mut(&d.request_id) {
                h.pledged = h.pledged.saturating_sub(d.count);
            }
        }
        let outcome = result.map(|()| DonationOutcome {
            donated: d.count,
            reward_gold: d.reward_gold,
            request: self.request_view(&d),
            donor: donor_view,
        });
        // Remembered without the donor's profile: a whole card collection
        // in each of the 64 outcomes a guild kept made the outcomes most of a
        // long run's heap growth (docs/bench-log/scaling-rounds.md, "Long runs"). A
        // late caller reads the donor's profile as it is now.
        self.outcomes.insert(n, outcome.clone().map(|o| DonationOutcome { donor: None, ..o }));
        while self.outcomes.len() > REMEMBERED_OUTCOMES {
            self.outcomes.pop_first();
        }
        outcome
    }

    /// The request of a donation as it stands (closed requests as the
    /// donation left them).
    pub(super) fn request_view(&self, d: &Donation) -> HelpRequest {
        self.help.get(&d.request_id).cloned().unwrap_or(HelpRequest {
            id: d.request_id,
            requester: d.requester.clone(),
            kind: d.kind,
            wanted: 0,
            received: 0,
            pledged: 0,
            opened_at_ms: 0,
            expires_at_ms: 0,
            donors: Vec::new(),
        })
    }

    /// Cards reached the requester: count them on the request, close it when
    /// filled, tell the guild.
    pub(super) fn delivered(&mut self, ctx: &Ctx, d: &Donation) {
        let now = ctx.now_ms();
        self.cards_routed += d.count as u64;
        self.bump_activity(d.count as u64, now);
        let Some(h) = self.help.get_mut(&d.request_id) else {
            return; // closed meanwhile (expired, requester left): the cards are theirs anyway
        };
        h.received += d.count;
        h.pledged = h.pledged.saturating_sub(d.count);
        h.donors.push((d.donor.clone(), d.count));
        let request = h.clone();
        self.publish(
            ctx,
            GuildEvent::HelpDonated {
                guild_id: self.id.clone(),
                request: request.clone(),
                donor: d.donor.clone(),
                count: d.count,
            },
        );
        if request.received >= request.wanted {
            self.help.remove(&d.request_id);
            self.publish(ctx, GuildEvent::HelpClosed { guild_id: self.id.clone(), request, reason: HelpClose::Filled });
        }
    }

    pub(super) fn outcome_of(&self, n: u64) -> Result<DonationOutcome, GameError> {
        self.outcomes.get(&n).cloned().unwrap_or(Err(GuildError::HelpRequestClosed.into()))
    }

    /// Records a donation's intent durably, before any card moves.
    pub(super) async fn prepare_donation(
        &mut self,
        ctx: &mut Ctx,
        donor: String,
        requester: String,
        count: u32,
    ) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        self.live()?;
        self.role_of(&donor)?;
        if donor == requester {
            return Err(GuildError::CannotDonateToSelf.into());
        }
        let h = self.help_of(&requester).ok_or(GuildError::HelpRequestClosed)?;
        let remaining = h.wanted.saturating_sub(h.received + h.pledged);
        if remaining == 0 {
            return Err(GuildError::HelpRequestClosed.into());
        }
        if count == 0 {
            return Err(GuildError::InvalidGuildInput("donate at least one card".into()).into());
        }
        let count = count.min(remaining);
        let (kind, request_id) = (h.kind, h.id);
        // Refuse early what the donor cannot give: no intent for it.
        let have = tx::player_view(&rt, &donor)
            .await
            .map_err(step_refusal)?
            .cards
            .iter()
            .find(|c| c.kind == kind)
            .map_or(0, |c| c.count);
        if have < count {
            return Err(PlayerError::NotEnoughCards { kind, need: count, have }.into());
        }
        let rarity = card_def(kind).map_or(Rarity::Common, |c| c.rarity);
        let n = self.next();
        let d = Donation {
            n,
            request_id,
            donor,
            requester: requester.clone(),
            kind,
            count,
            reward_gold: donation_reward_gold(rarity) * count as u64,
            step: DonationStep::Take,
            created_at_ms: now,
            retry_at_ms: now + STEP_RETRY_MS,
        };
        self.pending.insert(n, d);
        if let Some(h) = self.help.get_mut(&request_id) {
            h.pledged += count;
        }
        self.push_directory(ctx, true);
        // The intent is on disk before any card moves.
        ctx.durable();
        Ok(GuildReply::Prepared { n })
    }

    /// Runs a prepared donation to its end (or answers with its outcome).
    pub(super) async fn continue_donation(&mut self, ctx: &mut Ctx, n: u64) -> Result<GuildReply, GameError> {
        let outcome = self.run_donation(ctx, n, false).await;
        if self.pending.is_empty() {
            self.push_directory(ctx, true);
        }
        ctx.durable();
        outcome.map(GuildReply::Donated)
    }
}
