//! The bandwidth plugin's configuration: `ingressRate`, `ingressBurst`, `egressRate`,
//! `egressBurst` (bits per second and bits) at the top level, or in `runtimeConfig.bandwidth`
//! (the `bandwidth` capability, which containerd fills from a pod's
//! `kubernetes.io/{ingress,egress}-bandwidth` annotations); the top level wins, as in the
//! reference. Rate and burst come together; both are validated before anything is made.

use cni::{Error, Request};
use serde_json::{Map, Value};

/// One direction's limit: bits per second and bucket size in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub rate: u64,
    pub burst: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// Traffic into the container: a TBF on the host end of its veth.
    pub ingress: Option<Limit>,
    /// Traffic out of the container: redirected to an ifb, shaped there.
    pub egress: Option<Limit>,
}

/// One entry's four keys, as read from an object.
#[derive(Default, Debug, Clone, Copy)]
struct Entry {
    ingress_rate: Option<u64>,
    ingress_burst: Option<u64>,
    egress_rate: Option<u64>,
    egress_burst: Option<u64>,
}

impl Entry {
    /// The keys of `obj`, matched without regard to case as Go's encoding/json matches them
    /// (containerd sends `IngressRate`, the field names of go-cni's struct). A value that is
    /// not a non-negative integer is a decoding error naming the key.
    fn read(obj: &Map<String, Value>, source: &str) -> Result<Entry, Error> {
        let get = |key: &str| -> Result<Option<u64>, Error> {
            let Some((name, value)) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else {
                return Ok(None);
            };
            match value {
                Value::Null => Ok(None),
                v => v.as_u64().map(Some).ok_or_else(|| {
                    Error::decoding(format!("{source}{name}: {v} is not a non-negative integer"))
                }),
            }
        };
        refuse_subnet_keys(obj, source)?;
        Ok(Entry {
            ingress_rate: get("ingressRate")?,
            ingress_burst: get("ingressBurst")?,
            egress_rate: get("egressRate")?,
            egress_burst: get("egressBurst")?,
        })
    }

    fn is_set(&self) -> bool {
        self.ingress_rate.is_some()
            || self.ingress_burst.is_some()
            || self.egress_rate.is_some()
            || self.egress_burst.is_some()
    }
}

/// The reference (from v1.6) can leave traffic of some subnets unshaped (`unshapedSubnets`)
/// or shape only some (`shapedSubnets`); this plugin shapes everything, so a config that
/// asks for either is refused (code 7) rather than shaped otherwise than it says.
fn refuse_subnet_keys(obj: &Map<String, Value>, source: &str) -> Result<(), Error> {
    for key in ["unshapedSubnets", "shapedSubnets"] {
        let asked = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key));
        if let Some((name, value)) = asked
            && !(value.is_null() || value.as_array().is_some_and(Vec::is_empty))
        {
            return Err(Error::invalid_config(format!(
                "{source}{name}: shaping by subnet is not supported by this bandwidth plugin \
                 (it shapes all traffic of the container); remove the key"
            )));
        }
    }
    Ok(())
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        const RUNTIME: &str = "runtimeConfig.bandwidth.";
        let empty = Map::new();
        let top = Entry::read(req.conf.raw.as_object().unwrap_or(&empty), "")?;
        let runtime = match req.conf.runtime_config.get("bandwidth") {
            None | Some(Value::Null) => None,
            Some(Value::Object(obj)) => Some(Entry::read(obj, RUNTIME)?),
            Some(other) => {
                return Err(Error::decoding(format!(
                    "runtimeConfig.bandwidth: expected an object, got {other}"
                )));
            }
        };
        let (entry, source) = match runtime {
            Some(runtime) if !top.is_set() => (runtime, RUNTIME),
            _ => (top, ""),
        };
        Ok(Config {
            ingress: limit(source, "ingress", entry.ingress_rate, entry.ingress_burst)?,
            egress: limit(source, "egress", entry.egress_rate, entry.egress_burst)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }
}

/// One direction: none when both are absent or 0; an error naming the keys otherwise, as the
/// reference words it, plus the sizes under a byte its arithmetic cannot take.
fn limit(
    source: &str,
    dir: &str,
    rate: Option<u64>,
    burst: Option<u64>,
) -> Result<Option<Limit>, Error> {
    let (rate, burst) = (rate.unwrap_or(0), burst.unwrap_or(0));
    let key = |what: &str| format!("{source}{dir}{what}");
    let invalid = |msg: String| Err(Error::invalid_config(msg));
    match (rate, burst) {
        (0, 0) => Ok(None),
        (_, 0) => invalid(format!(
            "{}: if rate is set, burst must also be set ({} missing)",
            key("Rate"),
            key("Burst")
        )),
        (0, _) => invalid(format!(
            "{}: if burst is set, rate must also be set ({} missing)",
            key("Burst"),
            key("Rate")
        )),
        _ if burst / 8 >= u64::from(u32::MAX) => {
            invalid(format!("{}: burst cannot be more than 4GB", key("Burst")))
        }
        _ if rate < 8 => invalid(format!(
            "{}: {rate} bits/s is under a byte per second",
            key("Rate")
        )),
        _ if burst < 8 => invalid(format!("{}: {burst} bits is under a byte", key("Burst"))),
        _ => Ok(Some(Limit { rate, burst })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn request(conf: Value) -> Request {
        cni::testing::request("ADD", &conf, "").unwrap()
    }

    fn parse(extra: Value) -> Result<Config, Error> {
        let mut c = json!({"cniVersion": "1.0.0", "name": "k8s", "type": "bandwidth"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        Config::from_request(&request(c))
    }

    #[test]
    fn top_level_keys_win_over_runtime_config() {
        let cfg = parse(json!({"ingressRate": 8000, "ingressBurst": 800,
            "runtimeConfig": {"bandwidth": {"egressRate": 16000, "egressBurst": 1600}}}))
        .unwrap();
        assert_eq!(
            cfg.ingress,
            Some(Limit {
                rate: 8000,
                burst: 800
            })
        );
        assert_eq!(cfg.egress, None);
        // containerd's capability: burst MaxUint32 bits.
        let cfg = parse(json!({"runtimeConfig": {"bandwidth":
            {"ingressRate": 1_000_000, "ingressBurst": 4_294_967_295u64,
             "egressRate": 2_000_000, "egressBurst": 4_294_967_295u64}}}))
        .unwrap();
        assert_eq!(cfg.egress.unwrap().rate, 2_000_000);
        assert!(parse(json!({})).unwrap().is_empty());
        // What containerd 1.6 sends: go-cni's field names, matched as Go matches them.
        let cfg = parse(json!({"runtimeConfig": {"bandwidth":
            {"IngressRate": 1_000_000, "IngressBurst": 4_294_967_295u64,
             "EgressRate": 2_000_000, "EgressBurst": 4_294_967_295u64}}}))
        .unwrap();
        assert_eq!(cfg.ingress.unwrap().rate, 1_000_000);
        assert_eq!(cfg.egress.unwrap().rate, 2_000_000);
        assert!(
            parse(json!({"ingressRate": 0, "ingressBurst": 0}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rates_and_bursts_are_validated_naming_the_key() {
        for (extra, needle) in [
            (json!({"ingressRate": 1000}), "ingressBurst missing"),
            (json!({"egressBurst": 1000}), "egressRate missing"),
            (
                json!({"egressRate": 1000, "egressBurst": 40_000_000_000u64}),
                "4GB",
            ),
            (
                json!({"ingressRate": 7, "ingressBurst": 800}),
                "ingressRate",
            ),
            (
                json!({"ingressRate": 800, "ingressBurst": 7}),
                "ingressBurst",
            ),
            (
                json!({"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}}),
                "runtimeConfig.bandwidth.ingressBurst",
            ),
            (
                json!({"ingressRate": 800, "ingressBurst": 800, "unshapedSubnets": ["10.0.0.0/8"]}),
                "unshapedSubnets",
            ),
            (
                json!({"runtimeConfig": {"bandwidth": {"shapedSubnets": ["10.0.0.0/8"]}}}),
                "runtimeConfig.bandwidth.shapedSubnets",
            ),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
        // Empty lists ask for nothing.
        parse(json!({"unshapedSubnets": [], "shapedSubnets": null})).unwrap();
        for bad in [
            json!({"ingressRate": -1}),
            json!({"egressBurst": "lots"}),
            json!({"ingressRate": 1.5}),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert_eq!(e.code, code::DECODING_FAILURE, "{bad}: {}", e.msg);
        }
    }
}
