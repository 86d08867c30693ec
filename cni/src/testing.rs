//! Requests as a runtime sends them, for plugins' unit tests of their config parsing (no
//! kernel, no process): container `c1`, netns `/run/netns/c1`, interface `eth0`.

use serde_json::Value;

use crate::env::{CmdArgs, Env};
use crate::{Error, NetConf, Request};

/// A `command` request for `conf`, with `cni_args` as CNI_ARGS (may be empty).
pub fn request(command: &str, conf: &Value, cni_args: &str) -> Result<Request, Error> {
    let env = Env::from_pairs([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", cni_args),
    ]);
    let stdin = serde_json::to_vec(conf).map_err(|e| Error::decoding(e.to_string()))?;
    Ok(Request {
        cmd: CmdArgs::from_env(&env)?,
        conf: NetConf::from_bytes(&stdin)?,
        stdin,
        env,
    })
}

/// `base` with every key of the object `extra` set on it.
pub fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}
