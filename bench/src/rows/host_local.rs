//! host-local on its own, as a delegating plugin calls it: ADD then DEL of a fresh container,
//! in a store that already holds `allocations` addresses of the same network (made by as many
//! ADDs with distinct container IDs before measuring), so the count stays the same throughout.
//! Each implementation has its own store in the sandbox (never /var/lib/cni).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::{CNI_VERSION, Instance, Row, container_id};
use crate::error::{Context, Error, Result};
use crate::exec::{Invocation, Timed, exec_plugin};
use crate::sandbox::{Netns, Sandbox};
use crate::side::{Side, path_str};
use crate::signals;

const NETWORK: &str = "benchnet";
const SUBNET: &str = "10.77.0.0/16";

pub struct HostLocal {
    allocations: usize,
}

impl HostLocal {
    pub fn new(allocations: usize) -> HostLocal {
        HostLocal { allocations }
    }
}

impl Row for HostLocal {
    fn name(&self) -> String {
        if self.allocations == 0 {
            "host-local, empty store".to_string()
        } else {
            format!("host-local, {} allocations", self.allocations)
        }
    }

    fn describe(&self) -> String {
        format!(
            "host-local ADD then DEL of a fresh container in {SUBNET} with {} other addresses allocated",
            self.allocations
        )
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["host-local"]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL", "ADD+DEL"]
    }

    /// The empty and the full store are measured together: the growth line compares them.
    fn group(&self) -> Option<&'static str> {
        Some("host-local")
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let data_dir =
            sandbox.data_dir(&format!("host-local-{}-{}", self.allocations, side.label()))?;
        let conf = json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK,
            // What a delegating plugin forwards: its own config, whose type is its own.
            "type": "bridge",
            "bridge": "cni0",
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&data_dir),
                "ranges": [[{"subnet": SUBNET}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        });
        // host-local never enters the netns, but a runtime always passes one.
        let netns = sandbox.container_netns()?;
        let instance = HostLocalInstance {
            bin: side.bin("host-local"),
            cni_path: side.cni_path(),
            stdin: serde_json::to_vec(&conf)?,
            store: data_dir.join(NETWORK),
            allocations: self.allocations,
            netns,
        };
        for k in 0..self.allocations {
            signals::check()?;
            instance
                .add(&container_id(1, k))
                .with_context(|| format!("pre-populating {} store", side.label()))?;
        }
        instance.check_count()?;
        Ok(Box::new(instance))
    }
}

struct HostLocalInstance {
    bin: PathBuf,
    cni_path: String,
    stdin: Vec<u8>,
    store: PathBuf,
    allocations: usize,
    netns: Netns,
}

impl HostLocalInstance {
    fn invocation(&self, command: &str, id: &str) -> Invocation {
        Invocation::new(command)
            .container(id)
            .netns(self.netns.path())
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{}",
                &id[..8.min(id.len())]
            ))
            .cni_path(&self.cni_path)
    }

    fn add(&self, id: &str) -> Result<Timed> {
        let out = exec_plugin(&self.bin, &self.invocation("ADD", id), &self.stdin, None)?;
        let result = out.json()?;
        let has_ip = result
            .get("ips")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
        if !has_ip {
            return Err(Error::msg(format!(
                "{} ADD returned no address: {result}",
                self.bin.display()
            )));
        }
        Ok(out)
    }

    fn del(&self, id: &str) -> Result<Timed> {
        exec_plugin(&self.bin, &self.invocation("DEL", id), &self.stdin, None)
    }

    /// The store holds exactly `allocations` addresses (one file per address, named by it).
    fn check_count(&self) -> Result<()> {
        let count = if self.allocations == 0 && !self.store.exists() {
            0
        } else {
            std::fs::read_dir(&self.store)
                .with_context(|| format!("list {}", self.store.display()))?
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
                })
                .count()
        };
        if count != self.allocations {
            return Err(Error::msg(format!(
                "{} holds {count} addresses, expected {}",
                self.store.display(),
                self.allocations
            )));
        }
        Ok(())
    }
}

impl Instance for HostLocalInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(2, i);
        let add = self.add(&id)?.elapsed;
        let del = self.del(&id)?.elapsed;
        Ok(vec![add, del, add + del])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.check_count()
    }
}
