//! bandwidth chained after bridge (`isGateway`) with host-local, as containerd runs the list
//! for a pod with bandwidth annotations: the limits come as `runtimeConfig.bandwidth` (the
//! `bandwidth` capability), 8 Mbit/s into the pod and 16 Mbit/s out of it. Two rows:
//!
//! - `bridge+host-local+bandwidth`: what the calls cost. ADD then DEL of a fresh container in
//!   its own netns each iteration, run through [`Chain`] (DEL in reverse order with the
//!   ADD's result, as libcni does); `bw ADD` / `bw DEL` are the bandwidth process alone.
//! - `bandwidth shaping`: what the limits do. One container stays attached for the whole row;
//!   each iteration sends over TCP as fast as the kernel lets it, from the host netns to the
//!   container (ingress) and from the container to the gateway address in the host netns
//!   (egress), and takes the rate the receiver sees over [`WINDOW`] after [`RAMP`]. Its
//!   durations are times per megabit of payload (1 / rate), and the report prints the rates
//!   next to the configured ones. Sender and receiver are threads of the bench; sockets are
//!   made by short-lived threads that enter the netns ([`Netns::run_inside`]), and the
//!   traffic never leaves the row's own namespaces.
//!
//! Each implementation of each row has a host netns of its own (one node each), its own
//! bridge, subnet and data directories. Every DEL is followed, untimed, by [`settle`] (our
//! bridge leaves the unregistration of the veth pair to a child). Deleting the host netns at
//! the end takes the bridge, the veths, the ifbs and their qdiscs with it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    CNI_VERSION, Derived, Instance, Params, RateTarget, Row, addresses_in, container_id,
    pod_invocation, run_text, settle,
};
use crate::chain::{Chain, ChainRun};
use crate::error::{Context, Error, Result};
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side, path_str};

/// The limits, in bits per second and bits (the bandwidth plugin's units).
const INGRESS_RATE: u64 = 8_000_000;
const INGRESS_BURST: u64 = 80_000;
const EGRESS_RATE: u64 = 16_000_000;
const EGRESS_BURST: u64 = 160_000;

/// How long a transfer is measured, after [`RAMP`].
const WINDOW: Duration = Duration::from_secs(1);
/// What is left out at the start of a transfer: TCP's slow start and the token bucket's
/// initial burst.
const RAMP: Duration = Duration::from_millis(100);
/// How long a socket may wait for its peer before the transfer is a failure.
const STALL: Duration = Duration::from_secs(1);

/// The table with the bandwidth rows added at the end.
pub fn register(
    _params: Params,
    (mut rows, derived): (Vec<Box<dyn Row>>, Vec<Derived>),
) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    rows.push(Box::new(Calls));
    rows.push(Box::new(Shaping));
    (rows, derived)
}

/// The cost of the calls: ADD then DEL of a fresh container.
pub struct Calls;

impl Row for Calls {
    fn name(&self) -> String {
        "bridge+host-local+bandwidth".to_string()
    }

    fn describe(&self) -> String {
        "bridge (isGateway) with host-local, then bandwidth (8 Mbit/s in, 16 Mbit/s out, as \
         runtimeConfig): ADD then DEL of a fresh container in its own netns"
            .to_string()
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["bridge", "host-local", "bandwidth"]
    }

    /// The whole list's ADD and DEL, and bandwidth's own share of them (`bw`).
    fn ops(&self) -> Vec<&'static str> {
        vec!["ADD", "DEL", "bw ADD", "bw DEL"]
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let node = Node::create(sandbox, side, 0)?;
        // Bridge and gateway exist before the first measured call, as on a node that has
        // run containers before.
        let warm = container_id(56, usize::MAX);
        let first = node.add(&warm)?;
        node.del(&warm, &first)?;
        node.check_counts(0)?;
        Ok(Box::new(CallsInstance { node }))
    }
}

struct CallsInstance {
    node: Node,
}

impl Instance for CallsInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        let id = container_id(57, i);
        let add = self.node.add(&id)?;
        let del = self.node.del(&id, &add)?;
        Ok(vec![
            add.total(),
            del.total(),
            bandwidth_step(&add)?,
            bandwidth_step(&del)?,
        ])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.node.check_counts(0)
    }
}

/// What the limits do: the rates achieved through them.
pub struct Shaping;

impl Row for Shaping {
    fn name(&self) -> String {
        "bandwidth shaping".to_string()
    }

    fn describe(&self) -> String {
        format!(
            "a container behind bridge+host-local+bandwidth (8 Mbit/s in, 16 Mbit/s out): TCP \
             at full speed into it and out of it for {:.1} s each; ms per Mbit of payload, \
             rates printed against the configured ones",
            (RAMP + WINDOW).as_secs_f64()
        )
    }

    fn plugins(&self) -> Vec<&'static str> {
        vec!["bridge", "host-local", "bandwidth"]
    }

    fn ops(&self) -> Vec<&'static str> {
        vec!["1/in", "1/out"]
    }

    fn rate_targets(&self) -> Vec<RateTarget> {
        vec![
            RateTarget {
                op: "1/in",
                what: "ingress (host to pod)",
                mbit_per_s: INGRESS_RATE as f64 / 1e6,
            },
            RateTarget {
                op: "1/out",
                what: "egress (pod to host)",
                mbit_per_s: EGRESS_RATE as f64 / 1e6,
            },
        ]
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        let node = Node::create(sandbox, side, 1)?;
        let id = container_id(58, 0);
        let add = node.add(&id)?;
        node.check_counts(1)?;
        let address = container_address(&add)?;
        let gateway = Ipv4Addr::new(10, node.subnet_octet, 0, 1);
        let in_pod = node.netns.run_inside(move || listen(address))?;
        let in_host = node.host.netns().run_inside(move || listen(gateway))?;
        Ok(Box::new(ShapingInstance {
            in_pod,
            in_host,
            node,
            id,
            add,
        }))
    }
}

struct ShapingInstance {
    /// Receivers: in the container at its address (ingress), in the host netns at the
    /// gateway address (egress). Closed before the namespaces go.
    in_pod: TcpListener,
    in_host: TcpListener,
    node: Node,
    /// The attached container and its ADD, for the DEL at the end.
    id: String,
    add: ChainRun,
}

impl Instance for ShapingInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, _i: usize) -> Result<Vec<Duration>> {
        let label = self.node.side.label();
        let ingress = transfer(self.node.host.netns(), &self.in_pod)
            .map_err(|e| e.context(format!("{label} ingress transfer")))?;
        let egress = transfer(&self.node.netns, &self.in_host)
            .map_err(|e| e.context(format!("{label} egress transfer")))?;
        Ok(vec![ingress, egress])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        self.node.del(&self.id, &self.add)?;
        self.node.check_counts(0)
    }
}

/// One implementation's node: a host netns with a bridge, the list, and the netns of the
/// container it attaches.
struct Node {
    // Field order is drop order: the host netns first (its bridge, veths, ifbs and qdiscs go
    // with it), then the container netns.
    host: HostNs,
    chain: Chain,
    side: Side,
    bridge: String,
    /// The network is 10.<subnet_octet>.0.0/16.
    subnet_octet: u8,
    /// host-local's directory of this network.
    store: PathBuf,
    /// The container's netns (reused: each DEL empties it).
    netns: Netns,
}

impl Node {
    /// Variant 0 for the calls row, 1 for the shaping row.
    fn create(sandbox: &Sandbox, side: &Side, variant: u8) -> Result<Node> {
        let letter = match side.which {
            Impl::Ours => 'o',
            Impl::Reference => 'r',
        };
        // One /16 per implementation and variant: 10.98.0.0/16 .. 10.101.0.0/16.
        let subnet_octet = 98 + 2 * variant + u8::from(side.which == Impl::Reference);
        let network = format!("benchbw{variant}-{}", side.label());
        let dir = sandbox.data_dir(&format!("bandwidth{variant}-{}", side.label()))?;
        let state = sandbox.run_dir(&format!("bandwidth{variant}-{}", side.label()))?;
        let ipam_dir = dir.join("ipam");
        let bridge = format!("cnibw{variant}{letter}");
        let bridge_conf = json!({
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "dataDir": path_str(&state.join("bridge")),
            "ipam": {
                "type": "host-local",
                "dataDir": path_str(&ipam_dir),
                "ranges": [[{"subnet": format!("10.{subnet_octet}.0.0/16")}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        });
        let bandwidth_conf = json!({
            // What containerd writes, with the capability argument libcni passes.
            "type": "bandwidth",
            "capabilities": {"bandwidth": true},
            "runtimeConfig": {"bandwidth": {
                "ingressRate": INGRESS_RATE,
                "ingressBurst": INGRESS_BURST,
                "egressRate": EGRESS_RATE,
                "egressBurst": EGRESS_BURST,
            }},
        });
        Ok(Node {
            host: sandbox.own_host()?,
            chain: Chain::new(&network, CNI_VERSION, vec![bridge_conf, bandwidth_conf])?,
            side: side.clone(),
            bridge,
            subnet_octet,
            store: ipam_dir.join(&network),
            netns: sandbox.container_netns()?,
        })
    }

    /// ADD, checked: the result must give the container an address of the network and
    /// name the ifb that shapes its egress.
    fn add(&self, id: &str) -> Result<ChainRun> {
        let run = self.chain.add(
            &self.side,
            &pod_invocation(id, &self.netns),
            Some(self.host.enter()),
        )?;
        let label = self.side.label();
        let run = run.expect_address_in(self.subnet_octet, &format!("{label} bandwidth ADD"))?;
        let names_ifb = run
            .result
            .as_ref()
            .and_then(|r| r.get("interfaces"))
            .and_then(Value::as_array)
            .is_some_and(|all| {
                all.iter()
                    .filter_map(|i| i.get("name").and_then(Value::as_str))
                    .any(|name| name.starts_with("bwp"))
            });
        if !names_ifb {
            return Err(Error::msg(format!(
                "{label} bandwidth ADD named no ifb in its result: {}",
                run.result.as_ref().unwrap_or(&Value::Null)
            )));
        }
        Ok(run)
    }

    /// DEL, then [`settle`].
    fn del(&self, id: &str, add: &ChainRun) -> Result<ChainRun> {
        let run = self.chain.del(
            &self.side,
            &pod_invocation(id, &self.netns),
            add.result.as_ref(),
            Some(self.host.enter()),
        )?;
        settle(&self.host, &self.netns, self.side.label())?;
        Ok(run)
    }

    /// The node holds exactly `containers` shaped containers: ports on the bridge, ifbs,
    /// token buckets (one on each host end, one on each ifb) and addresses in host-local's
    /// store.
    fn check_counts(&self, containers: usize) -> Result<()> {
        let host = self.host.netns().name();
        let links = |args: &[&str]| -> Result<usize> {
            let mut all = vec!["-n", host, "-o", "link", "show"];
            all.extend_from_slice(args);
            Ok(run_text("ip", &all)?.lines().count())
        };
        let ports = links(&["master", &self.bridge])?;
        let ifbs = links(&["type", "ifb"])?;
        let buckets = run_text("tc", &["-n", host, "qdisc", "show"])?
            .lines()
            .filter(|l| l.starts_with("qdisc tbf "))
            .count();
        let addresses = addresses_in(&self.store)?;
        if (ports, ifbs, buckets, addresses) == (containers, containers, 2 * containers, containers)
        {
            return Ok(());
        }
        Err(Error::msg(format!(
            "{}: expected {containers} shaped containers on the node, found {ports} ports on \
             {}, {ifbs} ifbs, {buckets} tbf qdiscs, {addresses} addresses in {}",
            self.side.label(),
            self.bridge,
            self.store.display()
        )))
    }
}

/// The time of the bandwidth process in a run of the list.
fn bandwidth_step(run: &ChainRun) -> Result<Duration> {
    run.steps
        .iter()
        .find(|(ty, _)| ty == "bandwidth")
        .map(|(_, d)| *d)
        .ok_or_else(|| Error::msg("the list ran no bandwidth"))
}

/// The container's IPv4 address in an ADD's result.
fn container_address(add: &ChainRun) -> Result<Ipv4Addr> {
    add.result
        .as_ref()
        .and_then(|r| r.get("ips"))
        .and_then(Value::as_array)
        .and_then(|ips| ips.first())
        .and_then(|ip| ip.get("address"))
        .and_then(Value::as_str)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::msg("the ADD's result has no IPv4 address"))
}

/// A listener on `address` (any port) in the calling thread's netns; non-blocking, so that
/// [`transfer`] can give up on a connection that never comes.
fn listen(address: Ipv4Addr) -> Result<TcpListener> {
    let listener =
        TcpListener::bind((address, 0)).with_context(|| format!("listen on {address}"))?;
    listener
        .set_nonblocking(true)
        .context("make the listener non-blocking")?;
    Ok(listener)
}

/// Sends as fast as TCP allows from a socket made in `from` to `listener` (in another netns)
/// and returns the time the receiver took per megabit of payload, over [`WINDOW`] after
/// [`RAMP`].
fn transfer(from: &Netns, listener: &TcpListener) -> Result<Duration> {
    let to = listener.local_addr().context("the listener's address")?;
    let mut sender = from.run_inside(move || {
        TcpStream::connect_timeout(&to, STALL).with_context(|| format!("connect to {to}"))
    })?;
    let mut receiver = accept(listener)?;
    sender
        .set_write_timeout(Some(Duration::from_millis(50)))
        .context("set the sender's timeout")?;
    receiver
        .set_read_timeout(Some(STALL))
        .context("set the receiver's timeout")?;
    let done = AtomicBool::new(false);
    let measured = std::thread::scope(|s| {
        let receiving = s.spawn(|| {
            let measured = receive(&mut receiver);
            done.store(true, Ordering::SeqCst);
            measured
        });
        let sent = send(&mut sender, &done);
        let measured = receiving
            .join()
            .unwrap_or_else(|_| Err(Error::msg("the receiver thread panicked")));
        sent.and(measured)
    });
    // The receiver closes with data unread: the kernel resets the connection, and the
    // sender's queue is dropped instead of trickling through the bucket.
    drop(receiver);
    drop(sender);
    measured
}

/// The connection `transfer` just made (it is in the accept queue already).
fn accept(listener: &TcpListener) -> Result<TcpStream> {
    let deadline = Instant::now() + STALL;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream
                    .set_nonblocking(false)
                    .context("make the receiver blocking")?;
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e) => return Err(Error::msg(format!("accept: {e}"))),
        }
    }
}

/// Writes until `done`; a write that times out (the bucket holds everything back) just
/// looks at `done` again.
fn send(stream: &mut TcpStream, done: &AtomicBool) -> Result<()> {
    let chunk = vec![0u8; 64 * 1024];
    while !done.load(Ordering::SeqCst) {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) if done.load(Ordering::SeqCst) => break,
            Err(e) => return Err(Error::msg(format!("send: {e}"))),
        }
    }
    Ok(())
}

/// Reads for [`RAMP`] + [`WINDOW`] from the first byte and returns the time per megabit of
/// what arrived after the ramp.
fn receive(stream: &mut TcpStream) -> Result<Duration> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut first: Option<Instant> = None;
    // From the first read after the ramp (its bytes arrived before it) to the last read.
    let mut start: Option<Instant> = None;
    let mut bytes: u64 = 0;
    loop {
        let n = stream.read(&mut buf).context("receive")?;
        if n == 0 {
            return Err(Error::msg("the sender closed the connection early"));
        }
        let now = Instant::now();
        let first = *first.get_or_insert(now);
        if now - first < RAMP {
            continue;
        }
        let Some(start) = start else {
            start = Some(now);
            continue;
        };
        bytes += n as u64;
        if now - start >= WINDOW {
            let megabits = bytes as f64 * 8.0 / 1e6;
            return Ok((now - start).div_f64(megabits));
        }
    }
}
