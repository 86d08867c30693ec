//! bridge with host-local, then portmap with one mapping (container port 80 on host port
//! 8080), run as podman runs it: a two-plugin list through [`Chain`], portmap given
//! `runtimeConfig.portMappings` on ADD and on DEL (libcni passes the cached capability
//! arguments again; the reference deletes nothing without them) and the ADD's result.
//!
//! As in the bridge rows, each implementation of each row has a host netns of its own (one
//! node each), its own bridge, subnet and data directories. With `containers` > 0, that
//! many containers with a mapping each (host ports 10000 and up) are on the node before
//! measuring, and every iteration adds then deletes one more, so the count stays the same.
//! The rows are measured interleaved, iteration by iteration, so the growth lines compare
//! figures taken under the same conditions.

use std::time::Duration;

use serde_json::{Value, json};

use super::{CNI_VERSION, Derived, Instance, Params, Row, container_id, dnat_targets, run_text};
use crate::chain::{Chain, ChainRun};
use crate::error::{Context, Error, Result};
use crate::exec::Invocation;
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side, path_str};
use crate::signals;

/// The measured container's host port; the population's start at [`FIRST_PORT`].
const HOST_PORT: u16 = 8080;
const FIRST_PORT: u16 = 10000;

/// The table with the portmap rows and their growth lines added at the end.
pub fn register(
    params: Params,
    (mut rows, mut derived): (Vec<Box<dyn Row>>, Vec<Derived>),
) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    let counts = [0, 250, params.allocations.max(1)];
    let all: Vec<Portmap> = counts.iter().map(|n| Portmap::new(*n)).collect();
    for (k, full) in all.iter().enumerate().skip(1) {
        let ops: &[&'static str] = if k + 1 == counts.len() {
            &["ADD", "DEL", "pm ADD", "pm DEL"]
        } else {
            &["ADD", "pm ADD"]
        };
        derived.extend(ops.iter().map(|op| Derived {
            name: format!("portmap growth {}/0", full.containers),
            op,
            numerator: full.name(),
            denominator: all[0].name(),
        }));
    }
    rows.extend(all.into_iter().map(|r| Box::new(r) as Box<dyn Row>));
    (rows, derived)
}

pub struct Portmap {
    containers: usize,
}

impl Portmap {
    pub fn new(containers: usize) -> Portmap {
        Portmap { containers }
    }

    /// 0, 1, 2 for the empty node and the two populated ones.
    fn variant(&self) -> u8 {
        match self.containers {
            0 => 0,
            250 => 1,
            _ => 2,
        }
    }
}

impl Row for Portmap {
    fn name(&self) -> String {
        match self.containers {
            0 => "bridge+host-local+portmap".to_string(),
            n => format!("bridge+host-local+portmap, {n} mapped"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "bridge (isGateway, hairpinMode) with host-local, then portmap with one mapping \
             (tcp 8080 -> 80): ADD then DEL of a fresh container, with {} other containers \
             with a mapping each on the node",
            self.containers
        )
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["bridge", "host-local", "portmap"]
    }

    /// The whole list's ADD and DEL, and portmap's own share of them (`pm`).
    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL", "pm ADD", "pm DEL"]
    }

    fn group(&self) -> Option<&'static str> {
        Some("portmap")
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let variant = self.variant();
        let letter = match side.which {
            Impl::Ours => 'o',
            Impl::Reference => 'r',
        };
        // One /16 per implementation and variant: 10.86.0.0/16 .. 10.91.0.0/16.
        let subnet_octet = 86 + 2 * variant + u8::from(side.which == Impl::Reference);
        let network = format!("benchpm{variant}-{}", side.label());
        let dir = sandbox.data_dir(&format!("portmap{variant}-{}", side.label()))?;
        let state = sandbox.run_dir(&format!("portmap{variant}-{}", side.label()))?;
        let bridge = format!("cnipm{variant}{letter}");
        let bridge_conf = json!({
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "hairpinMode": true,
            "dataDir": path_str(&state.join("bridge")),
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&dir.join("ipam")),
                "ranges": [[{"subnet": format!("10.{subnet_octet}.0.0/16")}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        });
        let portmap_conf = json!({
            // What podman writes, plus our state directory.
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "dataDir": path_str(&state.join("portmap")),
        });
        let mut instance = PortmapInstance {
            host: sandbox.own_host()?,
            network,
            bridge_conf,
            portmap_conf,
            side: side.clone(),
            bridge,
            subnet_octet,
            containers: self.containers,
            domain: 20 + 2 * u64::from(variant),
            netns: sandbox.container_netns()?,
            others: Vec::new(),
        };
        // Bridge, gateway and rule structure exist before the first measured call, as on a
        // node that has run containers before.
        let warm = container_id(instance.domain, usize::MAX);
        let first = instance.add(&warm, None, HOST_PORT)?;
        instance.del(&warm, None, HOST_PORT, &first)?;
        if self.containers > 0 {
            eprintln!(
                "  {}: adding {} containers with a mapping each to {}",
                side.label(),
                self.containers,
                instance.bridge
            );
            instance.others = sandbox.container_netns_batch(self.containers)?;
            for k in 0..self.containers {
                signals::check()?;
                let port = population_port(k)?;
                instance
                    .add(&container_id(instance.domain, k), Some(k), port)
                    .with_context(|| format!("pre-populating {}'s node", side.label()))?;
            }
        }
        instance.check_counts()?;
        Ok(Box::new(instance))
    }
}

fn population_port(k: usize) -> Result<u16> {
    u16::try_from(k)
        .ok()
        .and_then(|k| FIRST_PORT.checked_add(k))
        .ok_or_else(|| Error::msg(format!("no host port left for container {k}")))
}

struct PortmapInstance {
    // Field order is drop order: the host netns first (its bridge, veths and rules go with
    // it), then the container netns.
    host: HostNs,
    network: String,
    bridge_conf: Value,
    portmap_conf: Value,
    side: Side,
    bridge: String,
    /// The network is 10.<subnet_octet>.0.0/16.
    subnet_octet: u8,
    containers: usize,
    /// Container IDs: `domain` for the population, `domain + 1` for the measured ones.
    domain: u64,
    /// The measured container's netns (reused: each iteration's DEL empties it).
    netns: Netns,
    /// The netns of the containers already on the node.
    others: Vec<Netns>,
}

impl PortmapInstance {
    /// The list as libcni hands it to the plugins for a container mapping `port`: portmap
    /// gets its capability argument as `runtimeConfig`.
    fn chain(&self, port: u16) -> Result<Chain> {
        let mut portmap = self.portmap_conf.clone();
        portmap["runtimeConfig"] = json!({
            "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]
        });
        Chain::new(
            &self.network,
            CNI_VERSION,
            vec![self.bridge_conf.clone(), portmap],
        )
    }

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
    fn add(&self, id: &str, netns: Option<usize>, port: u16) -> Result<ChainRun> {
        let inv = self.invocation(id, netns)?;
        let run = self
            .chain(port)?
            .add(&self.side, &inv, Some(self.host.enter()))?;
        run.expect_address_in(
            self.subnet_octet,
            &format!("{} bridge+portmap ADD", self.side.label()),
        )
    }

    fn del(&self, id: &str, netns: Option<usize>, port: u16, add: &ChainRun) -> Result<ChainRun> {
        let inv = self.invocation(id, netns)?;
        self.chain(port)?.del(
            &self.side,
            &inv,
            add.result.as_ref(),
            Some(self.host.enter()),
        )
    }

    /// The node holds exactly `containers` mapped containers: ports on the bridge and DNAT
    /// targets in the network (elements of our maps, or the reference's DNAT rules).
    fn check_counts(&self) -> Result<()> {
        let host = self.host.netns().name();
        let ports = run_text(
            "ip",
            &["-n", host, "-o", "link", "show", "master", &self.bridge],
        )?
        .lines()
        .count();
        let mapped = dnat_targets(host, self.side.which, self.subnet_octet)?;
        if ports == self.containers && mapped == self.containers {
            return Ok(());
        }
        Err(Error::msg(format!(
            "{}: expected {} mapped containers on the node, found {ports} ports on {} and {mapped} mappings",
            self.side.label(),
            self.containers,
            self.bridge
        )))
    }
}

impl Instance for PortmapInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(self.domain + 1, i);
        let add = self.add(&id, None, HOST_PORT)?;
        let del = self.del(&id, None, HOST_PORT, &add)?;
        Ok(vec![
            add.total(),
            del.total(),
            portmap_step(&add)?,
            portmap_step(&del)?,
        ])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.check_counts()
    }
}

/// The time of the portmap process in a run of the list.
fn portmap_step(run: &ChainRun) -> Result<Duration> {
    run.steps
        .iter()
        .find(|(ty, _)| ty == "portmap")
        .map(|(_, d)| *d)
        .ok_or_else(|| Error::msg("the list ran no portmap"))
}
