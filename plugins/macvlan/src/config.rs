//! The macvlan plugin's keys, read into a child link's [`Config`].

use child_link::{Common, Config, Kind, invalid};
use cni::{Error, Request};
use cni_netlink::{MacAddr, MacvlanMode};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    master: Option<String>,
    mode: Option<String>,
    mtu: Option<i64>,
    mac: Option<String>,
    #[serde(default)]
    link_in_container: bool,
    #[serde(rename = "bcqueuelen")]
    bc_queue_len: Option<i64>,
}

/// The macvlan plugin's configuration: every key of the reference plugin.
pub fn macvlan_config(req: &Request) -> Result<Config, Error> {
    let wire: Wire = req.conf.parse_as()?;
    let mode = match wire.mode.as_deref() {
        None | Some("") => MacvlanMode::Bridge,
        Some(m @ ("bridge" | "private" | "vepa" | "passthru")) => m
            .parse()
            .map_err(|_| invalid("mode", format!("unknown macvlan mode {m:?}")))?,
        Some(m) => {
            return Err(invalid(
                "mode",
                format!("unknown macvlan mode {m:?} (bridge, private, vepa or passthru)"),
            ));
        }
    };
    let bc_queue_len = match wire.bc_queue_len {
        None | Some(0) => None,
        Some(n) => Some(
            u32::try_from(n)
                .map_err(|_| invalid("bcqueuelen", format!("{n} is outside 0..4294967295")))?,
        ),
    };
    let mac = requested_mac(req, wire.mac.as_deref())?;
    if mode == MacvlanMode::Passthru
        && let Some(mac) = mac
    {
        return Err(invalid(
            "mac",
            format!("{mac} cannot be set in passthru mode: the macvlan takes the master's address"),
        ));
    }
    let common = Common {
        master: wire.master,
        mtu: wire.mtu,
        link_in_container: wire.link_in_container,
    };
    let kind = Kind::Macvlan {
        mode,
        mac,
        bc_queue_len,
    };
    common.into_config(kind, req)
}

/// The container's MAC: the `mac` key, then CNI_ARGS `MAC=`, then `runtimeConfig.mac` (the
/// later wins, as in the reference).
fn requested_mac(req: &Request, key: Option<&str>) -> Result<Option<MacAddr>, Error> {
    let mut mac = None;
    if let Some(m) = key.filter(|m| !m.is_empty()) {
        mac = Some(plugin_kit::parse_mac("mac", m)?);
    }
    let args = req.cni_args(&["MAC"])?;
    if let Some(m) = args.get("MAC") {
        mac =
            Some(plugin_kit::parse_mac("CNI_ARGS MAC", m).map_err(|e| Error::invalid_env(e.msg))?);
    }
    if let Some(m) = req
        .conf
        .runtime_config::<String>("mac")?
        .filter(|m| !m.is_empty())
    {
        mac = Some(plugin_kit::parse_mac("runtimeConfig.mac", &m)?);
    }
    Ok(mac)
}
