//! The sidecar's view of the store: one immutable [`NetView`] per network with its names
//! indexed, gathered in a [`Snapshot`] that queries read without locks. A change of one
//! attachment rebuilds only its network's view.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::store::Attachment;

/// One network's records, indexed for queries.
#[derive(Debug, Default)]
pub struct NetView {
    pub name: String,
    /// Lowercase, without a trailing dot.
    pub domain: String,
    pub subnets: Vec<IpNetwork>,
    pub gateways: Vec<IpAddr>,
    /// Lowercase name → the addresses of every attachment answering to it.
    by_name: HashMap<String, Vec<IpAddr>>,
    /// Address → (container ID, PTR target) of the attachments holding it.
    by_ip: HashMap<IpAddr, Vec<(Arc<str>, String)>>,
    containers: HashSet<Arc<str>>,
}

impl NetView {
    pub fn build<'a>(name: &str, attachments: impl IntoIterator<Item = &'a Attachment>) -> NetView {
        let mut view = NetView {
            name: name.to_string(),
            ..NetView::default()
        };
        let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
        for a in attachments {
            *domains.entry(a.domain.as_str()).or_default() += 1;
            let cid: Arc<str> = Arc::from(a.container_id.as_str());
            view.containers.insert(cid.clone());
            let names = a.names();
            for ip in &a.ips {
                let subnet = IpNetwork::new(ip.network(), ip.prefix()).unwrap_or(*ip);
                if !view.subnets.contains(&subnet) {
                    view.subnets.push(subnet);
                }
            }
            for gw in &a.gateways {
                if !view.gateways.contains(gw) {
                    view.gateways.push(*gw);
                }
            }
            let domain = a.domain.trim_end_matches('.').to_ascii_lowercase();
            for n in &names {
                let Some(key) = answering_name(n, &domain) else {
                    log::debug!("{n}: a name of several labels on a network without a domain");
                    continue;
                };
                let addrs = view.by_name.entry(key).or_default();
                for ip in &a.ips {
                    if !addrs.contains(&ip.ip()) {
                        addrs.push(ip.ip());
                    }
                }
            }
            // PTR answers the container's own name (the short ID when it has none).
            let primary = names.first().cloned().unwrap_or_default();
            for ip in &a.ips {
                let target = format!("{}.", qualified(&primary, &domain));
                view.by_ip
                    .entry(ip.ip())
                    .or_default()
                    .push((cid.clone(), target));
            }
        }
        // Every attachment carries its network's domain; should they differ (a config changed
        // between ADDs), the most common one wins.
        view.domain = domains
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        view
    }

    /// Whether `src` is an address of this network (in one of its subnets).
    pub fn contains(&self, src: IpAddr) -> bool {
        self.subnets.iter().any(|s| s.contains(src))
    }

    /// The addresses of `name` (lowercase, no trailing dot) as a bare name or under the
    /// domain; `None` when the name is not ours.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        if let Some(ips) = self.by_name.get(name) {
            return Some(ips);
        }
        let bare = self.strip_domain(name)?;
        self.by_name.get(bare).map(Vec::as_slice)
    }

    /// `name` without `.<domain>`, when it ends so.
    fn strip_domain<'n>(&self, name: &'n str) -> Option<&'n str> {
        if self.domain.is_empty() {
            return None;
        }
        let bare = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        (!bare.is_empty()).then_some(bare)
    }

    /// Whether `name` is the domain or under it.
    pub fn in_domain(&self, name: &str) -> bool {
        !self.domain.is_empty() && (name == self.domain || self.strip_domain(name).is_some())
    }

    /// The PTR targets of `ip`.
    pub fn ptr(&self, ip: IpAddr) -> impl Iterator<Item = &str> {
        self.by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|(_, t)| t.as_str())
    }

    pub fn has_container(&self, cid: &str) -> bool {
        self.containers.contains(cid)
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

/// The key `name` answers to in [`NetView::lookup`]. A single label as it is: asked bare or
/// under the domain. A name of several labels only under the network's domain: a container
/// or alias called `registry-1.docker.io` must not take over the real name for everybody on
/// the network (Docker and aardvark-dns answer such names bare; we do not). `None` when the
/// network has no domain to put it under.
fn answering_name(name: &str, domain: &str) -> Option<String> {
    if !name.contains('.') {
        return Some(name.to_string());
    }
    (!domain.is_empty()).then(|| qualified(name, domain))
}

/// `name` under `domain`, unless it is there already or there is no domain.
fn qualified(name: &str, domain: &str) -> String {
    let under = name
        .strip_suffix(domain)
        .is_some_and(|rest| rest.ends_with('.'));
    if domain.is_empty() || under {
        name.to_string()
    } else {
        format!("{name}.{domain}")
    }
}

/// Every network's view, as one value that queries share.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub networks: Vec<Arc<NetView>>,
}

impl Snapshot {
    /// The networks whose records `src` may see: those it is an address of, plus every
    /// other network of the containers holding `src` (a container on two networks resolves
    /// both, whichever gateway it asks).
    pub fn view(&self, src: IpAddr) -> Vec<&NetView> {
        let mut view: Vec<&NetView> = Vec::new();
        let mut owners: Vec<&str> = Vec::new();
        for n in &self.networks {
            if n.contains(src) {
                view.push(n);
                if let Some(held) = n.by_ip.get(&src) {
                    owners.extend(held.iter().map(|(cid, _)| &**cid));
                }
            }
        }
        if !owners.is_empty() {
            for n in &self.networks {
                if !view.iter().any(|v| std::ptr::eq(*v, &**n))
                    && owners.iter().any(|cid| n.has_container(cid))
                {
                    view.push(n);
                }
            }
        }
        view
    }

    /// The one network `src` may see, when [`Snapshot::view`] is exactly that network (the
    /// common case: a container on one network); `None` when it is empty or holds several.
    /// Decides as `view` does, without allocating: the UDP fast path's isolation check.
    pub fn sole_view(&self, src: IpAddr) -> Option<&NetView> {
        let mut found: Option<&NetView> = None;
        for n in &self.networks {
            if n.contains(src) {
                if found.is_some() {
                    return None;
                }
                found = Some(n);
            }
        }
        let net = found?;
        if let Some(held) = net.by_ip.get(&src) {
            for n in &self.networks {
                if !std::ptr::eq(&**n, net) && held.iter().any(|(cid, _)| n.has_container(cid)) {
                    return None;
                }
            }
        }
        Some(net)
    }

    /// Every gateway address of every network: where the sidecar listens.
    pub fn listen_addrs(&self) -> BTreeSet<IpAddr> {
        self.networks
            .iter()
            .flat_map(|n| n.gateways.iter().copied())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

/// The attachments of every network, as the daemon keeps them between changes.
#[derive(Debug, Default)]
pub struct Records {
    networks: BTreeMap<String, BTreeMap<String, Attachment>>,
    views: BTreeMap<String, Arc<NetView>>,
}

impl Records {
    /// Replaces a whole network's attachments (a load or reload).
    pub fn set_network(&mut self, network: &str, attachments: Vec<Attachment>) {
        let map: BTreeMap<String, Attachment> =
            attachments.into_iter().map(|a| (a.key(), a)).collect();
        self.networks.insert(network.to_string(), map);
        self.rebuild(network);
    }

    /// Sets (`Some`) or removes (`None`) one attachment.
    pub fn update(&mut self, network: &str, key: &str, attachment: Option<Attachment>) {
        let map = self.networks.entry(network.to_string()).or_default();
        match attachment {
            Some(a) => {
                map.insert(key.to_string(), a);
            }
            None => {
                map.remove(key);
            }
        }
        self.rebuild(network);
    }

    /// Drops networks that are not in `keep`.
    pub fn retain_networks(&mut self, keep: &BTreeSet<String>) {
        self.networks.retain(|n, _| keep.contains(n));
        self.views.retain(|n, _| keep.contains(n));
    }

    fn rebuild(&mut self, network: &str) {
        match self.networks.get(network) {
            Some(map) if !map.is_empty() => {
                self.views.insert(
                    network.to_string(),
                    Arc::new(NetView::build(network, map.values())),
                );
            }
            _ => {
                self.networks.remove(network);
                self.views.remove(network);
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            networks: self.views.values().cloned().collect(),
        }
    }

    pub fn attachment_count(&self) -> usize {
        self.networks.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn attachment(cid: &str, name: &str, aliases: &[&str], ips: &[&str]) -> Attachment {
        Attachment {
            container_id: cid.into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some(name.into()),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            gateways: ips
                .iter()
                .map(|s| {
                    let n: IpNetwork = s.parse().unwrap();
                    match n.network() {
                        IpAddr::V4(v) => IpAddr::V4((u32::from(v) + 1).into()),
                        IpAddr::V6(v) => IpAddr::V6((u128::from(v) + 1).into()),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn names_aliases_short_ids_and_domain() {
        let mut r = Records::default();
        r.set_network(
            "a",
            vec![
                attachment("aaaaaaaaaaaaaaaa", "Web", &["lb"], &["10.1.0.2/24"]),
                attachment(
                    "bbbbbbbbbbbbbbbb",
                    "api",
                    &["lb"],
                    &["10.1.0.3/24", "fd01::3/64"],
                ),
            ],
        );
        let snap = r.snapshot();
        let v = snap.view("10.1.0.9".parse().unwrap());
        assert_eq!(v.len(), 1);
        let n = v[0];
        assert_eq!(n.lookup("web"), Some(&["10.1.0.2".parse().unwrap()][..]));
        assert_eq!(n.lookup("web.dns.podman").map(<[IpAddr]>::len), Some(1));
        assert_eq!(n.lookup("aaaaaaaaaaaa").map(<[IpAddr]>::len), Some(1));
        assert_eq!(n.lookup("lb").map(<[IpAddr]>::len), Some(3));
        assert_eq!(n.lookup("api").map(<[IpAddr]>::len), Some(2));
        assert_eq!(n.lookup("nope"), None);
        assert!(n.in_domain("nope.dns.podman"));
        assert!(!n.in_domain("example.com"));
        assert_eq!(
            n.ptr("10.1.0.2".parse().unwrap()).collect::<Vec<_>>(),
            vec!["web.dns.podman."]
        );
        assert_eq!(
            snap.listen_addrs().into_iter().collect::<Vec<_>>(),
            vec![
                "10.1.0.1".parse::<IpAddr>().unwrap(),
                "fd01::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn names_of_several_labels_answer_only_under_the_domain() {
        let mut r = Records::default();
        r.set_network(
            "a",
            vec![attachment(
                "aaaaaaaaaaaaaaaa",
                "registry-1.docker.io",
                &["db", "api.internal", "web.dns.podman"],
                &["10.1.0.2/24"],
            )],
        );
        let snap = r.snapshot();
        let n = snap.view("10.1.0.9".parse().unwrap())[0];
        let found = |name: &str| n.lookup(name).is_some();
        assert!(!found("registry-1.docker.io"));
        assert!(found("registry-1.docker.io.dns.podman"));
        assert!(!found("api.internal"));
        assert!(found("api.internal.dns.podman"));
        assert!(found("web.dns.podman"));
        assert!(found("db") && found("db.dns.podman"));
        assert_eq!(
            n.ptr("10.1.0.2".parse().unwrap()).collect::<Vec<_>>(),
            vec!["registry-1.docker.io.dns.podman."]
        );
        // Without a domain there is nowhere to put them.
        let mut bare = attachment("cccccccccccc", "x.example", &["y"], &["10.3.0.2/24"]);
        bare.domain = String::new();
        r.set_network("c", vec![bare]);
        let snap = r.snapshot();
        let c = snap.view("10.3.0.9".parse().unwrap())[0];
        assert!(c.lookup("x.example").is_none());
        assert!(c.lookup("y").is_some());
    }

    #[test]
    fn views_follow_the_asking_address() {
        let mut r = Records::default();
        r.set_network("a", vec![attachment("c1", "one", &[], &["10.1.0.2/24"])]);
        r.set_network(
            "b",
            vec![
                attachment("c2", "two", &[], &["10.2.0.2/24"]),
                attachment("c1", "one", &[], &["10.2.0.3/24"]),
            ],
        );
        let snap = r.snapshot();
        let names = |src: &str| -> Vec<String> {
            snap.view(src.parse().unwrap())
                .iter()
                .map(|n| n.name.clone())
                .collect()
        };
        assert_eq!(names("10.1.0.2"), vec!["a", "b"]);
        assert_eq!(names("10.2.0.3"), vec!["b", "a"]);
        assert_eq!(names("10.2.0.2"), vec!["b"]);
        assert_eq!(names("10.1.0.77"), vec!["a"]);
        assert!(names("192.168.1.1").is_empty());
        // The fast path's check agrees: one network exactly, or none.
        for src in [
            "10.1.0.2",
            "10.2.0.3",
            "10.2.0.2",
            "10.1.0.77",
            "192.168.1.1",
        ] {
            let ip: IpAddr = src.parse().unwrap();
            let view = snap.view(ip);
            let sole = snap.sole_view(ip).map(|n| n.name.clone());
            let expected = (view.len() == 1).then(|| view[0].name.clone());
            assert_eq!(sole, expected, "{src}");
        }
        r.update("b", "c2@eth0", None);
        r.update("b", "c1@eth0", None);
        assert_eq!(r.snapshot().networks.len(), 1);
        assert_eq!(r.attachment_count(), 1);
    }
}
