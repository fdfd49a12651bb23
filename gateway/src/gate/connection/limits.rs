//! Admission: the global and per-address caps on client connections, and the open-files budget
//! those caps must leave room in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Descriptors kept out of the client budget: listeners, the decision log, key fetches.
pub const FD_RESERVE: u64 = 256;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections`.
    Total,
    /// `max_connections_per_ip`.
    PerIp,
}

/// The caps, and what is open now.
#[derive(Debug)]
pub struct Limits {
    max: usize,
    per_ip: Option<usize>,
    open: AtomicUsize,
    by_address: Mutex<HashMap<Address, usize>>,
}

/// One admitted connection; dropping it frees its slots.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    address: Option<Address>,
}

/// What a per-address cap counts: an IPv4 address, or an IPv6 /64 (one subscriber's prefix:
/// counting single IPv6 addresses would let one client take any number of slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Address {
    V4(u32),
    V6Prefix(u64),
}

impl Address {
    fn of(ip: IpAddr) -> Address {
        match ip {
            IpAddr::V4(v4) => Address::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Address::V4(v4.into()),
                None => Address::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl Limits {
    /// At most `max` connections, and `per_ip` from one address.
    pub fn new(max: usize, per_ip: Option<usize>) -> Arc<Limits> {
        Arc::new(Limits { max, per_ip, open: AtomicUsize::new(0), by_address: Mutex::default() })
    }

    /// Admits a connection from `ip`, or says which cap is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .map_err(|_| Refused::Total)?;
        let Some(cap) = self.per_ip else {
            return Ok(Permit { limits: self.clone(), address: None });
        };
        let address = Address::of(ip);
        let mut by_address = self.by_address.lock().unwrap_or_else(PoisonError::into_inner);
        let n = by_address.entry(address).or_insert(0);
        if *n >= cap {
            drop(by_address);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerIp);
        }
        *n += 1;
        Ok(Permit { limits: self.clone(), address: Some(address) })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The cap in force (after the open-files budget).
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            let mut by_address = self.limits.by_address.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = by_address.get_mut(&address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_address.remove(&address);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the open-files limit leaves no room for client connections.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-files limit ({soft}) leaves no room for client connections beside the {FD_RESERVE} kept in reserve; raise it (ulimit -n, LimitNOFILE=)"
)]
pub struct NoDescriptors {
    /// The soft RLIMIT_NOFILE in force.
    pub soft: u64,
}

/// The connection cap the open-files limit allows: each client connection may need an upstream
/// connection beside it, and [`FD_RESERVE`] descriptors stay free for everything else, so key
/// fetches and upstream connections never starve. The soft limit is raised towards the hard limit
/// first; a `wanted` that still does not fit is lowered, with a warning.
pub fn fd_budget(wanted: usize) -> Result<usize, NoDescriptors> {
    let need = (wanted as u64).saturating_mul(2).saturating_add(FD_RESERVE);
    let soft = match rlimit::increase_nofile_limit(need) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the open-files limit; max_connections is not checked");
            return Ok(wanted);
        }
    };
    let fits = budget(wanted, soft).ok_or(NoDescriptors { soft })?;
    if fits < wanted {
        tracing::warn!(
            max_connections = wanted,
            allowed = fits,
            open_files_limit = soft,
            "max_connections lowered to fit the open-files limit (2 per connection, {FD_RESERVE} reserved)"
        );
    }
    Ok(fits)
}

/// The connections that fit in `soft` descriptors (`None`: not one).
fn budget(wanted: usize, soft: u64) -> Option<usize> {
    let fit = soft.saturating_sub(FD_RESERVE) / 2;
    let fit = usize::try_from(fit).unwrap_or(usize::MAX).min(wanted);
    (fit > 0).then_some(fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve_and_two_descriptors_per_connection() {
        assert_eq!(budget(10_000, 1_048_576), Some(10_000));
        assert_eq!(budget(10_000, 1024), Some(384));
        assert_eq!(budget(10, 300), Some(10));
        assert_eq!(budget(10, 257), None);
        assert_eq!(budget(10, 100), None);
    }

    #[test]
    fn caps_refuse_and_free_their_slots() {
        let limits = Limits::new(3, Some(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let same_prefix: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(mapped).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::PerIp, "IPv4-mapped is the same address");
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(same_prefix).unwrap_err(), Refused::Total);
        assert_eq!(limits.open(), 3);
        drop(first);
        assert_eq!(limits.open(), 2);
        let _fourth = limits.admit(same_prefix).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::Total);
        let unlimited = Limits::new(1, None);
        let _only = unlimited.admit(a).unwrap();
        assert_eq!(unlimited.admit(b).unwrap_err(), Refused::Total);
    }

    #[test]
    fn one_ipv6_prefix_is_one_address() {
        let limits = Limits::new(10, Some(1));
        let _one = limits.admit("2001:db8:0:1::1".parse().unwrap()).unwrap();
        assert_eq!(limits.admit("2001:db8:0:1::2".parse().unwrap()).unwrap_err(), Refused::PerIp);
        assert!(limits.admit("2001:db8:0:2::1".parse().unwrap()).is_ok());
    }
}
