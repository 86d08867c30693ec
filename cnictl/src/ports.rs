//! Published ports: Docker's `-p [HOSTIP:]HOSTPORT[-END]:CONTAINERPORT[-END][/PROTO]`, turned
//! into the `portMappings` capability (ranges expanded, as podman sends them).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// One entry of the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

fn tcp() -> String {
    "tcp".into()
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl PortMapping {
    /// Whether both would take the same host port.
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
                _ => true,
            }
    }
}

fn bad(spec: &str, why: impl fmt::Display) -> CliError {
    CliError::new(format!("invalid port mapping {spec:?}: {why}")).hint(
        "write it as HOSTPORT:CONTAINERPORT[/tcp|udp|sctp], e.g. -p 8080:80, -p 5353:53/udp, \
         -p 127.0.0.1:8080:80, -p 8000-8001:80-81",
    )
}

fn port_range(spec: &str, text: &str) -> Result<(u16, u16)> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a, b),
        None => (text, text),
    };
    let parse = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(spec, format!("{p:?} is not a port (1 to 65535)"))),
            Ok(n) => Ok(n),
        }
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a > b {
        return Err(bad(spec, format!("range {text} runs backwards")));
    }
    Ok((a, b))
}

/// Parses one `-p` value into its mappings.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>> {
    let (body, protocol) = match spec.rsplit_once('/') {
        Some((body, proto)) => (body, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(
            spec,
            format!("unknown protocol {protocol:?} (tcp, udp or sctp)"),
        ));
    }
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (host_ip, rest) = if let Some(after) = body.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| bad(spec, "an IPv6 host address is written [ADDRESS]:HOSTPORT"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad(spec, format!("{ip:?} is not an IP address")))?;
        (Some(ip), rest)
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.as_slice() {
            [_, _] => (None, body),
            [ip, _, _] => {
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| bad(spec, format!("{ip:?} is not an IP address")))?;
                (Some(ip), body.split_once(':').map(|x| x.1).unwrap_or(body))
            }
            [_] => {
                return Err(bad(
                    spec,
                    "give both ports, HOSTPORT:CONTAINERPORT (cnictl picks no host port itself)",
                ));
            }
            _ => return Err(bad(spec, "too many ':'")),
        }
    };
    let (host, ctr) = rest
        .split_once(':')
        .ok_or_else(|| bad(spec, "expected HOSTPORT:CONTAINERPORT"))?;
    let (h0, h1) = port_range(spec, host)?;
    let (c0, c1) = port_range(spec, ctr)?;
    if h1 - h0 != c1 - c0 {
        return Err(bad(spec, "the host and container ranges differ in length"));
    }
    Ok((0..=(h1 - h0))
        .map(|i| PortMapping {
            host_port: h0 + i,
            container_port: c0 + i,
            protocol: protocol.clone(),
            host_ip,
        })
        .collect())
}

/// Parses every `-p` value and refuses a host port given twice.
pub fn parse_port_specs(specs: &[String]) -> Result<Vec<PortMapping>> {
    let mut all: Vec<PortMapping> = Vec::new();
    for spec in specs {
        for m in parse_port_spec(spec)? {
            if let Some(dup) = all.iter().find(|o| o.conflicts_with(&m)) {
                return Err(CliError::new(format!(
                    "host port {}/{} is published twice ({dup} and {m})",
                    m.host_port, m.protocol
                )));
            }
            all.push(m);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse_port_spec(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn parses_docker_port_specs() {
        let m = one("8080:80");
        assert_eq!((m.host_port, m.container_port), (8080, 80));
        assert_eq!(m.protocol, "tcp");
        assert_eq!(m.host_ip, None);
        assert_eq!(one("5353:53/UDP").protocol, "udp");
        assert_eq!(
            one("127.0.0.1:8080:80").host_ip,
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            one("[::1]:8080:80/sctp").host_ip,
            Some("::1".parse().unwrap())
        );
        assert_eq!(one("[::1]:8080:80").to_string(), "[::1]:8080->80/tcp");
        let r = parse_port_spec("8000-8002:80-82").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (8002, 82));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
    }

    #[test]
    fn rejects_bad_specs_with_a_hint() {
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "8080:80/icmp",
            "a:80",
            "1.2.3:8080:80",
            "8000-8001:80",
            "9-8:9-8",
            "1:2:3:4",
            "[::1:80:80",
            "",
        ] {
            let e = parse_port_spec(bad).unwrap_err();
            assert!(e.msg.starts_with("invalid port mapping"), "{bad}: {e}");
            assert!(e.hint.is_some());
        }
    }

    #[test]
    fn refuses_a_host_port_twice() {
        let specs = vec!["8080:80".to_string(), "127.0.0.1:8080:81".to_string()];
        assert!(parse_port_specs(&specs).is_err());
        let specs = vec!["8080:80".to_string(), "8080:80/udp".to_string()];
        assert_eq!(parse_port_specs(&specs).unwrap().len(), 2);
    }
}
