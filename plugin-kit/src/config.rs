//! Config keys several plugins accept, read one way everywhere.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use cni::{Error, Request};
use cni_netlink::MacAddr;

/// Which packet filter carries a plugin's masquerade rules (`ipMasqBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MasqBackend {
    Nftables,
    Iptables,
}

/// `ipMasq` and `ipMasqBackend` as bridge and ptp read them: no masquerade without `ipMasq`;
/// nftables unless `iptables` is asked for.
pub fn masq_backend(ip_masq: bool, backend: Option<&str>) -> Result<Option<MasqBackend>, Error> {
    match (ip_masq, backend) {
        (false, _) => Ok(None),
        (true, None | Some("") | Some("nftables")) => Ok(Some(MasqBackend::Nftables)),
        (true, Some("iptables")) => Ok(Some(MasqBackend::Iptables)),
        (true, Some(other)) => Err(Error::invalid_config(format!(
            "ipMasqBackend: unknown backend {other:?} (iptables or nftables)"
        ))),
    }
}

/// The MTUs the kernel accepts for an Ethernet-like link.
pub const MTU_RANGE: RangeInclusive<i64> = 68..=65535;

/// The plugin's `dataDir`: the top-level key as written (a non-empty string), else `default`.
/// Never fails, so DEL and GC find their state with a config that no longer validates.
pub fn data_dir(req: &Request, default: &str) -> PathBuf {
    req.conf
        .raw
        .get("dataDir")
        .and_then(|d| d.as_str())
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// `dataDir` as ADD reads it: [`data_dir`], and a value that is not a string is refused
/// (code 6), as any mistyped key is.
pub fn checked_data_dir(req: &Request, default: &str) -> Result<PathBuf, Error> {
    match req.conf.raw.get("dataDir") {
        None | Some(serde_json::Value::Null | serde_json::Value::String(_)) => {
            Ok(data_dir(req, default))
        }
        Some(other) => Err(Error::decoding(format!(
            "decode network config: dataDir: expected a string, got {other}"
        ))),
    }
}

/// A MAC address from `source` (a key, `args.cni.mac`, `runtimeConfig.mac`): a unicast
/// address, or a config error (7) naming the source.
pub fn parse_mac(source: &str, s: &str) -> Result<MacAddr, Error> {
    let mac: MacAddr = s
        .parse()
        .map_err(|_| Error::invalid_config(format!("{source}: {s:?} is not a MAC address")))?;
    if !mac.is_unicast() {
        return Err(Error::invalid_config(format!(
            "{source}: {s} is not a unicast address (multicast or all zeros)"
        )));
    }
    Ok(mac)
}

/// `mtu`: absent or 0 is the kernel's default (`None`); otherwise within [`MTU_RANGE`].
pub fn validate_mtu(mtu: Option<i64>) -> Result<Option<u32>, Error> {
    match mtu {
        None | Some(0) => Ok(None),
        Some(m) if MTU_RANGE.contains(&m) => u32::try_from(m)
            .map(Some)
            .map_err(|_| Error::invalid_config(format!("mtu: {m} is outside 68..65535"))),
        Some(m) => Err(Error::invalid_config(format!(
            "mtu: {m} is outside 68..65535"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;

    #[test]
    fn mtus_outside_the_kernels_range_are_config_errors() {
        assert_eq!(validate_mtu(None).unwrap(), None);
        assert_eq!(validate_mtu(Some(0)).unwrap(), None);
        assert_eq!(validate_mtu(Some(1400)).unwrap(), Some(1400));
        for bad in [-1, 1, 67, 65536] {
            let e = validate_mtu(Some(bad)).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG);
            assert!(e.msg.contains("mtu"), "{}", e.msg);
        }
    }

    #[test]
    fn masquerade_backends() {
        assert_eq!(masq_backend(false, Some("bogus")).unwrap(), None);
        assert_eq!(
            masq_backend(true, None).unwrap(),
            Some(MasqBackend::Nftables)
        );
        assert_eq!(
            masq_backend(true, Some("iptables")).unwrap(),
            Some(MasqBackend::Iptables)
        );
        let e = masq_backend(true, Some("pf")).unwrap_err();
        assert!(e.msg.contains("ipMasqBackend"), "{}", e.msg);
    }

    #[test]
    fn macs_must_be_unicast() {
        assert!(parse_mac("mac", "02:00:00:00:00:01").is_ok());
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "nope"] {
            let e = parse_mac("runtimeConfig.mac", bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG);
            assert!(e.msg.starts_with("runtimeConfig.mac: "), "{}", e.msg);
        }
    }
}
