//! The iptables masquerade backend (`ipMasqBackend: "iptables"`) of bridge and ptp, laid out
//! as the reference plugins lay it out: a nat chain per container, `CNI-<hash>`, reached from
//! POSTROUTING by the container's address, returning for the container's subnets. Each change
//! is one `iptables-restore --noflush` transaction per family.

use std::net::IpAddr;

use cni::Error;
use cni_netlink::iptables;
use sha2::{Digest, Sha512};

/// The reference's chain name: "CNI-" and a hash of network and container, 28 characters.
pub fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-{}", &hex[..24])
}

fn comment(network: &str, container_id: &str) -> String {
    format!("name: \"{network}\" id: \"{container_id}\"")
}

/// An argument as iptables-restore reads it: in double quotes, `\` and `"` escaped (it knows
/// no single quotes).
fn quoted(arg: &str) -> String {
    format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
}

fn restore(v6: bool, script: &str) -> Result<(), Error> {
    iptables::restore_noflush(v6, script).map_err(|e| Error::internal(e.to_string()))
}

/// Masquerades traffic of the container's addresses leaving their subnets.
pub fn add_masquerade(
    network: &str,
    container_id: &str,
    ips: &[(IpAddr, cni_netlink::IpNetwork)],
) -> Result<(), Error> {
    let chain = chain_name(network, container_id);
    let comment = comment(network, container_id);
    let quoted = quoted(&comment);
    for v6 in [false, true] {
        let mine: Vec<_> = ips.iter().filter(|(ip, _)| ip.is_ipv6() == v6).collect();
        if mine.is_empty() {
            continue;
        }
        let multicast = if v6 { "ff00::/8" } else { "224.0.0.0/4" };
        let mut script = format!("*nat\n:{chain} - [0:0]\n");
        let mut subnets: Vec<String> = mine
            .iter()
            .map(|(_, net)| format!("{}/{}", net.network(), net.prefix()))
            .collect();
        subnets.dedup();
        for net in subnets {
            script.push_str(&format!(
                "-A {chain} -d {net} -j ACCEPT -m comment --comment {quoted}\n"
            ));
        }
        script.push_str(&format!(
            "-A {chain} ! -d {multicast} -j MASQUERADE -m comment --comment {quoted}\n"
        ));
        for (ip, _) in &mine {
            script.push_str(&format!(
                "-A POSTROUTING -s {ip} -j {chain} -m comment --comment {quoted}\n"
            ));
        }
        script.push_str("COMMIT\n");
        restore(v6, &script)?;
    }
    Ok(())
}

/// Removes what [`add_masquerade`] created; what is already gone is skipped.
pub fn delete_masquerade(network: &str, container_id: &str, ips: &[IpAddr]) -> Result<(), Error> {
    let chain = chain_name(network, container_id);
    let comment = comment(network, container_id);
    let quoted = quoted(&comment);
    for v6 in [false, true] {
        if !chain_exists(v6, &chain) {
            continue;
        }
        let mut script = String::from("*nat\n");
        for ip in ips.iter().filter(|ip| ip.is_ipv6() == v6) {
            if rule_exists(
                v6,
                &[
                    "-s",
                    &ip.to_string(),
                    "-j",
                    &chain,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                ],
            ) {
                script.push_str(&format!(
                    "-D POSTROUTING -s {ip} -j {chain} -m comment --comment {quoted}\n"
                ));
            }
        }
        script.push_str(&format!("-F {chain}\n-X {chain}\nCOMMIT\n"));
        restore(v6, &script)?;
    }
    Ok(())
}

/// Whether the container's chain exists. A host without iptables has none.
fn chain_exists(v6: bool, chain: &str) -> bool {
    iptables::chain_exists(v6, "nat", chain).unwrap_or(false)
}

fn rule_exists(v6: bool, rule: &[&str]) -> bool {
    iptables::rule_exists(v6, "nat", "POSTROUTING", rule).unwrap_or(false)
}

/// Whether the container's address still jumps to its chain.
pub fn masquerade_present(network: &str, container_id: &str, ip: IpAddr) -> bool {
    let chain = chain_name(network, container_id);
    let comment = comment(network, container_id);
    rule_exists(
        ip.is_ipv6(),
        &[
            "-s",
            &ip.to_string(),
            "-j",
            &chain,
            "-m",
            "comment",
            "--comment",
            &comment,
        ],
    )
}
