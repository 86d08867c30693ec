//! Set keys and map data as the `nft` tool encodes them, so that an element added here
//! is the element `nft add element` adds (and `nft list` shows), and the other way round.
//!
//! | nft type      | bytes | encoding                                   |
//! |---------------|-------|--------------------------------------------|
//! | `ipv4_addr`   | 4     | network order                              |
//! | `ipv6_addr`   | 16    | network order                              |
//! | `ether_addr`  | 6     | as written                                 |
//! | `ifname`      | 16    | the name, NUL-padded to `IFNAMSIZ`         |
//! | `inet_service`| 2     | the port, network order                    |
//! | `inet_proto`  | 1     | the IP protocol number                     |
//!
//! A set of one type takes the component as it is (an `inet_service` key is 2 bytes). A
//! concatenation (`ifname . ether_addr`) is its components in order, each padded with
//! zeros to a multiple of 4 bytes ([`concat`]): `ifname . ether_addr` is 16 + 8 bytes,
//! `ipv4_addr . inet_service` 4 + 4. Map data follows the same rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// `IFNAMSIZ`: an interface name is at most 15 bytes and a NUL.
pub const IFNAMSIZ: usize = 16;

/// IANA protocol numbers for [`inet_proto`].
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// An `ipv4_addr`.
pub fn ipv4_addr(addr: Ipv4Addr) -> [u8; 4] {
    addr.octets()
}

/// An `ipv6_addr`.
pub fn ipv6_addr(addr: Ipv6Addr) -> [u8; 16] {
    addr.octets()
}

/// An `ipv4_addr` or `ipv6_addr`, whichever `addr` is.
pub fn ip_addr(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An `ether_addr`.
pub fn ether_addr(mac: [u8; 6]) -> [u8; 6] {
    mac
}

/// An `ifname`: the name NUL-padded to [`IFNAMSIZ`]. Names the kernel would refuse
/// (empty, longer than 15 bytes, with a NUL) are an [`Error::InvalidArgument`].
pub fn ifname(name: &str) -> Result<[u8; IFNAMSIZ]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "invalid interface name {name:?} for an nftables key"
        )));
    }
    let mut key = [0u8; IFNAMSIZ];
    key[..bytes.len()].copy_from_slice(bytes);
    Ok(key)
}

/// An `inet_service`: a port in network order.
pub fn inet_service(port: u16) -> [u8; 2] {
    port.to_be_bytes()
}

/// An `inet_proto`: an IP protocol number ([`PROTO_TCP`], [`PROTO_UDP`]...).
pub fn inet_proto(proto: u8) -> [u8; 1] {
    [proto]
}

/// A concatenation: each component in order, padded with zeros to a multiple of 4 bytes.
pub fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| padded_len(p.len())).sum());
    for part in parts {
        key.extend_from_slice(part);
        key.resize(padded_len(key.len()), 0);
    }
    key
}

/// Splits a concatenation into components of the given unpadded lengths (e.g. `[16, 6]`
/// for `ifname . ether_addr`); `None` when the key does not have that layout.
pub fn split<'a>(key: &'a [u8], lens: &[usize]) -> Option<Vec<&'a [u8]>> {
    let mut parts = Vec::with_capacity(lens.len());
    let mut rest = key;
    for &len in lens {
        let padded = rest.get(..padded_len(len))?;
        parts.push(&padded[..len]);
        rest = &rest[padded.len()..];
    }
    rest.is_empty().then_some(parts)
}

/// Reads an `ipv4_addr` component.
pub fn parse_ipv4_addr(bytes: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(bytes).ok().map(Ipv4Addr::from)
}

/// Reads an `ipv6_addr` component.
pub fn parse_ipv6_addr(bytes: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(bytes).ok().map(Ipv6Addr::from)
}

/// Reads an `ether_addr` component.
pub fn parse_ether_addr(bytes: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(bytes).ok()
}

/// Reads an `ifname` component: the bytes before the first NUL.
pub fn parse_ifname(bytes: &[u8]) -> Option<String> {
    if bytes.len() != IFNAMSIZ {
        return None;
    }
    let name = bytes.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8(name.to_vec()).ok()
}

/// Reads an `inet_service` component.
pub fn parse_inet_service(bytes: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(bytes).ok().map(u16::from_be_bytes)
}

fn padded_len(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_encode_as_nft_does() {
        assert_eq!(ipv4_addr("10.1.2.3".parse().unwrap()), [10, 1, 2, 3]);
        assert_eq!(inet_service(8080), [0x1f, 0x90]);
        assert_eq!(inet_proto(PROTO_TCP), [6]);
        let name = ifname("eth0").unwrap();
        assert_eq!(&name[..5], b"eth0\0");
        assert!(name[4..].iter().all(|b| *b == 0));
        assert!(ifname("").is_err());
        assert!(ifname("a-very-long-name").is_err());
        assert!(ifname("a\0b").is_err());
        assert!(ifname("fifteen-chars-x").is_ok());
    }

    #[test]
    fn concatenations_pad_each_component_to_four_bytes() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0, 2];
        let name = ifname("eth0").unwrap();
        let key = concat(&[&name, &ether_addr(mac)]);
        assert_eq!(key.len(), 24);
        assert_eq!(&key[16..], &[0x02, 0x42, 0xac, 0x11, 0, 2, 0, 0]);
        let parts = split(&key, &[16, 6]).unwrap();
        assert_eq!(parse_ifname(parts[0]).as_deref(), Some("eth0"));
        assert_eq!(parse_ether_addr(parts[1]), Some(mac));

        let data = concat(&[&ipv4_addr("10.0.0.2".parse().unwrap()), &inet_service(80)]);
        assert_eq!(data, [10, 0, 0, 2, 0, 80, 0, 0]);
        let parts = split(&data, &[4, 2]).unwrap();
        assert_eq!(parse_ipv4_addr(parts[0]), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(parse_inet_service(parts[1]), Some(80));
        assert!(split(&data, &[4]).is_none());
        assert!(split(&data, &[4, 4, 4]).is_none());
    }
}
