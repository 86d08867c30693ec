//! `network ls`, `inspect`, `rm` and `prune`.

use serde_json::{Value, json};

use crate::attach::{Attachment, all_attachments};
use crate::env::Env;
use crate::error::{CliError, Result};
use crate::netconf::{Network, find_network, list_networks};

/// One row of `network ls`.
pub fn summary(n: &Network, attached: &[Attachment]) -> Value {
    let containers = attached.iter().filter(|a| a.network == n.name).count();
    json!({
        "name": n.name,
        "driver": n.driver(),
        "subnets": n.ranges(),
        "containers": containers,
        "dns": n.dns(),
        "internal": n.internal(),
        "cniVersion": n.list.cni_version.as_str(),
        "file": n.file,
        "managed": n.managed(),
    })
}

/// `network inspect`: the summary, cnictl's metadata, the config, and the containers.
pub fn inspect_value(n: &Network, attached: &[Attachment]) -> Value {
    let mut v = summary(n, attached);
    let containers: Vec<&Attachment> = attached.iter().filter(|a| a.network == n.name).collect();
    v["containers"] = json!(containers);
    if let Some(b) = n.bridge() {
        v["bridge"] = json!(b);
    }
    if let Some(m) = &n.meta {
        v["created"] = json!(m.created);
        v["options"] = json!(m.options);
    }
    v["plugins"] = json!(
        n.list
            .plugins
            .iter()
            .map(libcni::conf::plugin_type)
            .collect::<Vec<_>>()
    );
    v["config"] = n.config.clone();
    v
}

/// The networks and every attachment, with problems reading configs reported on stderr.
pub fn networks_and_attachments(env: &Env) -> Result<(Vec<Network>, Vec<Attachment>)> {
    let (networks, problems) = list_networks(&env.conf_dir)?;
    for p in problems {
        eprintln!("warning: {p}");
    }
    Ok((networks, all_attachments(env)?))
}

pub fn inspect(env: &Env, names: &[String]) -> Result<Value> {
    let attached = all_attachments(env)?;
    let mut out = Vec::new();
    for name in names {
        let n = find_network(&env.conf_dir, name)?;
        out.push(inspect_value(&n, &attached));
    }
    Ok(Value::Array(out))
}

/// What `network rm` did to one network.
#[derive(Debug, Default)]
pub struct Removed {
    pub name: String,
    pub disconnected: Vec<String>,
    pub warnings: Vec<String>,
}

/// Removes a network: refuses while containers are attached unless `force` (then each is
/// disconnected first), runs GC so the plugins drop what they still hold for it, deletes the
/// bridge cnictl's config named, and removes the file last.
pub fn remove(env: &Env, name: &str, force: bool) -> Result<Removed> {
    env.check_exec_netns()?;
    let _lock = env.lock()?;
    let n = find_network(&env.conf_dir, name)?;
    let attached: Vec<Attachment> = all_attachments(env)?
        .into_iter()
        .filter(|a| a.network == n.name)
        .collect();
    let mut out = Removed {
        name: n.name.clone(),
        ..Removed::default()
    };
    if !attached.is_empty() && !force {
        let names: Vec<&str> = attached.iter().map(Attachment::display_name).collect();
        let first = names.first().copied().unwrap_or_default();
        return Err(CliError::new(format!(
            "network {} has {} container(s) connected: {}",
            n.name,
            attached.len(),
            names.join(", ")
        ))
        .hint(format!(
            "disconnect them first (`cnictl disconnect {} {first}`), or use `cnictl network rm --force {}`",
            n.name, n.name
        )));
    }
    let cni = env.cni();
    let mut failed = Vec::new();
    for a in &attached {
        match cni.del_network_list(&n.list, &a.runtime_conf()) {
            Ok(()) => out.disconnected.push(a.display_name().to_string()),
            Err(e) => failed.push(format!("{}: {e}", a.display_name())),
        }
    }
    if !failed.is_empty() {
        return Err(CliError::new(format!(
            "network {} kept: cannot disconnect {}",
            n.name,
            failed.join("; ")
        ))
        .hint("fix the cause and run `cnictl network rm --force` again"));
    }
    // The plugins drop anything they still hold for the network (no attachment is valid).
    if n.list.cni_version.has_status_and_gc()
        && let Err(e) = cni.gc_network_list(&n.list, Some(&[]))
    {
        out.warnings.push(format!("garbage collection: {e}"));
    }
    if n.managed()
        && let Some(bridge) = n.bridge()
    {
        let (others, _) = list_networks(&env.conf_dir)?;
        let shared = others
            .iter()
            .any(|o| o.name != n.name && o.bridge().as_deref() == Some(bridge.as_str()));
        if !shared && let Err(e) = delete_link(env, &bridge) {
            out.warnings
                .push(format!("cannot delete bridge {bridge}: {e}"));
        }
        // The bridge's own isolation rule stays while another network uses the bridge.
        let bridge_rules = (!shared).then_some(bridge.as_str());
        if let Err(e) = remove_bridge_rules(env, &n, bridge_rules) {
            out.warnings.push(format!(
                "cannot remove the nftables rules of {}: {}",
                n.name, e.msg
            ));
        }
    }
    std::fs::remove_file(&n.file)
        .map_err(|e| CliError::new(format!("cannot remove {}: {e}", n.file.display())))?;
    Ok(out)
}

/// Removes the network's masquerade and isolation rules the bridge plugin made (they
/// outlive the containers: they belong to the network).
fn remove_bridge_rules(
    env: &Env,
    n: &Network,
    bridge: Option<&str>,
) -> std::result::Result<(), cni::Error> {
    let data_dir = n
        .list
        .plugins
        .iter()
        .find(|p| libcni::conf::plugin_type(p) == "bridge")
        .and_then(|p| p.get("dataDir"))
        .and_then(Value::as_str)
        .unwrap_or(bridge::DEFAULT_DATA_DIR)
        .to_string();
    let netns = match &env.exec_netns {
        Some(p) => Some(
            cni_netlink::NetNs::open(p).map_err(|e| cni::Error::invalid_netns(e.to_string()))?,
        ),
        None => None,
    };
    bridge::remove_network_rules(
        netns.as_ref(),
        std::path::Path::new(&data_dir),
        &n.name,
        bridge,
    )
}

/// Deletes a link where the plugins run (a missing link is fine).
fn delete_link(env: &Env, name: &str) -> cni_netlink::Result<()> {
    let mut nl = match &env.exec_netns {
        Some(p) => cni_netlink::Netlink::in_netns(&cni_netlink::NetNs::open(p)?)?,
        None => cni_netlink::Netlink::host()?,
    };
    if nl
        .get_link(name.to_string())?
        .is_some_and(|l| l.kind.as_deref() == Some("bridge"))
    {
        nl.delete_link(name.to_string())?;
    }
    Ok(())
}

/// Removes every network cnictl created that has no container connected.
pub fn prune(env: &Env) -> Result<Vec<Removed>> {
    let (networks, attached) = networks_and_attachments(env)?;
    let mut out = Vec::new();
    for n in networks.iter().filter(|n| n.managed()) {
        if attached.iter().any(|a| a.network == n.name) {
            continue;
        }
        out.push(remove(env, &n.name, false)?);
    }
    Ok(out)
}
