//! macvlan with host-local, run as a runtime runs it: a one-plugin list through [`Chain`]
//! (macvlan execs host-local itself through CNI_PATH), the plugin processes in a private host
//! netns, the container in a netns of its own, DEL with the ADD's result.
//!
//! Each implementation has a host netns of its own whose master is one end of a veth pair
//! (`m0`, this kernel has no dummy links), its own subnet and host-local `dataDir`.
//!
//! Our DEL returns once the link is emptied and renamed away, and leaves the kernel's
//! unregistration (tens of ms of RCU grace periods) to a child process. So that this work
//! never lands in the next measured call (of either implementation: they share the kernel's
//! RTNL lock), every iteration waits, untimed, until the container netns holds nothing but
//! `lo` before it ends.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CNI_VERSION, Derived, Instance, Params, Row, container_id};
use crate::chain::{Chain, ChainRun};
use crate::error::{Context, Error, Result};
use crate::exec::Invocation;
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side, path_str};

/// The table with the macvlan row added at the end.
pub fn register(
    _params: Params,
    (mut rows, derived): (Vec<Box<dyn Row>>, Vec<Derived>),
) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    rows.push(Box::new(Macvlan));
    (rows, derived)
}

pub struct Macvlan;

impl Row for Macvlan {
    fn name(&self) -> String {
        "macvlan+host-local".to_string()
    }

    fn describe(&self) -> String {
        "macvlan (bridge mode, master a veth end in the host netns) with host-local IPAM: ADD \
         then DEL of a fresh container in its own netns"
            .to_string()
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["macvlan", "host-local"]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL"]
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        // 10.90.0.0/16 for ours, 10.91.0.0/16 for the reference.
        let subnet_octet = 90 + u8::from(side.which == Impl::Reference);
        let network = format!("benchmv-{}", side.label());
        let dir = sandbox.data_dir(&format!("macvlan-{}", side.label()))?;
        let conf = json!({
            "type": "macvlan",
            "master": "m0",
            "mode": "bridge",
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&dir),
                "ranges": [[{"subnet": format!("10.{subnet_octet}.0.0/16")}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        });
        let host = sandbox.own_host()?;
        let name = host.netns().name().to_string();
        ip(&[
            "-n", &name, "link", "add", "m0", "type", "veth", "peer", "name", "m0p",
        ])?;
        ip(&["-n", &name, "link", "set", "m0", "up"])?;
        ip(&["-n", &name, "link", "set", "m0p", "up"])?;
        let instance = MacvlanInstance {
            host,
            chain: Chain::new(&network, CNI_VERSION, vec![conf])?,
            side: side.clone(),
            subnet_octet,
            store: dir.join(&network),
            netns: sandbox.container_netns()?,
        };
        // A first attachment before measuring, as on a node that has run containers before
        // (the macvlan port of the master exists only while it has macvlans, though).
        let id = container_id(20, usize::MAX);
        let first = instance.add(&id)?;
        instance.del(&id, &first)?;
        instance.settle()?;
        instance.check_empty()?;
        Ok(Box::new(instance))
    }
}

struct MacvlanInstance {
    // Field order is drop order: the host netns (and its master) first.
    host: HostNs,
    chain: Chain,
    side: Side,
    /// The network is 10.<subnet_octet>.0.0/16.
    subnet_octet: u8,
    /// host-local's directory of this network.
    store: PathBuf,
    /// The container's netns (reused: each iteration's DEL empties it).
    netns: Netns,
}

impl MacvlanInstance {
    fn invocation(&self, id: &str) -> Invocation {
        Invocation::new("ADD")
            .container(id)
            .netns(self.netns.path())
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{}",
                &id[..8.min(id.len())]
            ))
    }

    /// ADD, checked: the result must give the container an address of the network.
    fn add(&self, id: &str) -> Result<ChainRun> {
        let run = self
            .chain
            .add(&self.side, &self.invocation(id), Some(self.host.enter()))?;
        run.expect_address_in(
            self.subnet_octet,
            &format!("{} macvlan ADD", self.side.label()),
        )
    }

    fn del(&self, id: &str, add: &ChainRun) -> Result<ChainRun> {
        self.chain.del(
            &self.side,
            &self.invocation(id),
            add.result.as_ref(),
            Some(self.host.enter()),
        )
    }

    /// Waits until the container netns holds nothing but `lo` (see the module doc).
    fn settle(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let out = Command::new("ip")
                .args(["-n", self.netns.name(), "-o", "link", "show"])
                .output()
                .map_err(|e| Error::msg(format!("cannot run ip: {e}")))?;
            let links = String::from_utf8_lossy(&out.stdout).lines().count();
            if out.status.success() && links == 1 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::msg(format!(
                    "{}: the container netns still has {links} links 2 s after DEL",
                    self.side.label()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// host-local's store holds no address of the network.
    fn check_empty(&self) -> Result<()> {
        let left = std::fs::read_dir(&self.store)
            .with_context(|| format!("list {}", self.store.display()))?
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
            })
            .count();
        if left == 0 {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "{}: {left} addresses left in {}",
                self.side.label(),
                self.store.display()
            )))
        }
    }
}

impl Instance for MacvlanInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(21, i);
        let add = self.add(&id)?;
        let del = self.del(&id, &add)?;
        self.settle()?;
        Ok(vec![add.total(), del.total()])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.check_empty()
    }
}

/// Runs `ip ARGS` from the machine's namespaces (with `-n` into the bench's own).
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("cannot run ip: {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
