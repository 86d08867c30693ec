//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::attach::{self, Attachment, ConnectOpts};
use crate::cnitool::{self, Op};
use crate::create::{self, CreateOpts};
use crate::env::{Env, Overrides};
use crate::error::Result;
use crate::network;
use crate::output::table;

const ABOUT: &str = "Docker-style networks for any CNI runtime, and a cnitool-compatible runner";

const AFTER: &str = "\
Environment (flags win):
  NETCONFPATH          network configs (default /etc/cni/net.d)
  CNI_PATH             plugin directories, ':'-separated (default /opt/cni/bin)
  CNICTL_CACHE_DIR     libcni's result cache (default /var/lib/cni)
  CNICTL_DATA_DIR      plugin state of new networks (default: each plugin's own)
  CNICTL_EXEC_NETNS    run plugins in this network namespace
  CNICTL_DNS_UPSTREAM  resolv.conf the DNS of new networks forwards to
  CNI_ARGS, CAP_ARGS, CNI_IFNAME   as cnitool reads them (add/check/del)

Examples:
  cnictl network create app-net
  cnictl connect app-net /run/netns/web --name web -p 8080:80
  cnictl connect app-net 4242 --name client
  cnictl network inspect app-net
  cnictl disconnect app-net web
  cnictl network rm app-net
  CNI_PATH=/opt/cni/bin cnictl add mynet /run/netns/testing";

#[derive(Parser, Debug)]
#[command(name = "cnictl", version, about = ABOUT, after_help = AFTER)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Network config directory [env: NETCONFPATH]
    #[arg(long, global = true, value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// Plugin directories, ':'-separated [env: CNI_PATH]
    #[arg(long, global = true, value_name = "DIRS")]
    pub plugin_dir: Option<String>,
    /// libcni result cache directory [env: CNICTL_CACHE_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Root of the plugin state of new networks [env: CNICTL_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run plugins inside this network namespace [env: CNICTL_EXEC_NETNS]
    #[arg(long, global = true, value_name = "NETNS")]
    pub exec_netns: Option<PathBuf>,
    /// resolv.conf the DNS of new networks forwards to [env: CNICTL_DNS_UPSTREAM]
    #[arg(long, global = true, value_name = "FILE")]
    pub dns_upstream: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ToolArgs {
    /// Network name
    pub network: String,
    /// Network namespace path (the container ID is derived from it, as cnitool does)
    pub netns: Option<String>,
    /// Interface name [env: CNI_IFNAME, default eth0]
    #[arg(short = 'i', long)]
    pub ifname: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// cnitool add: ADD the network's plugins for NETNS and print the result
    Add(ToolArgs),
    /// cnitool check: CHECK the attachment against the cached result
    Check(ToolArgs),
    /// cnitool del: DEL the attachment (with the cached result)
    Del(ToolArgs),
    /// cnitool gc: DEL every cached attachment of the network, then GC its plugins
    Gc(ToolArgs),
    /// cnitool status: STATUS of the network's plugins
    Status(ToolArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Connect a container (netns path, PID, `ip netns` name, or a connected container's name)
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect {
        /// Network name
        network: String,
        /// Name, container ID, PID, netns path or `ip netns` name
        container: String,
    },
    /// Play the whole workflow in a private sandbox, then remove everything
    Demo(DemoArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Pause this many milliseconds after each step
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Network name
    pub network: String,
    /// Netns path, PID, `ip netns` name, or the name of a container already connected
    pub container: String,
    /// The container's name (in DNS, `inspect`, `disconnect`)
    #[arg(long)]
    pub name: Option<String>,
    /// Another name for it on this network (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// A fixed address in the network's subnet
    #[arg(long)]
    pub ip: Option<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT[-END]:CONTAINERPORT[-END][/tcp|udp|sctp] (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub ports: Vec<String>,
    /// Interface name in the container (default: the first free ethN)
    #[arg(long)]
    pub ifname: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network (writes <NETCONFPATH>/<NAME>.conflist)
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON: config, subnets, connected containers
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while containers are connected, unless --force)
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Disconnect connected containers first
        #[arg(short, long)]
        force: bool,
    },
    /// Remove every network cnictl created that has no container connected
    Prune {
        /// Accepted for Docker's muscle memory; prune never asks
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub name: String,
    /// bridge, macvlan or ipvlan
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR notation (repeatable; default: a free /24 from 10.89.0.0)
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway of the subnet holding it (repeatable)
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container addresses from this part of the subnet (repeatable)
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// No route out of the subnet, no masquerade
    #[arg(long)]
    pub internal: bool,
    /// Driver option KEY=VALUE: mtu, bridge, isolate (bridge); parent, mode, mtu (macvlan, ipvlan)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// No name resolution (leaves dnsname out)
    #[arg(long)]
    pub no_dns: bool,
}

impl Global {
    pub fn env(&self) -> Env {
        Env::resolve(Overrides {
            conf_dir: self.conf_dir.clone(),
            plugin_dirs: self.plugin_dir.clone(),
            cache_dir: self.cache_dir.clone(),
            data_dir: self.data_dir.clone(),
            exec_netns: self.exec_netns.clone(),
            dns_upstream: self.dns_upstream.clone(),
        })
    }
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// One line about a connection.
pub fn describe(a: &Attachment) -> String {
    let mut s = format!("{} {}", a.ifname, a.ips_text());
    if let Some(mac) = &a.mac {
        s.push_str(&format!(", mac {mac}"));
    }
    if !a.aliases.is_empty() {
        s.push_str(&format!(", aliases {}", a.aliases.join(" ")));
    }
    if !a.ports.is_empty() {
        let ports: Vec<String> = a.ports.iter().map(ToString::to_string).collect();
        s.push_str(&format!(", ports {}", ports.join(" ")));
    }
    s
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let env = cli.global.env();
    let json = cli.global.json;
    match cli.command {
        Command::Add(a) => tool(&env, Op::Add, a),
        Command::Check(a) => tool(&env, Op::Check, a),
        Command::Del(a) => tool(&env, Op::Del, a),
        Command::Gc(a) => tool(&env, Op::Gc, a),
        Command::Status(a) => tool(&env, Op::Status, a),
        Command::Network(n) => network_command(&env, n, json),
        Command::Connect(c) => {
            let a = attach::connect(
                &env,
                &ConnectOpts {
                    network: c.network,
                    container: c.container,
                    name: c.name,
                    aliases: c.aliases,
                    ip: c.ip,
                    ports: c.ports,
                    ifname: c.ifname,
                },
            )?;
            if json {
                print_json(&serde_json::json!(a));
            } else {
                println!(
                    "connected {} to {}: {}",
                    a.display_name(),
                    a.network,
                    describe(&a)
                );
            }
            Ok(())
        }
        Command::Disconnect { network, container } => {
            let a = attach::disconnect(&env, &network, &container)?;
            if json {
                print_json(&serde_json::json!(a));
            } else {
                println!(
                    "disconnected {} ({}) from {}",
                    a.display_name(),
                    a.ifname,
                    a.network
                );
            }
            Ok(())
        }
        Command::Demo(d) => crate::demo::run(&env, d.pause_ms),
    }
}

fn tool(env: &Env, op: Op, a: ToolArgs) -> Result<()> {
    if let Some(out) = cnitool::run(env, op, &a.network, a.netns.as_deref(), a.ifname.as_deref())? {
        println!("{out}");
    }
    Ok(())
}

fn network_command(env: &Env, cmd: NetworkCommand, json: bool) -> Result<()> {
    match cmd {
        NetworkCommand::Create(c) => network_create(env, c, json),
        NetworkCommand::Ls { quiet } => network_ls(env, quiet, json),
        NetworkCommand::Inspect { names } => {
            print_json(&network::inspect(env, &names)?);
            Ok(())
        }
        NetworkCommand::Rm { names, force } => network_rm(env, &names, force, json),
        NetworkCommand::Prune { force: _ } => network_prune(env, json),
    }
}

fn network_create(env: &Env, c: CreateArgs, json: bool) -> Result<()> {
    let n = create::create(
        env,
        &CreateOpts {
            name: c.name,
            driver: Some(c.driver),
            subnets: c.subnet,
            gateways: c.gateway,
            ip_ranges: c.ip_range,
            internal: c.internal,
            opts: c.opt,
            no_dns: c.no_dns,
        },
    )?;
    if json {
        print_json(&network::inspect_value(&n, &[]));
    } else {
        println!("{}", describe_network(&n));
    }
    Ok(())
}

fn network_ls(env: &Env, quiet: bool, json: bool) -> Result<()> {
    let (networks, attached) = network::networks_and_attachments(env)?;
    if json {
        let v: Vec<_> = networks
            .iter()
            .map(|n| network::summary(n, &attached))
            .collect();
        print_json(&serde_json::json!(v));
    } else if quiet {
        for n in &networks {
            println!("{}", n.name);
        }
    } else {
        let rows: Vec<Vec<String>> = networks
            .iter()
            .map(|n| {
                let ranges = n.ranges();
                let subnets: Vec<String> = ranges.iter().map(|r| r.subnet.to_string()).collect();
                let gws: Vec<String> = ranges
                    .iter()
                    .filter_map(|r| r.gateway.map(|g| g.to_string()))
                    .collect();
                let count = attached.iter().filter(|a| a.network == n.name).count();
                vec![
                    n.name.clone(),
                    n.driver(),
                    subnets.join(","),
                    gws.join(","),
                    count.to_string(),
                    if n.dns() { "yes" } else { "no" }.to_string(),
                    n.file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "NAME",
                    "DRIVER",
                    "SUBNETS",
                    "GATEWAYS",
                    "CONTAINERS",
                    "DNS",
                    "FILE"
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// Removes each network; the first failure is the result, later ones are printed.
fn network_rm(env: &Env, names: &[String], force: bool, json: bool) -> Result<()> {
    let mut first_err = None;
    for name in names {
        match network::remove(env, name, force) {
            Ok(r) => {
                for w in &r.warnings {
                    eprintln!("warning: {}: {w}", r.name);
                }
                if !json {
                    for d in &r.disconnected {
                        println!("disconnected {d} from {}", r.name);
                    }
                    println!("{}", r.name);
                }
            }
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                } else {
                    eprintln!("Error: {e}");
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn network_prune(env: &Env, json: bool) -> Result<()> {
    let removed = network::prune(env)?;
    if json {
        let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
        print_json(&serde_json::json!(names));
    } else if removed.is_empty() {
        println!("no unused network to remove");
    } else {
        println!("Deleted Networks:");
        for r in &removed {
            println!("{}", r.name);
        }
    }
    Ok(())
}

/// What `network create` prints.
pub fn describe_network(n: &crate::netconf::Network) -> String {
    let mut s = format!("created network {} ({})", n.name, n.driver());
    for r in n.ranges() {
        s.push_str(&format!("\n  subnet   {}", r.subnet));
        if let Some(g) = r.gateway {
            s.push_str(&format!(", gateway {g}"));
        }
    }
    if let Some(b) = n.bridge() {
        s.push_str(&format!("\n  bridge   {b}"));
    }
    let plugins: Vec<&str> = n
        .list
        .plugins
        .iter()
        .map(libcni::conf::plugin_type)
        .collect();
    s.push_str(&format!("\n  plugins  {}", plugins.join(" → ")));
    s.push_str(&format!(
        "\n  dns      {}",
        if n.dns() {
            format!(
                "containers find each other by name (search domain {})",
                create::DNS_DOMAIN
            )
        } else {
            "off".to_string()
        }
    ));
    s.push_str(&format!("\n  config   {}", n.file.display()));
    s
}
