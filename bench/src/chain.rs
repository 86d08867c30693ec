//! Running a list of plugins as libcni does (`AddNetworkList` / `DelNetworkList`), timing each
//! exec: on ADD each plugin gets the list's `name` and `cniVersion` and the previous plugin's
//! result as `prevResult`; on DEL the plugins run in reverse order, each with the result of the
//! whole ADD as `prevResult` (what libcni reads from its cache). The bench's own JSON work
//! between execs is not counted: only the plugin processes are.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Context, Error, Result};
use crate::exec::{EnterNs, Invocation, exec_plugin};
use crate::side::Side;

/// A network configuration list.
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: String,
    pub cni_version: String,
    plugins: Vec<Map<String, Value>>,
}

/// What running a list did: each plugin's type and time, and the last result (ADD).
#[derive(Debug, Default)]
pub struct ChainRun {
    pub steps: Vec<(String, Duration)>,
    pub result: Option<Value>,
}

impl ChainRun {
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }

    /// Checks an ADD: its result must give the container an address in `10.<octet>.0.0/16`.
    /// `what` names the call in the error (`"ours bridge ADD"`).
    pub fn expect_address_in(self, subnet_octet: u8, what: &str) -> Result<ChainRun> {
        let address = self
            .result
            .as_ref()
            .and_then(|r| r.get("ips"))
            .and_then(Value::as_array)
            .and_then(|ips| ips.first())
            .and_then(|ip| ip.get("address"))
            .and_then(Value::as_str);
        let prefix = format!("10.{subnet_octet}.");
        if address.is_some_and(|a| a.starts_with(&prefix)) {
            return Ok(self);
        }
        Err(Error::msg(format!(
            "{what} returned no address in 10.{subnet_octet}.0.0/16: {}",
            self.result.as_ref().unwrap_or(&Value::Null)
        )))
    }
}

impl Chain {
    /// `plugins` are the list's `plugins` entries: objects with at least a string `type`.
    pub fn new(name: &str, cni_version: &str, plugins: Vec<Value>) -> Result<Chain> {
        let plugins = plugins
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Object(map) if map.get("type").is_some_and(Value::is_string) => Ok(map),
                other => Err(Error::msg(format!(
                    "plugin {i} of list {name} is not an object with a type: {other}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Chain {
            name: name.to_string(),
            cni_version: cni_version.to_string(),
            plugins,
        })
    }

    /// The `type` names, in order.
    pub fn types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }

    /// The stdin of plugin `idx` (libcni's `buildOneConfig`).
    pub fn plugin_config(&self, idx: usize, prev_result: Option<&Value>) -> Result<Vec<u8>> {
        let mut conf = self
            .plugins
            .get(idx)
            .cloned()
            .ok_or_else(|| Error::msg(format!("list {} has no plugin {idx}", self.name)))?;
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        Ok(serde_json::to_vec(&Value::Object(conf))?)
    }

    fn run_one(
        &self,
        side: &Side,
        idx: usize,
        inv: &Invocation,
        prev: Option<&Value>,
        ns: Option<EnterNs>,
    ) -> Result<(String, Duration, Vec<u8>)> {
        let ty = self
            .types()
            .get(idx)
            .copied()
            .unwrap_or_default()
            .to_string();
        let stdin = self.plugin_config(idx, prev)?;
        let inv = Invocation {
            path: side.cni_path(),
            ..inv.clone()
        };
        let out = exec_plugin(&side.bin(&ty), &inv, &stdin, ns)?;
        Ok((ty, out.elapsed, out.stdout))
    }

    /// ADD through the whole list; the result is the last plugin's.
    pub fn add(&self, side: &Side, inv: &Invocation, ns: Option<EnterNs>) -> Result<ChainRun> {
        let inv = inv.with_command("ADD");
        let mut run = ChainRun::default();
        for idx in 0..self.plugins.len() {
            let (ty, elapsed, stdout) = self.run_one(side, idx, &inv, run.result.as_ref(), ns)?;
            let result: Value = serde_json::from_slice(&stdout)
                .with_context(|| format!("result of {ty} ADD in list {}", self.name))?;
            run.steps.push((ty, elapsed));
            run.result = Some(result);
        }
        Ok(run)
    }

    /// DEL through the list in reverse, each plugin given `prev_result` (the ADD's result).
    pub fn del(
        &self,
        side: &Side,
        inv: &Invocation,
        prev_result: Option<&Value>,
        ns: Option<EnterNs>,
    ) -> Result<ChainRun> {
        let inv = inv.with_command("DEL");
        let mut run = ChainRun::default();
        for idx in (0..self.plugins.len()).rev() {
            let (ty, elapsed, _) = self.run_one(side, idx, &inv, prev_result, ns)?;
            run.steps.push((ty, elapsed));
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_config_carries_name_version_and_prev_result() {
        let chain = Chain::new(
            "net",
            "1.0.0",
            vec![
                json!({"type": "bridge", "bridge": "br0"}),
                json!({"type": "portmap"}),
            ],
        )
        .unwrap();
        assert_eq!(chain.types(), ["bridge", "portmap"]);
        let first: Value = serde_json::from_slice(&chain.plugin_config(0, None).unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"type": "bridge", "bridge": "br0", "name": "net", "cniVersion": "1.0.0"})
        );
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]});
        let second: Value =
            serde_json::from_slice(&chain.plugin_config(1, Some(&prev)).unwrap()).unwrap();
        assert_eq!(second["prevResult"], prev);
        assert!(chain.plugin_config(2, None).is_err());
    }

    #[test]
    fn rejects_plugins_without_type() {
        assert!(Chain::new("net", "1.0.0", vec![json!({"bridge": "br0"})]).is_err());
        assert!(Chain::new("net", "1.0.0", vec![json!("bridge")]).is_err());
    }
}
