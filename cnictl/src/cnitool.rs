//! cnitool's commands, with cnitool's inputs: `add|check|del|gc|status <network> <netns>`,
//! NETCONFPATH, CNI_PATH, CNI_ARGS, CAP_ARGS, CNI_IFNAME (or `-i`), the container ID hashed
//! from the netns path, and libcni's chain execution and result cache.

use std::path::Path;

use libcni::{RuntimeConf, load_network, parse_cnitool_args};
use serde_json::{Map, Value};

use crate::env::{Env, absolute_clean};
use crate::error::{CliError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Check,
    Del,
    Gc,
    Status,
}

/// The runtime arguments cnitool derives from its environment and the netns argument.
pub fn runtime_conf(netns: &str, ifname: Option<&str>) -> Result<RuntimeConf> {
    let cap_args: Map<String, Value> = match std::env::var("CAP_ARGS") {
        Ok(text) if !text.is_empty() => serde_json::from_str(&text).map_err(|e| {
            CliError::new(format!("invalid CAP_ARGS: {e}"))
                .hint(r#"CAP_ARGS is a JSON object, e.g. CAP_ARGS='{"portMappings":[...]}'"#)
        })?,
        _ => Map::new(),
    };
    let args = match std::env::var("CNI_ARGS") {
        Ok(text) => parse_cnitool_args(&text).map_err(|e| {
            CliError::from(e)
                .hint("CNI_ARGS is K=V pairs separated by ';', e.g. IgnoreUnknown=1;IP=10.1.0.5")
        })?,
        Err(_) => Vec::new(),
    };
    let ifname = match ifname.filter(|i| !i.is_empty()) {
        Some(i) => i.to_string(),
        None => std::env::var("CNI_IFNAME")
            .ok()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "eth0".to_string()),
    };
    let netns = absolute_clean(Path::new(netns));
    Ok(RuntimeConf {
        container_id: libcni::cnitool_container_id(&netns),
        netns: netns.display().to_string(),
        ifname,
        args,
        capability_args: cap_args,
    })
}

/// Runs one cnitool command; for ADD returns the result as cnitool prints it (indented JSON
/// in the list's version).
pub fn run(
    env: &Env,
    op: Op,
    network: &str,
    netns: Option<&str>,
    ifname: Option<&str>,
) -> Result<Option<String>> {
    env.check_exec_netns()?;
    let list = load_network(&env.conf_dir, network)?;
    let cni = env.cni();
    let need_netns = || -> Result<RuntimeConf> {
        let ns = netns.ok_or_else(|| {
            CliError::new("network name and namespace are required")
                .hint("usage: cnictl add|check|del NETWORK NETNS-PATH")
        })?;
        runtime_conf(ns, ifname)
    };
    match op {
        Op::Add => {
            let rt = need_netns()?;
            let result = cni.add_network_list(&list, &rt)?;
            let value = result
                .to_value(list.cni_version)
                .map_err(|e| CliError::new(e.to_string()))?;
            Ok(Some(go_indent(&value)))
        }
        Op::Check => {
            cni.check_network_list(&list, &need_netns()?)?;
            Ok(None)
        }
        Op::Del => {
            cni.del_network_list(&list, &need_netns()?)?;
            Ok(None)
        }
        Op::Gc => {
            // As cnitool: no list of valid attachments, so every cached one goes.
            cni.gc_network_list(&list, None)?;
            Ok(None)
        }
        Op::Status => {
            cni.status_network_list(&list)?;
            Ok(None)
        }
    }
}

/// JSON indented with four spaces, as Go's `json.MarshalIndent(v, "", "    ")`.
pub fn go_indent(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    match serde::Serialize::serialize(v, &mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => v.to_string(),
    }
}
