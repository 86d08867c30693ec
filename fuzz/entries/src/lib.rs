//! What the fuzz targets in `fuzz/` run, kept in the workspace and in stable Rust so that
//! `cargo test` replays every checked-in corpus file and every regression through exactly
//! the code the fuzzers ran (`tests/corpus.rs`).
//!
//! - [`plugin_input`]: arbitrary bytes as one invocation of a plugin: its `CNI_*` variables
//!   and its stdin, read as every run reads them ([`cni::skel::read_invocation`]), then
//!   everything the plugin reads for its command (its `read_request`). Nothing touches the
//!   kernel, a file or a process.
//! - [`control_message`]: arbitrary bytes as what the DNS sidecar receives from the dnsname
//!   plugin: a control line, and for `update` the attachment record the line names, taken
//!   into the sidecar's records and queried for its names.
//!
//! Both must never panic, whatever the bytes; errors are fine, as long as they are the
//! errors of bad input (see [`INPUT_CODES`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use cni::skel::{Invocation, read_invocation};
use cni::{CniResult, Command, Env, Error, Plugin, Request, Version};
use cni_dns::control;
use cni_dns::server::engine::{Engine, Outcome};
use cni_dns::server::records::Records;
use cni_dns::store::{self, Attachment};

/// The plugin targets, one per plugin type of the suite.
pub const PLUGINS: &[&str] = &[
    "bandwidth",
    "bridge",
    "dnsname",
    "firewall",
    "host-local",
    "ipvlan",
    "loopback",
    "macvlan",
    "portmap",
    "ptp",
    "tuning",
];

/// The target of the sidecar's control messages.
pub const CONTROL: &str = "control";

/// Every fuzz target: one per plugin, and the sidecar's control messages.
pub fn targets() -> impl Iterator<Item = &'static str> {
    PLUGINS.iter().copied().chain([CONTROL])
}

/// The corpus directory every plugin target shares (`fuzz/corpus/common/`): invocations are
/// the same bytes whatever the plugin, and what they cover of the reading every run shares
/// is kept there once rather than in every plugin's directory.
pub const COMMON: &str = "common";

/// The codes a request's reading may fail with: they all say the input is wrong (version,
/// field, variable, decoding, config). Anything else (an I/O failure, an internal error)
/// from input alone is a bug, and the entries panic on it so the fuzzers report it.
pub const INPUT_CODES: &[u32] = &[
    cni::error::code::INCOMPATIBLE_VERSION,
    cni::error::code::UNSUPPORTED_FIELD,
    cni::error::code::INVALID_ENV,
    cni::error::code::DECODING_FAILURE,
    cni::error::code::INVALID_NETWORK_CONFIG,
];

/// Runs `target` (one of [`targets`]) on `data`. `None` when there is no such target.
pub fn run(target: &str, data: &[u8]) -> Option<()> {
    if target == CONTROL {
        control_message(data);
        return Some(());
    }
    let _ = try_plugin_input(target, data)?;
    Some(())
}

/// One invocation of `plugin` (one of [`PLUGINS`]) from `data`: read as every run
/// reads it, then through the plugin's `read_request`. `data` is split by
/// [`split_invocation`]. The outcome is returned for tests; the fuzz targets drop it.
///
/// Panics when `plugin` is no plugin of this suite (a target's mistake, not input), or
/// when reading the input goes wrong in a way no input may make it go: a panic below, an
/// error code outside [`INPUT_CODES`], a result that does not read back in its own version.
pub fn plugin_input(plugin: &str, data: &[u8]) -> Result<(), Error> {
    match try_plugin_input(plugin, data) {
        Some(outcome) => outcome,
        None => panic!("no plugin {plugin:?} in this suite"),
    }
}

fn try_plugin_input(plugin: &str, data: &[u8]) -> Option<Result<(), Error>> {
    Some(match plugin {
        "bandwidth" => invoke(&bandwidth::Bandwidth, bandwidth::read_request, data),
        "bridge" => invoke(&bridge::Bridge, bridge::read_request, data),
        "dnsname" => invoke(&dnsname::DnsName, dnsname::read_request, data),
        "firewall" => invoke(&firewall::Firewall, firewall::read_request, data),
        "host-local" => invoke(&host_local::HostLocal, host_local::read_request, data),
        "ipvlan" => invoke(&ipvlan::Ipvlan, ipvlan::read_request, data),
        "loopback" => invoke(&loopback::Loopback, loopback::read_request, data),
        "macvlan" => invoke(&macvlan::Macvlan, macvlan::read_request, data),
        "portmap" => invoke(&portmap::Portmap, portmap::read_request, data),
        "ptp" => invoke(&ptp::Ptp, ptp::read_request, data),
        "tuning" => invoke(&tuning::Tuning, tuning::read_request, data),
        _ => return None,
    })
}

/// The commands a fuzz input can pick, in the order of the selector byte.
const COMMANDS: [&str; 6] = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"];

/// The variables a fuzz input can set besides CNI_COMMAND.
const VARIABLES: [&str; 5] = [
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// Splits fuzz bytes into an invocation's environment and stdin, in a form that reads like
/// the invocation (the corpus files are meant to be read):
///
/// ```text
/// ADD                              CNI_COMMAND: the line if it names a command, else
/// CNI_CONTAINERID=abc                the command its first byte picks (modulo 6)
/// CNI_NETNS=/run/netns/x           then NAME=value lines of the five other CNI_* variables
/// CNI_IFNAME=eth0                    (other lines are skipped), up to an empty line
/// CNI_ARGS=IgnoreUnknown=1
/// CNI_PATH=/opt/cni/bin
///
/// {"cniVersion": "1.0.0", ...}     stdin: everything after the empty line
/// ```
///
/// Values are read as the process environment is (invalid UTF-8 replaced); a variable left
/// out is unset. Without an empty line stdin is empty.
pub fn split_invocation(data: &[u8]) -> (Env, &[u8]) {
    let mut rest = data;
    let mut next_line = || -> Option<&[u8]> {
        if rest.is_empty() {
            return None;
        }
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        Some(line)
    };
    let first = next_line().unwrap_or_default();
    let command = COMMANDS
        .iter()
        .find(|c| c.as_bytes() == first)
        .copied()
        .unwrap_or_else(|| {
            let pick = first.first().copied().unwrap_or(0);
            COMMANDS[usize::from(pick) % COMMANDS.len()]
        });
    let mut vars = vec![("CNI_COMMAND".to_string(), command.to_string())];
    while let Some(line) = next_line() {
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(line);
        if let Some((name, value)) = line.split_once('=')
            && VARIABLES.contains(&name)
        {
            vars.push((name.to_string(), value.to_string()));
        }
    }
    (Env::from_pairs(vars), rest)
}

/// The invocation `data` describes, read as every run reads it, then through `read`.
fn invoke(
    plugin: &impl Plugin,
    read: fn(&Request) -> Result<(), Error>,
    data: &[u8],
) -> Result<(), Error> {
    let (env, mut stdin) = split_invocation(data);
    let mut version_hint = Version::LATEST;
    let outcome = match read_invocation(plugin, &env, &mut stdin, &mut version_hint) {
        Ok(Invocation::Version(reply)) => {
            check_version_reply(&reply);
            Ok(())
        }
        Ok(Invocation::Command(req)) => {
            if let Some(prev) = &req.conf.prev_result {
                check_conversions(prev);
            }
            let read = read(&req);
            // DEL reads leniently: whatever else is wrong with a config (changed since the
            // ADD, say), it must still find and remove what the ADD made
            // (docs/architecture.md: DEL always succeeds when nothing is left to delete).
            if let (Command::Del, Err(e)) = (req.command(), &read) {
                panic!("DEL failed to read its request: code {}: {}", e.code, e.msg);
            }
            read
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        assert!(
            INPUT_CODES.contains(&e.code),
            "input read as an error of code {} (not one of bad input): {}",
            e.code,
            e.msg
        );
        // What the skel prints.
        let _ = e.to_json(version_hint.as_str());
    }
    outcome
}

/// VERSION's reply is one JSON object naming a version this suite knows.
fn check_version_reply(reply: &str) {
    let value: serde_json::Value = match serde_json::from_str(reply) {
        Ok(v) => v,
        Err(e) => panic!("VERSION replied {reply:?}, which is not JSON: {e}"),
    };
    let named = value["cniVersion"].as_str().and_then(Version::parse);
    assert!(named.is_some(), "VERSION replied {reply:?}");
}

/// A prevResult, written in any version (as ADD passes it on), reads back in that version,
/// and a second round trip changes nothing more than the first (each version keeps what it
/// can hold).
fn check_conversions(prev: &CniResult) {
    for version in Version::ALL {
        let Ok(value) = prev.to_value(version) else {
            continue;
        };
        let once = match CniResult::from_value(value, version) {
            Ok(r) => r,
            Err(e) => panic!(
                "a result written as {version} does not read back: {}",
                e.msg
            ),
        };
        let twice = once
            .to_value(version)
            .and_then(|v| CniResult::from_value(v, version));
        assert_eq!(
            twice.as_ref(),
            Ok(&once),
            "a {version} result changes on its second round trip"
        );
    }
}

/// What the sidecar receives from the dnsname plugin, from `data`: the control line the
/// sidecar reads (at most 4096 bytes, up to the first newline, UTF-8, as its
/// `control_connection` reads it) through [`control::Request::parse`]; for an `update`, the
/// rest of `data` is the attachment file the line names, read as the sidecar reads it
/// ([`Attachment::parse`]), taken into a [`Records`] and each of its names queried from its
/// own address through the sidecar's [`Engine`]. Never panics, whatever the bytes.
pub fn control_message(data: &[u8]) {
    const LINE_LIMIT: usize = 4096;
    let limited = &data[..data.len().min(LINE_LIMIT)];
    let (line, record) = match limited.iter().position(|&b| b == b'\n') {
        Some(i) => (&limited[..=i], &data[i + 1..]),
        None => (limited, &data[data.len()..]),
    };
    // An invalid line is refused and the connection closed; nothing else happens.
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let Some(request) = control::Request::parse(line) else {
        return;
    };
    // What the plugin would send for this request is this request.
    assert_eq!(
        control::Request::parse(&request.to_line()).as_ref(),
        Some(&request),
        "{line:?} does not survive to_line"
    );
    let control::Request::Update { network, key } = request else {
        return;
    };
    // The sidecar reads only attachment files (and never a path).
    if !store::is_attachment_file(&key) || key.contains('/') {
        return;
    }
    let Ok(text) = std::str::from_utf8(record) else {
        return;
    };
    let Ok(attachment) = Attachment::parse(text) else {
        return;
    };
    // What the plugin would write for this record reads back as this record, when its
    // values hold no carriage return: a line's `\r` is taken for a CRLF line ending (so a
    // value cannot end with one), and nothing the plugin writes has one (names, IDs and
    // interface names are checked before they are written).
    let strings = [
        &attachment.container_id,
        &attachment.ifname,
        &attachment.domain,
    ]
    .into_iter()
    .chain(&attachment.name)
    .chain(&attachment.aliases);
    if !strings.into_iter().any(|s| s.contains('\r')) {
        assert_eq!(
            Attachment::parse(&attachment.to_text()).as_ref(),
            Ok(&attachment),
            "the record does not survive to_text"
        );
    }
    serve(&network, &key, attachment);
}

/// The attachment in the sidecar's records, and a query for each of its names (A, then
/// AAAA) from its first address, through the engine the sidecar answers with; then the
/// attachment removed, as a DEL's update does.
fn serve(network: &str, key: &str, attachment: Attachment) {
    let mut records = Records::default();
    records.update(network, key, Some(attachment.clone()));
    let snap = records.snapshot();
    let _ = snap.listen_addrs();
    let src = attachment
        .ips
        .first()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ip| ip.ip());
    let _ = snap.view(src);
    let engine = Engine::new(0);
    for name in attachment.names() {
        let qualified = format!("{name}.{}", attachment.domain);
        for (id, qtype) in [(1u16, 1u16), (2, 28)] {
            for name in [name.as_str(), qualified.as_str()] {
                let Some(query) = cni_dns::probe::encode_query(id, name, qtype) else {
                    continue;
                };
                let reply = engine.handle(
                    &snap,
                    &query,
                    SocketAddr::new(src, 5353),
                    hickory_net::xfer::Protocol::Udp,
                );
                if let Outcome::Reply(reply) = reply {
                    assert!(
                        cni_dns::probe::decode_reply(id, &reply).is_some(),
                        "the reply to {name:?} is no reply to its query"
                    );
                }
            }
        }
    }
    records.update(network, key, None);
    assert!(records.snapshot().is_empty(), "the removed record stays");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_target_reads_an_invocation() {
        for plugin in PLUGINS {
            assert!(try_plugin_input(plugin, b"VERSION").is_some(), "{plugin}");
        }
    }

    #[test]
    fn inputs_split_into_the_variables_and_stdin() {
        let (env, stdin) = split_invocation(
            b"DEL\nCNI_CONTAINERID=c1\nCNI_ARGS=A=b;C=d\nHOME=/root\nCNI_IFNAME\n\n{\"a\":1}\n\nx",
        );
        assert_eq!(env.get("CNI_COMMAND"), Some("DEL"));
        assert_eq!(env.get("CNI_CONTAINERID"), Some("c1"));
        assert_eq!(env.get("CNI_ARGS"), Some("A=b;C=d"));
        assert_eq!(env.get("HOME"), None);
        assert_eq!(env.get("CNI_IFNAME"), None);
        assert_eq!(stdin, b"{\"a\":1}\n\nx");
        // Any first line picks a command; no empty line, no stdin.
        let (env, stdin) = split_invocation(b"\x05garbage\nCNI_NETNS=/x");
        assert_eq!(env.get("CNI_COMMAND"), Some("VERSION"));
        assert_eq!(env.get("CNI_NETNS"), Some("/x"));
        assert!(stdin.is_empty());
        let (env, _) = split_invocation(b"");
        assert_eq!(env.get("CNI_COMMAND"), Some("ADD"));
    }

    #[test]
    fn a_podman_bridge_add_reads_and_a_bad_one_is_a_config_error() {
        let input = |conf: &str| {
            format!(
                "ADD\nCNI_CONTAINERID=c1\nCNI_NETNS=/run/netns/c1\nCNI_IFNAME=eth0\n\
                 CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web\n\n{conf}"
            )
        };
        let ok = input(
            r#"{"cniVersion":"0.4.0","name":"podman","type":"bridge","bridge":"cni-podman0",
                "isGateway":true,"ipMasq":true,"hairpinMode":true,
                "ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}}"#,
        );
        assert_eq!(plugin_input("bridge", ok.as_bytes()), Ok(()));
        assert_eq!(plugin_input("host-local", ok.as_bytes()), Ok(()));
        let bad = input(r#"{"cniVersion":"1.0.0","name":"n","type":"bridge","vlan":5000}"#);
        let err = plugin_input("bridge", bad.as_bytes()).unwrap_err();
        assert_eq!(err.code, cni::error::code::INVALID_NETWORK_CONFIG);
    }

    #[test]
    fn control_lines_and_records() {
        control_message(b"ping\n");
        control_message(b"update podman 0123456789abcdef@eth0\ncni-dns attachment v1\n");
        let record = Attachment {
            container_id: "0123456789abcdef".into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some("web".into()),
            aliases: vec!["db".into()],
            ips: vec!["10.88.0.5/16".parse().unwrap()],
            gateways: vec!["10.88.0.1".parse().unwrap()],
        };
        let mut data = b"update podman 0123456789abcdef@eth0\n".to_vec();
        data.extend_from_slice(record.to_text().as_bytes());
        control_message(&data);
    }
}
