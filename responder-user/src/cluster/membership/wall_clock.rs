//! A membership Lease judged once, by its timestamps against this machine's
//! clock, as `responder status` must: the agents judge a Lease by when they
//! saw it change (see `tracker`), which needs watching it for a while.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;

use super::advert::{declared_duration_of, reach_of, restart_grace_of, role_of};
use super::tracker::Member;

/// How far this machine's clock may be behind the holder's and a live
/// Lease still count as live: a node whose Lease ran out less than this
/// ago still shows as live.
pub(crate) const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// The member `lease`'s holder is at `now`, or why it is none. A Lease
/// without the duration annotation (an agent that predates it) lasts
/// `default_duration`; a member (re)joined less than `hold_down` ago is not
/// settled.
pub(crate) fn member_at(
    lease: &Lease,
    now: Timestamp,
    default_duration: Duration,
    hold_down: Duration,
) -> Result<Member, String> {
    let spec = lease.spec.as_ref();
    if spec
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or_default()
        .is_empty()
    {
        return Err("its agent released its Lease (it left)".to_owned());
    }
    let Some(renewed) = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0) else {
        return Err("its Lease was never renewed".to_owned());
    };
    let lasts = declared_duration_of(lease).unwrap_or(default_duration);
    let lasts = restart_grace_of(lease).map_or(lasts, |grace| grace.max(lasts));
    let age = Duration::try_from(now.duration_since(renewed)).unwrap_or_default();
    if age > lasts + CLOCK_SLACK {
        return Err(format!(
            "no live agent: its Lease was last renewed {}s ago and lasts {}ms",
            age.as_secs(),
            lasts.as_millis()
        ));
    }
    let session = spec
        .and_then(|s| s.acquire_time.as_ref())
        .and_then(|acquired| Duration::try_from(renewed.duration_since(acquired.0)).ok());
    Ok(Member {
        reach: reach_of(lease),
        settled: session.is_none_or(|session| session >= hold_down),
        role: role_of(lease),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::super::advert::tests::with_duration_ms;
    use super::super::tests::lease;
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("timestamp")
    }

    #[test]
    fn a_lease_is_live_for_its_duration_and_the_clock_slack() {
        let renewed = with_duration_ms(lease("a", 100), "1000");
        assert!(member_at(&renewed, at(101), SECOND, SECOND).is_ok());
        assert!(
            member_at(&renewed, at(103), SECOND, SECOND).is_ok(),
            "slack"
        );
        let stale = member_at(&renewed, at(110), SECOND, SECOND).expect_err("stale");
        assert!(
            stale.contains("last renewed 10s ago and lasts 1000ms"),
            "{stale}"
        );
    }

    #[test]
    fn a_released_or_rejoining_lease_says_so() {
        let mut released = lease("a", 100);
        released.spec.as_mut().expect("spec").holder_identity = None;
        assert!(member_at(&released, at(100), SECOND, SECOND)
            .expect_err("released")
            .contains("left"));
        let mut rejoined = lease("a", 100);
        rejoined.spec.as_mut().expect("spec").acquire_time = Some(MicroTime(at(99)));
        let member = member_at(&rejoined, at(100), SECOND, 10 * SECOND).expect("live");
        assert!(!member.settled, "rejoined 1 s ago, held down for 10 s");
        assert!(
            member_at(&lease("a", 100), at(100), SECOND, 10 * SECOND)
                .expect("live")
                .settled
        );
    }
}
