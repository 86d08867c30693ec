//! ptp with host-local, alone and as the kind chain: the config kindnetd writes on a kind
//! node (`ipMasq` false, `mtu` 1500, host-local with a default route), then portmap with one
//! mapping (container port 80 on host port 8080, `runtimeConfig.portMappings` on ADD and on
//! DEL, as libcni passes the cached capability arguments again). Run as a runtime runs the
//! list through [`Chain`] (ptp execs host-local itself through CNI_PATH), the plugin
//! processes in a private host netns, the container in a netns of its own, DEL with the ADD's
//! result.
//!
//! Each implementation of each row has a host netns of its own (one node each: the links,
//! routes and packet-filter rules of one do not weigh on another), its own subnet, host-local
//! `dataDir` and ptp `dataDir` (our state; the reference ignores the key). The kind chain is
//! measured on an empty node and on a node with [`KIND_PODS`] pods already running (each in
//! its own netns, with a mapping of its own), interleaved iteration by iteration, so that the
//! growth line compares figures taken under the same conditions; every iteration adds then
//! deletes one more pod, so the count stays the same.
//!
//! Our DEL leaves the kernel's unregistration of the veth pair to a child process: every
//! iteration waits, untimed, until that is done (see [`settle`]). Deleting the host netns at
//! the end takes the veths, routes and rules with it; the container netns are deleted one by
//! one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    CNI_VERSION, Derived, Instance, Params, Row, addresses_in, container_id, dnat_targets,
    pod_invocation, run_text, settle,
};
use crate::chain::{Chain, ChainRun};
use crate::error::{Context, Error, Result};
use crate::exec::Invocation;
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side, path_str};
use crate::signals;

/// Pods already on the full kind node: Kubernetes' default maximum per node.
pub const KIND_PODS: usize = 110;
/// The measured pod's host port; the population's start at [`FIRST_PORT`].
const HOST_PORT: u16 = 8080;
const FIRST_PORT: u16 = 10000;

/// The table with the ptp rows, the kind chain's rows and its growth line added at the end.
pub fn register(
    _params: Params,
    (mut rows, mut derived): (Vec<Box<dyn Row>>, Vec<Derived>),
) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    let empty = Ptp::new(true, 0);
    let full = Ptp::new(true, KIND_PODS);
    derived.extend(["ADD", "DEL"].into_iter().map(|op| Derived {
        name: format!("kind chain growth {KIND_PODS}/0"),
        op,
        numerator: full.name(),
        denominator: empty.name(),
    }));
    rows.push(Box::new(Ptp::new(false, 0)));
    rows.push(Box::new(empty));
    rows.push(Box::new(full));
    (rows, derived)
}

pub struct Ptp {
    /// With portmap after ptp: the kind chain.
    portmap: bool,
    pods: usize,
}

impl Ptp {
    pub fn new(portmap: bool, pods: usize) -> Ptp {
        Ptp { portmap, pods }
    }

    /// 0, 1, 2: ptp alone, the kind chain on an empty node, on a full one.
    fn variant(&self) -> u8 {
        match (self.portmap, self.pods) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, _) => 2,
        }
    }
}

impl Row for Ptp {
    fn name(&self) -> String {
        match (self.portmap, self.pods) {
            (false, 0) => "ptp+host-local".to_string(),
            (false, n) => format!("ptp+host-local, {n} pods"),
            (true, 0) => "kind chain".to_string(),
            (true, n) => format!("kind chain, {n} pods"),
        }
    }

    fn describe(&self) -> String {
        if self.portmap {
            format!(
                "kindnetd's list: ptp (mtu 1500, no ipMasq) with host-local, then portmap with \
                 one mapping (tcp 8080 -> 80): ADD then DEL of a fresh pod, with {} other pods \
                 with a mapping each on the node",
                self.pods
            )
        } else {
            "ptp (mtu 1500, no ipMasq, as kindnetd writes it) with host-local IPAM: ADD then \
             DEL of a fresh container in its own netns"
                .to_string()
        }
    }

    fn plugins(&self) -> Vec<&'static str> {
        if self.portmap {
            vec!["ptp", "host-local", "portmap"]
        } else {
            vec!["ptp", "host-local"]
        }
    }

    /// The whole list's ADD and DEL, and in the kind chain portmap's own share (`pm`).
    fn ops(&self) -> Vec<&'static str> {
        if self.portmap {
            vec!["ADD", "DEL", "pm ADD", "pm DEL"]
        } else {
            vec!["ADD", "DEL"]
        }
    }

    /// The kind chain's empty and full nodes are measured together: the growth line
    /// compares them.
    fn group(&self) -> Option<&'static str> {
        self.portmap.then_some("kind")
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let variant = self.variant();
        // One /16 per implementation and variant: 10.92.0.0/16 .. 10.97.0.0/16.
        let subnet_octet = 92 + 2 * variant + u8::from(side.which == Impl::Reference);
        let network = format!("benchptp{variant}-{}", side.label());
        let dir = sandbox.data_dir(&format!("ptp{variant}-{}", side.label()))?;
        let state = sandbox.run_dir(&format!("ptp{variant}-{}", side.label()))?;
        let ipam_dir = dir.join("ipam");
        let ptp_conf = json!({
            // What kindnetd writes, plus our state directory.
            "type": "ptp",
            "ipMasq": false,
            "mtu": 1500,
            "dataDir": path_str(&state.join("ptp")),
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&ipam_dir),
                "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{"subnet": format!("10.{subnet_octet}.0.0/16")}]],
            },
        });
        let portmap_conf = self.portmap.then(|| {
            json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "dataDir": path_str(&state.join("portmap")),
            })
        });
        let mut instance = PtpInstance {
            host: sandbox.own_host()?,
            network: network.clone(),
            ptp_conf,
            portmap_conf,
            side: side.clone(),
            subnet_octet,
            store: ipam_dir.join(&network),
            pods: self.pods,
            domain: 50 + 2 * u64::from(variant),
            netns: sandbox.container_netns()?,
            others: Vec::new(),
        };
        // Forwarding, the gateway's routes and the rule structure exist before the first
        // measured call, as on a node that has run pods before.
        let warm = container_id(instance.domain, usize::MAX);
        let first = instance.add(&warm, None, HOST_PORT)?;
        instance.del(&warm, None, HOST_PORT, &first)?;
        settle(&instance.host, &instance.netns, side.label())?;
        if self.pods > 0 {
            instance.populate(sandbox)?;
        }
        instance.check_counts()?;
        Ok(Box::new(instance))
    }
}

struct PtpInstance {
    // Field order is drop order: the host netns first (its veths, routes and rules go with
    // it), then the container netns.
    host: HostNs,
    network: String,
    ptp_conf: Value,
    /// Set in the kind chain.
    portmap_conf: Option<Value>,
    side: Side,
    /// The network is 10.<subnet_octet>.0.0/16.
    subnet_octet: u8,
    /// host-local's directory of this network.
    store: PathBuf,
    pods: usize,
    /// Container IDs: `domain` for the population, `domain + 1` for the measured ones.
    domain: u64,
    /// The measured pod's netns (reused: each iteration's DEL empties it).
    netns: Netns,
    /// The netns of the pods already on the node.
    others: Vec<Netns>,
}

impl PtpInstance {
    /// The list as libcni hands it to the plugins for a pod mapping `port` (in the kind
    /// chain, portmap gets its capability argument as `runtimeConfig`).
    fn chain(&self, port: u16) -> Result<Chain> {
        let mut plugins = vec![self.ptp_conf.clone()];
        if let Some(conf) = &self.portmap_conf {
            let mut portmap = conf.clone();
            portmap["runtimeConfig"] = json!({
                "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]
            });
            plugins.push(portmap);
        }
        Chain::new(&self.network, CNI_VERSION, plugins)
    }

    /// The call for pod `id` in the measured netns (`None`) or `others[k]`.
    fn invocation(&self, id: &str, netns: Option<usize>) -> Result<Invocation> {
        let netns = match netns {
            None => &self.netns,
            Some(k) => self
                .others
                .get(k)
                .ok_or_else(|| Error::msg(format!("no pod netns {k}")))?,
        };
        Ok(pod_invocation(id, netns))
    }

    /// ADD, checked: the result must give the pod an address of the network.
    fn add(&self, id: &str, netns: Option<usize>, port: u16) -> Result<ChainRun> {
        let inv = self.invocation(id, netns)?;
        let run = self
            .chain(port)?
            .add(&self.side, &inv, Some(self.host.enter()))?;
        run.expect_address_in(self.subnet_octet, &format!("{} ptp ADD", self.side.label()))
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

    /// `pods` pods, each in a netns of its own with a host port of its own.
    fn populate(&mut self, sandbox: &Sandbox) -> Result<()> {
        let started = Instant::now();
        self.others = sandbox.container_netns_batch(self.pods)?;
        for k in 0..self.pods {
            signals::check()?;
            let port = population_port(k)?;
            self.add(&container_id(self.domain, k), Some(k), port)
                .with_context(|| format!("pre-populating {}'s node", self.side.label()))?;
        }
        eprintln!(
            "  {}: {} pods on the node in {:.1} s",
            self.side.label(),
            self.pods,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The node holds exactly `pods` pods: host ends of veth pairs, addresses in host-local's
    /// store and, in the kind chain, DNAT targets in the network (elements of our map, or the
    /// reference's DNAT rules).
    fn check_counts(&self) -> Result<()> {
        let host = self.host.netns().name();
        let veths = run_text("ip", &["-n", host, "-o", "link", "show", "type", "veth"])?
            .lines()
            .count();
        let addresses = addresses_in(&self.store)?;
        let mut problems = Vec::new();
        if veths != self.pods {
            problems.push(format!("{veths} veths in the host netns"));
        }
        if addresses != self.pods {
            problems.push(format!("{addresses} addresses in {}", self.store.display()));
        }
        if self.portmap_conf.is_some() {
            let mapped = self.mapped()?;
            if mapped != self.pods {
                problems.push(format!("{mapped} port mappings"));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::msg(format!(
            "{}: expected {} pods on the node, found {}",
            self.side.label(),
            self.pods,
            problems.join(", ")
        )))
    }

    /// How many DNAT targets in the network the node's port mappings have.
    fn mapped(&self) -> Result<usize> {
        dnat_targets(self.host.netns().name(), self.side.which, self.subnet_octet)
    }
}

impl Instance for PtpInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(self.domain + 1, i);
        let add = self.add(&id, None, HOST_PORT)?;
        let del = self.del(&id, None, HOST_PORT, &add)?;
        settle(&self.host, &self.netns, self.side.label())?;
        let mut durations = vec![add.total(), del.total()];
        if self.portmap_conf.is_some() {
            durations.push(portmap_step(&add)?);
            durations.push(portmap_step(&del)?);
        }
        Ok(durations)
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.check_counts()
    }
}

fn population_port(k: usize) -> Result<u16> {
    u16::try_from(k)
        .ok()
        .and_then(|k| FIRST_PORT.checked_add(k))
        .ok_or_else(|| Error::msg(format!("no host port left for pod {k}")))
}

/// The time of the portmap process in a run of the list.
fn portmap_step(run: &ChainRun) -> Result<Duration> {
    run.steps
        .iter()
        .find(|(ty, _)| ty == "portmap")
        .map(|(_, d)| *d)
        .ok_or_else(|| Error::msg("the list ran no portmap"))
}
