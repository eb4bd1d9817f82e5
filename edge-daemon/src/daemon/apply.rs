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
        let mut i = 0;
        while i < actions.len() {
            // A run of table changes goes to the forwarder as one batch:
            // VIPs sharing a table that change alike cost one swap.
            let run = actions[i..]
                .iter()
                .take_while(|a| matches!(a, Action::SetTable { .. }))
                .count();
            if run > 1
                && let Some(f) = self.drivers.forwarder.as_mut()
            {
                let batch: Vec<(&str, &[(String, u32)])> = actions[i..i + run]
                    .iter()
                    .filter_map(|a| match a {
                        Action::SetTable { vip, proxies } => Some((vip.as_str(), &proxies[..])),
                        _ => None,
                    })
                    .collect();
                let results = match f.set_tables(&batch).await {
                    Ok(results) => results,
                    Err(e) => vec![Err(e); run],
                };
                let failed = errors.len();
                for (action, result) in actions[i..i + run].iter().zip(results) {
                    self.record(action, Some(result), &mut errors, run <= 8);
                }
                if run > 8 {
                    // One line for a batch (a flip of a proxy 100,000 VIPs
                    // use is not 100,000 lines).
                    let bad = errors.len() - failed;
                    tracing::info!(tables = run, failed = bad, "applied a batch of tables");
                }
                i += run;
                continue;
            }
            let result = self.apply_one(&actions[i]).await;
            self.record(&actions[i], result, &mut errors, true);
            i += 1;
        }
        if actions
            .iter()
            .any(|a| matches!(a, Action::SetTable { .. } | Action::RemoveTable { .. }))
        {
            self.refresh_tables();
        }
        errors.extend(self.route_errors.values().cloned());
        errors
    }

    /// Carries out one action: `None` when it was queued or has no driver.
    async fn apply_one(&mut self, action: &Action) -> Option<Result<(), EffectError>> {
        let d = &mut self.drivers;
        match action {
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
        }
    }

    /// Records what an action's result means for `applied`.
    fn record(
        &mut self,
        action: &Action,
        result: Option<Result<(), EffectError>>,
        errors: &mut Vec<EffectError>,
        log: bool,
    ) {
        match result {
            None => {} // queued, or no driver for it: nothing is applied yet
            Some(Ok(())) => {
                if log {
                    tracing::info!(?action, "applied");
                } else {
                    tracing::debug!(?action, "applied");
                }
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
}
