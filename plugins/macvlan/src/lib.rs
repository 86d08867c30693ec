//! The macvlan plugin: a macvlan child of a master link, created directly in the container's
//! network namespace, with the reference plugin's keys ([`macvlan_config`]); the machinery
//! is the child-link crate's, shared with ipvlan.

mod config;

use child_link::{add, check, del, gc, status};
use cni::{CniResult, Command, Error, Plugin, Request};

pub use config::macvlan_config;

pub struct Macvlan;

impl Plugin for Macvlan {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        add(req, &macvlan_config(req)?)
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        del(req, "macvlan")
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        check(req, &macvlan_config(req)?)
    }
    fn status(&self, req: &Request) -> Result<(), Error> {
        status(req, &macvlan_config(req)?)
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        gc(req)
    }
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add | Command::Status => macvlan_config(req).map(drop),
        Command::Check => {
            macvlan_config(req)?;
            plugin_kit::required_prev_result(req).map(drop)
        }
        // DEL and GC read `ipam.type` alone, so that a config that no longer validates
        // still cleans up.
        Command::Del | Command::Gc | Command::Version => Ok(()),
    }
}

#[cfg(test)]
mod tests;
