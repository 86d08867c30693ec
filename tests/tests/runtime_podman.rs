//! podman 4.3 (Debian) with `network_backend = "cni"` and our plugin directory as its only
//! plugin directory: a user-defined network (bridge + host-local, portmap, firewall, tuning,
//! and dnsname when it is built), two containers that reach each other, a published port that
//! answers from the sandbox host, a second network connected to a running container and
//! disconnected, and removal that leaves no rule, allocation or state behind.
//!
//! podman runs inside a private sandbox netns and mount namespace with all of its state under a
//! temp dir (tests/runtimes/harness.rs says how); nothing touches the machine's network,
//! /var/lib/containers, /var/lib/cni or /etc/cni.

#![allow(clippy::unwrap_used)]

#[path = "../runtimes/harness.rs"]
mod harness;

use harness::{RuntimeSandbox, check, require_tools};

struct Podman {
    sb: RuntimeSandbox,
    env: Vec<(&'static str, String)>,
}

impl Podman {
    fn new() -> Podman {
        let mut sb = RuntimeSandbox::new("cnirt-podman-");
        let t = sb.dir.path().display().to_string();
        std::fs::create_dir_all(sb.path("conf")).unwrap();
        std::fs::create_dir_all(sb.path("tmp")).unwrap();
        std::fs::write(
            sb.path("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{t}/events.log\"\n\
                 tmp_dir = \"{t}/tmp\"\n\
                 [network]\n\
                 network_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{t}/bin\"]\n\
                 network_config_dir = \"{t}/conf\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            sb.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{t}/runroot\"\ngraphroot = \"{t}/storage\"\n"
            ),
        )
        .unwrap();
        sb.start_holder("sleep 1000000", "holder.log", None);
        let env = vec![
            ("CONTAINERS_CONF", format!("{t}/containers.conf")),
            ("CONTAINERS_STORAGE_CONF", format!("{t}/storage.conf")),
        ];
        Podman { sb, env }
    }

    fn try_run(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["podman"];
        full.extend_from_slice(args);
        self.sb.in_holder(&self.env, &full)
    }

    fn run(&self, args: &[&str]) -> String {
        check(self.try_run(args), &format!("podman {}", args.join(" ")))
            .trim()
            .to_string()
    }

    fn ip(&self, container: &str, network: &str) -> String {
        self.run(&[
            "inspect",
            container,
            "--format",
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        ])
    }

    fn exec_ok(&self, container: &str, cmd: &[&str]) -> bool {
        let mut args = vec!["exec", container];
        args.extend_from_slice(cmd);
        self.try_run(&args).status.success()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // A failed test still takes its containers down (CNI DEL included).
        let _ = self.try_run(&["rm", "-af", "-t", "0"]);
    }
}

#[test]
fn podman_cni_backend_runs_networks_on_our_plugins_alone() {
    if !require_tools(&["podman", "runc", "conmon", "nsenter", "unshare"]) {
        return;
    }
    let pm = Podman::new();
    for plugin in ["portmap", "dnsname"] {
        assert!(
            pm.sb.has_plugin(plugin),
            "run `cargo build --workspace` first"
        );
    }
    let rootfs = pm.sb.rootfs();
    let tar = pm.sb.path("rootfs.tar");
    check(
        std::process::Command::new("tar")
            .args(["-C", &rootfs.display().to_string(), "-cf"])
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap(),
        "tar rootfs",
    );
    pm.run(&["import", &tar.display().to_string(), "localhost/bb"]);
    let cgroup_parent = format!("--cgroup-parent=/{}", pm.sb.cgroup_parent);

    // The network podman writes: bridge, portmap, firewall, tuning (+ dnsname).
    pm.run(&["network", "create", "--subnet", "10.89.10.0/24", "rtnet"]);
    let conflist = std::fs::read_to_string(pm.sb.path("conf/rtnet.conflist")).unwrap();
    for plugin in ["bridge", "host-local", "portmap", "firewall", "tuning"] {
        assert!(conflist.contains(&format!("\"{plugin}\"")), "{conflist}");
    }
    assert!(conflist.contains("\"dnsname\""), "{conflist}");

    pm.run(&[
        "run",
        "-d",
        "--name",
        "web-server",
        "--network",
        "rtnet",
        "--network-alias",
        "db",
        "-p",
        "18080:80",
        &cgroup_parent,
        "localhost/bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    pm.run(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "rtnet",
        &cgroup_parent,
        "localhost/bb",
        "sleep",
        "1000000",
    ]);
    let (web, client) = (pm.ip("web-server", "rtnet"), pm.ip("client", "rtnet"));
    assert!(web.starts_with("10.89.10.") && client.starts_with("10.89.10."));

    // Every plugin of the chain did its part: the firewall's and portmap's per-container
    // entries name the address.
    let allowed = pm
        .sb
        .in_host(&["nft", "list", "set", "inet", "cni_firewall", "allow4"]);
    assert!(
        allowed.contains(&web) && allowed.contains(&client),
        "{allowed}"
    );
    assert!(
        pm.sb.rules_naming(&web).iter().any(|l| l.contains("18080")),
        "no port mapping names {web}"
    );

    // The containers reach each other.
    assert!(pm.exec_ok("client", &["ping", "-c", "1", "-W", "2", &web]));
    let page = pm.run(&["exec", "client", "wget", "-qO-", &format!("http://{web}/")]);
    assert_eq!(page, "hello from the container");
    // By name and by network alias, through dnsname and its sidecar.
    for name in ["web-server", "db", "web-server.dns.podman"] {
        let page = pm.run(&["exec", "client", "wget", "-qO-", &format!("http://{name}/")]);
        assert_eq!(page, "hello from the container", "fetch by {name}");
    }

    // The published port answers from the sandbox host, on the gateway and on localhost.
    assert_eq!(
        pm.sb.http_get("10.89.10.1", 18080),
        "hello from the container"
    );
    assert_eq!(
        pm.sb.http_get("127.0.0.1", 18080),
        "hello from the container"
    );

    // A second network, connected to the running client and disconnected again.
    pm.run(&["network", "create", "--subnet", "10.89.11.0/24", "rtnet2"]);
    pm.run(&["network", "connect", "rtnet2", "client"]);
    let second = pm.ip("client", "rtnet2");
    assert!(second.starts_with("10.89.11."), "{second}");
    let addrs = pm.run(&["exec", "client", "ip", "-4", "addr"]);
    assert!(addrs.contains(&second), "{addrs}");
    assert!(pm.sb.allocations().iter().any(|a| a.starts_with("rtnet2/")));
    pm.run(&["network", "disconnect", "rtnet2", "client"]);
    let addrs = pm.run(&["exec", "client", "ip", "-4", "addr"]);
    assert!(!addrs.contains(&second), "{addrs}");
    assert!(!pm.sb.allocations().iter().any(|a| a.starts_with("rtnet2/")));
    assert!(pm.sb.rules_naming(&second).is_empty());

    // Removing everything leaves nothing behind.
    pm.run(&["rm", "-f", "-t", "0", "web-server", "client"]);
    pm.run(&["network", "rm", "rtnet", "rtnet2"]);
    assert_eq!(pm.sb.allocations(), Vec::<String>::new());
    for ip in [&web, &client, &second] {
        assert_eq!(
            pm.sb.rules_naming(ip),
            Vec::<String>::new(),
            "rules for {ip}"
        );
    }
    assert_eq!(pm.sb.state_files(), Vec::<String>::new());
    let links = pm.sb.in_host(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
}
