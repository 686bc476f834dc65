//! What the core's events mean to the client: a finished session, a client-wide error for
//! the sessions' reports, or something only worth a log line.

use push_proto::{Event, Route, SessionId, apns, engine, fcm};

use crate::error::Error;

/// What the driver does with one core event.
pub(crate) enum Meaning {
    /// Every device of the closed session has its feedback.
    SessionFinished(SessionId),
    /// A problem of the whole client: every open session's report names it.
    ClientError(Error),
    /// A binary gateway verdict arrived after its notification was presumed delivered.
    LateVerdict,
    /// Logged, nothing else.
    Logged,
}

/// The meaning of `event`.
pub(crate) fn meaning(event: Event) -> Meaning {
    let error = match event {
        Event::SessionFinished(id) => return Meaning::SessionFinished(id),
        Event::Apns(apns::Event::WindowOverflow { status, identifier }) => {
            log::warn!(
                "APNs answered {status} for notification {identifier} after its grace \
                 period; it was reported delivered (raise the grace period)"
            );
            return Meaning::LateVerdict;
        }
        Event::Apns(apns::Event::GaveUp { reason }) => Error::GatewayUnreachable { reason },
        Event::Gcm(engine::Event::ClientError { reason, .. }) => {
            Error::Unauthorized { detail: reason }
        }
        Event::Gcm(engine::Event::Unreachable { reason }) => Error::Unreachable {
            provider: Route::Gcm.name(),
            reason,
        },
        Event::ApnsHttp2(engine::Event::ClientError { status, reason }) => {
            Error::ApnsRefused { status, reason }
        }
        Event::Fcm(engine::Event::ClientError { status, reason }) => Error::FcmRefused {
            status,
            code: reason,
        },
        Event::ApnsHttp2(engine::Event::Unreachable { reason }) => Error::Unreachable {
            provider: Route::ApnsHttp2.name(),
            reason,
        },
        Event::Fcm(engine::Event::Unreachable { reason }) => Error::Unreachable {
            provider: Route::Fcm.name(),
            reason,
        },
        Event::Fcm(engine::Event::Credential(fcm::TokenEvent::RequestFailed {
            error,
            retry_at: None,
        })) => Error::FcmToken {
            reason: error.to_string(),
        },
        Event::WebPush(origin, engine::Event::ClientError { status, reason }) => {
            Error::WebPushRefused {
                origin: origin.to_string(),
                status,
                reason,
            }
        }
        Event::WebPush(origin, engine::Event::Unreachable { reason }) => Error::Unreachable {
            provider: Route::WebPush(0).name(),
            reason: format!("{origin}: {reason}"),
        },
        Event::WebPush(origin, engine::Event::Credential(event)) => {
            log::debug!("Web Push {origin}: {event:?}");
            return Meaning::Logged;
        }
        other => {
            log::warn!("{other:?}");
            return Meaning::Logged;
        }
    };
    Meaning::ClientError(error)
}

#[cfg(test)]
mod tests {
    use push_proto::apns::Status;
    use push_proto::{Payload, Push};

    use super::*;

    #[test]
    fn events_become_reports_errors_or_log_lines() {
        let id = Push::new().open_session(&Payload::new());
        assert!(matches!(
            meaning(Event::SessionFinished(id)),
            Meaning::SessionFinished(finished) if finished == id
        ));
        let gave_up = Event::Apns(apns::Event::GaveUp {
            reason: "refused".into(),
        });
        assert!(matches!(
            meaning(gave_up),
            Meaning::ClientError(Error::GatewayUnreachable { reason }) if reason == "refused"
        ));
        let unreachable = Event::Fcm(engine::Event::Unreachable {
            reason: "no streams".into(),
        });
        assert!(matches!(
            meaning(unreachable),
            Meaning::ClientError(Error::Unreachable {
                provider: "FCM",
                ..
            })
        ));
        let late = Event::Apns(apns::Event::WindowOverflow {
            status: Status::InvalidToken,
            identifier: 3,
        });
        assert!(matches!(meaning(late), Meaning::LateVerdict));
        let violation = Event::Apns(apns::Event::ProtocolViolation("garbage".into()));
        assert!(matches!(meaning(violation), Meaning::Logged));
    }
}
