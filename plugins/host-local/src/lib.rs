//! The host-local IPAM plugin: addresses from configured ranges, kept in a file-locked store
//! on the node that the reference host-local can read and write too.

mod config;
mod resolv;

use std::collections::HashSet;
use std::net::IpAddr;

use cni::{Attachment, CniResult, Command, Error, IpConfig, Plugin, Request};
use ipam_store::{AttachmentKey, NetnsRecord, Store, StoreError, allocate};

pub use config::{Config, DEFAULT_DATA_DIR};

pub struct HostLocal;

impl Plugin for HostLocal {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let config = Config::from_request(req)?;
        let dns = match &config.resolv_conf {
            Some(path) => resolv::read_resolv_conf(path)?,
            None => cni::Dns::default(),
        };
        let store = Store::open(&config.data_dir, &config.network).map_err(store_error)?;
        let locked = store.lock().map_err(store_error)?;
        let got = allocate(
            &locked,
            &config.range_sets,
            &key_of(req),
            &NetnsRecord {
                path: req.netns().to_string(),
                id: plugin_kit::netns_identity(req.netns()),
            },
            &config.requested,
        )
        .map_err(store_error)?;
        let ips = got
            .into_iter()
            .map(|a| IpConfig {
                address: a.address,
                gateway: Some(a.gateway),
                interface: None,
            })
            .collect();
        Ok(CniResult {
            ips,
            routes: config.routes,
            dns,
            ..CniResult::default()
        })
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        let data_dir = Config::data_dir_of(req);
        if !data_dir.join(&req.conf.name).is_dir() {
            return Ok(());
        }
        let store = Store::open(&data_dir, &req.conf.name).map_err(store_error)?;
        let released = store.release(&key_of(req)).map_err(store_error)?;
        log::info!(
            "released {released:?} of {}/{}",
            req.container_id(),
            req.ifname()
        );
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let config = Config::from_request(req)?;
        let key = key_of(req);
        let missing = || {
            Error::check_failed(format!(
                "no address is allocated to {}/{} in network {}",
                key.container_id, key.ifname, config.network
            ))
        };
        if !config.data_dir.join(&config.network).is_dir() {
            return Err(missing());
        }
        let store = Store::open(&config.data_dir, &config.network).map_err(store_error)?;
        let owned: HashSet<IpAddr> = store
            .lock()
            .and_then(|locked| locked.owned_by(&key))
            .map_err(store_error)?
            .into_iter()
            .collect();
        if owned.is_empty() {
            return Err(missing());
        }
        let expected = expected_addresses(req, &config);
        if expected.is_empty() {
            // No prevResult to compare with: one address per range set is what ADD made.
            if let Some(set) = config
                .range_sets
                .iter()
                .find(|s| owned.iter().filter(|ip| s.contains(**ip)).count() != 1)
            {
                return Err(Error::check_failed(format!(
                    "{}/{} does not hold exactly one address of range set {set}",
                    key.container_id, key.ifname
                )));
            }
        } else if owned != expected {
            return Err(Error::check_failed(format!(
                "{}/{} holds {:?} but its result lists {:?}",
                key.container_id,
                key.ifname,
                sorted(&owned),
                sorted(&expected)
            )));
        }
        Ok(())
    }

    /// Ready when the store is writable and no range set is exhausted.
    fn status(&self, req: &Request) -> Result<(), Error> {
        let config = Config::from_request(req)?;
        let unavailable = |e: StoreError| Error::not_available(format!("store unusable: {e}"));
        let store = Store::open(&config.data_dir, &config.network).map_err(unavailable)?;
        let locked = store.lock().map_err(unavailable)?;
        locked.probe_writable().map_err(unavailable)?;
        let allocated = locked.allocated_addresses().map_err(unavailable)?;
        for set in &config.range_sets {
            let used = allocated.iter().filter(|ip| set.contains(**ip)).count() as u128;
            if used >= set.capacity() {
                return Err(Error::not_available(format!(
                    "range set {set} is exhausted: all {used} addresses are allocated"
                )));
            }
        }
        Ok(())
    }

    /// Releases every allocation not in `cni.dev/valid-attachments`. Without that key (as
    /// `cnitool gc` sends it) only allocations whose recorded netns is gone go: its path no
    /// longer exists or names another netns.
    fn gc(&self, req: &Request) -> Result<(), Error> {
        let data_dir = Config::data_dir_of(req);
        if !data_dir.join(&req.conf.name).is_dir() {
            return Ok(());
        }
        let store = Store::open(&data_dir, &req.conf.name).map_err(store_error)?;
        let locked = store.lock().map_err(store_error)?;
        let released = match &req.conf.valid_attachments {
            Some(valid) => {
                let valid: HashSet<&Attachment> = valid.iter().collect();
                locked
                    .retain(|a| is_valid(&valid, &a.owner))
                    .map_err(store_error)?
                    .into_iter()
                    .map(|a| a.ip)
                    .collect::<Vec<_>>()
            }
            None => {
                let mut released = Vec::new();
                for key in locked
                    .attachments_with_dead_netns(|n| plugin_kit::netns_is_gone(&n.path, &n.id))
                    .map_err(store_error)?
                {
                    released.extend(locked.release(&key).map_err(store_error)?);
                }
                released
            }
        };
        log::info!("gc of {} released {released:?}", req.conf.name);
        Ok(())
    }
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add | Command::Status => Config::from_request(req).map(drop),
        Command::Check => {
            let config = Config::from_request(req)?;
            expected_addresses(req, &config);
            Ok(())
        }
        // Only name and dataDir, so that ranges that no longer validate can be released.
        Command::Del | Command::Gc => {
            Config::data_dir_of(req);
            Ok(())
        }
        Command::Version => Ok(()),
    }
}

fn key_of(req: &Request) -> AttachmentKey {
    AttachmentKey::new(req.container_id(), req.ifname())
}

/// An allocation is valid if its attachment is listed; old ID-only files match any ifname.
fn is_valid(valid: &HashSet<&Attachment>, owner: &AttachmentKey) -> bool {
    valid.iter().any(|a| {
        a.container_id.trim() == owner.container_id
            && (owner.ifname.is_empty() || a.ifname == owner.ifname)
    })
}

/// The prevResult's addresses that fall in this config's ranges.
fn expected_addresses(req: &Request, config: &Config) -> HashSet<IpAddr> {
    req.conf
        .prev_result
        .iter()
        .flat_map(|r| r.ips.iter())
        .map(|ip| ip.address.ip())
        .filter(|ip| config.range_sets.iter().any(|s| s.contains(*ip)))
        .collect()
}

fn sorted(ips: &HashSet<IpAddr>) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = ips.iter().copied().collect();
    v.sort();
    v
}

/// Store errors as CNI errors with this suite's codes.
fn store_error(e: StoreError) -> Error {
    use cni::error::code;
    let code = match &e {
        StoreError::Io { .. } => code::IO_FAILURE,
        StoreError::LockTimeout { .. } => code::TRY_AGAIN_LATER,
        StoreError::UnsafePath(_) => code::INVALID_NETWORK_CONFIG,
        StoreError::Unavailable { .. } => code::ADDRESS_UNAVAILABLE,
        StoreError::Exhausted { .. } => code::RANGE_EXHAUSTED,
        StoreError::AlreadyAllocated { .. } => code::ALREADY_ALLOCATED,
    };
    Error::new(code, e.to_string())
}
