//! `VERSION` of one plugin: the cheapest call there is, i.e. the fixed cost of starting the
//! binary (podman sends it to every plugin before each operation).

use std::path::PathBuf;
use std::time::Duration;

use super::{CNI_VERSION, Instance, Row};
use crate::error::{Error, Result};
use crate::exec::{Invocation, exec_plugin};
use crate::sandbox::Sandbox;
use crate::side::Side;

pub struct Version {
    plugin: &'static str,
}

impl Version {
    pub fn new(plugin: &'static str) -> Version {
        Version { plugin }
    }
}

impl Row for Version {
    fn name(&self) -> String {
        format!("VERSION {}", self.plugin)
    }

    fn describe(&self) -> String {
        format!(
            "CNI_COMMAND=VERSION of {} with {{\"cniVersion\":\"{CNI_VERSION}\"}} on stdin (process start + exit)",
            self.plugin
        )
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec![self.plugin]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["VERSION"]
    }

    fn setup(&self, _sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        Ok(Box::new(VersionInstance {
            bin: side.bin(self.plugin),
            inv: Invocation::new("VERSION").cni_path(side.cni_path()),
            stdin: format!("{{\"cniVersion\":\"{CNI_VERSION}\"}}").into_bytes(),
        }))
    }
}

struct VersionInstance {
    bin: PathBuf,
    inv: Invocation,
    stdin: Vec<u8>,
}

impl Instance for VersionInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, _i: usize) -> Result<Vec<Duration>> {
        let out = exec_plugin(&self.bin, &self.inv, &self.stdin, None)?;
        let info = out.json()?;
        if !info
            .get("supportedVersions")
            .and_then(|v| v.as_array())
            .is_some_and(|v| v.iter().any(|v| v == CNI_VERSION))
        {
            return Err(Error::msg(format!(
                "{} VERSION does not list {CNI_VERSION}: {info}",
                self.bin.display()
            )));
        }
        Ok(vec![out.elapsed])
    }
}
