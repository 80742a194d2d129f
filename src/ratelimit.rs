//! Attempts per client IP for signup, login and refreshToken (governor's GCRA).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

pub struct RateLimiter {
    inner: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// `per_minute` attempts a minute per IP, bursting up to that many; 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            inner: NonZeroU32::new(per_minute)
                .map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt from `ip`. `Err(seconds)` when over the limit: retry after that.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        let key = ip.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), bucket);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Drops the state of IPs that are back to a full allowance, so memory stays bounded.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// One bucket per IPv4 address, and per /64 for IPv6: a single IPv6 client
/// usually owns a whole /64 and could otherwise rotate addresses freely.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_quota_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(3);
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
        }
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limiter.check(Some("10.0.0.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(limiter.check(None).is_ok());
        }
    }

    #[test]
    fn ipv6_neighbours_share_a_bucket() {
        let limiter = RateLimiter::new(1);
        assert!(limiter.check(Some("2001:db8::1".parse().unwrap())).is_ok());
        assert!(limiter.check(Some("2001:db8::2".parse().unwrap())).is_err());
    }
}
