//! cnictl, black box: the built binary run as a user runs it, with every directory moved into
//! a sandbox (NETCONFPATH, CNI_PATH, CNICTL_CACHE_DIR, CNICTL_DATA_DIR) and the plugins run
//! inside the sandbox's private host namespace (CNICTL_EXEC_NETNS). Containers are namespaces
//! of the test; traffic stays between them.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cni_tests::{Sandbox, TestNetns, bin_dir, plugin_bin};
use serde_json::{Value, json};

struct Ctl {
    sb: Sandbox,
    upstream: PathBuf,
}

impl Ctl {
    fn new() -> Ctl {
        let sb = Sandbox::new();
        let upstream = sb.dir().join("upstream-resolv.conf");
        std::fs::write(&upstream, "# nothing upstream\n").unwrap();
        Ctl { sb, upstream }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(plugin_bin("cnictl"));
        cmd.args(args)
            .env("NETCONFPATH", self.sb.conf_dir())
            .env("CNI_PATH", bin_dir())
            .env("CNICTL_CACHE_DIR", self.sb.cache_dir())
            .env("CNICTL_DATA_DIR", self.sb.data_dir())
            .env("CNICTL_EXEC_NETNS", self.sb.host_path())
            .env("CNICTL_DNS_UPSTREAM", &self.upstream)
            .env_remove("CNI_ARGS")
            .env_remove("CAP_ARGS")
            .env_remove("CNI_IFNAME");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cnictl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs and expects failure with exit status 1 and "Error: " on stderr; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "cnictl {} should fail: {}{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.starts_with("Error: "), "{stderr}");
        stderr
    }

    fn conf_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.sb.conf_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn cache_files(&self) -> Vec<String> {
        let dir = self.sb.cache_dir().join("results");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The names of the links in the sandbox host.
    fn host_links(&self) -> Vec<String> {
        let out = self.sb.host_run(&["ip", "-j", "link", "show"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }

    /// `cnictl demo-fetch URL` from inside `netns`.
    fn fetch_in(&self, netns: &TestNetns, resolv: Option<&Path>, url: &str) -> Output {
        let bin = plugin_bin("cnictl");
        let mut args = vec![bin.to_str().unwrap(), "demo-fetch", "--timeout-ms", "2000"];
        if let Some(r) = resolv {
            args.push("--resolv-conf");
            args.push(r.to_str().unwrap());
        }
        args.push(url);
        netns.exec(&args)
    }
}

fn links_in(ns: &TestNetns) -> Vec<String> {
    let out = ns.run(&["ip", "-j", "link", "show"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// A process living in `ns` (a container's "init"); returned once it is inside. The caller
/// stops it.
#[allow(clippy::zombie_processes)]
fn process_in(ns: &TestNetns) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let want = std::fs::metadata(ns.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::metadata(format!("/proc/{}/ns/net", child.id()));
        if now.is_ok_and(|m| m.ino() == want.ino() && m.dev() == want.dev()) {
            return child;
        }
        if Instant::now() > deadline {
            stop(child);
            panic!("the process never entered {}", ns.name());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A web server in `ns` on port 80, serving `text`.
fn httpd_in(ctl: &Ctl, ns: &TestNetns, text: &str) -> Child {
    let www = ctl.sb.dir().join(format!("www-{}", ns.name()));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), text).unwrap();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
        ])
        .arg(&www)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn bridge_and_host_local(ctl: &Ctl, name: &str, subnet: &str, bridge: &str) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "dataDir": ctl.sb.data_dir().join("bridge"),
            "ipam": {"type": "host-local", "dataDir": ctl.sb.data_dir().join("ipam"),
                     "ranges": [[{"subnet": subnet}]]},
        }],
    })
}

#[test]
fn cnitool_commands_with_cnitool_environment() {
    let ctl = Ctl::new();
    ctl.sb.write_conf(
        "10-tool.conflist",
        &bridge_and_host_local(&ctl, "tool", "10.77.0.0/24", "br-tool"),
    );
    let ctr = ctl.sb.container();
    let netns = ctr.path_str();

    // ADD prints the result in the list's version, as cnitool does.
    let out = ctl.ok(&["add", "tool", netns]);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.77.0.")
    );
    assert!(
        out.contains("\n    \""),
        "indented like Go's MarshalIndent: {out}"
    );
    assert!(links_in(&ctr).contains(&"eth0".to_string()));

    // The cache entry is libcni's, under cnitool's container ID.
    let id = libcni::cnitool_container_id(Path::new(netns));
    let file = format!("tool-{id}-eth0");
    assert_eq!(ctl.cache_files(), vec![file.clone()]);
    let cached: Value = serde_json::from_slice(
        &std::fs::read(ctl.sb.cache_dir().join("results").join(&file)).unwrap(),
    )
    .unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], id);
    assert_eq!(cached["netns"], netns);

    ctl.ok(&["check", "tool", netns]);
    ctl.ok(&["status", "tool", netns]);
    ctl.ok(&["status", "tool"]);

    // CNI_IFNAME and -i; CNI_ARGS and CAP_ARGS reach the plugins and the cache.
    let out = ctl
        .command(&["add", "tool", netns])
        .env("CNI_IFNAME", "net1")
        .env("CNI_ARGS", "IgnoreUnknown=1;IP=10.77.0.50")
        .env("CAP_ARGS", r#"{"mac":"c2:11:22:33:44:55"}"#)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["ips"][0]["address"], "10.77.0.50/24");
    let cached: Value = serde_json::from_slice(
        &std::fs::read(
            ctl.sb
                .cache_dir()
                .join("results")
                .join(format!("tool-{id}-net1")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        cached["cniArgs"],
        json!([["IgnoreUnknown", "1"], ["IP", "10.77.0.50"]])
    );
    assert_eq!(
        cached["capabilityArgs"],
        json!({"mac": "c2:11:22:33:44:55"})
    );
    ctl.ok(&["check", "-i", "net1", "tool", netns]);
    ctl.ok(&["del", "-i", "net1", "tool", netns]);
    assert!(!links_in(&ctr).contains(&"net1".to_string()));

    // A relative path names the same container.
    let rel = PathBuf::from("..").join(Path::new(netns).strip_prefix("/").unwrap());
    let out = ctl
        .command(&["check", "tool", rel.to_str().unwrap()])
        .current_dir("/run")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // DEL removes the interface and the cache entry; DEL again is fine.
    ctl.ok(&["del", "tool", netns]);
    assert!(ctl.cache_files().is_empty());
    assert!(!links_in(&ctr).contains(&"eth0".to_string()));
    ctl.ok(&["del", "tool", netns]);

    // GC: as cnitool, every cached attachment of the network goes.
    let c2 = ctl.sb.container();
    ctl.ok(&["add", "tool", netns]);
    ctl.ok(&["add", "tool", c2.path_str()]);
    assert_eq!(ctl.cache_files().len(), 2);
    ctl.ok(&["gc", "tool", netns]);
    assert!(ctl.cache_files().is_empty());
    assert!(!links_in(&c2).contains(&"eth0".to_string()));
    let ipam: Vec<_> = std::fs::read_dir(ctl.sb.data_dir().join("ipam/tool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(ipam.is_empty(), "{ipam:?}");

    // A legacy single-plugin .conf is found after the .conflist files.
    ctl.sb.write_conf(
        "20-legacy.conf",
        &json!({"cniVersion": "1.0.0", "name": "legacy", "type": "bridge", "bridge": "br-legacy",
                "dataDir": ctl.sb.data_dir().join("bridge"),
                "ipam": {"type": "host-local", "dataDir": ctl.sb.data_dir().join("ipam"),
                         "subnet": "10.78.0.0/24"}}),
    );
    let r: Value = serde_json::from_str(&ctl.ok(&["add", "legacy", netns])).unwrap();
    assert!(
        r["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.78.0.")
    );
    ctl.ok(&["del", "legacy", netns]);
}

#[test]
fn cnitool_commands_report_bad_input() {
    let ctl = Ctl::new();
    ctl.sb.write_conf(
        "10-tool.conflist",
        &bridge_and_host_local(&ctl, "tool", "10.79.0.0/24", "br-tool"),
    );
    let ctr = ctl.sb.container();
    let netns = ctr.path_str();
    let e = ctl.fails(&["add", "nope", netns]);
    assert!(e.contains("no net configuration with name \"nope\""), "{e}");
    assert!(e.contains("hint: "), "{e}");
    let e = ctl.fails(&["add", "tool"]);
    assert!(e.contains("namespace are required"), "{e}");
    let e = ctl
        .command(&["add", "tool", netns])
        .env("CNI_ARGS", "IgnoreUnknown")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("invalid CNI_ARGS pair"));
    let e = ctl
        .command(&["add", "tool", netns])
        .env("CAP_ARGS", "{not json")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("invalid CAP_ARGS"));
    // A netns that does not exist: the plugins' error, nothing cached.
    let e = ctl.fails(&["add", "tool", "/run/netns/cnictl-test-missing"]);
    assert!(e.contains("bridge"), "{e}");
    // A plugin that is not there: VERSION checks fail before anything runs.
    ctl.sb.write_conf(
        "30-ghost.conflist",
        &json!({"cniVersion": "1.1.0", "name": "ghost", "plugins": [{"type": "bridge"}, {"type": "ghost-plugin"}]}),
    );
    let e = ctl.fails(&["add", "ghost", netns]);
    assert!(e.contains("failed to find plugin \"ghost-plugin\""), "{e}");
    assert!(e.contains("CNI_PATH"), "{e}");
    assert!(!links_in(&ctr).contains(&"eth0".to_string()));
    assert!(ctl.cache_files().is_empty());
    // No config directory at all.
    let out = ctl
        .command(&["add", "tool", netns])
        .env("NETCONFPATH", ctl.sb.dir().join("nowhere"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no net configurations found"), "{e}");
    assert!(e.contains("cnictl network create"), "{e}");
}

#[test]
fn network_create_ls_inspect_rm_prune() {
    let ctl = Ctl::new();
    let out = ctl.ok(&["network", "create", "app-net"]);
    assert!(out.contains("created network app-net (bridge)"), "{out}");
    assert!(out.contains("10.89.0.0/24"), "{out}");
    assert_eq!(ctl.conf_files(), ["app-net.conflist"]);
    let conf: Value =
        serde_json::from_slice(&std::fs::read(ctl.sb.conf_dir().join("app-net.conflist")).unwrap())
            .unwrap();
    let types: Vec<&str> = conf["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["bridge", "portmap", "firewall", "tuning", "dnsname"]
    );
    assert_eq!(conf["plugins"][0]["isGateway"], true);
    assert_eq!(conf["plugins"][0]["ipMasq"], true);
    assert_eq!(conf["plugins"][0]["hairpinMode"], true);
    assert_eq!(
        conf["plugins"][0]["ipam"]["routes"],
        json!([{"dst": "0.0.0.0/0"}])
    );
    assert_eq!(conf["plugins"][1]["capabilities"]["portMappings"], true);
    assert_eq!(conf["plugins"][4]["capabilities"]["aliases"], true);

    // The next network gets the next free subnet; explicit options are honoured.
    let v = ctl.json(&["network", "create", "second"]);
    assert_eq!(v["subnets"][0]["subnet"], "10.89.1.0/24");
    let v = ctl.json(&[
        "network",
        "create",
        "custom",
        "--subnet",
        "10.90.0.0/24",
        "--gateway",
        "10.90.0.254",
        "--ip-range",
        "10.90.0.128/25",
        "--internal",
        "--no-dns",
        "--opt",
        "mtu=1400",
    ]);
    assert_eq!(
        v["subnets"],
        json!([{"subnet": "10.90.0.0/24", "gateway": "10.90.0.254",
                "rangeStart": "10.90.0.128", "rangeEnd": "10.90.0.254"}])
    );
    assert_eq!(v["internal"], true);
    assert_eq!(v["dns"], false);
    assert_eq!(
        v["plugins"],
        json!(["bridge", "portmap", "firewall", "tuning"])
    );
    assert_eq!(v["config"]["plugins"][0]["mtu"], 1400);
    assert_eq!(v["config"]["plugins"][0]["ipMasq"], false);

    // A config cnictl did not write shows up too.
    ctl.sb.write_conf(
        "50-foreign.conflist",
        &bridge_and_host_local(&ctl, "foreign", "10.95.0.0/24", "br-foreign"),
    );
    let ls = ctl.ok(&["network", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{ls}");
    assert_eq!(lines.len(), 5, "{ls}");
    assert!(ls.contains("custom") && ls.contains("10.90.0.0/24") && ls.contains("10.90.0.254"));
    assert_eq!(
        ctl.ok(&["network", "ls", "-q"]),
        "foreign\napp-net\ncustom\nsecond\n"
    );
    let all = ctl.json(&["network", "ls"]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    assert_eq!(all[0]["managed"], false);

    let v = ctl.json(&["network", "inspect", "app-net", "custom"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["name"], "app-net");
    assert_eq!(v[0]["driver"], "bridge");
    assert_eq!(v[0]["bridge"], "cni-app-net");
    assert_eq!(v[0]["containers"], json!([]));
    assert_eq!(v[0]["config"]["cnictl"]["driver"], "bridge");
    assert!(v[0]["created"].as_str().unwrap().ends_with('Z'));

    // macvlan: the parent must exist where the plugins run.
    ctl.sb
        .host_run(&["ip", "link", "add", "parent0", "type", "bridge"]);
    let v = ctl.json(&[
        "network",
        "create",
        "mv",
        "--driver",
        "macvlan",
        "--subnet",
        "192.168.50.0/24",
        "--opt",
        "parent=parent0",
        "--opt",
        "mode=bridge",
    ]);
    assert_eq!(v["config"]["plugins"][0]["master"], "parent0");
    assert_eq!(v["plugins"], json!(["macvlan", "tuning"]));
    let v = ctl.json(&[
        "network",
        "create",
        "iv",
        "-d",
        "ipvlan",
        "--subnet",
        "192.168.51.0/24",
        "-o",
        "parent=parent0",
        "-o",
        "mode=l2",
    ]);
    assert_eq!(v["config"]["plugins"][0]["type"], "ipvlan");

    // rm and prune.
    ctl.ok(&["network", "rm", "second", "mv"]);
    assert!(!ctl.conf_files().contains(&"second.conflist".to_string()));
    let out = ctl.ok(&["network", "prune"]);
    assert!(out.contains("Deleted Networks:"), "{out}");
    assert!(out.contains("app-net") && out.contains("custom") && out.contains("iv"));
    // The foreign network is not cnictl's to prune.
    assert_eq!(ctl.conf_files(), ["50-foreign.conflist"]);
    assert_eq!(
        ctl.ok(&["network", "prune"]),
        "no unused network to remove\n"
    );
    ctl.ok(&["network", "rm", "foreign"]);
    assert!(ctl.conf_files().is_empty());
}

#[test]
fn network_create_refuses_bad_input_and_writes_nothing() {
    let ctl = Ctl::new();
    ctl.ok(&["network", "create", "taken", "--subnet", "10.92.0.0/16"]);
    let before = ctl.conf_files();
    let cases: &[(&[&str], &str)] = &[
        (&["network", "create", "taken"], "already exists"),
        (
            &["network", "create", "ov", "--subnet", "10.92.3.0/24"],
            "overlaps network taken",
        ),
        (&["network", "create", "bad/name"], "invalid network name"),
        (
            &["network", "create", "hb", "--subnet", "10.93.0.1/24"],
            "host bits",
        ),
        (
            &["network", "create", "sm", "--subnet", "10.93.0.0/32"],
            "too small",
        ),
        (
            &["network", "create", "x", "--subnet", "banana"],
            "invalid subnet",
        ),
        (
            &["network", "create", "x", "--driver", "overlay"],
            "unknown driver",
        ),
        (&["network", "create", "x", "--opt", "mtu=5"], "invalid mtu"),
        (
            &["network", "create", "x", "--opt", "parent=eth0"],
            "no option",
        ),
        (
            &["network", "create", "x", "--gateway", "10.1.1.1"],
            "need a --subnet",
        ),
        (
            &[
                "network",
                "create",
                "x",
                "--subnet",
                "10.94.0.0/24",
                "--gateway",
                "10.95.0.1",
            ],
            "none of the subnets",
        ),
        (
            &[
                "network",
                "create",
                "x",
                "-d",
                "macvlan",
                "-o",
                "parent=nosuch0",
            ],
            "does not exist",
        ),
        (
            &["network", "create", "x", "-d", "macvlan", "-o", "mode=l2"],
            "invalid macvlan mode",
        ),
    ];
    for (args, want) in cases {
        let e = ctl.fails(args);
        assert!(e.contains(want), "{args:?}: {e}");
        assert_eq!(ctl.conf_files(), before, "{args:?} wrote something");
    }
    // A plugin missing from CNI_PATH: nothing is written, and the message says what to do.
    let empty = ctl.sb.dir().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = ctl
        .command(&["network", "create", "x"])
        .env("CNI_PATH", &empty)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(e.contains("failed to find plugin"), "{e}");
    assert!(e.contains("hint:"), "{e}");
    assert_eq!(ctl.conf_files(), before);

    // Other commands on unknown networks.
    for args in [
        &["network", "inspect", "ghost"][..],
        &["network", "rm", "ghost"],
        &["connect", "ghost", "/run/netns/x", "--name", "a"],
        &["disconnect", "ghost", "a"],
    ] {
        let e = ctl.fails(args);
        assert!(e.contains("no network named \"ghost\""), "{args:?}: {e}");
        assert!(e.contains("cnictl network ls"), "{args:?}: {e}");
    }
    // A usage error is clap's (exit 2).
    assert_eq!(ctl.run(&["network", "create"]).status.code(), Some(2));
}

#[test]
fn connect_inspect_disconnect_with_names_aliases_ports() {
    let ctl = Ctl::new();
    ctl.ok(&["network", "create", "app-net", "--subnet", "10.96.0.0/24"]);
    ctl.ok(&["network", "create", "db-net", "--subnet", "10.97.0.0/24"]);
    let web = ctl.sb.container();
    let client = ctl.sb.container();
    let server = httpd_in(&ctl, &web, "hello from web\n");

    // By path, with a published port.
    let a = ctl.json(&[
        "connect",
        "app-net",
        web.path_str(),
        "--name",
        "web",
        "-p",
        "8080:80",
    ]);
    assert_eq!(a["name"], "web");
    assert_eq!(a["ifname"], "eth0");
    assert_eq!(a["ipAddresses"][0], "10.96.0.2/24");
    assert_eq!(
        a["ports"],
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    );
    assert_eq!(a["dns"]["nameservers"], json!(["10.96.0.1"]));
    assert_eq!(a["dns"]["search"][0], "dns.podman");
    let mac = a["macAddress"].as_str().unwrap().to_string();

    // By PID, with a fixed address.
    let init = process_in(&client);
    let pid = init.id().to_string();
    let out = ctl.ok(&[
        "connect",
        "app-net",
        &pid,
        "--name",
        "client",
        "--ip",
        "10.96.0.50",
    ]);
    assert!(
        out.starts_with("connected client to app-net: eth0 10.96.0.50/24"),
        "{out}"
    );

    // The running web container joins a second network by name, with an alias.
    let a = ctl.json(&["connect", "db-net", "web", "--alias", "db"]);
    assert_eq!(a["ifname"], "eth1");
    assert_eq!(a["aliases"], json!(["db"]));
    assert!(links_in(&web).contains(&"eth1".to_string()));

    // Inspect: every container with its interface, addresses, MAC, name, aliases, ports.
    let v = ctl.json(&["network", "inspect", "app-net"]);
    let containers = v[0]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    let w = containers.iter().find(|c| c["name"] == "web").unwrap();
    assert_eq!(w["macAddress"], mac.as_str());
    assert_eq!(w["netns"], web.path_str());
    assert!(w["containerID"].as_str().unwrap().starts_with("cnitool-"));
    let c = containers.iter().find(|c| c["name"] == "client").unwrap();
    assert_eq!(c["netns"], format!("/proc/{pid}/ns/net"));
    let v = ctl.json(&["network", "inspect", "db-net"]);
    assert_eq!(v[0]["containers"][0]["aliases"], json!(["db"]));
    let ls = ctl.json(&["network", "ls"]);
    assert_eq!(ls[0]["containers"], 2);
    assert_eq!(ls[1]["containers"], 1);

    // Traffic: by name through the network's DNS, and the published port from the host.
    let resolv = ctl.sb.dir().join("client.resolv.conf");
    std::fs::write(&resolv, "nameserver 10.96.0.1\nsearch dns.podman\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ctl.fetch_in(&client, Some(&resolv), "http://web/");
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from web\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = ctl.fetch_in(&ctl.sb.host, None, "http://127.0.0.1:8080/");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from web\n");
    // db resolves on db-net only.
    let dbc = ctl.sb.container();
    ctl.ok(&["connect", "db-net", dbc.path_str(), "--name", "dbc"]);
    let dbresolv = ctl.sb.dir().join("dbc.resolv.conf");
    std::fs::write(&dbresolv, "nameserver 10.97.0.1\nsearch dns.podman\n").unwrap();
    let out = ctl.fetch_in(&dbc, Some(&dbresolv), "http://db/");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl.fetch_in(&client, Some(&resolv), "http://db/");
    assert!(!out.status.success());

    // Refusals that leave everything as it was.
    let cache_before = ctl.cache_files();
    let e = ctl.fails(&["connect", "app-net", "web"]);
    assert!(e.contains("already connected to app-net"), "{e}");
    let e = ctl.fails(&["connect", "app-net", "dbc", "--name", "other"]);
    assert!(e.contains("already named \"dbc\""), "{e}");
    let fresh = ctl.sb.container();
    let f = fresh.path_str();
    let e = ctl.fails(&["connect", "app-net", f, "--name", "web"]);
    assert!(e.contains("is taken"), "{e}");
    let e = ctl.fails(&["connect", "app-net", f, "--name", "x", "-p", "8080:81"]);
    assert!(e.contains("already published by web"), "{e}");
    let e = ctl.fails(&["network", "rm", "app-net"]);
    assert!(e.contains("2 container(s) connected: client, web"), "{e}");
    assert!(e.contains("--force"), "{e}");
    // An address already taken: ADD fails in host-local and is undone.
    let e = ctl.fails(&["connect", "app-net", f, "--name", "x", "--ip", "10.96.0.50"]);
    assert!(e.contains("cannot connect x to app-net"), "{e}");
    assert_eq!(links_in(&fresh), ["lo"]);
    assert_eq!(ctl.cache_files(), cache_before);

    // Disconnect by name, by PID.
    let out = ctl.ok(&["disconnect", "db-net", "web"]);
    assert_eq!(out, "disconnected web (eth1) from db-net\n");
    assert!(!links_in(&web).contains(&"eth1".to_string()));
    let e = ctl.fails(&["disconnect", "db-net", "web"]);
    assert!(e.contains("not connected to db-net"), "{e}");
    assert!(e.contains("it is connected to: app-net"), "{e}");
    ctl.ok(&["disconnect", "app-net", &pid]);
    stop(init);

    // rm --force disconnects what is left, deletes the bridge and the file.
    assert!(ctl.host_links().contains(&"cni-app-net".to_string()));
    let out = ctl.ok(&["network", "rm", "--force", "app-net"]);
    assert!(out.contains("disconnected web from app-net"), "{out}");
    assert!(!links_in(&web).contains(&"eth0".to_string()));
    assert!(!ctl.host_links().contains(&"cni-app-net".to_string()));
    ctl.ok(&["disconnect", "db-net", "dbc"]);
    // Both networks masqueraded and were isolated: their rules went with them.
    let before_rm = ctl.sb.host_run(&["nft", "list", "ruleset"]);
    assert!(before_rm.contains("cni network db-net"), "{before_rm}");
    ctl.ok(&["network", "rm", "db-net"]);
    let ruleset = ctl.sb.host_run(&["nft", "list", "ruleset"]);
    for gone in [
        "cni network app-net",
        "cni network db-net",
        "isolate cni-app-net",
        "isolate cni-db-net",
    ] {
        assert!(!ruleset.contains(gone), "{gone:?} is left:\n{ruleset}");
    }
    assert!(ctl.cache_files().is_empty());
    assert!(ctl.conf_files().is_empty());
    // Every address was given back.
    let left: Vec<String> = walk(&ctl.sb.data_dir().join("networks"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("10."))
        .map(|p| p.display().to_string())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    stop(server);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn connect_refuses_bad_input_and_leaves_nothing() {
    let ctl = Ctl::new();
    ctl.ok(&["network", "create", "n1", "--subnet", "10.98.0.0/24"]);
    ctl.ok(&[
        "network",
        "create",
        "quiet",
        "--subnet",
        "10.99.0.0/24",
        "--no-dns",
    ]);
    let ctr = ctl.sb.container();
    let p = ctr.path_str();
    let own = std::process::id().to_string();
    let host = ctl.sb.host_path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["connect", "n1", &own, "--name", "a"],
            "own network namespace",
        ),
        (
            &["connect", "n1", host, "--name", "a"],
            "the plugins run in",
        ),
        (
            &[
                "connect",
                "n1",
                "/run/netns/cnictl-no-such-ns",
                "--name",
                "a",
            ],
            "cannot use",
        ),
        (
            &["connect", "n1", "cnictl-no-such-ns", "--name", "a"],
            "no container named",
        ),
        (
            &["connect", "n1", "999999999", "--name", "a"],
            "no process with PID",
        ),
        (
            &["connect", "n1", "/proc/self/status", "--name", "a"],
            "cannot use",
        ),
        (&["connect", "n1", p], "needs a name"),
        (
            &["connect", "n1", p, "--name", "bad name"],
            "invalid container name",
        ),
        (
            &["connect", "n1", p, "--name", "a", "--alias=-x"],
            "invalid alias",
        ),
        (
            &["connect", "n1", p, "--name", "a", "-p", "80"],
            "invalid port mapping",
        ),
        (
            &["connect", "n1", p, "--name", "a", "-p", "8080:80/icmp"],
            "unknown protocol",
        ),
        (
            &["connect", "n1", p, "--name", "a", "-p", "70000:80"],
            "is not a port",
        ),
        (
            &["connect", "n1", p, "--name", "a", "-p", "1:1", "-p", "1:2"],
            "published twice",
        ),
        (
            &["connect", "n1", p, "--name", "a", "--ip", "10.1.0.5"],
            "outside network n1",
        ),
        (
            &["connect", "n1", p, "--name", "a", "--ip", "10.98.0.1"],
            "gateway",
        ),
        (
            &["connect", "n1", p, "--name", "a", "--ip", "banana"],
            "not an IP",
        ),
        (
            &["connect", "n1", p, "--name", "a", "--ifname", "a/b"],
            "invalid --ifname",
        ),
        (
            &["connect", "quiet", p, "--name", "a", "--alias", "b"],
            "has no DNS",
        ),
        (&["disconnect", "n1", "a"], "not connected to n1"),
    ];
    for (args, want) in cases {
        let e = ctl.fails(args);
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(e.contains("\n  hint: ") || !want.is_empty(), "{e}");
        assert!(ctl.cache_files().is_empty(), "{args:?} cached something");
        assert_eq!(links_in(&ctr), ["lo"], "{args:?} left an interface");
    }
    let e = ctl.fails(&["connect", "n1", p, "--name", "a", "-p", "x:80"]);
    assert!(
        e.contains("hint: write it as HOSTPORT:CONTAINERPORT"),
        "{e}"
    );
    // --ifname of the container's connection to another network: refused before anything
    // runs (the failed ADD's DEL would remove the other network's interface).
    ctl.ok(&["connect", "quiet", p, "--name", "a"]);
    let cached = ctl.cache_files();
    let addr = ctr.run(&["ip", "-j", "-4", "addr", "show", "eth0"]);
    let e = ctl.fails(&["connect", "n1", p, "--ifname", "eth0"]);
    assert!(
        e.contains("interface eth0 is already in use in a (its connection to quiet)"),
        "{e}"
    );
    assert!(
        e.contains("hint: pick another --ifname (such as eth1), or disconnect it first"),
        "{e}"
    );
    assert_eq!(ctl.cache_files(), cached);
    assert_eq!(links_in(&ctr), ["lo", "eth0"]);
    assert_eq!(ctr.run(&["ip", "-j", "-4", "addr", "show", "eth0"]), addr);
    // Or an interface of the namespace no cache entry knows.
    ctr.run(&[
        "ip", "link", "add", "extra0", "type", "veth", "peer", "name", "extra1",
    ]);
    let e = ctl.fails(&["connect", "n1", "a", "--ifname", "extra0"]);
    assert!(
        e.contains("interface extra0 already exists in the namespace"),
        "{e}"
    );
    assert!(
        e.contains("hint: pick another --ifname (such as eth1)"),
        "{e}"
    );
    assert_eq!(ctl.cache_files(), cached);
    assert_eq!(links_in(&ctr), ["lo", "eth0", "extra1", "extra0"]);
    ctr.run(&["ip", "link", "del", "extra0"]);
    ctl.ok(&["disconnect", "quiet", "a"]);
    assert!(ctl.cache_files().is_empty());
    assert_eq!(links_in(&ctr), ["lo"]);
    // Plugins missing: refused before anything runs, with what to do.
    let empty = ctl.sb.dir().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = ctl
        .command(&["connect", "n1", p, "--name", "a"])
        .env("CNI_PATH", &empty)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("failed to find plugin"), "{e}");
    assert!(e.contains("hint: install the plugins"), "{e}");
    assert!(!e.contains("cleaning up"), "{e}");
    assert!(ctl.cache_files().is_empty());
    // Every plugin ran but the result cache cannot be written: DEL runs, nothing stays.
    let id = libcni::cnitool_container_id(Path::new(p));
    let blocker = ctl
        .sb
        .cache_dir()
        .join("results")
        .join(format!("n1-{id}-eth0"));
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let e = ctl.fails(&["connect", "n1", p, "--name", "a"]);
    assert!(e.contains("cannot connect a to n1"), "{e}");
    assert!(e.contains("cached result"), "{e}");
    assert!(!e.contains("cleaning up"), "{e}");
    assert_eq!(links_in(&ctr), ["lo"]);
    assert!(!ctl.host_links().iter().any(|l| l.starts_with("veth")));
    std::fs::remove_dir_all(&blocker).unwrap();
    assert!(ctl.cache_files().is_empty());
    // The last plugin fails ADD and DEL: the chain stays half-made, and the error says the
    // command that finishes the DEL once the plugin works again.
    let broken = ctl.sb.dir().join("broken-bin");
    std::fs::create_dir(&broken).unwrap();
    for e in std::fs::read_dir(bin_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "dnsname" {
            std::os::unix::fs::symlink(e.path(), broken.join(e.file_name())).unwrap();
        }
    }
    let fake = broken.join("dnsname");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         if [ \"$CNI_COMMAND\" = VERSION ]; then\n\
         echo '{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}'\n\
         exit 0\nfi\n\
         echo '{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"broken on purpose\"}'\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = ctl
        .command(&["connect", "n1", p, "--name", "a"])
        .env("CNI_PATH", &broken)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("broken on purpose"), "{e}");
    assert!(e.contains("and cleaning up after it failed too"), "{e}");
    let want =
        format!("`CNI_IFNAME=eth0 CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAME=a' cnictl del n1 {p}`");
    assert!(e.contains(&want), "{e}");
    assert_eq!(links_in(&ctr), ["lo", "eth0"]);
    assert!(ctl.cache_files().is_empty());
    // That command, as printed, with the plugins working: nothing stays.
    let cmd = want.trim_matches('`').replace(
        "cnictl del",
        &format!("{} del", plugin_bin("cnictl").display()),
    );
    let base = ctl.command(&[]);
    let mut sh = Command::new("sh");
    sh.args(["-c", &cmd]);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = sh.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(links_in(&ctr), ["lo"]);
    assert!(!ctl.host_links().iter().any(|l| l.starts_with("veth")));
    assert!(ctl.cache_files().is_empty());
    // A plugin that fails during ADD: DEL runs, nothing stays.
    let mut conf: Value =
        serde_json::from_slice(&std::fs::read(ctl.sb.conf_dir().join("n1.conflist")).unwrap())
            .unwrap();
    conf["plugins"][3]["sysctl"] = json!({"net.ipv4.no_such_sysctl": "1"});
    std::fs::write(
        ctl.sb.conf_dir().join("n1.conflist"),
        serde_json::to_vec(&conf).unwrap(),
    )
    .unwrap();
    let e = ctl.fails(&["connect", "n1", p, "--name", "a"]);
    assert!(e.contains("cannot connect a to n1"), "{e}");
    assert!(e.contains("tuning"), "{e}");
    assert!(ctl.cache_files().is_empty());
    assert_eq!(links_in(&ctr), ["lo"]);
}
