//! The ipvlan plugin: an ipvlan child of a master link, created directly in the container's
//! network namespace, with the reference plugin's keys. The machinery is the child-link
//! crate's, shared with macvlan; this crate reads ipvlan's keys and its chained form.

use child_link::{Addressing, Common, Config, Kind, Master, chained_master};
use cni::{CniResult, Command, Error, Plugin, Request};
use cni_netlink::IpvlanMode;
use serde::Deserialize;

pub struct Ipvlan;

impl Plugin for Ipvlan {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        child_link::add(req, &ipvlan_config(req)?)
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        child_link::del(req, "ipvlan")
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        child_link::check(req, &ipvlan_config(req)?)
    }
    /// Ready when the kernel has ipvlan, the master is there and IPAM is ready.
    fn status(&self, req: &Request) -> Result<(), Error> {
        if !kernel_has_ipvlan() {
            return Err(Error::not_available(
                "this kernel has no ipvlan support (no ipvlan module loaded, built in or installed)",
            ));
        }
        // STATUS carries no prevResult: the chained form (no `ipam`) is valid here too.
        let cfg = keys_config(req)?;
        // Without `master` the chained form takes it from prevResult, which STATUS lacks.
        if let Master::DefaultRoute = cfg.master {
            return match cfg.ipam_type() {
                Some(ipam) => cni::delegate::run(ipam, cni::Command::Status, req),
                None => Ok(()),
            };
        }
        child_link::status(req, &cfg)
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        child_link::gc(req)
    }
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add => ipvlan_config(req).map(drop),
        Command::Check => {
            ipvlan_config(req)?;
            plugin_kit::required_prev_result(req).map(drop)
        }
        Command::Status => keys_config(req).map(drop),
        // DEL and GC read `ipam.type` alone, so that a config that no longer validates
        // still cleans up.
        Command::Del | Command::Gc | Command::Version => Ok(()),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    master: Option<String>,
    mode: Option<String>,
    mtu: Option<i64>,
    #[serde(default)]
    link_in_container: bool,
}

/// The ipvlan plugin's configuration: every key of the reference plugin. Chained (with a
/// `prevResult`) and without `master`, the master is the single interface `prevResult`
/// names; chained and without `ipam`, the addresses of `prevResult` go on the ipvlan.
/// Otherwise `ipam` is required, as in the reference.
pub fn ipvlan_config(req: &Request) -> Result<Config, Error> {
    let mut cfg = keys_config(req)?;
    let prev = req.conf.prev_result.as_ref();
    if let (Master::DefaultRoute, Some(prev)) = (&cfg.master, prev) {
        cfg.master = Master::Chained(chained_master(prev, req.ifname(), req.netns())?);
    }
    if cfg.addressing == Addressing::None {
        if prev.is_none() {
            return Err(Error::invalid_config(
                "ipam: an ipvlan needs an IPAM plugin, unless it is chained after a plugin \
                 whose result has the addresses",
            ));
        }
        cfg.addressing = Addressing::PrevResult;
    }
    Ok(cfg)
}

/// The configuration as its keys give it, before `prevResult` fills in the chained form.
fn keys_config(req: &Request) -> Result<Config, Error> {
    let wire: Wire = req.conf.parse_as()?;
    let mode = match wire.mode.as_deref() {
        None | Some("") => IpvlanMode::L2,
        Some(m @ ("l2" | "l3" | "l3s")) => m
            .parse()
            .map_err(|_| Error::invalid_config(format!("mode: unknown ipvlan mode {m:?}")))?,
        Some(m) => {
            return Err(Error::invalid_config(format!(
                "mode: unknown ipvlan mode {m:?} (l2, l3 or l3s)"
            )));
        }
    };
    let common = Common {
        master: wire.master,
        mtu: wire.mtu,
        link_in_container: wire.link_in_container,
    };
    common.into_config(Kind::Ipvlan { mode }, req)
}

/// Whether the kernel has ipvlan: loaded or built in (`/sys/module/ipvlan`), or a module it
/// can load on demand.
fn kernel_has_ipvlan() -> bool {
    if std::path::Path::new("/sys/module/ipvlan").exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return true;
    };
    let modules = format!("/lib/modules/{}", release.trim());
    ["modules.builtin", "modules.dep"].iter().any(|f| {
        std::fs::read_to_string(format!("{modules}/{f}"))
            .is_ok_and(|list| list.contains("/ipvlan.ko"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn request(conf: Value) -> Request {
        cni::testing::request("ADD", &conf, "").unwrap()
    }

    fn conf(extra: Value) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "ipv", "type": "ipvlan",
                           "ipam": {"type": "host-local"}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn modes_default_and_unknown() {
        let cfg = ipvlan_config(&request(conf(json!({})))).unwrap();
        assert_eq!(
            cfg.kind,
            Kind::Ipvlan {
                mode: IpvlanMode::L2
            }
        );
        assert_eq!(cfg.master, Master::DefaultRoute);
        for (name, mode) in [
            ("l2", IpvlanMode::L2),
            ("l3", IpvlanMode::L3),
            ("l3s", IpvlanMode::L3s),
        ] {
            let cfg = ipvlan_config(&request(conf(json!({"mode": name})))).unwrap();
            assert_eq!(cfg.kind, Kind::Ipvlan { mode });
        }
        for bad in ["L2", "bridge", "l4"] {
            let err = ipvlan_config(&request(conf(json!({"mode": bad})))).unwrap_err();
            assert_eq!(err.code, code::INVALID_NETWORK_CONFIG);
            assert!(err.msg.contains("unknown ipvlan mode"), "{}", err.msg);
        }
    }

    #[test]
    fn ipam_is_required_unless_chained() {
        let mut c = conf(json!({"master": "m0"}));
        c.as_object_mut().unwrap().remove("ipam");
        let err = ipvlan_config(&request(c.clone())).unwrap_err();
        assert_eq!(err.code, code::INVALID_NETWORK_CONFIG);
        c["prevResult"] = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "m0"}], "ips": [{"address": "10.1.0.2/24"}]});
        let cfg = ipvlan_config(&request(c.clone())).unwrap();
        assert_eq!(cfg.addressing, Addressing::PrevResult);
        assert_eq!(cfg.master, Master::Named("m0".into()));
        // No master either: the single interface of prevResult.
        c.as_object_mut().unwrap().remove("master");
        let cfg = ipvlan_config(&request(c.clone())).unwrap();
        assert_eq!(cfg.master, Master::Chained("m0".into()));
        // Two interfaces: which one?
        c["prevResult"]["interfaces"] = json!([{"name": "m0"}, {"name": "m1"}]);
        let err = ipvlan_config(&request(c)).unwrap_err();
        assert_eq!(err.code, code::INVALID_NETWORK_CONFIG);
        assert!(err.msg.contains("m0, m1"), "{}", err.msg);
    }
}
