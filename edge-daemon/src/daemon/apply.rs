//! Carries out a plan's actions through the effect drivers and records what
//! succeeded in `applied`. A failed action stays unapplied; the next pass
//! computes it again.

use super::State;
use crate::effects::{Announcer, Forwarder};
use crate::metrics::ComponentLabels;
use crate::reconcile::Action;

impl State {
    pub(super) async fn apply(&mut self, actions: &[Action]) -> Vec<String> {
        let mut errors = Vec::new();
        for action in actions {
            let (component, result) = match action {
                Action::AddAddress(ip) => match self.addresses.as_mut() {
                    Some(a) => ("addresses", a.add(*ip).await.map(|_| true)),
                    None => ("addresses", Ok(false)),
                },
                Action::RemoveAddress(ip) => match self.addresses.as_mut() {
                    Some(a) => ("addresses", a.remove(*ip).await.map(|_| true)),
                    None => ("addresses", Ok(false)),
                },
                Action::SetTable { vip, proxies } => match self.forwarder.as_mut() {
                    Some(f) => ("forwarder", f.set_table(vip, proxies).await.map(|_| true)),
                    None => ("forwarder", Ok(false)),
                },
                Action::RemoveTable { vip } => match self.forwarder.as_mut() {
                    Some(f) => ("forwarder", f.remove_table(vip).await.map(|_| true)),
                    None => ("forwarder", Ok(false)),
                },
                Action::Handoff { vip, on } => match self.forwarder.as_mut() {
                    Some(f) => ("forwarder", f.set_handoff(vip, *on).await.map(|_| true)),
                    None => ("forwarder", Ok(false)),
                },
                Action::Route { vip, state } => match self.announcer.as_mut() {
                    Some(a) => ("announcer", a.set_route(vip, *state).await.map(|_| true)),
                    None => ("announcer", Ok(false)),
                },
            };
            match result {
                Ok(true) => {
                    tracing::info!(?action, "applied");
                    self.applied.record(action);
                }
                Ok(false) => {} // no driver for it yet: nothing is applied
                Err(e) => {
                    self.metrics
                        .effect_errors
                        .get_or_create(&ComponentLabels {
                            component: component.into(),
                        })
                        .inc();
                    errors.push(e.to_string());
                }
            }
        }
        errors
    }
}
