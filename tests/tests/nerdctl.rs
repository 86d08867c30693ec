//! nerdctl's calls, replayed through libcni as its OCI hook makes them (nerdctl is not packaged
//! for Debian 12): the conflist `nerdctl network create` writes (bridge → portmap → firewall →
//! tuning), a DEL with an empty netns before every ADD, its CNI_ARGS (`IgnoreUnknown`,
//! `NERDCTL_CNI_DHCP_HOSTNAME`, `IP`, `MAC`), the `ips` and `portMappings` capabilities, the
//! firewall ingress policies it writes, and the firewall version it probes.

#![allow(clippy::unwrap_used)]

use cni_tests::fixtures::{assert_only_lo, ip_of, ping_once, pings};
use cni_tests::{PluginCall, Sandbox, TestNetns, plugin_bin};
use libcni::{NetworkConfigList, RuntimeConf};
use serde_json::{Value, json};

/// The conflist of a network as nerdctl 2 writes it (`pkg/netutil`), with this suite's state
/// in the sandbox.
fn nerdctl_network(
    sb: &Sandbox,
    name: &str,
    bridge: &str,
    subnet: &str,
    policy: &str,
) -> NetworkConfigList {
    let gateway = subnet.replace(".0/24", ".1");
    let data = |kind: &str| sb.data_dir().join(kind).to_str().unwrap().to_string();
    sb.conflist(&json!({
        "cniVersion": "1.0.0",
        "name": name,
        "nerdctlID": format!("{:0>64}", name.len()),
        "nerdctlLabels": {},
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
             "hairpinMode": true, "dataDir": data("bridge"),
             "ipam": {"type": "host-local", "dataDir": data("ipam"),
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": subnet, "gateway": gateway}]]},
             "capabilities": {"ips": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "dataDir": data("portmap")},
            {"type": "firewall", "ingressPolicy": policy, "dataDir": data("firewall")},
            {"type": "tuning", "dataDir": data("tuning")},
        ]
    }))
}

/// The runtime config nerdctl's hook builds for a container.
fn runtime(id: &str, ctr: &TestNetns, args: &[(&str, &str)], caps: Value) -> RuntimeConf {
    let mut rt = RuntimeConf::new(id, ctr.path_str(), "eth0");
    rt.args = [("IgnoreUnknown", "1"), ("NERDCTL_CNI_DHCP_HOSTNAME", id)]
        .iter()
        .chain(args)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rt.capability_args = caps.as_object().cloned().unwrap_or_default();
    rt
}

/// createRuntime: a DEL with an empty netns (cleanup after a containerd restart), then ADD.
fn create(sb: &Sandbox, list: &NetworkConfigList, rt: &RuntimeConf) -> cni::CniResult {
    let cni = sb.ours();
    let mut cleanup = rt.clone();
    cleanup.netns = String::new();
    cni.del_network_list(list, &cleanup)
        .unwrap_or_else(|e| panic!("pre-ADD DEL with empty netns: {e}"));
    cni.add_network_list(list, rt)
        .unwrap_or_else(|e| panic!("ADD: {e}"))
}

fn as_json(r: &cni::CniResult) -> Value {
    r.to_value(cni::Version::V1_0_0).unwrap()
}

#[test]
fn containers_with_fixed_ip_mac_and_published_port() {
    let sb = Sandbox::new();
    let net = nerdctl_network(&sb, "bridge", "nerdctl0", "10.4.0.0/24", "same-bridge");
    let (web, client) = (sb.container(), sb.container());
    let rt_web = runtime(
        "web",
        &web,
        &[("IP", "10.4.0.42"), ("MAC", "02:42:0a:04:00:2a")],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}),
    );
    let r = as_json(&create(&sb, &net, &rt_web));
    assert_eq!(ip_of(&r, 0), "10.4.0.42");
    let link: Value =
        serde_json::from_str(&web.run(&["ip", "-j", "link", "show", "eth0"])).unwrap();
    assert_eq!(link[0]["address"], "02:42:0a:04:00:2a");
    let rt_client = runtime("client", &client, &[], json!({}));
    let rc = as_json(&create(&sb, &net, &rt_client));
    let client_ip = ip_of(&rc, 0);
    assert!(pings(&client, "10.4.0.42"));
    // The published port is a DNAT to the container.
    let nft = sb.host_run(&["nft", "list", "ruleset"]);
    assert!(nft.contains("10.4.0.42") && nft.contains("8080"), "{nft}");

    // The `ips` capability (nerdctl's --ip6 path) pins the address too.
    let pinned = sb.container();
    let rt_pinned = runtime("pinned", &pinned, &[], json!({"ips": ["10.4.0.77/24"]}));
    assert_eq!(
        ip_of(&as_json(&create(&sb, &net, &rt_pinned)), 0),
        "10.4.0.77"
    );

    // postStop: DEL (nerdctl keeps the netns path).
    for (rt, ctr) in [
        (&rt_web, &web),
        (&rt_client, &client),
        (&rt_pinned, &pinned),
    ] {
        sb.ours().del_network_list(&net, rt).unwrap();
        assert_only_lo(ctr);
    }
    let nft = sb.host_run(&["nft", "list", "ruleset"]);
    for ip in ["10.4.0.42", client_ip.as_str(), "10.4.0.77"] {
        assert!(!nft.contains(ip), "{ip} left in:\n{nft}");
    }
    let left = cni_tests::fixtures::allocations(&sb.data_dir().join("ipam").join("bridge"));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn same_bridge_isolates_networks_and_isolated_isolates_containers_too() {
    let sb = Sandbox::new();
    let a_net = nerdctl_network(
        &sb,
        "net-a",
        "br-aaaaaaaaaaaa",
        "10.4.1.0/24",
        "same-bridge",
    );
    let b_net = nerdctl_network(
        &sb,
        "net-b",
        "br-bbbbbbbbbbbb",
        "10.4.2.0/24",
        "same-bridge",
    );
    let i_net = nerdctl_network(&sb, "net-i", "br-iiiiiiiiiiii", "10.4.3.0/24", "isolated");
    let ctrs: Vec<TestNetns> = (0..5).map(|_| sb.container()).collect();
    let place = [
        ("a1", &a_net, 0),
        ("a2", &a_net, 1),
        ("b1", &b_net, 2),
        ("i1", &i_net, 3),
        ("i2", &i_net, 4),
    ];
    let mut ips = Vec::new();
    let mut rts = Vec::new();
    for (id, net, i) in place {
        let rt = runtime(id, &ctrs[i], &[], json!({}));
        ips.push(ip_of(&as_json(&create(&sb, net, &rt)), 0));
        rts.push((rt, net));
    }
    // same-bridge: a1 and a2 talk; b1 reaches neither, nor they b1.
    assert!(pings(&ctrs[0], &ips[1]));
    assert!(pings(&ctrs[0], "10.4.1.1"));
    assert!(!ping_once(&ctrs[2], &ips[0]));
    assert!(!ping_once(&ctrs[0], &ips[2]));
    // isolated: not even i1 and i2 on their own bridge; each still reaches its gateway.
    assert!(pings(&ctrs[3], "10.4.3.1"));
    assert!(!ping_once(&ctrs[3], &ips[4]));
    assert!(!ping_once(&ctrs[2], &ips[3]));
    for (rt, net) in &rts {
        sb.ours().del_network_list(net, rt).unwrap();
    }
    for ctr in &ctrs {
        assert_only_lo(ctr);
    }
}

/// nerdctl parses stderr of `firewall` run with no environment and uses `isolated` only for
/// v1.7.1 and later, `same-bridge` only for v1.1.0 and later.
#[test]
fn the_firewall_version_nerdctl_probes_allows_isolated() {
    let out = PluginCall::new(plugin_bin("firewall"), "").run();
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.describe());
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("CNI firewall plugin v"))
        .unwrap_or_else(|| panic!("no version line: {}", out.describe()));
    let parts: Vec<u64> = line.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert!(parts >= vec![1, 7, 1], "{line} is older than v1.7.1");
}
