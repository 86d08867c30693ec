//! Kubernetes nodes on our plugins alone, as kind runs them: each "node" is a network
//! namespace on a shared bridge (kind's docker network) running its own containerd 1.6 (CRI;
//! its own root, state and socket; `bin_dir` holding only our plugins; `conf_dir` holding the
//! conflist kindnetd writes for the node's podCIDR), with the routes kindnetd installs (each
//! other node's podCIDR via its node IP). Pods are made through CRI as kubelet makes them.
//! Then the Kubernetes-style single-node chain (bridge + host-local + portmap + bandwidth) with
//! a pod's bandwidth annotations.

#![allow(clippy::unwrap_used)]

#[path = "../runtimes/harness.rs"]
mod harness;

use cni_tests::TestNetns;
use cni_tests::fixtures::link_names;
use harness::{Cri, Pod, RuntimeSandbox, require_tools};
use serde_json::{Value, json};

const HOST_PORT: u16 = 30080;

/// The conflist kindnetd writes (`images/kindnetd/cmd/kindnetd/cni.go`) for a podCIDR.
fn kindnet_conflist(pod_cidr: &str) -> Value {
    json!({
        "cniVersion": "0.3.1",
        "name": "kindnet",
        "plugins": [
            {"type": "ptp", "ipMasq": false,
             "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": pod_cidr}]]},
             "mtu": 1500},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
}

fn tools_present() -> bool {
    require_tools(&[
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "unshare",
        "nsenter",
        "tc",
    ])
}

/// A kind node: its sandbox (netns + containerd), its address on the kind network.
struct Node {
    sb: RuntimeSandbox,
    cri: Cri,
    ip: String,
    pod_cidr: String,
}

impl Node {
    /// A node on `kind` (the bridge in `switch`) as `eth0` with address `ip`, running
    /// containerd with `conflist`.
    fn start(switch: &TestNetns, n: u8, pod_cidr: &str, conflist: (&str, Value)) -> Node {
        let mut sb = RuntimeSandbox::new(&format!("cnikind{n}-"));
        let ip = format!("172.18.0.{}", n + 1);
        let port = format!("kind-n{n}");
        switch.run(&[
            "ip",
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            sb.host.name(),
        ]);
        switch.run(&["ip", "link", "set", &port, "master", "kind", "up"]);
        sb.host
            .run(&["ip", "addr", "add", &format!("{ip}/16"), "dev", "eth0"]);
        sb.host.run(&["ip", "link", "set", "eth0", "up"]);
        let cri = sb.start_containerd(conflist.0, &conflist.1);
        Node {
            sb,
            cri,
            ip,
            pod_cidr: pod_cidr.to_string(),
        }
    }

    /// What kindnetd does for every other node: its podCIDR via its node IP.
    fn route_to(&self, other: &Node) {
        self.sb
            .host
            .run(&["ip", "route", "add", &other.pod_cidr, "via", &other.ip]);
    }

    /// GET `url` from inside a pod: the body (busybox wget; its -T crashes in Debian's
    /// static build).
    fn get(&self, from: &Pod, url: &str) -> String {
        let (code, out) = self.cri.exec(from, &["/bin/wget", "-qO-", url]);
        assert_eq!(code, 0, "wget {url} from {}: {out}", from.ip);
        out
    }

    /// The client address the pod at `server` saw for a request from `from` (busybox httpd
    /// listens on IPv6 and reports IPv4 clients as `[::ffff:a.b.c.d]`).
    fn seen_by(&self, from: &Pod, server: &str) -> String {
        let seen = self.get(from, &format!("http://{server}/cgi-bin/ip"));
        seen.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("::ffff:")
            .to_string()
    }

    fn pings(&self, from: &Pod, to: &str) -> bool {
        self.cri
            .exec(from, &["/bin/ping", "-c", "1", "-W", "2", to])
            .0
            == 0
    }

    /// host-local's addresses in kindnet's state dir, under the node's private /run.
    fn allocations(&self) -> Vec<String> {
        let out = self
            .sb
            .in_holder(&[], &["ls", "/run/cni-ipam-state/kindnet"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .map(String::from)
            .collect()
    }
}

fn in_subnet(ip: &str, cidr: &str) -> bool {
    let prefix = cidr.trim_end_matches(".0/24");
    ip.starts_with(&format!("{prefix}."))
}

/// The kind docker network: a bridge `kind` in a namespace of its own.
fn kind_network() -> TestNetns {
    let switch = TestNetns::new();
    switch.run(&["ip", "link", "add", "kind", "type", "bridge"]);
    switch.run(&["ip", "link", "set", "kind", "up"]);
    switch
}

#[test]
fn two_kind_nodes_route_pods_to_each_other_without_nat() {
    if !tools_present() {
        return;
    }
    let switch = kind_network();
    let cidrs = ["10.244.1.0/24", "10.244.2.0/24"];
    let n1 = Node::start(
        &switch,
        1,
        cidrs[0],
        ("10-kindnet.conflist", kindnet_conflist(cidrs[0])),
    );
    let n2 = Node::start(
        &switch,
        2,
        cidrs[1],
        ("10-kindnet.conflist", kindnet_conflist(cidrs[1])),
    );
    n1.route_to(&n2);
    n2.route_to(&n1);

    let a = n1.cri.pod("a", None, &[]);
    let b = n1.cri.pod("b", None, &[]);
    let c = n2.cri.pod("c", Some(HOST_PORT), &[]);
    for (pod, node) in [(&a, &n1), (&b, &n1), (&c, &n2)] {
        assert!(
            in_subnet(&pod.ip, &node.pod_cidr),
            "{} not in {}",
            pod.ip,
            node.pod_cidr
        );
    }
    // Pod to pod on one node, and across nodes: the server sees the client's own address.
    assert!(n1.pings(&a, &b.ip));
    assert_eq!(n1.seen_by(&a, &b.ip), a.ip);
    assert!(n1.pings(&a, &c.ip));
    assert_eq!(n1.seen_by(&a, &c.ip), a.ip);
    assert_eq!(n2.seen_by(&c, &b.ip), c.ip);
    // Node to pod, on the node and across.
    for node in [&n1, &n2] {
        for pod in [&a, &c] {
            let out = node.sb.host.exec(&["ping", "-c", "1", "-W", "2", &pod.ip]);
            assert!(out.status.success(), "node {} -> pod {}", node.ip, pod.ip);
        }
    }
    // A hostPort on node 2, reached from node 1.
    assert_eq!(
        n1.sb.http_get(&n2.ip, HOST_PORT),
        "hello from the container"
    );

    // Stop and remove every pod (containerd's two DELs, the second with CNI_NETNS="").
    for (pod, node) in [(&a, &n1), (&b, &n1), (&c, &n2)] {
        assert_eq!(node.cri.remove(pod), Vec::<String>::new());
    }
    for node in [&n1, &n2] {
        assert_eq!(node.allocations(), Vec::<String>::new(), "node {}", node.ip);
        assert_eq!(
            link_names(&node.sb.host),
            vec!["lo", "eth0"],
            "node {}",
            node.ip
        );
        for pod in [&a, &b, &c] {
            assert_eq!(node.sb.rules_naming(&pod.ip), Vec::<String>::new());
        }
        assert_eq!(node.sb.state_files(), Vec::<String>::new());
        let routes = node.sb.host.run(&["ip", "route"]);
        for pod in [&a, &b, &c] {
            assert!(!routes.contains(&format!("{} dev", pod.ip)), "{routes}");
        }
    }
}

/// containerd's Kubernetes-style chain with bandwidth: the pod's annotations become the
/// `bandwidth` capability, the buckets get the requested rates, and go with the pod.
#[test]
fn bandwidth_annotations_shape_the_pod_and_go_with_it() {
    if !tools_present() {
        return;
    }
    let switch = kind_network();
    let chain = json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.244.9.0/24"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}
        ]
    });
    let node = Node::start(&switch, 9, "10.244.9.0/24", ("10-k8s.conflist", chain));
    let shaped = node.cri.pod(
        "shaped",
        None,
        &[
            ("kubernetes.io/ingress-bandwidth", "1M"),
            ("kubernetes.io/egress-bandwidth", "2M"),
        ],
    );
    let plain = node.cri.pod("plain", None, &[]);
    let qdiscs: Value =
        serde_json::from_str(&node.sb.host.run(&["tc", "-j", "qdisc", "show"])).unwrap();
    let tbf: Vec<(String, u64)> = qdiscs
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["kind"] == "tbf")
        .map(|q| {
            (
                q["dev"].as_str().unwrap().to_string(),
                q["options"]["rate"].as_u64().unwrap(),
            )
        })
        .collect();
    // 1 Mbit/s into the pod on its host end, 2 Mbit/s out of it on its ifb; nothing on the
    // pod without annotations.
    assert_eq!(tbf.len(), 2, "{qdiscs}");
    assert!(
        tbf.iter()
            .any(|(dev, rate)| dev.starts_with("veth") && *rate == 125_000),
        "{tbf:?}"
    );
    assert!(
        tbf.iter()
            .any(|(dev, rate)| dev.starts_with("bwp") && *rate == 250_000),
        "{tbf:?}"
    );
    assert!(node.pings(&plain, &shaped.ip));

    for pod in [&shaped, &plain] {
        assert_eq!(node.cri.remove(pod), Vec::<String>::new());
    }
    let qdiscs = node.sb.host.run(&["tc", "qdisc", "show"]);
    assert!(!qdiscs.contains("tbf"), "{qdiscs}");
    let links = link_names(&node.sb.host);
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("bwp") || l.starts_with("veth")),
        "{links:?}"
    );
    assert_eq!(node.sb.allocations(), Vec::<String>::new());
}
