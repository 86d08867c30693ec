//! A test fixture plugin: delegates to its `ipam` plugin through the `cni` crate exactly as
//! the main plugins do, and with `"failAfterIpam": true` fails after the IPAM ADD, so tests
//! can prove that a failed ADD releases its allocation.

use cni::delegate::{self, IpamLease};
use cni::{CniResult, Command, Error, Plugin, Request};

struct Delegator;

fn ipam_type(req: &Request) -> Result<&str, Error> {
    req.conf
        .ipam_type
        .as_deref()
        .ok_or_else(|| Error::invalid_config("missing ipam.type"))
}

impl Plugin for Delegator {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let (lease, result) = IpamLease::acquire(ipam_type(req)?, req)?;
        if req.conf.raw["failAfterIpam"] == true {
            return Err(Error::internal("failing on purpose after the IPAM ADD"));
        }
        lease.keep();
        Ok(result)
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        delegate::run(ipam_type(req)?, Command::Del, req)
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        delegate::run(ipam_type(req)?, Command::Check, req)
    }
    fn status(&self, req: &Request) -> Result<(), Error> {
        delegate::run(ipam_type(req)?, Command::Status, req)
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        delegate::run(ipam_type(req)?, Command::Gc, req)
    }
}

fn main() {
    cni::skel::run("cni-test-delegator", &Delegator);
}
