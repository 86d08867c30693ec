//! The macvlan plugin: a macvlan child of a master link, created directly in the container's
//! network namespace, with the reference plugin's keys ([`macvlan_config`]); the machinery
//! is the child-link crate's, shared with ipvlan.

mod config;

use child_link::{add, check, del, gc, status};
use cni::{CniResult, Error, Plugin, Request};

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

#[cfg(test)]
mod tests;
