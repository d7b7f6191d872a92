//! Carrying out a [`Verdict`]: copy the message to its handlers' retry topics and to its
//! dead-letter topic as the verdict says, then tell the caller whether its offset may be committed.
//! The consumer groups and the in-process test bus (`herald::testing`) both settle through here.

use tokio_util::sync::CancellationToken;

use super::dead_letter::{self, Lettered};
use super::dispatch::{DeadLetterCause, FailureKind, Verdict};
use super::forward::Forwarded;
use super::{retry_topic, Shared};
use crate::wire::received::Received;

/// What becomes of a message once its verdict was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Its offset may be committed: go on.
    Commit,
    /// Handling stopped (revocation, shutdown): drop the rest, the message is delivered again.
    Stop,
    /// The group must stop: the message can go nowhere (its dead-letter topic refuses it for good).
    Fail(String),
}

/// Carries out `verdict` on `message`, consumed by `group`. Returns what to do with its offset and
/// the verdict as it was carried out: a deferral whose retry topic refused the copy for good became
/// part of the dead letter (`FailureKind::RetryUndeliverable`), so what a caller counts or reports
/// is where the message went, not where it was meant to go.
pub(crate) async fn carry_out(
    message: &Received,
    verdict: Verdict,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> (Step, Verdict) {
    match verdict {
        Verdict::Handled | Verdict::Skipped => (Step::Commit, verdict),
        Verdict::Retry {
            deferrals,
            previous,
            dead_letter,
        } => {
            let mut copied = Vec::with_capacity(deferrals.len());
            // The handlers that failed for good first, then those no retry topic takes: one
            // letter names them all (the group's copy, replayed, runs every handler again).
            let mut failures: Vec<DeadLetterCause> = dead_letter.into_iter().collect();
            for deferral in deferrals {
                let previous = previous.as_ref();
                match retry_topic::forward(message, &deferral, previous, group, shared, cancel)
                    .await
                {
                    Forwarded::Landed(..) => copied.push(deferral),
                    Forwarded::Cancelled => return (Step::Stop, Verdict::Stopped),
                    // No retry topic takes it: it goes where a failure that cannot be retried goes.
                    Forwarded::Refused(refusal) => failures.push(DeadLetterCause {
                        kind: FailureKind::RetryUndeliverable,
                        handlers: deferral.handler.to_owned(),
                        attempts: deferral.attempts,
                        reason: format!(
                            "{}; the handler's last error: {}",
                            refusal.reason, deferral.error
                        ),
                        origin: previous.map(|p| p.origin.clone()),
                    }),
                }
            }
            let dead_letter = DeadLetterCause::merged(failures);
            let step = match &dead_letter {
                Some(failure) => letter(message, failure, group, shared, cancel).await,
                None => Step::Commit,
            };
            let carried = match (copied.is_empty(), dead_letter) {
                (true, Some(failure)) => Verdict::DeadLetter(failure),
                (_, dead_letter) => Verdict::Retry {
                    deferrals: copied,
                    previous,
                    dead_letter,
                },
            };
            (step, carried)
        }
        Verdict::DeadLetter(failure) => {
            let step = letter(message, &failure, group, shared, cancel).await;
            (step, Verdict::DeadLetter(failure))
        }
        Verdict::Stopped => (Step::Stop, Verdict::Stopped),
    }
}

async fn letter(
    message: &Received,
    failure: &DeadLetterCause,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Step {
    match dead_letter::dead_letter(message, failure, group, shared, cancel).await {
        Lettered::Written => Step::Commit,
        Lettered::Cancelled => Step::Stop,
        Lettered::Refused(reason) => Step::Fail(reason),
    }
}
