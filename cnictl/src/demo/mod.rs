//! `cnictl demo`: Docker's networking tutorial played with CNI plugins, end to end, in a
//! private sandbox: a "host" network namespace where the plugins run (bridges, nftables rules
//! and the DNS sidecar live there), one namespace per container, and a temp dir for configs,
//! the result cache and the plugins' state. Every step prints the cnictl command it runs and
//! its output. Nothing is left behind, also when interrupted (see [`sandbox`]).

pub mod fetch;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::attach::{self, Attachment, ConnectOpts};
use crate::cli::{describe, describe_network};
use crate::create::{self, CreateOpts};
use crate::env::Env;
use crate::error::{CliError, Result};
use crate::network;

/// The plugins (and the DNS sidecar) the demo's networks use.
pub const NEEDED: &[&str] = &[
    "bridge",
    "host-local",
    "portmap",
    "firewall",
    "tuning",
    "dnsname",
    "cni-dns",
];

/// A container: a namespace and maybe a server process in it.
struct Ctr {
    name: String,
    netns_name: String,
    netns: PathBuf,
    resolv_conf: PathBuf,
    server: Option<Child>,
}

struct Demo {
    env: Env,
    dir: PathBuf,
    prefix: String,
    host_netns: PathBuf,
    busybox: PathBuf,
    pause: Duration,
    step: usize,
}

fn missing_in(dirs: &[PathBuf]) -> Vec<&'static str> {
    NEEDED
        .iter()
        .copied()
        .filter(|p| !dirs.iter().any(|d| d.join(p).is_file()))
        .collect()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs the demo. `env` gives the plugin directories (the ones next to cnictl are used when
/// they hold the plugins and CNI_PATH does not); everything else is the sandbox's own.
pub fn run(env: &Env, pause_ms: u64) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            CliError::new("cnictl demo needs root (it creates network namespaces)")
                .hint("run it with sudo, or as root: scripts/demo.sh"),
        );
    }
    let mut plugin_dirs = env.plugin_dirs.clone();
    if !missing_in(&plugin_dirs).is_empty()
        && let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        && missing_in(std::slice::from_ref(&exe_dir)).is_empty()
    {
        plugin_dirs = vec![exe_dir];
    }
    let missing = missing_in(&plugin_dirs);
    if !missing.is_empty() {
        return Err(CliError::new(format!(
            "the demo needs these plugins, missing from {}: {}",
            plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            missing.join(", ")
        ))
        .hint(
            "build them (`cargo build --release`, or scripts/demo.sh) and point CNI_PATH at them",
        ));
    }
    let busybox = find_program("busybox").ok_or_else(|| {
        CliError::new("the demo's web server is busybox httpd, and busybox is not installed")
            .hint("apt-get install busybox-static")
    })?;

    sandbox::catch_signals()?;
    let result = (|| -> Result<()> {
        let dir = sandbox::make_dir()?;
        let prefix = format!("cnictl-demo-{}", std::process::id());
        let host_netns = sandbox::add_netns(&prefix)?;
        for sub in ["conf", "cache", "data"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // The DNS sidecar forwards unknown names nowhere: no packet leaves the sandbox.
        let upstream = dir.join("upstream-resolv.conf");
        std::fs::write(
            &upstream,
            "# the demo forwards no query outside its sandbox\n",
        )?;
        let demo_env = Env {
            conf_dir: dir.join("conf"),
            plugin_dirs,
            cache_dir: dir.join("cache"),
            data_dir: Some(dir.join("data")),
            exec_netns: Some(host_netns.clone()),
            dns_upstream: Some(upstream),
        };
        let mut demo = Demo {
            env: demo_env,
            dir,
            prefix,
            host_netns,
            busybox,
            pause: Duration::from_millis(pause_ms),
            step: 0,
        };
        demo.play()
    })();
    if sandbox::interrupted() {
        // The signal thread is removing everything and will exit.
        loop {
            std::thread::park();
        }
    }
    println!();
    println!("== cleanup: stopping processes, deleting namespaces and the temp dir");
    let left = sandbox::teardown_all();
    if left.is_empty() {
        println!("nothing left behind");
    } else {
        for l in &left {
            eprintln!("warning: left behind: {l}");
        }
    }
    result
}

impl Demo {
    fn step(&mut self, title: &str) {
        if self.step > 0 && !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        self.step += 1;
        println!();
        println!("== {}. {title}", self.step);
    }

    fn say(&self, line: &str) {
        println!("{line}");
    }

    fn cmd(&self, line: &str) {
        println!("$ {line}");
    }

    fn create(&self, name: &str) -> Result<()> {
        self.cmd(&format!("cnictl network create {name}"));
        let n = create::create(
            &self.env,
            &CreateOpts {
                name: name.to_string(),
                ..CreateOpts::default()
            },
        )?;
        self.say(&describe_network(&n));
        Ok(())
    }

    /// A container namespace, with a resolv.conf path for when it is connected.
    fn container(&self, name: &str) -> Result<Ctr> {
        let netns_name = format!("{}-{name}", self.prefix);
        self.cmd(&format!("ip netns add {netns_name}"));
        let netns = sandbox::add_netns(&netns_name)?;
        Ok(Ctr {
            name: name.to_string(),
            netns_name,
            netns,
            resolv_conf: self.dir.join(format!("{name}.resolv.conf")),
            server: None,
        })
    }

    fn connect(
        &self,
        network: &str,
        ctr: &Ctr,
        target: &str,
        name: Option<&str>,
        aliases: &[&str],
        ports: &[&str],
    ) -> Result<Attachment> {
        let mut line = format!("cnictl connect {network} {target}");
        if let Some(n) = name {
            line.push_str(&format!(" --name {n}"));
        }
        for a in aliases {
            line.push_str(&format!(" --alias {a}"));
        }
        for p in ports {
            line.push_str(&format!(" -p {p}"));
        }
        self.cmd(&line);
        let a = attach::connect(
            &self.env,
            &ConnectOpts {
                network: network.to_string(),
                container: target.to_string(),
                name: name.map(str::to_string),
                aliases: aliases.iter().map(|s| s.to_string()).collect(),
                ip: None,
                ports: ports.iter().map(|s| s.to_string()).collect(),
                ifname: None,
            },
        )?;
        self.say(&format!(
            "connected {} to {}: {}",
            a.display_name(),
            a.network,
            describe(&a)
        ));
        // What a runtime does with the result's DNS: the container's resolv.conf (the
        // nameservers of all its networks).
        if !a.dns.nameservers.is_empty() {
            let old = fetch::parse_resolv_conf(
                &std::fs::read_to_string(&ctr.resolv_conf).unwrap_or_default(),
            );
            let mut servers: Vec<String> = old.nameservers.iter().map(|s| s.to_string()).collect();
            let mut search = old.search;
            for ns in &a.dns.nameservers {
                if !servers.contains(ns) {
                    servers.push(ns.clone());
                }
            }
            for s in &a.dns.search {
                if !search.contains(s) {
                    search.push(s.clone());
                }
            }
            let mut text = String::new();
            for ns in &servers {
                text.push_str(&format!("nameserver {ns}\n"));
            }
            if !search.is_empty() {
                text.push_str(&format!("search {}\n", search.join(" ")));
            }
            std::fs::write(&ctr.resolv_conf, &text)?;
            self.say(&format!(
                "  {}'s resolv.conf: {}",
                ctr.name,
                text.trim_end().replace('\n', "; ")
            ));
        }
        Ok(a)
    }

    fn disconnect(&self, network: &str, who: &str) -> Result<()> {
        self.cmd(&format!("cnictl disconnect {network} {who}"));
        let a = attach::disconnect(&self.env, network, who)?;
        self.say(&format!(
            "disconnected {} ({}) from {}",
            a.display_name(),
            a.ifname,
            a.network
        ));
        Ok(())
    }

    /// `demo-fetch URL` inside `netns` with a resolv.conf; Ok(body) or Err(message).
    fn fetch_in(
        &self,
        netns: &Path,
        resolv_conf: Option<&Path>,
        url: &str,
        timeout_ms: u64,
    ) -> Result<std::result::Result<String, String>> {
        let exe = std::env::current_exe()?;
        let mut args = vec!["demo-fetch".to_string(), "--timeout-ms".to_string()];
        args.push(timeout_ms.to_string());
        if let Some(rc) = resolv_conf {
            args.push("--resolv-conf".into());
            args.push(rc.display().to_string());
        }
        args.push(url.to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox::command_in(netns, &exe, &argv)?
            .output()
            .map_err(|e| CliError::new(format!("cannot run the demo client: {e}")))?;
        if out.status.success() {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("Error: ")
                .to_string()))
        }
    }

    /// Fetches and expects success, retrying briefly while a server starts.
    fn expect_fetch(
        &self,
        who: &str,
        ctr_netns: &Path,
        rc: Option<&Path>,
        url: &str,
    ) -> Result<()> {
        self.cmd(&format!("(in {who}) cnictl demo-fetch {url}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.fetch_in(ctr_netns, rc, url, 3000)? {
                Ok(body) => {
                    for line in body.lines() {
                        self.say(&format!("  {line}"));
                    }
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(CliError::new(format!("{who} could not fetch {url}: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Fetches and expects failure.
    fn expect_no_fetch(&self, who: &str, netns: &Path, rc: Option<&Path>, url: &str) -> Result<()> {
        self.cmd(&format!("(in {who}) cnictl demo-fetch {url}"));
        match self.fetch_in(netns, rc, url, 2000)? {
            Ok(_) => Err(CliError::new(format!(
                "{who} reached {url}, but networks should be isolated"
            ))),
            Err(e) => {
                self.say(&format!("  fails as it should: {e}"));
                Ok(())
            }
        }
    }

    fn start_web_server(&self, ctr: &mut Ctr) -> Result<()> {
        let www = self.dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(
            www.join("index.html"),
            "Hello from web-server, a busybox httpd in its own network namespace!\n",
        )?;
        let www_s = www.display().to_string();
        let cmd = sandbox::command_in(
            &ctr.netns,
            &self.busybox,
            &["httpd", "-f", "-p", "80", "-h", &www_s],
        )?;
        let child = sandbox::spawn(cmd)?;
        self.cmd(&format!(
            "(in {}) busybox httpd -f -p 80 -h {www_s} &",
            ctr.netns_name
        ));
        self.say(&format!("  web server running, PID {}", child.id()));
        ctr.server = Some(child);
        Ok(())
    }

    fn play(&mut self) -> Result<()> {
        self.say("cnictl demo: Docker's networking workflow, done with CNI plugins.");
        self.say(&format!(
            "Sandbox: plugins run in network namespace {} (the \"host\"); configs, the result \
             cache and the plugins' state live in {}. The machine's own network is not touched.",
            self.prefix,
            self.dir.display()
        ));
        self.say(&format!(
            "Plugins from {}",
            self.env
                .plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        ));

        self.step("Create a user-defined network");
        self.create("app-net")?;

        self.step("Start web-server: an HTTP server in its own namespace, publishing 8080->80");
        let mut web = self.container("web-server")?;
        self.start_web_server(&mut web)?;
        let web_path = web.netns.display().to_string();
        let web_a = self.connect(
            "app-net",
            &web,
            &web_path,
            Some("web-server"),
            &[],
            &["8080:80"],
        )?;

        self.step("Start a client container on the same network");
        let client = self.container("client")?;
        let client_path = client.netns.display().to_string();
        self.connect("app-net", &client, &client_path, Some("client"), &[], &[])?;

        self.step("The client reaches web-server by name");
        self.say(
            "(demo-fetch is a small HTTP client that resolves names through the container's \
             resolv.conf, as the C library does; it stands in for wget/curl.)",
        );
        self.expect_fetch(
            "client",
            &client.netns,
            Some(&client.resolv_conf),
            "http://web-server/",
        )?;

        self.step("The published port: from the host, port 8080 reaches web-server's port 80");
        self.expect_fetch("host", &self.host_netns, None, "http://127.0.0.1:8080/")?;

        self.step("A second network; connect the running web-server to it with alias db");
        self.create("db-net")?;
        self.connect("db-net", &web, "web-server", None, &["db"], &[])?;

        self.step("A container on db-net resolves db");
        let dbc = self.container("db-client")?;
        let dbc_path = dbc.netns.display().to_string();
        self.connect("db-net", &dbc, &dbc_path, Some("db-client"), &[], &[])?;
        self.expect_fetch(
            "db-client",
            &dbc.netns,
            Some(&dbc.resolv_conf),
            "http://db/",
        )?;

        self.step("Networks are isolated: a container on another network cannot reach web-server");
        self.create("other-net")?;
        let intruder = self.container("intruder")?;
        let intruder_path = intruder.netns.display().to_string();
        self.connect(
            "other-net",
            &intruder,
            &intruder_path,
            Some("intruder"),
            &[],
            &[],
        )?;
        self.expect_no_fetch(
            "intruder",
            &intruder.netns,
            Some(&intruder.resolv_conf),
            "http://web-server/",
        )?;
        let web_ip = web_a
            .ips
            .iter()
            .find(|n| n.is_ipv4())
            .map(|n| n.ip().to_string())
            .ok_or_else(|| CliError::new("web-server got no IPv4 address"))?;
        self.expect_no_fetch(
            "intruder",
            &intruder.netns,
            None,
            &format!("http://{web_ip}/"),
        )?;

        self.step("Inspect");
        self.cmd("cnictl network ls");
        let (nets, attached) = network::networks_and_attachments(&self.env)?;
        let rows: Vec<Vec<String>> = nets
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.driver(),
                    n.ranges()
                        .iter()
                        .map(|r| r.subnet.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    attached
                        .iter()
                        .filter(|a| a.network == n.name)
                        .count()
                        .to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::output::table(&["NAME", "DRIVER", "SUBNETS", "CONTAINERS"], &rows)
        );
        self.cmd("cnictl network inspect app-net   (its \"config\" left out here)");
        let mut v = network::inspect(&self.env, &["app-net".to_string()])?;
        if let Some(first) = v.get_mut(0).and_then(|f| f.as_object_mut()) {
            first.remove("config");
        }
        self.say(&serde_json::to_string_pretty(&v).unwrap_or_default());

        self.step("Disconnect web-server from db-net; db no longer resolves");
        self.disconnect("db-net", "web-server")?;
        self.expect_no_fetch(
            "db-client",
            &dbc.netns,
            Some(&dbc.resolv_conf),
            "http://db/",
        )?;

        self.step("Remove everything");
        self.cmd("cnictl network rm app-net");
        match network::remove(&self.env, "app-net", false) {
            Ok(_) => {
                return Err(CliError::new(
                    "network rm should refuse while containers are connected",
                ));
            }
            Err(e) => self.say(&format!("Error: {e}")),
        }
        self.cmd("cnictl network rm --force app-net");
        let r = network::remove(&self.env, "app-net", true)?;
        for d in &r.disconnected {
            self.say(&format!("disconnected {d} from app-net"));
        }
        self.say("app-net");
        self.disconnect("db-net", "db-client")?;
        self.disconnect("other-net", "intruder")?;
        self.cmd("cnictl network prune");
        let removed = network::prune(&self.env)?;
        self.say("Deleted Networks:");
        for r in &removed {
            self.say(&r.name);
        }
        if let Some(mut s) = web.server.take() {
            self.cmd(&format!("kill {}   (web-server's httpd)", s.id()));
            sandbox::stop(&mut s);
        }
        for c in [&web, &client, &dbc, &intruder] {
            self.cmd(&format!("ip netns delete {}", c.netns_name));
            sandbox::del_netns(&c.netns_name)?;
        }
        let left = attach::all_attachments(&self.env)?;
        if !left.is_empty() {
            return Err(CliError::new(format!(
                "{} attachment(s) still cached after removing everything",
                left.len()
            )));
        }
        Ok(())
    }
}
