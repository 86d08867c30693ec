//! The floor: `/bin/true` (a trivial dynamically linked C program) exec'd through the same
//! path, with the same environment and stdin, in both columns. It is what starting and reaping
//! any process costs on this machine, under every other row; both columns should agree (their
//! ratio shows the noise between the two interleaved series).

use std::path::PathBuf;
use std::time::Duration;

use super::{CNI_VERSION, Instance, Row};
use crate::error::Result;
use crate::exec::{Invocation, exec_plugin};
use crate::sandbox::Sandbox;
use crate::side::Side;

const TRUE: &str = "/bin/true";

pub struct Floor;

impl Row for Floor {
    fn name(&self) -> String {
        format!("exec floor ({TRUE})")
    }

    fn describe(&self) -> String {
        format!("{TRUE} in both columns: the cost of starting any process here")
    }

    fn plugins(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["exec"]
    }

    fn setup(&self, _sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        Ok(Box::new(FloorInstance {
            bin: PathBuf::from(TRUE),
            inv: Invocation::new("VERSION").cni_path(side.cni_path()),
            stdin: format!("{{\"cniVersion\":\"{CNI_VERSION}\"}}").into_bytes(),
        }))
    }
}

struct FloorInstance {
    bin: PathBuf,
    inv: Invocation,
    stdin: Vec<u8>,
}

impl Instance for FloorInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, _i: usize) -> Result<Vec<Duration>> {
        Ok(vec![
            exec_plugin(&self.bin, &self.inv, &self.stdin, None)?.elapsed,
        ])
    }
}
