//! CNI_ARGS (`K1=V1;K2=V2`) with the Go library's `IgnoreUnknown` semantics.

use crate::Error;

/// Keys every runtime sends that any plugin may see without `IgnoreUnknown` (kubelet, CRI
/// and podman all add them).
const ALWAYS_KNOWN: &[&str] = &[
    "IgnoreUnknown",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Parsed CNI_ARGS. Keys are case-sensitive, as Go matches them to struct field names.
#[derive(Debug, Clone, Default)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `K=V;K=V`, accepting only the keys in `known` (plus the runtime's K8S_POD_*
    /// keys) unless `IgnoreUnknown` is `1` or `true`.
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs, Error> {
        let mut pairs = Vec::new();
        for pair in raw.split(';').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.contains('=') => {
                    pairs.push((k.to_string(), v.to_string()))
                }
                _ => {
                    return Err(Error::invalid_env(format!(
                        "invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE"
                    )));
                }
            }
        }
        let args = CniArgs { pairs };
        let ignore_unknown = match args.get("IgnoreUnknown") {
            None => false,
            Some("1" | "true" | "True" | "TRUE") => true,
            Some("0" | "false" | "False" | "FALSE") => false,
            Some(v) => {
                return Err(Error::invalid_env(format!(
                    "invalid CNI_ARGS IgnoreUnknown={v:?}: expected 1, true, 0 or false"
                )));
            }
        };
        if !ignore_unknown {
            let unknown = args
                .pairs
                .iter()
                .find(|(k, _)| !known.contains(&k.as_str()) && !ALWAYS_KNOWN.contains(&k.as_str()));
            if let Some((k, _)) = unknown {
                return Err(Error::invalid_env(format!(
                    "unknown CNI_ARGS key {k:?}; add IgnoreUnknown=1 to ignore unknown keys"
                )));
            }
        }
        Ok(args)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_and_kubernetes_keys_parse() {
        let a = CniArgs::parse("IP=10.0.0.5;K8S_POD_NAME=web", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("K8S_POD_NAME"), Some("web"));
        assert_eq!(a.get("ip"), None);
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        assert!(CniArgs::parse("FOO=bar", &["IP"]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=1;FOO=bar", &["IP"]).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=true;FOO=bar", &[]).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=bar", &[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=maybe", &[]).is_err());
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        assert!(CniArgs::parse("FOO", &["FOO"]).is_err());
        assert!(CniArgs::parse("A=b=c", &["A"]).is_err());
        assert!(CniArgs::parse("=x", &[]).is_err());
        assert!(CniArgs::parse("", &[]).is_ok());
        assert!(CniArgs::parse("IP=1.2.3.4;", &["IP"]).is_ok());
    }
}
