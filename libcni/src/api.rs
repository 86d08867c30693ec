//! Running a network configuration list as libcni's `CNIConfig` does (`libcni/api.go`):
//! ADD in order with `prevResult` chaining and the result cached once all succeeded, DEL in
//! reverse with the cached result, CHECK, STATUS and GC, each plugin's request derived from
//! its object in the list.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cni::{Attachment, CniResult, Command, Version};
use serde_json::{Map, Value, json};

use crate::cache::{Cache, CacheEntry, DEFAULT_CACHE_DIR};
use crate::conf::{NetworkConfigList, plugin_capabilities, plugin_type};
use crate::error::Error;
use crate::exec::{self, Invocation, PluginInfo};
use crate::util::go_json;

/// The per-attachment arguments of one operation (`RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The container's netns path (may be empty on DEL).
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments; each plugin gets those it declares in `capabilities` as its
    /// `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    pub fn new(
        container_id: impl Into<String>,
        netns: impl Into<String>,
        ifname: impl Into<String>,
    ) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            ..RuntimeConf::default()
        }
    }

    fn invocation(&self, command: Command, cni_path: String) -> Invocation {
        Invocation {
            command,
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.args.clone(),
            path: cni_path,
        }
    }
}

/// Where plugins and the cache live, and how plugins are run (`CNIConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// Directories searched for plugin binaries, in order; also CNI_PATH.
    pub plugin_dirs: Vec<PathBuf>,
    /// The result cache directory (default `/var/lib/cni`).
    pub cache_dir: PathBuf,
    /// When set, plugins run inside this network namespace (a path such as
    /// `/run/netns/host1`) instead of the caller's.
    pub exec_netns: Option<PathBuf>,
    /// Send VERSION to every plugin of the list before each operation and require the list's
    /// version among its `supportedVersions` (libcni's `ValidateNetworkList`, which podman
    /// calls before every operation). On by default.
    pub validate_versions: bool,
}

impl CniConfig {
    pub fn new(plugin_dirs: Vec<PathBuf>) -> CniConfig {
        CniConfig {
            plugin_dirs,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            exec_netns: None,
            validate_versions: true,
        }
    }

    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> CniConfig {
        self.cache_dir = cache_dir.into();
        self
    }

    pub fn with_exec_netns(mut self, netns: Option<PathBuf>) -> CniConfig {
        self.exec_netns = netns;
        self
    }

    pub fn cache(&self) -> Cache {
        Cache::new(&self.cache_dir)
    }

    /// CNI_PATH: the plugin directories joined with `:`.
    pub fn cni_path(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn netns(&self) -> Option<&Path> {
        self.exec_netns.as_deref()
    }

    /// The binary of a plugin type.
    pub fn find_plugin(&self, plugin_type: &str) -> Result<PathBuf, Error> {
        exec::find_in_path(plugin_type, &self.plugin_dirs)
    }

    /// Asks a plugin type which versions it supports.
    pub fn version_info(&self, plugin_type: &str) -> Result<PluginInfo, Error> {
        let path = self.find_plugin(plugin_type)?;
        exec::get_version_info(&path, self.netns())
    }

    /// Checks every plugin exists and supports the list's version; returns the capabilities
    /// the list's plugins declare, sorted (`ValidateNetworkList`). All failures are reported.
    pub fn validate_network_list(&self, list: &NetworkConfigList) -> Result<Vec<String>, Error> {
        let mut errors = Vec::new();
        let mut caps = Vec::new();
        for plugin in &list.plugins {
            let ty = plugin_type(plugin);
            match self.version_info(ty) {
                Ok(info) if info.supports(list.cni_version) => {}
                Ok(_) => errors.push(Error::Cni(cni::Error::incompatible_version(format!(
                    "plugin {ty} does not support config version {:?}",
                    list.cni_version.as_str()
                )))),
                Err(e) => errors.push(e),
            }
            caps.extend(plugin_capabilities(plugin));
        }
        Error::join(errors)?;
        caps.sort();
        caps.dedup();
        Ok(caps)
    }

    fn validate(&self, list: &NetworkConfigList) -> Result<(), Error> {
        if self.validate_versions {
            self.validate_network_list(list)?;
        }
        Ok(())
    }

    /// ADD: every plugin in order, each given the previous one's result as `prevResult`,
    /// stopping at the first failure; the final result is cached only when all succeeded
    /// (`AddNetworkList`).
    pub fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<CniResult, Error> {
        if list.plugins.is_empty() {
            return Err(Error::Config(format!(
                "network {:?} has no plugins",
                list.name
            )));
        }
        self.validate(list)?;
        validate_runtime_conf(list, rt)?;
        let mut prev: Option<Value> = None;
        let mut last = CniResult::default();
        for plugin in &list.plugins {
            let wrap = |e: Error| plugin_failed(plugin, "add", e);
            let stdout = self
                .run_plugin(list, plugin, Command::Add, prev.as_ref(), rt)
                .map_err(wrap)?;
            let (_, result) = exec::parse_result(&stdout, list.cni_version).map_err(wrap)?;
            prev = Some(
                result
                    .to_value(list.cni_version)
                    .map_err(|e| wrap(e.into()))?,
            );
            last = result;
        }
        let entry = CacheEntry {
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            ifname: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: prev,
        };
        self.cache().write(&entry).map_err(|e| {
            e.context(format!(
                "failed to set network {:?} cached result",
                list.name
            ))
        })?;
        Ok(last)
    }

    /// DEL: every plugin in reverse order, each given the cached ADD result as `prevResult`
    /// (lists of 0.4.0 and later; a missing or unusable cache means none, and an unusable
    /// cache file is removed), stopping at the first failure; the cache entry is removed once
    /// all succeeded (`DelNetworkList`).
    pub fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<(), Error> {
        self.validate(list)?;
        self.del_unvalidated(list, rt)
    }

    fn del_unvalidated(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), Error> {
        let cache = self.cache();
        let prev = if list.cni_version.has_check() {
            match self.cached_prev_result(list, rt) {
                Ok(prev) => prev,
                Err(e) => {
                    log::warn!("ignoring unusable cached result of {}: {e}", list.name);
                    let _ = cache.remove(&list.name, &rt.container_id, &rt.ifname);
                    None
                }
            }
        } else {
            None
        };
        for plugin in list.plugins.iter().rev() {
            self.run_plugin(list, plugin, Command::Del, prev.as_ref(), rt)
                .map_err(|e| plugin_failed(plugin, "delete", e))?;
        }
        // No cache path (an empty container ID or interface) means nothing was cached.
        let _ = cache.remove(&list.name, &rt.container_id, &rt.ifname);
        Ok(())
    }

    /// Runs one plugin of `list` for `rt` with `command` and `prevResult`; returns its stdout.
    fn run_plugin(
        &self,
        list: &NetworkConfigList,
        plugin: &Value,
        command: Command,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, Error> {
        let path = self.find_plugin(plugin_type(plugin))?;
        let request = build_request(&list.name, list.cni_version, plugin, prev, Some(rt))?;
        let inv = rt.invocation(command, self.cni_path());
        exec::exec_plugin(&path, &request, &inv, self.netns())
    }

    /// CHECK: every plugin in order with the cached ADD result as `prevResult` (absent when
    /// nothing is cached). Lists older than 0.4.0 cannot be checked; `disableCheck` makes it a
    /// success without running anything (`CheckNetworkList`).
    pub fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<(), Error> {
        if !list.cni_version.has_check() {
            return Err(Error::Cni(cni::Error::incompatible_version(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version.as_str()
            ))));
        }
        if list.disable_check {
            return Ok(());
        }
        self.validate(list)?;
        let prev = self.cached_prev_result(list, rt).map_err(|e| {
            e.context(format!(
                "failed to get network {:?} cached result",
                list.name
            ))
        })?;
        for plugin in &list.plugins {
            self.run_plugin(list, plugin, Command::Check, prev.as_ref(), rt)
                .map_err(|e| plugin_failed(plugin, "check", e))?;
        }
        Ok(())
    }

    /// STATUS: every plugin in order with only `name` and `cniVersion` injected, stopping at
    /// the first that is not ready. Lists older than 1.1.0 have no STATUS and are reported
    /// ready, as libcni does (`GetStatusNetworkList`).
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<(), Error> {
        if !list.cni_version.has_status_and_gc() {
            return Ok(());
        }
        self.validate(list)?;
        for plugin in &list.plugins {
            let wrap = |e: Error| plugin_failed(plugin, "status", e);
            let path = self.find_plugin(plugin_type(plugin)).map_err(wrap)?;
            let request = inject(plugin, base_keys(list)).map_err(wrap)?;
            let inv = Invocation {
                path: self.cni_path(),
                ..Invocation::new(Command::Status)
            };
            exec::exec_plugin(&path, &request, &inv, self.netns()).map_err(wrap)?;
        }
        Ok(())
    }

    /// GC (`GCNetworkList`): first a full DEL of every cached attachment of this network that
    /// is not in `valid` (all of them when `valid` is `None`, as `cnitool gc` asks), with the
    /// cached netns and arguments but the current config; then, for lists of 1.1.0 and later,
    /// GC to every plugin with `cni.dev/valid-attachments` and its twin `cni.dev/attachments`
    /// (neither when `valid` is `None`). Continues past failures and reports them all.
    /// `disableGC` makes it a no-op.
    ///
    /// Unlike libcni, a cache directory without a `results` directory counts as "nothing
    /// cached" rather than silently skipping the plugins' GC.
    pub fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[Attachment]>,
    ) -> Result<(), Error> {
        if list.disable_gc {
            return Ok(());
        }
        self.validate(list)?;
        let mut errors = Vec::new();
        let keep: Option<HashSet<(&str, &str)>> = valid.map(|v| {
            v.iter()
                .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
                .collect()
        });
        // What writers killed between writing and renaming left.
        let results = self.cache().results_dir();
        if let Err(e) = atomic_file::remove_leftovers(&results, atomic_file::LEFTOVER_AGE) {
            errors.push(Error::io(format!("clean {}", results.display()), e));
        }
        let cached = match self.cache().attachments(None) {
            Ok(cached) => cached,
            Err(e) => {
                errors.push(e.context("failed to list cached attachments"));
                Vec::new()
            }
        };
        for entry in cached.iter().filter(|e| e.network_name == list.name) {
            let key = (entry.container_id.as_str(), entry.ifname.as_str());
            if keep.as_ref().is_some_and(|k| k.contains(&key)) {
                continue;
            }
            let rt = RuntimeConf {
                container_id: entry.container_id.clone(),
                netns: entry.netns.clone(),
                ifname: entry.ifname.clone(),
                args: entry.cni_args.clone(),
                capability_args: entry.capability_args.clone(),
            };
            if let Err(e) = self.del_unvalidated(list, &rt) {
                errors.push(e.context(format!(
                    "failed to delete stale attachment {} {}",
                    rt.container_id, rt.ifname
                )));
            }
        }
        if list.cni_version.has_status_and_gc() {
            let mut keys = base_keys(list);
            if let Some(valid) = valid {
                let attachments: Vec<Value> = valid
                    .iter()
                    .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
                    .collect();
                keys.push((
                    "cni.dev/valid-attachments",
                    Value::Array(attachments.clone()),
                ));
                keys.push(("cni.dev/attachments", Value::Array(attachments)));
            }
            for plugin in &list.plugins {
                let ty = plugin_type(plugin);
                let run = || -> Result<(), Error> {
                    let path = self.find_plugin(ty)?;
                    let request = inject(plugin, keys.clone())?;
                    let inv = Invocation {
                        path: self.cni_path(),
                        ..Invocation::new(Command::Gc)
                    };
                    exec::exec_plugin(&path, &request, &inv, self.netns()).map(|_| ())
                };
                if let Err(e) = run() {
                    errors.push(e.context(format!("failed to GC plugin {ty}")));
                }
            }
        }
        Error::join(errors)
    }

    /// The cached ADD result of an attachment, in the list's version
    /// (`GetNetworkListCachedResult`).
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<CniResult>, Error> {
        self.cache()
            .read_result(&list.name, &rt.container_id, &rt.ifname)
    }

    /// The cached config bytes of an attachment and `rt` with the cached CNI_ARGS (when any)
    /// and capability arguments (`GetNetworkListCachedConfig`), so a runtime can DEL with what
    /// it ADDed with.
    pub fn cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<(Vec<u8>, RuntimeConf)>, Error> {
        let Some(entry) = self
            .cache()
            .read(&list.name, &rt.container_id, &rt.ifname)?
        else {
            return Ok(None);
        };
        let mut out = rt.clone();
        if !entry.cni_args.is_empty() {
            out.args = entry.cni_args;
        }
        out.capability_args = entry.capability_args;
        Ok(Some((entry.config, out)))
    }

    /// The cached attachments, of one container or of all (`GetCachedAttachments`).
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Result<Vec<CacheEntry>, Error> {
        self.cache().attachments(container_id)
    }

    /// The cached result converted to the list's version, ready to be a `prevResult`.
    fn cached_prev_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, Error> {
        match self.cached_result(list, rt)? {
            None => Ok(None),
            Some(result) => result.to_value(list.cni_version).map(Some).map_err(|e| {
                Error::Cache(format!(
                    "failed to convert cached result to config version {:?}: {e}",
                    list.cni_version.as_str()
                ))
            }),
        }
    }
}

/// The request a plugin of a list gets on stdin (`buildOneConfig`): its own object with `name`
/// and `cniVersion` of the list, `prevResult` when given, and, when `rt` is given,
/// `runtimeConfig` holding the capability arguments the plugin declares as `true` (left out
/// when none match). Every other key, `capabilities` included, is kept as it is. The bytes are
/// those Go's encoder writes (keys sorted).
pub fn build_request(
    name: &str,
    version: Version,
    plugin: &Value,
    prev_result: Option<&Value>,
    rt: Option<&RuntimeConf>,
) -> Result<Vec<u8>, Error> {
    let mut keys = vec![
        ("name", Value::String(name.to_string())),
        ("cniVersion", Value::String(version.as_str().to_string())),
    ];
    if let Some(prev) = prev_result {
        keys.push(("prevResult", prev.clone()));
    }
    if let Some(rt) = rt {
        let runtime_config: Map<String, Value> = plugin_capabilities(plugin)
            .into_iter()
            .filter_map(|cap| rt.capability_args.get(&cap).map(|v| (cap, v.clone())))
            .collect();
        if !runtime_config.is_empty() {
            keys.push(("runtimeConfig", Value::Object(runtime_config)));
        }
    }
    inject(plugin, keys)
}

fn base_keys(list: &NetworkConfigList) -> Vec<(&'static str, Value)> {
    vec![
        ("name", Value::String(list.name.clone())),
        (
            "cniVersion",
            Value::String(list.cni_version.as_str().to_string()),
        ),
    ]
}

/// `InjectConf`: the plugin object with `keys` set, serialized.
fn inject(plugin: &Value, keys: Vec<(&str, Value)>) -> Result<Vec<u8>, Error> {
    let mut obj = plugin
        .as_object()
        .cloned()
        .ok_or_else(|| Error::Config("plugin configuration is not a JSON object".into()))?;
    for (k, v) in keys {
        obj.insert(k.to_string(), v);
    }
    go_json(&obj).map_err(|e| Error::Config(format!("encode plugin configuration: {e}")))
}

/// `type="bridge"`, plus ` name="x"` when the plugin object has its own name.
fn describe(plugin: &Value) -> String {
    let mut out = format!("type={:?}", plugin_type(plugin));
    if let Some(name) = plugin
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        out.push_str(&format!(" name={name:?}"));
    }
    out
}

fn plugin_failed(plugin: &Value, op: &'static str, e: Error) -> Error {
    Error::Plugin {
        plugin: describe(plugin),
        op,
        source: Box::new(e),
    }
}

/// libcni's checks before an ADD: an empty container ID is code 3, a malformed one code 4,
/// a bad network name code 7 and a bad interface name code 4.
fn validate_runtime_conf(list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), Error> {
    if rt.container_id.is_empty() {
        return Err(Error::Cni(cni::Error::new(
            cni::error::code::UNKNOWN_CONTAINER,
            "missing containerID",
        )));
    }
    cni::env::validate_container_id(&rt.container_id)?;
    cni::conf::validate_network_name(&list.name)?;
    cni::env::validate_ifname(&rt.ifname)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn request(plugin: Value, prev: Option<Value>, rt: Option<&RuntimeConf>) -> Value {
        let bytes = build_request("net1", Version::V1_0_0, &plugin, prev.as_ref(), rt).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn request_injects_name_version_prev_result_and_runtime_config() {
        let mut rt = RuntimeConf::new("c1", "/run/netns/x", "eth0");
        rt.capability_args = json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "ips": ["10.0.0.5/24"],
            "mac": "c2:11:22:33:44:55",
        })
        .as_object()
        .cloned()
        .unwrap();
        let plugin = json!({
            "type": "portmap",
            "name": "ignored",
            "cniVersion": "0.3.1",
            "capabilities": {"portMappings": true, "ips": false, "bandwidth": true},
            "runtimeConfig": {"stale": 1},
            "snat": true,
        });
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24"}]});
        let req = request(plugin, Some(prev.clone()), Some(&rt));
        assert_eq!(
            req,
            json!({
                "type": "portmap",
                "name": "net1",
                "cniVersion": "1.0.0",
                "capabilities": {"portMappings": true, "ips": false, "bandwidth": true},
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                "snat": true,
                "prevResult": prev,
            })
        );
    }

    #[test]
    fn request_without_matching_capabilities_has_no_runtime_config() {
        let rt = RuntimeConf::new("c1", "/run/netns/x", "eth0");
        let req = request(
            json!({"type": "bridge", "capabilities": {"ips": true}}),
            None,
            Some(&rt),
        );
        assert_eq!(
            req,
            json!({"type": "bridge", "name": "net1", "cniVersion": "1.0.0", "capabilities": {"ips": true}})
        );
        // A static runtimeConfig is left alone when nothing is injected.
        let req = request(json!({"type": "x", "runtimeConfig": {"a": 1}}), None, None);
        assert_eq!(req["runtimeConfig"], json!({"a": 1}));
        assert!(req.get("prevResult").is_none());
    }

    #[test]
    fn request_bytes_are_sorted_like_go() {
        let bytes = build_request(
            "n",
            Version::V1_1_0,
            &json!({"type": "x", "a": "<"}),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"a":"\u003c","cniVersion":"1.1.0","name":"n","type":"x"}"#
        );
    }

    #[test]
    fn add_validates_the_runtime_conf_like_libcni() {
        let list = NetworkConfigList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        let code = |rt: RuntimeConf| validate_runtime_conf(&list, &rt).unwrap_err().code();
        assert_eq!(code(RuntimeConf::new("", "/x", "eth0")), Some(3));
        assert_eq!(code(RuntimeConf::new("a/b", "/x", "eth0")), Some(4));
        assert_eq!(code(RuntimeConf::new("c", "/x", "")), Some(4));
        assert_eq!(
            code(RuntimeConf::new("c", "/x", "way-too-long-ifname")),
            Some(4)
        );
        assert!(validate_runtime_conf(&list, &RuntimeConf::new("c", "/x", "eth0")).is_ok());
    }

    /// A fake plugin that logs each call (command and stdin) to `<dir>/log` and prints a
    /// result on ADD, passing `prevResult` through with its own interface appended.
    fn fake_plugin(dir: &Path, name: &str, fail_on: &str) {
        let body = format!(
            r#"#!/bin/sh
in=$(cat)
printf '%s %s\n' "$CNI_COMMAND" "$in" >> "{log}"
if [ "$CNI_COMMAND" = "{fail_on}" ]; then
  echo '{{"code":11,"msg":"{name} says no"}}'; exit 1
fi
case "$CNI_COMMAND" in
  VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}}' ;;
  ADD) echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"{name}"}}],"ips":[{{"address":"10.9.0.{n}/24","interface":0}}]}}' ;;
esac
"#,
            log = dir.join("log").display(),
            n = name.len(),
        );
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls(dir: &Path) -> Vec<(String, Value)> {
        let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        std::fs::remove_file(dir.join("log")).ok();
        text.lines()
            .filter(|l| !l.starts_with("VERSION"))
            .map(|l| {
                let (cmd, json) = l.split_once(' ').unwrap();
                (cmd.to_string(), serde_json::from_str(json).unwrap())
            })
            .collect()
    }

    fn setup(version: &str, fail_on: &str) -> (tempfile::TempDir, CniConfig, NetworkConfigList) {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(dir.path(), "one", "");
        fake_plugin(dir.path(), "three", fail_on);
        let cfg =
            CniConfig::new(vec![dir.path().to_path_buf()]).with_cache_dir(dir.path().join("cache"));
        let list = NetworkConfigList::from_bytes(
            format!(
                r#"{{"cniVersion":"{version}","name":"net","plugins":[{{"type":"one"}},{{"type":"three","capabilities":{{"mac":true}}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        (dir, cfg, list)
    }

    #[test]
    fn chains_add_and_del_through_the_cache() {
        let (dir, cfg, list) = setup("1.0.0", "");
        let mut rt = RuntimeConf::new("c1", "/run/netns/c1", "eth0");
        rt.capability_args
            .insert("mac".into(), json!("c2:11:22:33:44:55"));
        let result = cfg.add_network_list(&list, &rt).unwrap();
        assert_eq!(result.interfaces[0].name, "three");
        let c = calls(dir.path());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, "ADD");
        assert!(c[0].1.get("prevResult").is_none());
        assert!(c[0].1.get("runtimeConfig").is_none());
        assert_eq!(c[1].1["prevResult"]["interfaces"][0]["name"], "one");
        assert_eq!(c[1].1["runtimeConfig"], json!({"mac": "c2:11:22:33:44:55"}));

        let cached = cfg.cache().read("net", "c1", "eth0").unwrap().unwrap();
        assert_eq!(cached.config, list.bytes);
        assert_eq!(cached.result.unwrap()["interfaces"][0]["name"], "three");
        assert_eq!(cfg.cached_attachments(Some("c1")).unwrap().len(), 1);

        cfg.check_network_list(&list, &rt).unwrap();
        let c = calls(dir.path());
        assert_eq!(
            c.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["CHECK", "CHECK"]
        );
        assert_eq!(c[0].1["prevResult"]["interfaces"][0]["name"], "three");

        cfg.del_network_list(&list, &rt).unwrap();
        let c = calls(dir.path());
        assert_eq!(c.len(), 2);
        // Reverse order, both with the final result.
        assert_eq!(c[0].1["type"], "three");
        assert_eq!(c[1].1["type"], "one");
        assert_eq!(c[1].1["prevResult"]["interfaces"][0]["name"], "three");
        assert!(cfg.cache().read("net", "c1", "eth0").unwrap().is_none());

        // DEL again: no cache, no prevResult, still fine.
        cfg.del_network_list(&list, &rt).unwrap();
        assert!(
            calls(dir.path())
                .iter()
                .all(|c| c.1.get("prevResult").is_none())
        );
    }

    #[test]
    fn failed_add_caches_nothing_and_reports_the_plugin_error() {
        let (dir, cfg, list) = setup("1.0.0", "ADD");
        let rt = RuntimeConf::new("c1", "/run/netns/c1", "eth0");
        let err = cfg.add_network_list(&list, &rt).unwrap_err();
        assert_eq!(err.code(), Some(11));
        assert_eq!(
            err.to_string(),
            r#"plugin type="three" failed (add): three says no"#
        );
        assert!(cfg.cache().read("net", "c1", "eth0").unwrap().is_none());
        calls(dir.path());
    }

    #[test]
    fn del_below_0_4_0_sends_no_prev_result_and_corrupt_caches_are_dropped() {
        let (dir, cfg, list) = setup("0.3.1", "");
        let rt = RuntimeConf::new("c1", "/run/netns/c1", "eth0");
        cfg.add_network_list(&list, &rt).unwrap();
        calls(dir.path());
        cfg.del_network_list(&list, &rt).unwrap();
        assert!(
            calls(dir.path())
                .iter()
                .all(|c| c.1.get("prevResult").is_none())
        );
        assert!(cfg.cache().read("net", "c1", "eth0").unwrap().is_none());
        // CHECK is refused below 0.4.0.
        assert_eq!(
            cfg.check_network_list(&list, &rt).unwrap_err().code(),
            Some(1)
        );

        let (dir, cfg, list) = setup("1.0.0", "");
        let path = cfg.cache().path("net", "c1", "eth0").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "corrupt").unwrap();
        cfg.del_network_list(&list, &rt).unwrap();
        assert!(
            calls(dir.path())
                .iter()
                .all(|c| c.1.get("prevResult").is_none())
        );
        assert!(!path.exists());
    }

    #[test]
    fn failed_del_keeps_the_cache() {
        let (dir, cfg, list) = setup("1.0.0", "DEL");
        let rt = RuntimeConf::new("c1", "/run/netns/c1", "eth0");
        cfg.add_network_list(&list, &rt).unwrap();
        let err = cfg.del_network_list(&list, &rt).unwrap_err();
        assert!(err.to_string().contains("failed (delete)"));
        assert!(cfg.cache().read("net", "c1", "eth0").unwrap().is_some());
        // Halted at the first failure: "one" never got its DEL.
        let c = calls(dir.path());
        assert_eq!(c.iter().filter(|c| c.0 == "DEL").count(), 1);
    }

    #[test]
    fn disable_check_skips_plugins() {
        let (dir, cfg, mut list) = setup("1.0.0", "CHECK");
        list.disable_check = true;
        cfg.check_network_list(&list, &RuntimeConf::new("c1", "/x", "eth0"))
            .unwrap();
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn version_mismatch_is_caught_before_any_add() {
        let (dir, cfg, _) = setup("1.0.0", "");
        let list = NetworkConfigList::from_bytes(
            br#"{"cniVersion":"0.2.0","name":"net","plugins":[{"type":"one"},{"type":"missing"}]}"#,
        )
        .unwrap();
        let err = cfg
            .add_network_list(&list, &RuntimeConf::new("c1", "/x", "eth0"))
            .unwrap_err();
        // Both problems reported.
        assert!(matches!(&err, Error::Multiple(v) if v.len() == 2), "{err}");
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn status_stops_at_the_first_failure() {
        let (dir, cfg, list) = setup("1.1.0", "STATUS");
        let err = cfg.status_network_list(&list).unwrap_err();
        assert_eq!(err.code(), Some(11));
        let c = calls(dir.path());
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].1,
            json!({"type": "one", "name": "net", "cniVersion": "1.1.0"})
        );
        // Below 1.1.0 there is nothing to ask.
        let (dir, cfg, list) = setup("1.0.0", "STATUS");
        cfg.status_network_list(&list).unwrap();
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn gc_deletes_stale_attachments_then_sends_gc() {
        let (dir, cfg, list) = setup("1.1.0", "");
        for cid in ["keep", "stale"] {
            cfg.add_network_list(&list, &RuntimeConf::new(cid, "/run/netns/x", "eth0"))
                .unwrap();
        }
        // An attachment of another network is never touched.
        let other = NetworkConfigList {
            name: "other".into(),
            ..list.clone()
        };
        cfg.add_network_list(&other, &RuntimeConf::new("stale", "/x", "eth0"))
            .unwrap();
        calls(dir.path());

        let valid = [Attachment {
            container_id: "keep".into(),
            ifname: "eth0".into(),
        }];
        cfg.gc_network_list(&list, Some(&valid)).unwrap();
        let c = calls(dir.path());
        let cmds: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(cmds, ["DEL", "DEL", "GC", "GC"]);
        assert_eq!(c[0].1["prevResult"]["interfaces"][0]["name"], "three");
        let expect = json!([{"containerID": "keep", "ifname": "eth0"}]);
        assert_eq!(c[2].1["cni.dev/valid-attachments"], expect);
        assert_eq!(c[2].1["cni.dev/attachments"], expect);
        assert!(c[2].1.get("prevResult").is_none());
        let left: Vec<String> = cfg
            .cached_attachments(None)
            .unwrap()
            .into_iter()
            .map(|e| format!("{}/{}", e.network_name, e.container_id))
            .collect();
        assert_eq!(left, ["net/keep", "other/stale"]);

        // cnitool gc: no valid list, so every attachment goes and GC carries no key.
        cfg.gc_network_list(&list, None).unwrap();
        let c = calls(dir.path());
        assert_eq!(c.iter().filter(|c| c.0 == "DEL").count(), 2);
        let gc = c.iter().find(|c| c.0 == "GC").unwrap();
        assert!(gc.1.get("cni.dev/valid-attachments").is_none());
        assert!(gc.1.get("cni.dev/attachments").is_none());
        assert_eq!(cfg.cached_attachments(None).unwrap().len(), 1);

        // disableGC: nothing at all.
        let mut off = list.clone();
        off.disable_gc = true;
        cfg.gc_network_list(&off, None).unwrap();
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn gc_continues_past_failures_and_reports_them_all() {
        let (dir, cfg, list) = setup("1.1.0", "GC");
        fake_plugin(dir.path(), "one", "GC");
        let err = cfg.gc_network_list(&list, Some(&[][..])).unwrap_err();
        assert!(matches!(&err, Error::Multiple(v) if v.len() == 2), "{err}");
        assert!(err.to_string().contains("failed to GC plugin one"));
        assert!(err.to_string().contains("failed to GC plugin three"));
        calls(dir.path());
    }

    #[test]
    fn cached_config_returns_the_add_arguments() {
        let (_dir, cfg, list) = setup("1.0.0", "");
        let mut rt = RuntimeConf::new("c1", "/x", "eth0");
        rt.args = vec![("K8S_POD_NAME".into(), "p".into())];
        rt.capability_args
            .insert("mac".into(), json!("c2:11:22:33:44:55"));
        cfg.add_network_list(&list, &rt).unwrap();
        let (bytes, got) = cfg
            .cached_config(&list, &RuntimeConf::new("c1", "/x", "eth0"))
            .unwrap()
            .unwrap();
        assert_eq!(bytes, list.bytes);
        assert_eq!(got, rt);
    }
}
