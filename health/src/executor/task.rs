//! The task executor: one tokio task per check while it is not on the
//! kept-connection loop.

use std::sync::Arc;

use super::{Ctx, now};
use crate::check::Check;
use crate::probe::Prober;

/// Runs `check` in a task of its own (unless it was stopped).
pub(crate) fn spawn(check: Box<Check>, ctx: Arc<Ctx>) {
    if check.stopped() {
        return;
    }
    let cell = check.cell().clone();
    cell.set_task(tokio::spawn(run(*check, ctx)).abort_handle());
}

/// Attempts on the check's schedule until its HTTP/1.1 connection is kept;
/// then the kept-connection loop takes it over.
async fn run(mut c: Check, ctx: Arc<Ctx>) {
    let mut prober = Prober::new(c.spec.reuse_connection, ctx.pool.clone());
    let mut adopt = c.spec.reuse_connection && ctx.kept.is_some();
    let cell = c.cell().clone();
    loop {
        let start = c.schedule.next_start(now());
        tokio::select! {
            _ = tokio::time::sleep_until(start.into()) => {}
            // Its target's process is gone or stopped.
            _ = cell.woken() => {
                c.reprobe(now());
                continue;
            }
        }
        c.schedule.started();
        let outcome = {
            let _permit = ctx.limit.acquire().await.expect("semaphore never closes");
            prober.probe(&c.key, &c.spec).await
        };
        if !ctx.sink.take(&mut c, outcome, now()) {
            return;
        }
        if adopt
            && let Some(kept) = &ctx.kept
            && let Some((socket, request)) = prober.take_plain()
        {
            match kept.adopt(Box::new(c), socket, request) {
                Ok(()) => return,
                // The loop is gone: go on here (on a new connection).
                Err(back) => {
                    c = *back;
                    adopt = false;
                }
            }
        }
    }
}
