//! Network configuration lists (`.conflist`) and legacy single-plugin files, read with libcni's
//! rules (`libcni/conf.go`): the version picked from `cniVersions`, lenient booleans, plugins
//! from `<dir>/<network>/*.conf`, and the lookup of a network by name in a directory.

use std::path::{Path, PathBuf};

use cni::Version;
use serde_json::{Map, Value, json};

use crate::error::Error;

/// A network configuration list, as libcni's `NetworkConfigList`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    /// The version the list is run with: `cniVersion`, or the highest usable entry of
    /// `cniVersions`.
    pub cni_version: Version,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    /// The plugin objects in order, each a JSON object with a non-empty string `type`.
    pub plugins: Vec<Value>,
    /// The bytes the list was read from (what the result cache stores as `config`).
    pub bytes: Vec<u8>,
}

impl NetworkConfigList {
    /// Reads a configuration list (`NetworkConfFromBytes`). A list without a `plugins` key is
    /// accepted with no plugins (its plugins may come from files, see [`Self::from_file`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkConfigList, Error> {
        let raw: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| Error::Config(format!("error parsing configuration list: {e}")))?;
        let name = match raw.get("name") {
            None => return Err(list_err("no name")),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(list_err(format!("invalid name type {}", kind(other)))),
        };
        cni::conf::validate_network_name(&name)?;
        let cni_version = pick_version(&raw)?;
        let disable_check = read_bool(&raw, "disableCheck")?;
        let disable_gc = read_bool(&raw, "disableGC")?;
        let load_only_inlined_plugins = read_bool(&raw, "loadOnlyInlinedPlugins")?;

        let plugins = match raw.get("plugins") {
            None if load_only_inlined_plugins => {
                return Err(list_err(
                    "`loadOnlyInlinedPlugins` is true, and no 'plugins' key",
                ));
            }
            None => Vec::new(),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(list_err("no plugins in list"));
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check_plugin(item).map_err(|e| {
                        Error::Config(format!("failed to parse plugin config {i}: {e}"))
                    })?;
                }
                items.clone()
            }
            Some(other) => {
                return Err(list_err(format!("invalid 'plugins' type {}", kind(other))));
            }
        };
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            disable_gc,
            load_only_inlined_plugins,
            plugins,
            bytes: bytes.to_vec(),
        })
    }

    /// Reads a `.conflist` file (`NetworkConfFromFile`): unless `loadOnlyInlinedPlugins`, the
    /// plugin objects of `<dir>/<name>/*.conf` are appended, in file name order. A list that
    /// ends up with no plugin is an error.
    pub fn from_file(path: &Path) -> Result<NetworkConfigList, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("error reading {}", path.display()), e))?;
        let mut list = NetworkConfigList::from_bytes(&bytes)?;
        if !list.load_only_inlined_plugins {
            let dir = path.parent().unwrap_or(Path::new(".")).join(&list.name);
            let files = conf_files(&dir, &["conf"]).map_err(|e| {
                Error::Config(format!(
                    "failed to read plugin config files in {}: {e}",
                    dir.display()
                ))
            })?;
            for file in files {
                let bytes = std::fs::read(&file)
                    .map_err(|e| Error::io(format!("error reading {}", file.display()), e))?;
                list.plugins.push(plugin_from_bytes(&bytes)?);
            }
        }
        if list.plugins.is_empty() {
            return Err(Error::Config("no plugin configs found".into()));
        }
        Ok(list)
    }

    /// Up-converts a legacy single-plugin configuration (`.conf`/`.json`) into a list holding
    /// it as the only plugin, with the plugin's `name` and `cniVersion` (`ConfListFromConf`).
    pub fn from_plugin_conf(bytes: &[u8]) -> Result<NetworkConfigList, Error> {
        let plugin = plugin_from_bytes(bytes)?;
        let field = |key: &str| {
            plugin
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let list = json!({
            "name": field("name"),
            "cniVersion": field("cniVersion"),
            "plugins": [plugin],
        });
        let bytes = crate::util::go_json(&list)
            .map_err(|e| Error::Config(format!("error encoding configuration list: {e}")))?;
        NetworkConfigList::from_bytes(&bytes)
    }

    /// The `type` of plugin `i`.
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins.get(i).map(plugin_type).unwrap_or("")
    }
}

/// A plugin object's `type` ("" if it has none, which parsing never lets through).
pub fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The capabilities a plugin object declares as `true`, in key order.
pub fn plugin_capabilities(plugin: &Value) -> Vec<String> {
    plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .map(|caps| {
            caps.iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Parses one plugin object (`NetworkPluginConfFromBytes`): a JSON object with a `type`.
pub fn plugin_from_bytes(bytes: &[u8]) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Config(format!("error parsing configuration: {e}")))?;
    check_plugin(&value).map_err(|e| Error::Config(format!("error parsing configuration: {e}")))?;
    Ok(value)
}

/// The checks Go's typed decode of a plugin object makes on the keys libcni reads.
fn check_plugin(plugin: &Value) -> Result<(), String> {
    let obj = plugin
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, got {}", kind(plugin)))?;
    for key in ["cniVersion", "name"] {
        if let Some(v) = obj.get(key)
            && !v.is_string()
            && !v.is_null()
        {
            return Err(format!("invalid {key} type {}", kind(v)));
        }
    }
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {}
        Some(Value::String(_)) | Some(Value::Null) | None => return Err("missing 'type'".into()),
        Some(other) => return Err(format!("invalid type type {}", kind(other))),
    }
    match obj.get("capabilities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(caps)) => {
            if let Some((k, v)) = caps.iter().find(|(_, v)| !v.is_boolean()) {
                return Err(format!("capability {k:?} is {}, not a boolean", kind(v)));
            }
        }
        Some(other) => return Err(format!("invalid capabilities type {}", kind(other))),
    }
    Ok(())
}

/// The files of `dir` whose extension is one of `extensions` (without the dot), sorted by
/// name; directories are skipped and a missing `dir` gives no files (`ConfFiles`).
pub fn conf_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extensions.contains(&ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Finds network `name` in `dir` as libcni's `LoadNetworkConf` does: the `.conflist` files in
/// name order, the first whose `name` matches; then legacy `.conf`/`.json` single-plugin files,
/// up-converted to a list. A file that does not parse stops the search with its error.
pub fn load_network(dir: &Path, name: &str) -> Result<NetworkConfigList, Error> {
    let lists = conf_files(dir, &["conflist"])?;
    for file in &lists {
        let list = NetworkConfigList::from_file(file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    let singles = conf_files(dir, &["conf", "json"])?;
    if singles.is_empty() {
        return Err(if lists.is_empty() {
            Error::NoConfigsFound {
                dir: dir.to_path_buf(),
            }
        } else {
            Error::NotFound {
                dir: dir.to_path_buf(),
                name: name.to_string(),
            }
        });
    }
    for file in &singles {
        let bytes = std::fs::read(file)
            .map_err(|e| Error::io(format!("error reading {}", file.display()), e))?;
        let plugin = plugin_from_bytes(&bytes)?;
        if plugin.get("name").and_then(Value::as_str) == Some(name) {
            return NetworkConfigList::from_plugin_conf(&bytes);
        }
    }
    Err(Error::NotFound {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    })
}

fn list_err(msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("error parsing configuration list: {msg}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `readBool`: a JSON boolean, or the strings "true"/"false" in any case; absent is false.
fn read_bool(raw: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    match raw.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(list_err(format!("invalid value {other:?} for {key}"))),
        },
        Some(other) => Err(list_err(format!("invalid type {} for {key}", kind(other)))),
    }
}

/// A version as Go's `version.ParseVersion` reads it: "" is 0.1.0, and one to three
/// dot-separated numbers ("1.1" is 1.1.0).
fn parse_triple(s: &str) -> Option<(u64, u64, u64)> {
    if s.is_empty() {
        return Some((0, 1, 0));
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 3 {
        return None;
    }
    let num = |i: usize| -> Option<u64> {
        match parts.get(i) {
            None => Some(0),
            Some(p) => p.parse().ok(),
        }
    };
    Some((num(0)?, num(1)?, num(2)?))
}

fn triple_of(v: Version) -> (u64, u64, u64) {
    parse_triple(v.as_str()).unwrap_or((0, 1, 0))
}

/// The list's version: `cniVersion`, or with `cniVersions` the highest of its entries and
/// `cniVersion` that are not newer than the newest spec version (`NetworkConfFromBytes`).
fn pick_version(raw: &Map<String, Value>) -> Result<Version, Error> {
    let declared = match raw.get("cniVersion") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(list_err(format!("invalid cniVersion type {}", kind(other)))),
    };
    let current = triple_of(Version::LATEST);
    let mut chosen = declared.clone();
    if let Some(versions) = raw.get("cniVersions") {
        let Value::Array(items) = versions else {
            return Err(list_err(format!(
                "invalid type for cniVersions: {}",
                kind(versions)
            )));
        };
        let mut usable: Vec<((u64, u64, u64), String)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Value::String(s) = item else {
                return Err(list_err(format!(
                    "invalid type for cniVersions index {i}: {}",
                    kind(item)
                )));
            };
            let t = parse_triple(s)
                .ok_or_else(|| list_err(format!("invalid cniVersions entry {s} at index {i}")))?;
            if t <= current {
                usable.push((t, s.clone()));
            }
        }
        if !declared.is_empty() {
            let t = parse_triple(&declared)
                .ok_or_else(|| list_err(format!("invalid cniVersion {declared}")))?;
            if t <= current {
                usable.push((t, declared.clone()));
            }
        }
        if let Some((_, best)) = usable.into_iter().max_by_key(|(t, _)| *t) {
            chosen = best;
        }
    }
    version_of(&chosen).ok_or_else(|| {
        Error::Cni(cni::Error::incompatible_version(format!(
            "unsupported cniVersion {chosen:?}; supported: {}",
            cni::version::list(&Version::ALL)
        )))
    })
}

/// A known version for a version string, reading "1.1" as 1.1.0 as Go's comparison does.
fn version_of(s: &str) -> Option<Version> {
    Version::parse(s).or_else(|| {
        let t = parse_triple(s)?;
        Version::ALL.into_iter().find(|v| triple_of(*v) == t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn list(text: &str) -> Result<NetworkConfigList, Error> {
        NetworkConfigList::from_bytes(text.as_bytes())
    }

    #[test]
    fn reads_a_plain_list() {
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"net1","plugins":[
                {"type":"bridge","capabilities":{"portMappings":true,"ips":false}},
                {"type":"portmap"}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "net1");
        assert_eq!(l.cni_version, Version::V1_0_0);
        assert!(!l.disable_check && !l.disable_gc && !l.load_only_inlined_plugins);
        assert_eq!(l.plugins.len(), 2);
        assert_eq!(l.plugin_type(0), "bridge");
        assert_eq!(plugin_capabilities(&l.plugins[0]), vec!["portMappings"]);
        assert_eq!(
            l.bytes,
            br#"{"cniVersion":"1.0.0","name":"net1","plugins":[
                {"type":"bridge","capabilities":{"portMappings":true,"ips":false}},
                {"type":"portmap"}]}"#
        );
    }

    #[test]
    fn picks_the_highest_usable_version_from_cni_versions() {
        let l = list(
            r#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","9.9.9","0.3.1"],
                "name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, Version::V1_0_0);
        // cniVersion itself takes part; newer-than-known entries are dropped.
        let l = list(
            r#"{"cniVersion":"1.1.0","cniVersions":["1.0.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, Version::V1_1_0);
        // Only cniVersions.
        let l =
            list(r#"{"cniVersions":["0.3.1","1.1"],"name":"n","plugins":[{"type":"x"}]}"#).unwrap();
        assert_eq!(l.cni_version, Version::V1_1_0);
        // A cniVersion newer than known is ignored when cniVersions is there...
        let l = list(
            r#"{"cniVersion":"3.0.0","cniVersions":["0.4.0"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, Version::V0_4_0);
        // ...and an error without it.
        let e = list(r#"{"cniVersion":"3.0.0","name":"n","plugins":[{"type":"x"}]}"#).unwrap_err();
        assert_eq!(e.code(), Some(cni::error::code::INCOMPATIBLE_VERSION));
        // A missing cniVersion is 0.1.0, as in Go.
        let l = list(r#"{"name":"n","plugins":[{"type":"x"}]}"#).unwrap();
        assert_eq!(l.cni_version, Version::V0_1_0);
        assert!(list(r#"{"cniVersions":["a.b"],"name":"n","plugins":[{"type":"x"}]}"#).is_err());
        assert!(list(r#"{"cniVersions":[1],"name":"n","plugins":[{"type":"x"}]}"#).is_err());
        assert!(list(r#"{"cniVersions":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#).is_err());
    }

    #[test]
    fn booleans_accept_strings() {
        let l = list(
            r#"{"cniVersion":"1.1.0","name":"n","disableCheck":"TRUE","disableGC":true,
                "plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert!(l.disable_check && l.disable_gc);
        let l = list(
            r#"{"cniVersion":"1.1.0","name":"n","disableCheck":"false","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert!(!l.disable_check);
        for bad in [r#""yes""#, "1", "null"] {
            let text = format!(
                r#"{{"cniVersion":"1.1.0","name":"n","disableCheck":{bad},"plugins":[{{"type":"x"}}]}}"#
            );
            assert!(list(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_names_and_plugins() {
        assert!(list(r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#).is_err());
        let e =
            list(r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#).unwrap_err();
        assert_eq!(e.code(), Some(cni::error::code::INVALID_NETWORK_CONFIG));
        let e = list(r#"{"cniVersion":"1.0.0","name":"","plugins":[{"type":"x"}]}"#).unwrap_err();
        assert_eq!(e.code(), Some(cni::error::code::INVALID_NETWORK_CONFIG));
        assert!(list(r#"{"cniVersion":"1.0.0","name":5,"plugins":[{"type":"x"}]}"#).is_err());
        assert!(list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#).is_err());
        assert!(list(r#"{"cniVersion":"1.0.0","name":"n","plugins":{}}"#).is_err());
        assert!(list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"ipam":{}}]}"#).is_err());
        assert!(list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":""}]}"#).is_err());
        assert!(list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[3]}"#).is_err());
        assert!(
            list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"a":1}}]}"#)
                .is_err()
        );
        assert!(list("not json").is_err());
        // No plugins key is fine at the bytes level, but not with loadOnlyInlinedPlugins.
        assert!(
            list(r#"{"cniVersion":"1.0.0","name":"n"}"#)
                .unwrap()
                .plugins
                .is_empty()
        );
        assert!(
            list(r#"{"cniVersion":"1.0.0","name":"n","loadOnlyInlinedPlugins":true}"#).is_err()
        );
    }

    #[test]
    fn up_converts_a_single_plugin_conf() {
        let l = NetworkConfigList::from_plugin_conf(
            br#"{"cniVersion":"0.4.0","name":"old","type":"bridge","bridge":"br0"}"#,
        )
        .unwrap();
        assert_eq!(l.name, "old");
        assert_eq!(l.cni_version, Version::V0_4_0);
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0]["bridge"], "br0");
        assert_eq!(
            String::from_utf8(l.bytes).unwrap(),
            r#"{"cniVersion":"0.4.0","name":"old","plugins":[{"bridge":"br0","cniVersion":"0.4.0","name":"old","type":"bridge"}]}"#
        );
    }

    #[test]
    fn loads_a_network_by_name_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            load_network(d, "a"),
            Err(Error::NoConfigsFound { .. })
        ));

        fs::write(
            d.join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"second"}]}"#,
        )
        .unwrap();
        fs::write(
            d.join("10-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"first"}]}"#,
        )
        .unwrap();
        fs::write(
            d.join("30-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        fs::write(d.join("ignored.txt"), "junk").unwrap();
        fs::create_dir(d.join("dir.conflist")).unwrap();

        // Lexical order: 10-b wins over 20-b.
        assert_eq!(load_network(d, "b").unwrap().plugin_type(0), "first");
        assert_eq!(load_network(d, "a").unwrap().name, "a");
        assert!(matches!(load_network(d, "zz"), Err(Error::NotFound { .. })));

        // Legacy single-plugin files are the fallback.
        fs::write(
            d.join("50-old.conf"),
            r#"{"cniVersion":"0.3.1","name":"old","type":"bridge"}"#,
        )
        .unwrap();
        fs::write(
            d.join("60-json.json"),
            r#"{"cniVersion":"0.3.1","name":"js","type":"macvlan"}"#,
        )
        .unwrap();
        let old = load_network(d, "old").unwrap();
        assert_eq!(
            (old.cni_version, old.plugin_type(0)),
            (Version::V0_3_1, "bridge")
        );
        assert_eq!(load_network(d, "js").unwrap().plugin_type(0), "macvlan");
        assert!(matches!(load_network(d, "zz"), Err(Error::NotFound { .. })));

        // Plugins from <dir>/<name>/*.conf are appended unless loadOnlyInlinedPlugins.
        fs::create_dir(d.join("a")).unwrap();
        fs::write(d.join("a/2.conf"), r#"{"type":"third"}"#).unwrap();
        fs::write(d.join("a/1.conf"), r#"{"type":"second"}"#).unwrap();
        let a = load_network(d, "a").unwrap();
        let types: Vec<&str> = a.plugins.iter().map(plugin_type).collect();
        assert_eq!(types, ["x", "second", "third"]);
        fs::write(
            d.join("30-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","loadOnlyInlinedPlugins":true,"plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(load_network(d, "a").unwrap().plugins.len(), 1);

        // A list with no plugins at all is an error when loaded from a file.
        fs::write(
            d.join("40-c.conflist"),
            r#"{"cniVersion":"1.0.0","name":"c"}"#,
        )
        .unwrap();
        assert!(load_network(d, "c").is_err());
    }
}
