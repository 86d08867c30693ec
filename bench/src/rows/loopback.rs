//! loopback ADD and DEL, run as containerd runs it: a one-plugin network on `lo`, the plugin
//! process in the private host namespace, the container's own namespace as CNI_NETNS. Each
//! implementation has its own container namespace; ADD sets `lo` up, DEL sets it down again.

use std::time::Duration;

use serde_json::json;

use super::{CNI_VERSION, Instance, Row};
use crate::chain::Chain;
use crate::error::Result;
use crate::exec::Invocation;
use crate::sandbox::{Netns, Sandbox};
use crate::side::Side;

pub struct Loopback;

impl Row for Loopback {
    fn name(&self) -> String {
        "loopback".to_string()
    }

    fn describe(&self) -> String {
        "loopback ADD then DEL (lo up, lo down) in a container netns, run from the private host netns"
            .to_string()
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["loopback"]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL"]
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        // Make sure the host exists before measuring (it is created on first use).
        sandbox.host()?;
        Ok(Box::new(LoopbackInstance {
            chain: Chain::new(
                "cni-loopback",
                CNI_VERSION,
                vec![json!({"type": "loopback"})],
            )?,
            side: side.clone(),
            netns: sandbox.container_netns()?,
        }))
    }
}

struct LoopbackInstance {
    chain: Chain,
    side: Side,
    netns: Netns,
}

impl Instance for LoopbackInstance {
    fn iterate(&mut self, sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let host = sandbox.host()?.enter();
        let inv = Invocation::new("ADD")
            .container(super::container_id(3, i))
            .netns(self.netns.path())
            .ifname("lo");
        let add = self.chain.add(&self.side, &inv, Some(host))?;
        let del = self
            .chain
            .del(&self.side, &inv, add.result.as_ref(), Some(host))?;
        Ok(vec![add.total(), del.total()])
    }
}
