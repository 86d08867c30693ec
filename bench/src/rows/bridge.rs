//! bridge with host-local, run as a runtime runs it: a one-plugin list through
//! [`Chain`] (bridge execs host-local itself through CNI_PATH), the plugin processes in a
//! private host netns, the container in a netns of its own, DEL with the ADD's result.
//!
//! Each implementation of each row has a host netns of its own (one node each: the links
//! and packet-filter rules of one do not weigh on another), its own bridge name, subnet,
//! host-local `dataDir` and bridge `dataDir` (our state; the reference ignores the key).
//! With `containers` > 0, that many containers (each in its own netns) are added before
//! measuring, and every iteration adds then deletes one more, so the count stays the same.
//! Deleting the host netns at the end takes the bridge, the veth pairs and every nftables
//! or iptables rule with it; the container netns are deleted one by one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CNI_VERSION, Derived, Instance, Params, Row, container_id, run_text};
use crate::chain::{Chain, ChainRun};
use crate::error::{Context, Error, Result};
use crate::exec::Invocation;
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side, path_str};
use crate::signals;

/// The table with the bridge rows and their growth lines added at the end.
pub fn register(
    params: Params,
    (mut rows, mut derived): (Vec<Box<dyn Row>>, Vec<Derived>),
) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    let plain = Bridge::new(false, 0);
    let empty = Bridge::new(true, 0);
    let full = Bridge::new(true, params.allocations);
    derived.extend(["ADD", "DEL"].into_iter().map(|op| Derived {
        name: format!("bridge growth {}/0", params.allocations),
        op,
        numerator: full.name(),
        denominator: empty.name(),
    }));
    rows.push(Box::new(plain));
    rows.push(Box::new(empty));
    rows.push(Box::new(full));
    (rows, derived)
}

pub struct Bridge {
    masq: bool,
    containers: usize,
}

impl Bridge {
    pub fn new(masq: bool, containers: usize) -> Bridge {
        Bridge { masq, containers }
    }

    /// 0, 1, 2: without ipMasq, with ipMasq on an empty bridge, with ipMasq on a full one.
    fn variant(&self) -> u8 {
        match (self.masq, self.containers) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, _) => 2,
        }
    }
}

impl Row for Bridge {
    fn name(&self) -> String {
        match (self.masq, self.containers) {
            (false, 0) => "bridge+host-local".to_string(),
            (false, n) => format!("bridge+host-local, {n} containers"),
            (true, 0) => "bridge+host-local, ipMasq".to_string(),
            (true, n) => format!("bridge+host-local, ipMasq, {n} containers"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "bridge (isGateway, hairpinMode{}) with host-local IPAM: ADD then DEL of a fresh \
             container in its own netns, with {} other containers on the bridge",
            if self.masq { ", ipMasq" } else { "" },
            self.containers
        )
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["bridge", "host-local"]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL"]
    }

    /// With ipMasq, the empty and the full bridge are measured together: the growth line
    /// compares them.
    fn group(&self) -> Option<&'static str> {
        self.masq.then_some("bridge-ipmasq")
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let variant = self.variant();
        let letter = match side.which {
            Impl::Ours => 'o',
            Impl::Reference => 'r',
        };
        // One /16 per implementation and variant: 10.80.0.0/16 .. 10.85.0.0/16.
        let subnet_octet = 80 + 2 * variant + u8::from(side.which == Impl::Reference);
        let network = format!("benchbr{variant}-{}", side.label());
        let dir = sandbox.data_dir(&format!("bridge{variant}-{}", side.label()))?;
        let state = sandbox.run_dir(&format!("bridge{variant}-{}", side.label()))?;
        let ipam_dir = dir.join("ipam");
        let conf = json!({
            // What podman writes for a bridge network, plus our state directory.
            "type": "bridge",
            "bridge": format!("cnibr{variant}{letter}"),
            "isGateway": true,
            "ipMasq": self.masq,
            "hairpinMode": true,
            "dataDir": path_str(&state.join("bridge")),
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&ipam_dir),
                "ranges": [[{"subnet": format!("10.{subnet_octet}.0.0/16")}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        });
        let host = sandbox.own_host()?;
        let mut instance = BridgeInstance {
            host,
            chain: Chain::new(&network, CNI_VERSION, vec![conf])?,
            side: side.clone(),
            bridge: format!("cnibr{variant}{letter}"),
            subnet_octet,
            store: ipam_dir.join(&network),
            masq: self.masq,
            containers: self.containers,
            domain: 10 + 2 * u64::from(variant),
            netns: sandbox.container_netns()?,
            others: Vec::new(),
        };
        // Bridge, gateway address and rule structure exist before the first measured call,
        // as on a node that has run containers before.
        let first = instance.add(&container_id(instance.domain, usize::MAX), None)?;
        instance.del(&container_id(instance.domain, usize::MAX), None, &first)?;
        if self.containers > 0 {
            let started = Instant::now();
            instance.others = sandbox.container_netns_batch(self.containers)?;
            let netns_made = started.elapsed();
            for k in 0..self.containers {
                signals::check()?;
                instance
                    .add(&container_id(instance.domain, k), Some(k))
                    .with_context(|| format!("pre-populating {}'s bridge", side.label()))?;
            }
            eprintln!(
                "  {}: {} containers on {} ({:.1} s for their netns, {:.1} s for the ADDs)",
                side.label(),
                self.containers,
                instance.bridge,
                netns_made.as_secs_f64(),
                (started.elapsed() - netns_made).as_secs_f64()
            );
        }
        instance.check_counts()?;
        Ok(Box::new(instance))
    }
}

struct BridgeInstance {
    // Field order is drop order: the host netns first (its bridge, veths and rules go with
    // it), then the container netns.
    host: HostNs,
    chain: Chain,
    side: Side,
    bridge: String,
    /// The network is 10.<subnet_octet>.0.0/16.
    subnet_octet: u8,
    /// host-local's directory of this network.
    store: PathBuf,
    masq: bool,
    containers: usize,
    /// Container IDs: `domain` for the population, `domain + 1` for the measured ones.
    domain: u64,
    /// The measured container's netns (reused: each iteration's DEL empties it).
    netns: Netns,
    /// The netns of the containers already on the bridge.
    others: Vec<Netns>,
}

impl BridgeInstance {
    /// The call for container `id` in the measured netns (`None`) or `others[k]`.
    fn invocation(&self, id: &str, netns: Option<usize>) -> Result<Invocation> {
        let netns = match netns {
            None => &self.netns,
            Some(k) => self
                .others
                .get(k)
                .ok_or_else(|| Error::msg(format!("no container netns {k}")))?,
        };
        Ok(Invocation::new("ADD")
            .container(id)
            .netns(netns.path())
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{}",
                &id[..8.min(id.len())]
            )))
    }

    /// ADD, checked: the result must give the container an address of the network.
    fn add(&self, id: &str, netns: Option<usize>) -> Result<ChainRun> {
        let inv = self.invocation(id, netns)?;
        let run = self.chain.add(&self.side, &inv, Some(self.host.enter()))?;
        run.expect_address_in(
            self.subnet_octet,
            &format!("{} bridge ADD", self.side.label()),
        )
    }

    fn del(&self, id: &str, netns: Option<usize>, add: &ChainRun) -> Result<ChainRun> {
        let inv = self.invocation(id, netns)?;
        self.chain.del(
            &self.side,
            &inv,
            add.result.as_ref(),
            Some(self.host.enter()),
        )
    }

    /// The node holds exactly `containers` attachments: ports on the bridge, addresses in
    /// host-local's store and, with ipMasq, container addresses in the masquerade rules.
    fn check_counts(&self) -> Result<()> {
        let label = self.side.label();
        let host = self.host.netns().name();
        let ports = run_text(
            "ip",
            &["-n", host, "-o", "link", "show", "master", &self.bridge],
        )?
        .lines()
        .count();
        let addresses = std::fs::read_dir(&self.store)
            .with_context(|| format!("list {}", self.store.display()))?
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
            })
            .count();
        let mut problems = Vec::new();
        if ports != self.containers {
            problems.push(format!("{ports} ports on {}", self.bridge));
        }
        if addresses != self.containers {
            problems.push(format!("{addresses} addresses in {}", self.store.display()));
        }
        if self.masq {
            let masqueraded = self.masqueraded()?;
            if masqueraded != self.containers {
                problems.push(format!("{masqueraded} addresses in masquerade rules"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "{label}: expected {} containers on the node, found {}",
                self.containers,
                problems.join(", ")
            )))
        }
    }

    /// How many container addresses of the network the packet filter masquerades:
    /// addresses of 10.<subnet_octet>.0.0/16 (other than the network and gateway addresses)
    /// named in the host's nftables ruleset (our sets; iptables-nft's rules show there too)
    /// or in `iptables-save -t nat` (an iptables-legacy reference).
    fn masqueraded(&self) -> Result<usize> {
        let host = self.host.netns().name();
        let mut text = run_text("ip", &["netns", "exec", host, "nft", "list", "ruleset"])?;
        text.push_str(&run_text(
            "ip",
            &["netns", "exec", host, "iptables-save", "-t", "nat"],
        )?);
        let network = Ipv4Addr::new(10, self.subnet_octet, 0, 0);
        let gateway = Ipv4Addr::new(10, self.subnet_octet, 0, 1);
        let found: BTreeSet<Ipv4Addr> = text
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|t| t.parse::<Ipv4Addr>().ok())
            .filter(|a| a.octets()[..2] == [10, self.subnet_octet])
            .filter(|a| *a != network && *a != gateway)
            .collect();
        Ok(found.len())
    }
}

impl Instance for BridgeInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(self.domain + 1, i);
        let add = self.add(&id, None)?;
        let del = self.del(&id, None, &add)?;
        Ok(vec![add.total(), del.total()])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.check_counts()
    }
}
