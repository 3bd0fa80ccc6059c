//! One `addresses` entry of a pool — a CIDR, a `first-last` range or a bare address —
//! as an inclusive interval of integers, so a /64 costs the same as a /32 and nothing
//! ever enumerates addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::family::IpFamily;

/// One `spec.addresses` entry that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("empty address entry")]
    Empty,
    #[error("{entry:?} is not a valid CIDR: {reason}")]
    InvalidCidr { entry: String, reason: String },
    #[error("{entry:?}: {part:?} is not an IP address")]
    InvalidAddress { entry: String, part: String },
    #[error("{entry:?}: start {first} is after end {last}")]
    Reversed {
        entry: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("{entry:?}: start and end are of different IP families")]
    MixedFamilies { entry: String },
}

impl RangeError {
    /// Names the entry as the user wrote it rather than as it was rebuilt.
    pub(crate) fn for_entry(self, text: &str) -> Self {
        let entry = text.to_owned();
        match self {
            RangeError::Reversed { first, last, .. } => RangeError::Reversed { entry, first, last },
            RangeError::MixedFamilies { .. } => RangeError::MixedFamilies { entry },
            other => other,
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

/// Why an IPv6 address is never a LoadBalancer address: it is an anycast address
/// its subnet reserves, answered by the link's routers (or home agents), so a node
/// answering for it too would take their traffic. Judged relative to the address's
/// /64, the interface identifier length of every unicast prefix outside `000::/3`
/// (RFC 4291 §2.5.1); a pool of another length is affected only where it holds
/// such an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReservedAnycast {
    /// Interface identifier zero (RFC 4291 §2.6.1): every router on the link
    /// answers for it.
    SubnetRouter { subnet: Ipv6Addr },
    /// One of the highest 128 interface identifiers (RFC 2526 §2): in EUI-64
    /// format `fdff:ffff:ffff:ff80`–`fdff:ffff:ffff:ffff` (all ones but the
    /// universal/local bit, then the 7-bit anycast ID).
    Subnet { subnet: Ipv6Addr, anycast_id: u8 },
}

/// Interface identifiers RFC 2526 §2 reserves in a /64 with EUI-64 identifiers.
const RFC2526_FIRST_IID: u64 = 0xfdff_ffff_ffff_ff80;
const RFC2526_LAST_IID: u64 = 0xfdff_ffff_ffff_ffff;
const RFC2526_IIDS: u128 = 128;
/// The prefixes whose interface identifiers are EUI-64 (RFC 2526 §2: format
/// prefixes 001 through 111, except multicast `ff00::/8`).
const EUI64_FIRST: u128 = 0x2000 << 112;
const EUI64_LAST: u128 = (0xff00 << 112) - 1;

/// Whether `address` is a reserved anycast address (IPv4 has none).
pub fn reserved_anycast(address: IpAddr) -> Option<ReservedAnycast> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    let bits = u128::from(v6);
    let iid = bits as u64;
    let subnet = Ipv6Addr::from(bits & !u128::from(u64::MAX));
    if iid == 0 {
        return Some(ReservedAnycast::SubnetRouter { subnet });
    }
    let eui64 = (EUI64_FIRST..=EUI64_LAST).contains(&bits);
    (eui64 && (RFC2526_FIRST_IID..=RFC2526_LAST_IID).contains(&iid)).then(|| {
        ReservedAnycast::Subnet {
            subnet,
            anycast_id: (iid - RFC2526_FIRST_IID) as u8,
        }
    })
}

impl fmt::Display for ReservedAnycast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReservedAnycast::SubnetRouter { subnet } => write!(
                f,
                "the Subnet-Router anycast address of {subnet}/64 (RFC 4291 §2.6.1), which \
                 every router on that link answers for"
            ),
            ReservedAnycast::Subnet { subnet, anycast_id } => {
                write!(
                    f,
                    "reserved subnet anycast address {anycast_id} of {subnet}/64 (RFC 2526: the \
                     highest 128 interface identifiers of a subnet are anycast addresses"
                )?;
                if anycast_id == 126 {
                    f.write_str("; 126 is the Mobile IPv6 Home-Agents anycast address")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Reserved anycast addresses in `first..=last` (IPv6 bits), in constant time.
fn reserved_in(first: u128, last: u128) -> u128 {
    // Interface identifier zero: one per /64 started in 0..=n.
    let zero_up_to = |n: u128| (n >> 64) + 1;
    let zero = zero_up_to(last) - first.checked_sub(1).map_or(0, zero_up_to);
    // RFC 2526 identifiers, only where identifiers are EUI-64.
    let (first, last) = (first.max(EUI64_FIRST), last.min(EUI64_LAST));
    let subnet_anycast = if first > last {
        0
    } else {
        let up_to = |n: u128| {
            let iid = n as u64;
            let partial = match iid.checked_sub(RFC2526_FIRST_IID) {
                Some(above) => (u128::from(above) + 1).min(RFC2526_IIDS),
                None => 0,
            };
            (n >> 64) * RFC2526_IIDS + partial
        };
        // first ≥ EUI64_FIRST > 0.
        up_to(last) - up_to(first - 1)
    };
    zero + subnet_anycast
}

/// Whether a pool never hands out `address`: a reserved anycast address, or .0/.255
/// when it avoids those.
pub(crate) fn is_skipped(address: IpAddr, avoid_buggy: bool) -> bool {
    (avoid_buggy && is_buggy(address)) || reserved_anycast(address).is_some()
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

    /// Number of reserved anycast addresses inside (see [`reserved_anycast`]), in
    /// constant time; 0 for IPv4.
    pub fn reserved_count(&self) -> u128 {
        match self.family() {
            IpFamily::V4 => 0,
            IpFamily::V6 => reserved_in(to_bits(self.first), to_bits(self.last)),
        }
    }

    /// Addresses a pool may hand out from this range: never the reserved anycast
    /// addresses, nor .0/.255 when the pool avoids them.
    pub fn usable_count(&self, avoid_buggy: bool) -> u128 {
        let buggy = if avoid_buggy { self.buggy_count() } else { 0 };
        // Only `::/0`, whose size saturates, could count one address too few.
        self.size()
            .saturating_sub(buggy)
            .saturating_sub(self.reserved_count())
    }

    /// The lowest address at or after `from` that the pool may hand out, if still in
    /// the range. `from` must be of the range's family.
    pub(crate) fn first_allowed_from(&self, from: IpAddr, avoid_buggy: bool) -> Option<IpAddr> {
        let mut bits = to_bits(from).max(to_bits(self.first));
        match self.family() {
            IpFamily::V4 if avoid_buggy => {
                // IPv4 bits live in a u128, so stepping past .255.255.255.255 cannot
                // overflow.
                match bits & 0xff {
                    0 => bits += 1,
                    255 => bits += 2,
                    _ => {}
                }
            }
            IpFamily::V4 => {}
            IpFamily::V6 => match reserved_anycast(from_bits(IpFamily::V6, bits)) {
                None => {}
                // Interface identifier 1 is never reserved.
                Some(ReservedAnycast::SubnetRouter { .. }) => bits += 1,
                // The identifiers above the reserved ones have the universal/local
                // bit set, and are not reserved.
                Some(ReservedAnycast::Subnet { .. }) => {
                    bits = (bits & !u128::from(u64::MAX)) | u128::from(RFC2526_LAST_IID + 1);
                }
            },
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
        let v6 = range("2001:db8::4/126");
        assert_eq!(
            v6.first_allowed_from(ip("2001:db8::4"), true),
            Some(ip("2001:db8::4")),
            "avoidBuggyIPs is for IPv4"
        );
    }

    #[test]
    fn reserved_anycast_addresses_follow_rfc_4291_and_rfc_2526() {
        let reserved = |text: &str| reserved_anycast(ip(text));
        let subnet = |text: &str| text.parse::<Ipv6Addr>().unwrap();
        assert_eq!(
            reserved("2001:db8:e100::"),
            Some(ReservedAnycast::SubnetRouter {
                subnet: subnet("2001:db8:e100::")
            })
        );
        assert_eq!(
            reserved("2001:db8:e100::fdff:ffff:ffff:ff80"),
            Some(ReservedAnycast::Subnet {
                subnet: subnet("2001:db8:e100::"),
                anycast_id: 0
            })
        );
        assert_eq!(
            reserved("2001:db8:e100:7:fdff:ffff:ffff:ffff"),
            Some(ReservedAnycast::Subnet {
                subnet: subnet("2001:db8:e100:7::"),
                anycast_id: 127
            })
        );
        // Link-local identifiers are EUI-64 too.
        assert!(reserved("fe80::fdff:ffff:ffff:fffe").is_some());
        for usable in [
            "2001:db8:e100::1",
            "2001:db8:e100::fdff:ffff:ffff:ff7f",
            // The universal/local bit set: above the reserved identifiers.
            "2001:db8:e100::fe00:0:0:0",
            "2001:db8:e100::ffff:ffff:ffff:ffff",
            // 000::/3 and multicast have no EUI-64 identifiers (RFC 2526 §2).
            "::fdff:ffff:ffff:ffff",
            "1fff:ffff:ffff:ffff:fdff:ffff:ffff:ffff",
            "ff02::fdff:ffff:ffff:ffff",
            "::ffff:192.0.2.0",
            "192.0.2.0",
            "0.0.0.0",
        ] {
            assert_eq!(reserved(usable), None, "{usable}");
        }
        assert_eq!(
            reserved("2001:db8::").unwrap().to_string(),
            "the Subnet-Router anycast address of 2001:db8::/64 (RFC 4291 §2.6.1), which \
             every router on that link answers for"
        );
        assert_eq!(
            reserved("2001:db8::fdff:ffff:ffff:ff85")
                .unwrap()
                .to_string(),
            "reserved subnet anycast address 5 of 2001:db8::/64 (RFC 2526: the highest 128 \
             interface identifiers of a subnet are anycast addresses)"
        );
    }

    /// Every address of `r`, one by one: the reference for the constant-time counts.
    fn walk(r: &AddressRange) -> impl Iterator<Item = IpAddr> + '_ {
        (to_bits(r.first())..=to_bits(r.last())).map(|bits| from_bits(r.family(), bits))
    }

    #[test]
    fn counts_reserved_anycast_addresses_exactly() {
        // Small ranges around each edge, against a walk.
        for text in [
            "2001:db8::/120",
            "2001:db8::10-2001:db8::1ff",
            "2001:db8:0:0:ffff:ffff:ffff:ff00-2001:db8:0:1::ff",
            "2001:db8::fdff:ffff:ffff:ff00-2001:db8::fe00:0:0:ff",
            "2001:db8::fdff:ffff:ffff:ff90-2001:db8::fdff:ffff:ffff:ff9f",
            "1fff:ffff:ffff:ffff:fdff:ffff:ffff:ff00-1fff:ffff:ffff:ffff:fe00::ff",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ff00-2000::ff",
            "feff:ffff:ffff:ffff:fdff:ffff:ffff:ff00-feff:ffff:ffff:ffff:fdff:ffff:ffff:ffff",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ff00-ff00::ff",
            "ff00::fdff:ffff:ffff:ff00-ff00::fe00:0:0:0",
            "::/120",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
            "2001:db8::5",
            "2001:db8::",
        ] {
            let r = range(text);
            let walked = walk(&r).filter(|a| reserved_anycast(*a).is_some()).count() as u128;
            assert_eq!(r.reserved_count(), walked, "{text}");
            assert_eq!(r.usable_count(false), r.size() - walked, "{text}");
        }
        // Whole prefixes: one Subnet-Router and 128 RFC 2526 addresses per /64.
        assert_eq!(range("2001:db8:e100::/64").reserved_count(), 129);
        assert_eq!(
            range("2001:db8:e100::/64").usable_count(false),
            (1u128 << 64) - 1 - 128
        );
        assert_eq!(range("2001:db8::/48").reserved_count(), 129 << 16);
        assert_eq!(range("2001:db8::/72").reserved_count(), 1);
        assert_eq!(range("2001:db8::8000:0:0:0/65").reserved_count(), 128);
        assert_eq!(range("::/64").reserved_count(), 1, "000::/3: no RFC 2526");
        let eui64_subnets = (0xff00u128 - 0x2000) << 48;
        assert_eq!(
            range("::/0").reserved_count(),
            (1u128 << 64) + 128 * eui64_subnets
        );
        assert_eq!(range("192.0.2.0/24").reserved_count(), 0);
        assert_eq!(range("192.0.2.0/24").usable_count(false), 256);
    }

    #[test]
    fn first_allowed_skips_reserved_anycast_addresses_always() {
        for text in [
            "2001:db8:0:0:ffff:ffff:ffff:ff00-2001:db8:0:1::ff",
            "2001:db8::fdff:ffff:ffff:ff00-2001:db8::fe00:0:0:ff",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ff00-2000::ff",
            "2001:db8::fdff:ffff:ffff:ff80-2001:db8::fdff:ffff:ffff:ffff",
            "2001:db8::/120",
        ] {
            let r = range(text);
            let stepped: Vec<IpAddr> =
                std::iter::successors(r.first_allowed_from(r.first(), false), |a| {
                    successor(*a).and_then(|next| r.first_allowed_from(next, false))
                })
                .collect();
            let walked: Vec<IpAddr> = walk(&r)
                .filter(|a| reserved_anycast(*a).is_none())
                .collect();
            assert_eq!(stepped, walked, "{text}");
            assert_eq!(stepped.len() as u128, r.usable_count(true), "{text}");
        }
        let r = range("2001:db8:e100::/64");
        assert_eq!(
            r.first_allowed_from(r.first(), false),
            Some(ip("2001:db8:e100::1"))
        );
        assert_eq!(
            r.first_allowed_from(ip("2001:db8:e100::fdff:ffff:ffff:ff80"), false),
            Some(ip("2001:db8:e100::fe00:0:0:0"))
        );
        assert_eq!(
            range("2001:db8::fdff:ffff:ffff:ff80/121")
                .first_allowed_from(ip("2001:db8::fdff:ffff:ffff:ff80"), true),
            None,
            "a range of reserved addresses only has nothing"
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
