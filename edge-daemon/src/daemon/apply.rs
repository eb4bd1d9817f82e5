//! Carries out a plan's actions through the drivers and records what
//! succeeded in `applied`. A failed action stays unapplied; the next pass
//! computes it again. Route changes go to the announcer's task and are
//! recorded when it confirms them ([`State::on_bgp`]); one already on its
//! way is not sent twice. An action about a VIP a driver no longer knows
//! (removed by a reload) is dropped, never retried.

use super::State;
use crate::effects::{EffectError, ErrorKind};
use crate::reconcile::Action;

impl State {
    pub(super) async fn apply(&mut self, actions: &[Action]) -> Vec<EffectError> {
        let mut errors = Vec::new();
        let d = &mut self.drivers;
        for action in actions {
            let result = match action {
                Action::AddAddress(ip) => match d.addresses.as_mut() {
                    Some(a) => Some(a.add(*ip).await),
                    None => None,
                },
                Action::RemoveAddress(ip) => match d.addresses.as_mut() {
                    Some(a) => Some(a.remove(*ip).await),
                    None => None,
                },
                Action::SetTable { vip, proxies } => match d.forwarder.as_mut() {
                    Some(f) => Some(f.set_table(vip, proxies).await),
                    None => None,
                },
                Action::RemoveTable { vip } => match d.forwarder.as_mut() {
                    Some(f) => Some(f.remove_table(vip).await),
                    None => None,
                },
                Action::Handoff { vip, on } => match d.forwarder.as_mut() {
                    Some(f) => Some(f.set_handoff(vip, *on).await),
                    None => None,
                },
                Action::Route { vip, state } => {
                    if let Some(a) = d.announcer.as_mut()
                        && self.inflight.get(vip) != Some(state)
                    {
                        a.set_route(vip, *state);
                        self.inflight.insert(vip.clone(), *state);
                    }
                    None
                }
            };
            match result {
                None => {} // queued, or no driver for it: nothing is applied yet
                Some(Ok(())) => {
                    tracing::info!(?action, "applied");
                    self.applied.record(action);
                }
                Some(Err(e)) if e.kind == ErrorKind::UnknownVip => {
                    tracing::debug!(?action, "dropped: the driver no longer knows the VIP");
                    self.applied.record(action);
                }
                Some(Err(e)) => {
                    self.metrics.effect_error(e.component);
                    errors.push(e);
                }
            }
        }
        errors.extend(self.route_errors.values().cloned());
        errors
    }
}
