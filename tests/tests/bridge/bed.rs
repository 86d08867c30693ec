//! The test bed: a sandbox host with a plugin directory, the "outside" behind it, and
//! what the tests look at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cni_tests::{PluginCall, RawOutcome, Sandbox, TestNetns};
use libcni::{CniConfig, NetworkConfigList};
use serde_json::{Value, json};

/// The versions our plugin is driven at.
pub(crate) const VERSIONS: [&str; 2] = ["0.4.0", "1.1.0"];
/// The newest version the reference plugins (Debian's 1.1.1) speak.
pub(crate) const REFERENCE_VERSION: &str = "1.0.0";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Impl {
    Ours,
    Reference,
}

/// A sandbox host with a plugin directory holding `bridge` and `host-local` (ours or the
/// reference's), a state dir for the bridge plugin and helpers to look at what it left.
pub(crate) struct Bed {
    pub(crate) sb: Sandbox,
    pub(crate) bins: PathBuf,
}

impl Bed {
    pub(crate) fn new() -> Bed {
        Bed::with(Impl::Ours)
    }

    pub(crate) fn with(imp: Impl) -> Bed {
        let sb = Sandbox::new();
        // New links of the sandbox host skip IPv6 DAD, so the bridge's IPv6 gateway address
        // answers at once instead of after a second of tentativeness.
        sb.host_run(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
        ]);
        let bins = match imp {
            Impl::Ours => sb.plugin_dir(&["bridge", "host-local"], &[]),
            Impl::Reference => sb.plugin_dir(&[], &["bridge", "host-local"]),
        };
        Bed { sb, bins }
    }

    /// The bridge plugin's `dataDir` (its per-attachment state and nft lock).
    pub(crate) fn state_root(&self) -> PathBuf {
        self.sb.dir().join("bridge-state")
    }

    /// A network `name` on bridge `br` with host-local addresses from `subnets` (one range
    /// set each); `extra` keys are added (replacing defaults).
    pub(crate) fn conf(
        &self,
        version: &str,
        name: &str,
        br: &str,
        subnets: &[&str],
        extra: Value,
    ) -> Value {
        let ranges: Vec<Value> = subnets.iter().map(|s| json!([{"subnet": s}])).collect();
        let mut conf = json!({
            "cniVersion": version,
            "name": name,
            "type": "bridge",
            "bridge": br,
            "dataDir": self.state_root(),
            "ipam": {"type": "host-local", "dataDir": self.sb.data_dir(), "ranges": ranges},
        });
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        conf
    }

    pub(crate) fn call(&self, command: &str, conf: &Value, id: &str, netns: &str) -> PluginCall {
        self.sb
            .call(self.bins.join("bridge"), command)
            .container(id, netns, "eth0")
            .cni_path(self.bins.to_str().unwrap())
            .stdin_json(conf)
    }

    #[track_caller]
    pub(crate) fn add(&self, conf: &Value, id: &str, ctr: &TestNetns) -> Value {
        self.call("ADD", conf, id, ctr.path_str()).run().assert_ok()
    }

    /// A CHECK or DEL with the ADD result as `prevResult`.
    pub(crate) fn with_prev(
        &self,
        command: &str,
        conf: &Value,
        prev: &Value,
        id: &str,
        netns: &str,
    ) -> RawOutcome {
        let mut conf = conf.clone();
        conf["prevResult"] = prev.clone();
        self.call(command, &conf, id, netns).run()
    }

    /// libcni over this bed's plugins (results cached in the sandbox).
    pub(crate) fn cni(&self) -> CniConfig {
        self.sb.cni_config(vec![self.bins.clone()])
    }

    /// A one-plugin list of `conf`, as a runtime's config file holds it.
    pub(crate) fn list(&self, conf: &Value) -> NetworkConfigList {
        let mut plugin = conf.clone();
        let obj = plugin.as_object_mut().unwrap();
        let name = obj.remove("name").unwrap();
        let version = obj.remove("cniVersion").unwrap();
        self.sb
            .conflist(&json!({"cniVersion": version, "name": name, "plugins": [plugin]}))
    }

    pub(crate) fn host(&self, args: &[&str]) -> String {
        self.sb.host_run(args)
    }

    /// host-local's allocations of `network`.
    pub(crate) fn allocations(&self, network: &str) -> Vec<String> {
        let mut ips: Vec<String> = files(&self.sb.data_dir().join(network))
            .into_iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        ips.sort();
        ips
    }

    /// The bridge plugin's state files of `network`.
    pub(crate) fn states(&self, network: &str) -> Vec<String> {
        files(&self.state_root().join(network))
    }

    /// The plugin's veths in the sandbox host (`veth…`; the test's own have other names).
    pub(crate) fn host_veths(&self) -> Vec<String> {
        let mut veths = links(&self.host(&["ip", "-j", "link", "show", "type", "veth"]));
        veths.retain(|n| n.starts_with("veth"));
        veths
    }

    /// Waits until the host ends of deleted containers' veths are gone: the kernel destroys
    /// a deleted netns, and the pairs in it, asynchronously.
    pub(crate) fn wait_for_veths_to_go(&self) {
        for _ in 0..100 {
            if self.host_veths().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub(crate) fn host_link(&self, name: &str) -> Option<Value> {
        let out = self
            .sb
            .host_exec(&["ip", "-j", "-d", "addr", "show", "dev", name]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().and_then(|a| a.first().cloned())
    }

    /// Every nftables set of the sandbox host with its elements, keyed `family table name`.
    pub(crate) fn sets(&self) -> BTreeMap<String, Vec<Value>> {
        let out: Value =
            serde_json::from_str(&self.host(&["nft", "-j", "list", "ruleset"])).unwrap();
        let mut sets = BTreeMap::new();
        for obj in out["nftables"].as_array().unwrap() {
            if let Some(set) = obj.get("set") {
                let key = format!(
                    "{} {} {}",
                    set["family"].as_str().unwrap(),
                    set["table"].as_str().unwrap(),
                    set["name"].as_str().unwrap()
                );
                let elems = set["elem"].as_array().cloned().unwrap_or_default();
                sets.insert(key, elems);
            }
        }
        sets
    }

    /// The elements of one set of the plugin's tables (`inet` or `bridge` family).
    pub(crate) fn set(&self, family: &str, prefix: &str) -> Vec<Value> {
        let start = format!("{family} cni_bridge {prefix}");
        self.sets()
            .into_iter()
            .filter(|(k, _)| k.starts_with(&start))
            .flat_map(|(_, v)| v)
            .collect()
    }

    /// The name of the masquerade set of the only network with ipMasq, e.g. `masq4_n1234…`.
    pub(crate) fn masq_set(&self, family: u8) -> String {
        let prefix = format!("inet cni_bridge masq{family}_");
        let names: Vec<String> = self
            .sets()
            .into_keys()
            .filter(|k| k.starts_with(&prefix))
            .map(|k| k.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        names[0].clone()
    }

    /// Every element of the plugin's sets but the names of isolated bridges: what
    /// attachments own, so what must be gone once they are.
    pub(crate) fn attachment_elements(&self) -> Vec<Value> {
        self.sets()
            .into_iter()
            .filter(|(k, _)| k.contains(" cni_bridge ") && !k.ends_with(" isolated"))
            .flat_map(|(_, v)| v)
            .collect()
    }

    /// The sandbox host's iptables nat rules mentioning a CNI chain.
    pub(crate) fn iptables_cni_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        for tool in ["iptables", "ip6tables"] {
            let out = self.host(&[tool, "-w", "-t", "nat", "-S"]);
            rules.extend(out.lines().filter(|l| l.contains("CNI-")).map(String::from));
        }
        rules
    }

    /// Asserts that `network` holds no attachment: no veth, no address, no state, no
    /// masquerade or spoof check element, no iptables rule.
    #[track_caller]
    pub(crate) fn assert_nothing_left(&self, network: &str) {
        self.wait_for_veths_to_go();
        assert!(
            self.host_veths().is_empty(),
            "veths left: {:?}",
            self.host_veths()
        );
        assert!(
            self.allocations(network).is_empty(),
            "{:?}",
            self.allocations(network)
        );
        assert!(
            self.states(network).is_empty(),
            "{:?}",
            self.states(network)
        );
        let elements = self.attachment_elements();
        assert!(elements.is_empty(), "nft elements left: {elements:?}");
        let rules = self.iptables_cni_rules();
        assert!(rules.is_empty(), "iptables rules left: {rules:?}");
    }
}

pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The names in `ip -j link` output.
pub(crate) fn links(json_out: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json_out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The container's `eth0` as `ip -j -d addr` shows it.
pub(crate) fn eth0(ctr: &TestNetns) -> Value {
    ctr.link("eth0").expect("eth0 missing from the container")
}

pub(crate) fn mac_of(link: &Value) -> String {
    link["address"].as_str().unwrap().to_string()
}

/// The addresses (`a.b.c.d/len`) of a link, link-local ones left out.
pub(crate) fn addrs_of(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// The host veth a result names (`interfaces[1]`).
pub(crate) fn host_veth_of(result: &Value) -> String {
    result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Applies an nft script inside `ns` (written to a file of the sandbox).
pub(crate) fn nft_in(bed: &Bed, ns: &TestNetns, script: &str) {
    let path = bed.sb.dir().join(format!("{}.nft", ns.name()));
    std::fs::write(&path, script).unwrap();
    ns.run(&["nft", "-f", path.to_str().unwrap()]);
}

/// The packets a named nft counter has seen.
pub(crate) fn counter(ns: &TestNetns, table: &str, name: &str) -> u64 {
    let out: Value =
        serde_json::from_str(&ns.run(&["nft", "-j", "list", "counter", "inet", table, name]))
            .unwrap();
    out["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get("counter"))
        .and_then(|c| c["packets"].as_u64())
        .unwrap()
}

/// A namespace "outside" the sandbox host, on a veth `out0` (host 192.0.2.1, 2001:db8:ff::1;
/// outside .2/::2). The outside has no route to any container subnet, so a container's ping
/// is answered only when the host masqueraded it; counters in the outside count echo
/// requests by source: from the host's address or from anything else.
pub(crate) struct Outside {
    pub(crate) ns: TestNetns,
}

pub(crate) const OUT4: &str = "192.0.2.2";
pub(crate) const OUT6: &str = "2001:db8:ff::2";

impl Outside {
    pub(crate) fn new(bed: &Bed) -> Outside {
        let ns = TestNetns::new();
        ns.lo_up();
        bed.host(&[
            "ip",
            "link",
            "add",
            "out0",
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            ns.name(),
        ]);
        bed.host(&["ip", "addr", "add", "192.0.2.1/24", "dev", "out0"]);
        bed.host(&[
            "ip",
            "addr",
            "add",
            "2001:db8:ff::1/64",
            "dev",
            "out0",
            "nodad",
        ]);
        bed.host(&["ip", "link", "set", "out0", "up"]);
        ns.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up0"]);
        ns.run(&[
            "ip",
            "addr",
            "add",
            "2001:db8:ff::2/64",
            "dev",
            "up0",
            "nodad",
        ]);
        ns.run(&["ip", "link", "set", "up0", "up"]);
        nft_in(
            bed,
            &ns,
            "table inet probe {\n\
             \tcounter host4 {}\n\tcounter other4 {}\n\tcounter host6 {}\n\tcounter other6 {}\n\
             \tchain input {\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\ticmp type echo-request ip saddr 192.0.2.1 counter name host4\n\
             \t\ticmp type echo-request ip saddr != 192.0.2.1 counter name other4\n\
             \t\ticmpv6 type echo-request ip6 saddr 2001:db8:ff::1 counter name host6\n\
             \t\ticmpv6 type echo-request ip6 saddr != 2001:db8:ff::1 counter name other6\n\
             \t}\n}\n",
        );
        Outside { ns }
    }

    pub(crate) fn count(&self, name: &str) -> u64 {
        counter(&self.ns, "probe", name)
    }
}

/// A network with every per-attachment rule: masquerade (v4 and v6) and spoof check.
pub(crate) fn full_conf(bed: &Bed, v: &str, backend: &str) -> Value {
    bed.conf(
        v,
        "del",
        "br-del",
        &["10.100.0.0/24", "fd64::/64"],
        json!({"isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": backend, "macspoofchk": true}),
    )
}
