//! Address arithmetic for subnets: CIDRs, gateways, allocation pools. Pure functions;
//! the store makes allocations unique.

use std::net::IpAddr;

/// A parsed CIDR, as 128-bit integers so IPv4 and IPv6 share the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub v6: bool,
    pub base: u128,
    pub prefix: u8,
}

pub fn parse_ip(s: &str) -> Option<(bool, u128)> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((false, u32::from(a) as u128)),
        IpAddr::V6(a) => Some((true, u128::from(a))),
    }
}

/// The modified EUI-64 address of `mac` in the /64 starting at `prefix` (RFC 4291,
/// appendix A): the MAC split by `ff:fe`, its universal/local bit flipped.
pub fn eui64(prefix: u128, mac: &str) -> Option<u128> {
    let b: Vec<u8> = mac.split(':').map(|x| u8::from_str_radix(x, 16)).collect::<Result<_, _>>().ok()?;
    if b.len() != 6 {
        return None;
    }
    let id = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
    Some((prefix & !((1u128 << 64) - 1)) | u64::from_be_bytes(id) as u128)
}

pub fn to_ip(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::/n`; host bits must be zero, as Neutron requires.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (c, n) = Self::parse_address(s)?;
        if n != c.base {
            return Err(format!("Invalid CIDR {s}: host bits are set; did you mean {c}?"));
        }
        Ok(c)
    }

    /// Parses a CIDR and clears its host bits (`10.0.0.1/24` is `10.0.0.0/24`), as
    /// Neutron takes a subnet pool's prefixes.
    pub fn parse_masked(s: &str) -> Result<Self, String> {
        Self::parse_address(s).map(|(c, _)| c)
    }

    /// The network a CIDR names (host bits cleared) and the address it was written with.
    fn parse_address(s: &str) -> Result<(Self, u128), String> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| format!("Invalid CIDR {s}: it needs a prefix length."))?;
        let (v6, n) = parse_ip(addr).ok_or_else(|| format!("Invalid CIDR {s}: {addr} is not an IP address."))?;
        let bits = if v6 { 128 } else { 32 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("Invalid CIDR {s}: bad prefix length."))?;
        let c = Cidr { v6, base: n, prefix };
        Ok((Cidr { base: n & c.mask(), ..c }, n))
    }

    fn bits(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    fn host_bits(&self) -> u32 {
        (self.bits() - self.prefix) as u32
    }

    fn mask(&self) -> u128 {
        let all = if self.v6 { u128::MAX } else { u32::MAX as u128 };
        match self.host_bits() {
            h if h >= 128 => 0,
            h => all & !((1u128 << h) - 1),
        }
    }

    pub fn first(&self) -> u128 {
        self.base
    }

    pub fn last(&self) -> u128 {
        match self.host_bits() {
            h if h >= 128 => u128::MAX,
            h => self.base | ((1u128 << h) - 1),
        }
    }

    pub fn contains(&self, v6: bool, n: u128) -> bool {
        v6 == self.v6 && n >= self.first() && n <= self.last()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.v6 == other.v6 && self.first() <= other.last() && other.first() <= self.last()
    }

    /// Whether this CIDR lies wholly inside `outer`.
    pub fn within(&self, outer: &Cidr) -> bool {
        self.v6 == outer.v6
            && outer.prefix <= self.prefix
            && self.first() >= outer.first()
            && self.last() <= outer.last()
    }

    /// The maximum prefix length of the family (32 or 128).
    pub fn max_prefix(&self) -> u8 {
        self.bits()
    }

    /// The lowest block of `prefix` inside one of `pools` (in their order) that
    /// overlaps none of `taken`: a subnet pool's next allocation.
    pub fn first_free(pools: &[Cidr], prefix: u8, taken: &[Cidr]) -> Option<Cidr> {
        for pool in pools.iter().filter(|p| p.prefix <= prefix && prefix <= p.bits()) {
            let size_bits = (pool.bits() - prefix) as u32;
            let step: u128 = if size_bits >= 128 { return None } else { 1u128 << size_bits };
            let mut start = pool.first();
            while start <= pool.last() {
                let candidate = Cidr { v6: pool.v6, base: start, prefix };
                if candidate.last() > pool.last() {
                    break;
                }
                match taken.iter().filter(|t| t.overlaps(&candidate)).map(|t| t.last()).max() {
                    None => return Some(candidate),
                    // Past the last block in the way, aligned to the block size.
                    Some(end) => match end.checked_add(1) {
                        Some(next) => start = next.div_ceil(step) * step,
                        None => break,
                    },
                }
            }
        }
        None
    }

    /// Neutron's default gateway: the first host address.
    pub fn default_gateway(&self) -> Option<u128> {
        (self.last() > self.first() + 1).then_some(self.first() + 1)
    }

    /// The usable host range: IPv4 leaves out the network and broadcast addresses.
    pub fn host_range(&self) -> Option<(u128, u128)> {
        let start = self.first() + 1;
        let end = if self.v6 { self.last() } else { self.last().saturating_sub(1) };
        (end >= start).then_some((start, end))
    }

    /// Neutron's default pools: the host range without the gateway.
    pub fn default_pools(&self, gateway: Option<u128>) -> Vec<(u128, u128)> {
        let Some((start, end)) = self.host_range() else { return vec![] };
        match gateway {
            Some(g) if g >= start && g <= end => {
                let mut v = Vec::new();
                if g > start {
                    v.push((start, g - 1));
                }
                if g < end {
                    v.push((g + 1, end));
                }
                v
            }
            _ => vec![(start, end)],
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", to_ip(self.v6, self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_compare() {
        let c = Cidr::parse("192.168.1.0/24").unwrap();
        assert_eq!(to_ip(false, c.last()).to_string(), "192.168.1.255");
        assert_eq!(to_ip(false, c.default_gateway().unwrap()).to_string(), "192.168.1.1");
        let pools = c.default_pools(c.default_gateway());
        assert_eq!(pools.len(), 1);
        assert_eq!(to_ip(false, pools[0].0).to_string(), "192.168.1.2");
        assert_eq!(to_ip(false, pools[0].1).to_string(), "192.168.1.254");
        assert!(Cidr::parse("192.168.1.1/24").unwrap_err().contains("192.168.1.0/24"));
        assert!(Cidr::parse("300.1.1.0/24").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(c.overlaps(&Cidr::parse("192.168.0.0/16").unwrap()));
        assert!(!c.overlaps(&Cidr::parse("192.168.2.0/24").unwrap()));
        let v6 = Cidr::parse("fd00::/64").unwrap();
        assert!(v6.contains(true, parse_ip("fd00::5").unwrap().1));
        assert!(!v6.overlaps(&c));
        let g = parse_ip("192.168.1.100").unwrap().1;
        assert_eq!(c.default_pools(Some(g)).len(), 2);
    }

    #[test]
    fn pools_hand_out_the_lowest_free_block() {
        let c = |s: &str| Cidr::parse(s).unwrap();
        let pools = [c("10.10.0.0/16"), c("10.20.0.0/16")];
        assert_eq!(Cidr::first_free(&pools, 24, &[]), Some(c("10.10.0.0/24")));
        let taken = [c("10.10.0.0/24"), c("10.10.1.0/25"), c("10.10.3.0/24")];
        assert_eq!(Cidr::first_free(&pools, 24, &taken), Some(c("10.10.2.0/24")));
        assert_eq!(Cidr::first_free(&pools, 16, &taken), Some(c("10.20.0.0/16")));
        assert_eq!(Cidr::first_free(&pools, 8, &[]), None, "larger than any prefix");
        assert_eq!(Cidr::first_free(&[c("10.0.0.0/30")], 30, &[c("10.0.0.0/30")]), None);
        assert_eq!(Cidr::first_free(&[c("2001:db8::/48")], 64, &[c("2001:db8::/64")]), Some(c("2001:db8:0:1::/64")));
        assert!(c("10.10.2.0/24").within(&c("10.10.0.0/16")) && !c("10.0.0.0/8").within(&c("10.10.0.0/16")));
        assert_eq!(Cidr::parse_masked("10.10.7.9/16"), Ok(c("10.10.0.0/16")));
        assert!(Cidr::parse("10.10.7.9/16").unwrap_err().contains("did you mean 10.10.0.0/16"));
    }

    #[test]
    fn eui64_follows_rfc4291() {
        let (_, prefix) = parse_ip("2001:db8:1:2::").unwrap();
        let n = eui64(prefix, "fa:16:3e:12:34:56").unwrap();
        assert_eq!(to_ip(true, n).to_string(), "2001:db8:1:2:f816:3eff:fe12:3456");
        assert_eq!(eui64(prefix, "nonsense"), None);
    }
}
