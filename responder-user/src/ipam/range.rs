//! One `addresses` entry of a pool — a CIDR, a `first-last` range or a bare address —
//! as an inclusive interval of integers, so a /64 costs the same as a /32 and nothing
//! ever enumerates addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use super::error::RangeError;

/// An IP family, spelled as Kubernetes spells it in `spec.ipFamilies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

impl FromStr for IpFamily {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "IPv4" => Ok(IpFamily::V4),
            "IPv6" => Ok(IpFamily::V6),
            other => Err(format!(
                "unknown IP family {other:?} (expected IPv4 or IPv6)"
            )),
        }
    }
}

/// Old consumer routers drop traffic to IPv4 addresses ending in .0 or .255 (smurf
/// protection done badly); MetalLB's `avoidBuggyIPs` skips them.
pub fn is_buggy(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

pub(crate) fn to_bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Callers keep `bits` within the family's width (they only step inside a range).
pub(crate) fn from_bits(family: IpFamily, bits: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The next address of the same family, `None` after 255.255.255.255 or ffff:…:ffff.
pub(crate) fn successor(address: IpAddr) -> Option<IpAddr> {
    match address {
        IpAddr::V4(v4) => u32::from(v4).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v6) => u128::from(v6).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

pub(crate) fn predecessor(address: IpAddr) -> Option<IpAddr> {
    match address {
        IpAddr::V4(v4) => u32::from(v4).checked_sub(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v6) => u128::from(v6).checked_sub(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// An inclusive interval of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    first: IpAddr,
    last: IpAddr,
}

impl AddressRange {
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, RangeError> {
        let entry = || format!("{first}-{last}");
        if IpFamily::of(first) != IpFamily::of(last) {
            return Err(RangeError::MixedFamilies { entry: entry() });
        }
        if to_bits(first) > to_bits(last) {
            return Err(RangeError::Reversed {
                entry: entry(),
                first,
                last,
            });
        }
        Ok(AddressRange { first, last })
    }

    /// Parses one `spec.addresses` entry: `192.0.2.0/24`, `192.0.2.10-192.0.2.20`
    /// (spaces around `-` allowed), or a single address. A CIDR with host bits set is
    /// taken as its network, as MetalLB (Go's `net.ParseCIDR`) does.
    pub fn parse(entry: &str) -> Result<Self, RangeError> {
        let text = entry.trim();
        if text.is_empty() {
            return Err(RangeError::Empty);
        }
        if let Some((first, last)) = text.split_once('-') {
            let address = |part: &str| {
                part.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| RangeError::InvalidAddress {
                        entry: text.to_owned(),
                        part: part.trim().to_owned(),
                    })
            };
            let (first, last) = (address(first)?, address(last)?);
            return AddressRange::new(first, last).map_err(|e| e.for_entry(text));
        }
        if text.contains('/') {
            let net = text
                .parse::<IpNet>()
                .map_err(|e| RangeError::InvalidCidr {
                    entry: text.to_owned(),
                    reason: e.to_string(),
                })?
                .trunc();
            return Ok(AddressRange {
                first: net.network(),
                last: net.broadcast(),
            });
        }
        let address = text
            .parse::<IpAddr>()
            .map_err(|_| RangeError::InvalidAddress {
                entry: text.to_owned(),
                part: text.to_owned(),
            })?;
        Ok(AddressRange {
            first: address,
            last: address,
        })
    }

    pub fn first(&self) -> IpAddr {
        self.first
    }

    pub fn last(&self) -> IpAddr {
        self.last
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.first)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        IpFamily::of(address) == self.family()
            && (to_bits(self.first)..=to_bits(self.last)).contains(&to_bits(address))
    }

    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family() == other.family()
            && to_bits(self.first) <= to_bits(other.last)
            && to_bits(other.first) <= to_bits(self.last)
    }

    /// Number of addresses; the whole IPv6 space (2^128) saturates at `u128::MAX`.
    pub fn size(&self) -> u128 {
        (to_bits(self.last) - to_bits(self.first)).saturating_add(1)
    }

    /// Number of .0/.255 addresses inside, in constant time.
    pub fn buggy_count(&self) -> u128 {
        if self.family() == IpFamily::V6 {
            return 0;
        }
        // Buggy addresses in 0..=n: n/256+1 ending in .0, (n+1)/256 ending in .255.
        let up_to = |n: u128| n / 256 + 1 + (n + 1) / 256;
        let (first, last) = (to_bits(self.first), to_bits(self.last));
        up_to(last) - first.checked_sub(1).map_or(0, up_to)
    }

    /// Addresses a pool may hand out from this range.
    pub fn usable_count(&self, avoid_buggy: bool) -> u128 {
        if avoid_buggy {
            self.size() - self.buggy_count()
        } else {
            self.size()
        }
    }

    /// The lowest address at or after `from` that the pool may hand out, if still in
    /// the range. `from` must be of the range's family.
    pub(crate) fn first_allowed_from(&self, from: IpAddr, avoid_buggy: bool) -> Option<IpAddr> {
        let mut bits = to_bits(from).max(to_bits(self.first));
        if avoid_buggy && self.family() == IpFamily::V4 {
            // IPv4 bits live in a u128, so stepping past .255.255.255.255 cannot overflow.
            match bits & 0xff {
                0 => bits += 1,
                255 => bits += 2,
                _ => {}
            }
        }
        (bits <= to_bits(self.last)).then(|| from_bits(self.family(), bits))
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(text: &str) -> AddressRange {
        AddressRange::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn parses_ipv4_cidr() {
        let r = range("192.0.2.0/24");
        assert_eq!((r.first(), r.last()), (ip("192.0.2.0"), ip("192.0.2.255")));
        assert_eq!(r.size(), 256);
        assert_eq!(r.family(), IpFamily::V4);
    }

    #[test]
    fn cidr_with_host_bits_is_its_network() {
        let r = range("192.0.2.77/28");
        assert_eq!((r.first(), r.last()), (ip("192.0.2.64"), ip("192.0.2.79")));
    }

    #[test]
    fn parses_ipv6_cidr_and_a_whole_64() {
        let r = range("2001:db8::/64");
        assert_eq!(r.first(), ip("2001:db8::"));
        assert_eq!(r.last(), ip("2001:db8::ffff:ffff:ffff:ffff"));
        assert_eq!(r.size(), 1u128 << 64);
        assert_eq!(r.family(), IpFamily::V6);
        assert_eq!(range("2001:db8:1::/48").size(), 1u128 << 80);
    }

    #[test]
    fn whole_ipv6_space_saturates() {
        assert_eq!(range("::/0").size(), u128::MAX);
        assert_eq!(range("0.0.0.0/0").size(), 1u128 << 32);
    }

    #[test]
    fn parses_ranges_with_and_without_spaces() {
        let r = range("192.0.2.10-192.0.2.20");
        assert_eq!((r.first(), r.last()), (ip("192.0.2.10"), ip("192.0.2.20")));
        assert_eq!(r.size(), 11);
        assert_eq!(range(" 192.0.2.10 - 192.0.2.20 "), r);
        let v6 = range("2001:db8::10-2001:db8::1:0");
        assert_eq!(v6.size(), 0x1_0000 - 0x10 + 1);
    }

    #[test]
    fn single_address_forms() {
        for text in ["192.0.2.7/32", "192.0.2.7-192.0.2.7", "192.0.2.7"] {
            let r = range(text);
            assert_eq!(
                (r.first(), r.last(), r.size()),
                (ip("192.0.2.7"), ip("192.0.2.7"), 1)
            );
        }
        for text in ["2001:db8::7/128", "2001:db8::7"] {
            assert_eq!(range(text).size(), 1);
        }
    }

    #[test]
    fn rejects_bad_entries() {
        type Expect = fn(&RangeError) -> bool;
        let cases: [(&str, Expect); 11] = [
            ("", |e| matches!(e, RangeError::Empty)),
            ("   ", |e| matches!(e, RangeError::Empty)),
            ("192.0.2.0/33", |e| {
                matches!(e, RangeError::InvalidCidr { .. })
            }),
            ("2001:db8::/129", |e| {
                matches!(e, RangeError::InvalidCidr { .. })
            }),
            ("192.0.2/24", |e| {
                matches!(e, RangeError::InvalidCidr { .. })
            }),
            ("banana", |e| matches!(e, RangeError::InvalidAddress { .. })),
            ("192.0.2.300", |e| {
                matches!(e, RangeError::InvalidAddress { .. })
            }),
            ("192.0.2.1-", |e| {
                matches!(e, RangeError::InvalidAddress { .. })
            }),
            ("192.0.2.1-192.0.2.9/24", |e| {
                matches!(e, RangeError::InvalidAddress { .. })
            }),
            ("192.0.2.20-192.0.2.10", |e| {
                matches!(e, RangeError::Reversed { .. })
            }),
            ("192.0.2.1-2001:db8::1", |e| {
                matches!(e, RangeError::MixedFamilies { .. })
            }),
        ];
        for (text, expected) in cases {
            let err = AddressRange::parse(text).expect_err(text);
            assert!(expected(&err), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn errors_name_the_entry() {
        let err = AddressRange::parse("192.0.2.20-192.0.2.10").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"192.0.2.20-192.0.2.10\": start 192.0.2.20 is after end 192.0.2.10"
        );
        let err = AddressRange::parse("192.0.2.1 - 2001:db8::1").unwrap_err();
        assert!(err.to_string().contains("192.0.2.1 - 2001:db8::1"), "{err}");
    }

    #[test]
    fn contains_and_overlaps_respect_family() {
        let v4 = range("0.0.0.0/0");
        assert!(v4.contains(ip("192.0.2.1")));
        assert!(
            !v4.contains(ip("::1")),
            "IPv4 ranges never hold IPv6 addresses"
        );
        assert!(!v4.overlaps(&range("::/96")));
        assert!(range("192.0.2.0/24").overlaps(&range("192.0.2.255-192.0.3.5")));
        assert!(!range("192.0.2.0/25").overlaps(&range("192.0.2.128/25")));
    }

    #[test]
    fn counts_buggy_addresses_exactly() {
        assert_eq!(range("192.0.2.0/24").buggy_count(), 2);
        assert_eq!(range("192.0.2.0/23").buggy_count(), 4);
        assert_eq!(range("192.0.2.1-192.0.2.254").buggy_count(), 0);
        assert_eq!(range("192.0.2.255-192.0.3.0").buggy_count(), 2);
        assert_eq!(range("10.0.0.0/8").buggy_count(), 2 << 16);
        assert_eq!(range("0.0.0.0/0").buggy_count(), 2 << 24);
        assert_eq!(range("2001:db8::/120").buggy_count(), 0);
        assert_eq!(range("192.0.2.0/24").usable_count(true), 254);
    }

    #[test]
    fn first_allowed_skips_buggy_only_when_asked() {
        let r = range("192.0.2.0/23");
        assert_eq!(
            r.first_allowed_from(ip("192.0.2.0"), false),
            Some(ip("192.0.2.0"))
        );
        assert_eq!(
            r.first_allowed_from(ip("192.0.2.0"), true),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            r.first_allowed_from(ip("192.0.2.255"), true),
            Some(ip("192.0.3.1"))
        );
        assert_eq!(r.first_allowed_from(ip("192.0.3.255"), true), None);
        assert_eq!(
            r.first_allowed_from(ip("192.0.3.255"), false),
            Some(ip("192.0.3.255"))
        );
        let top = range("255.255.255.255");
        assert_eq!(top.first_allowed_from(top.first(), true), None);
        let v6 = range("2001:db8::/126");
        assert_eq!(
            v6.first_allowed_from(ip("2001:db8::"), true),
            Some(ip("2001:db8::"))
        );
    }

    #[test]
    fn stepping_stays_in_family() {
        assert_eq!(successor(ip("255.255.255.255")), None);
        assert_eq!(successor(ip("192.0.2.255")), Some(ip("192.0.3.0")));
        assert_eq!(predecessor(ip("0.0.0.0")), None);
        assert_eq!(
            successor(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            None
        );
        assert_eq!(predecessor(ip("2001:db8::1:0")), Some(ip("2001:db8::ffff")));
        assert!(is_buggy(ip("192.0.2.0")) && is_buggy(ip("192.0.2.255")));
        assert!(!is_buggy(ip("192.0.2.1")) && !is_buggy(ip("2001:db8::ff")));
    }

    #[test]
    fn family_names_match_kubernetes() {
        assert_eq!("IPv4".parse::<IpFamily>(), Ok(IpFamily::V4));
        assert_eq!("IPv6".parse::<IpFamily>(), Ok(IpFamily::V6));
        assert!("ipv6".parse::<IpFamily>().is_err());
        assert_eq!(IpFamily::V6.to_string(), "IPv6");
    }
}
