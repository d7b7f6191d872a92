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

/// Carries out `verdict` on `message`, consumed by `group`.
pub(crate) async fn carry_out(
    message: &Received,
    verdict: Verdict,
    group: &str,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Step {
    match verdict {
        Verdict::Handled | Verdict::Skipped => Step::Commit,
        Verdict::Retry {
            deferrals,
            previous,
            dead_letter,
        } => {
            for deferral in &deferrals {
                let previous = previous.as_ref();
                let copied =
                    retry_topic::forward(message, deferral, previous, group, shared, cancel).await;
                match copied {
                    Forwarded::Landed(..) => {}
                    Forwarded::Cancelled => return Step::Stop,
                    // No retry topic takes it: it goes where a failure that cannot be retried goes.
                    Forwarded::Refused(refusal) => {
                        let failure = DeadLetterCause {
                            kind: FailureKind::RetryUndeliverable,
                            handlers: deferral.handler.to_owned(),
                            attempts: deferral.attempts,
                            reason: format!(
                                "{}; the handler's last error: {}",
                                refusal.reason, deferral.error
                            ),
                            origin: previous.map(|p| p.origin.clone()),
                        };
                        return letter(message, &failure, group, shared, cancel).await;
                    }
                }
            }
            match dead_letter {
                Some(failure) => letter(message, &failure, group, shared, cancel).await,
                None => Step::Commit,
            }
        }
        Verdict::DeadLetter(failure) => letter(message, &failure, group, shared, cancel).await,
        Verdict::Stopped => Step::Stop,
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
