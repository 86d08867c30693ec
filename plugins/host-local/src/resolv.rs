//! The `resolvConf` key: DNS settings read from a resolv.conf-style file into the result.

use std::path::Path;

use cni::{Dns, Error};

/// Reads `nameserver`, `domain`, `search` and `options` lines; comments start with # or ;.
pub fn read_resolv_conf(path: &Path) -> Result<Dns, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid_config(format!("resolvConf {}: {e}", path.display())))?;
    Ok(parse_resolv_conf(&text))
}

pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), rest) = (fields.next(), fields.map(String::from).collect::<Vec<_>>())
        else {
            continue;
        };
        match (key, rest.first()) {
            ("nameserver", Some(server)) => dns.nameservers.push(server.clone()),
            ("domain", Some(domain)) => dns.domain = domain.clone(),
            ("search", _) => dns.search.extend(rest),
            ("options", _) => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_keys_and_skips_comments() {
        let dns = parse_resolv_conf(
            "# c\n; c\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.com\nsearch a.com b.com\noptions ndots:2 edns0\n",
        );
        assert_eq!(dns.nameservers, vec!["10.0.0.53", "fd00::53"]);
        assert_eq!(dns.domain, "example.com");
        assert_eq!(dns.search, vec!["a.com", "b.com"]);
        assert_eq!(dns.options, vec!["ndots:2", "edns0"]);
    }
}
