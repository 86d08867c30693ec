//! libcni's result cache, byte for byte: `<cache_dir>/results/<network>-<containerID>-<ifname>`
//! holding `{"kind":"cniCacheV1", ...}` (directory 0700, file 0600), so a node can switch
//! between Go runtimes and ours without losing what DEL and CHECK need.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cni::{CniResult, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::util::{base64_decode, base64_encode, go_json};

/// The `kind` of the current cache format.
pub const CACHE_KIND: &str = "cniCacheV1";

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// One cached attachment (`cachedInfo`; `NetworkAttachment` without the result).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheEntry {
    pub container_id: String,
    /// The whole configuration list the attachment was made with.
    pub config: Vec<u8>,
    pub ifname: String,
    pub network_name: String,
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The final ADD result, as written (with its `cniVersion`).
    pub result: Option<Value>,
}

/// The JSON shape, field order as Go's struct declares it.
#[derive(Serialize, Deserialize, Default)]
struct Wire {
    #[serde(default)]
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    ifname: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Option::is_none")]
    cni_args: Option<Vec<[String; 2]>>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    capability_args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Map<String, Value>>,
}

impl CacheEntry {
    /// The file's bytes, exactly as Go's `json.Marshal(&cachedInfo)` writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let wire = Wire {
            kind: CACHE_KIND.into(),
            container_id: self.container_id.clone(),
            config: Some(base64_encode(&self.config)),
            ifname: self.ifname.clone(),
            network_name: self.network_name.clone(),
            netns: self.netns.clone(),
            cni_args: (!self.cni_args.is_empty()).then(|| {
                self.cni_args
                    .iter()
                    .map(|(k, v)| [k.clone(), v.clone()])
                    .collect()
            }),
            capability_args: (!self.capability_args.is_empty())
                .then(|| self.capability_args.clone()),
            result: match &self.result {
                Some(Value::Object(m)) if !m.is_empty() => Some(m.clone()),
                _ => None,
            },
        };
        go_json(&wire).map_err(|e| Error::Cache(format!("encode cache entry: {e}")))
    }

    /// Whether the entry is the attachment's: `<network>-<containerID>-<ifname>` is the same
    /// file for `a-b` + `c` and `a` + `b-c`, so the names recorded in it decide (an empty one
    /// does not count against).
    pub fn is_of(&self, network: &str, container_id: &str, ifname: &str) -> bool {
        [
            (&self.network_name, network),
            (&self.container_id, container_id),
            (&self.ifname, ifname),
        ]
        .iter()
        .all(|(recorded, asked)| recorded.is_empty() || recorded == asked)
    }

    /// Reads a cache file; `None` when it is not a `cniCacheV1` entry (a legacy bare result,
    /// or something else).
    pub fn from_bytes(bytes: &[u8]) -> Option<CacheEntry> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        if wire.kind != CACHE_KIND {
            return None;
        }
        let config = match wire.config {
            None => Vec::new(),
            Some(text) => base64_decode(&text)?,
        };
        Some(CacheEntry {
            container_id: wire.container_id,
            config,
            ifname: wire.ifname,
            network_name: wire.network_name,
            netns: wire.netns,
            cni_args: wire
                .cni_args
                .unwrap_or_default()
                .into_iter()
                .map(|[k, v]| (k, v))
                .collect(),
            capability_args: wire.capability_args.unwrap_or_default(),
            result: wire.result.map(Value::Object),
        })
    }
}

/// The cache under one cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: cache_dir.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<dir>/results/<network>-<containerID>-<ifname>`; all three must be non-empty and free
    /// of `/`.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf, Error> {
        if network.is_empty() || container_id.is_empty() || ifname.is_empty() {
            return Err(Error::Cache(format!(
                "cache file path requires network name ({network:?}), container ID \
                 ({container_id:?}), and interface name ({ifname:?})"
            )));
        }
        if [network, container_id, ifname]
            .iter()
            .any(|s| s.contains('/') || s.contains('\0') || *s == "..")
        {
            return Err(Error::Cache(format!(
                "cache file path: {network:?}, {container_id:?} and {ifname:?} must be file name parts"
            )));
        }
        Ok(self
            .results_dir()
            .join(format!("{network}-{container_id}-{ifname}")))
    }

    /// Writes an entry (atomically: a temporary file renamed over the old one).
    pub fn write(&self, entry: &CacheEntry) -> Result<(), Error> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.ifname)?;
        let bytes = entry.to_bytes()?;
        let dir = self.results_dir();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let options = atomic_file::Options {
            mode: 0o600,
            sync: true,
        };
        atomic_file::write_atomic_with(&path, &bytes, options)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// The raw file, `None` when it cannot be read (libcni ignores read errors).
    fn read_file(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let path = self.path(network, container_id, ifname)?;
        Ok(std::fs::read(path).ok())
    }

    /// The entry of one attachment (`getCachedConfig`): `None` when there is no file, or it is
    /// another attachment's of the same file name; an error when the file is not a
    /// `cniCacheV1` entry.
    pub fn read(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CacheEntry>, Error> {
        let Some(bytes) = self.read_file(network, container_id, ifname)? else {
            return Ok(None);
        };
        let entry = CacheEntry::from_bytes(&bytes).ok_or_else(|| {
            Error::Cache(format!(
                "failed to unmarshal cached network {network:?} config"
            ))
        })?;
        Ok(entry.is_of(network, container_id, ifname).then_some(entry))
    }

    /// The cached result of one attachment (`getCachedResult`): from a `cniCacheV1` entry, or
    /// from a legacy file holding a bare result. `None` when there is no file (or an entry
    /// without a result); an error when the file cannot be read as either.
    pub fn read_result(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CniResult>, Error> {
        let Some(bytes) = self.read_file(network, container_id, ifname)? else {
            return Ok(None);
        };
        let value = match CacheEntry::from_bytes(&bytes) {
            Some(entry) if !entry.is_of(network, container_id, ifname) => return Ok(None),
            Some(entry) => match entry.result {
                Some(v) => v,
                None => return Ok(None),
            },
            None => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                Error::Cache(format!(
                    "failed to read cached network {network:?} result: {e}"
                ))
            })?,
        };
        result_from_value(value).map(Some)
    }

    /// Removes an attachment's file; a missing file, or another attachment's of the same
    /// name, is left alone without an error.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<(), Error> {
        let path = self.path(network, container_id, ifname)?;
        if let Some(bytes) = self.read_file(network, container_id, ifname)?
            && CacheEntry::from_bytes(&bytes)
                .is_some_and(|e| !e.is_of(network, container_id, ifname))
        {
            return Ok(());
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
        }
    }

    /// Every readable `cniCacheV1` entry, in file name order, optionally only those of one
    /// container (`GetCachedAttachments`). Entries without an interface or network name, and
    /// files that do not parse, are skipped. A missing results directory holds no entries.
    pub fn attachments(&self, container_id: Option<&str>) -> Result<Vec<CacheEntry>, Error> {
        let dir = self.results_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| !atomic_file::is_temporary(&e.file_name()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(cid) = container_id.filter(|c| !c.is_empty()) {
                let part = format!("-{cid}-");
                match name.find(&part) {
                    Some(pos) if pos > 0 && pos + part.len() < name.len() => {}
                    _ => continue,
                }
            }
            let Ok(bytes) = std::fs::read(dir.join(&name)) else {
                continue;
            };
            let Some(entry) = CacheEntry::from_bytes(&bytes) else {
                continue;
            };
            if container_id.is_some_and(|c| !c.is_empty() && entry.container_id != c) {
                continue;
            }
            if entry.ifname.is_empty() || entry.network_name.is_empty() {
                continue;
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// A cached result in its own version (`create.CreateFromBytes`: no `cniVersion` is 0.1.0).
fn result_from_value(value: Value) -> Result<CniResult, Error> {
    let version = value
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let version = Version::parse(&version)
        .ok_or_else(|| Error::Cache(format!("unsupported cached result version {version:?}")))?;
    CniResult::from_value(value, version).map_err(|e| Error::Cache(format!("cached result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn entry() -> CacheEntry {
        CacheEntry {
            container_id: "abc".into(),
            config: br#"{"cniVersion":"1.1.0","name":"mynet","plugins":[{"type":"bridge"}]}"#
                .to_vec(),
            ifname: "eth0".into(),
            network_name: "mynet".into(),
            netns: "/run/netns/x".into(),
            cni_args: vec![("IgnoreUnknown".into(), "1".into())],
            capability_args:
                json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
                    .as_object()
                    .cloned()
                    .unwrap(),
            result: Some(json!({
                "cniVersion":"1.1.0",
                "interfaces":[{"name":"eth0","mac":"0a:58:0a:16:00:05","sandbox":"/run/netns/x"}],
                "ips":[{"address":"10.22.0.5/16","gateway":"10.22.0.1","interface":0}]
            })),
        }
    }

    #[test]
    fn writes_go_compatible_bytes() {
        let bytes = String::from_utf8(entry().to_bytes().unwrap()).unwrap();
        let config = base64_encode(&entry().config);
        assert_eq!(
            bytes,
            format!(
                r#"{{"kind":"cniCacheV1","containerId":"abc","config":"{config}","ifName":"eth0","networkName":"mynet","netns":"/run/netns/x","cniArgs":[["IgnoreUnknown","1"]],"capabilityArgs":{{"portMappings":[{{"containerPort":80,"hostPort":8080,"protocol":"tcp"}}]}},"result":{{"cniVersion":"1.1.0","interfaces":[{{"mac":"0a:58:0a:16:00:05","name":"eth0","sandbox":"/run/netns/x"}}],"ips":[{{"address":"10.22.0.5/16","gateway":"10.22.0.1","interface":0}}]}}}}"#
            )
        );
        // Empty optional parts are left out, as Go's omitempty does.
        let bare = CacheEntry {
            netns: String::new(),
            cni_args: vec![],
            capability_args: Map::new(),
            ..entry()
        };
        let text = String::from_utf8(bare.to_bytes().unwrap()).unwrap();
        for key in ["\"netns\"", "\"cniArgs\"", "\"capabilityArgs\""] {
            assert!(!text.contains(key), "{key} in {text}");
        }
    }

    #[test]
    fn round_trips_through_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cni"));
        assert_eq!(cache.read("mynet", "abc", "eth0").unwrap(), None);
        assert!(cache.read_result("mynet", "abc", "eth0").unwrap().is_none());
        cache.write(&entry()).unwrap();

        let path = dir.path().join("cni/results/mynet-abc-eth0");
        assert_eq!(cache.path("mynet", "abc", "eth0").unwrap(), path);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("cni/results")), 0o700);
        assert_eq!(mode(&dir.path().join("cni")), 0o700);

        assert_eq!(cache.read("mynet", "abc", "eth0").unwrap(), Some(entry()));
        let result = cache.read_result("mynet", "abc", "eth0").unwrap().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.22.0.5/16");
        assert_eq!(result.interfaces[0].name, "eth0");

        // Only one file: no temporary leftovers.
        assert_eq!(
            std::fs::read_dir(dir.path().join("cni/results"))
                .unwrap()
                .count(),
            1
        );

        cache.remove("mynet", "abc", "eth0").unwrap();
        assert!(!path.exists());
        cache.remove("mynet", "abc", "eth0").unwrap();
    }

    #[test]
    fn reads_a_file_written_by_go() {
        // The shape Go libcni writes: base64 config, sorted result keys, empty dns kept.
        let go = r#"{"kind":"cniCacheV1","containerId":"cnitool-55e2cecc95014b0f7fc4","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoibXluZXQiLCJwbHVnaW5zIjpbeyJ0eXBlIjoiYnJpZGdlIn1dfQ==","ifName":"eth0","networkName":"mynet","netns":"/run/netns/x","result":{"cniVersion":"1.0.0","dns":{},"interfaces":[{"mac":"8a:9b:2f:3e:44:55","name":"cni0"}],"ips":[{"address":"10.1.0.2/16","gateway":"10.1.0.1","interface":0}]}}"#;
        let e = CacheEntry::from_bytes(go.as_bytes()).unwrap();
        assert_eq!(
            e.config,
            br#"{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge"}]}"#
        );
        assert_eq!(e.container_id, "cnitool-55e2cecc95014b0f7fc4");
        assert!(e.cni_args.is_empty() && e.capability_args.is_empty());
        assert_eq!(e.to_bytes().unwrap(), go.as_bytes());
    }

    #[test]
    fn reads_legacy_bare_results_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        std::fs::create_dir_all(cache.results_dir()).unwrap();
        let path = cache.path("n", "c", "eth0").unwrap();
        std::fs::write(
            &path,
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#,
        )
        .unwrap();
        let r = cache.read_result("n", "c", "eth0").unwrap().unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        assert!(cache.read("n", "c", "eth0").is_err());

        std::fs::write(&path, "garbage").unwrap();
        assert!(cache.read_result("n", "c", "eth0").is_err());
        std::fs::write(&path, r#"{"cniVersion":"9.9.9"}"#).unwrap();
        assert!(cache.read_result("n", "c", "eth0").is_err());
    }

    #[test]
    fn entries_whose_file_names_collide_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        // `my-net` + `abc` and `my` + `net-abc` are both `my-net-abc-eth0`.
        let ours = CacheEntry {
            network_name: "my-net".into(),
            ..entry()
        };
        assert_eq!(
            cache.path("my-net", "abc", "eth0").unwrap(),
            cache.path("my", "net-abc", "eth0").unwrap()
        );
        cache.write(&ours).unwrap();
        assert_eq!(cache.read("my", "net-abc", "eth0").unwrap(), None);
        assert!(
            cache
                .read_result("my", "net-abc", "eth0")
                .unwrap()
                .is_none()
        );
        cache.remove("my", "net-abc", "eth0").unwrap();
        assert_eq!(
            cache.read("my-net", "abc", "eth0").unwrap(),
            Some(ours.clone())
        );
        assert!(
            cache
                .read_result("my-net", "abc", "eth0")
                .unwrap()
                .is_some()
        );
        cache.remove("my-net", "abc", "eth0").unwrap();
        assert_eq!(cache.read("my-net", "abc", "eth0").unwrap(), None);
    }

    #[test]
    fn rejects_path_escapes() {
        let cache = Cache::new("/tmp/x");
        assert!(cache.path("n", "", "eth0").is_err());
        assert!(cache.path("n", "../../etc", "eth0").is_err());
        assert!(cache.path("n", "c", "..").is_err());
    }

    #[test]
    fn lists_attachments_of_a_container_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.attachments(None).unwrap().is_empty());
        for (net, cid, ifname) in [
            ("n1", "c1", "eth0"),
            ("n1", "c2", "eth0"),
            ("n2", "c1", "net1"),
        ] {
            cache
                .write(&CacheEntry {
                    network_name: net.into(),
                    container_id: cid.into(),
                    ifname: ifname.into(),
                    ..entry()
                })
                .unwrap();
        }
        std::fs::write(cache.results_dir().join("n3-c1-eth0"), "{}").unwrap();
        std::fs::write(cache.results_dir().join("junk"), "not json").unwrap();
        let all: Vec<(String, String)> = cache
            .attachments(None)
            .unwrap()
            .into_iter()
            .map(|e| (e.network_name, e.container_id))
            .collect();
        assert_eq!(
            all,
            [
                ("n1".into(), "c1".into()),
                ("n1".into(), "c2".into()),
                ("n2".into(), "c1".into())
            ]
        );
        let c1 = cache.attachments(Some("c1")).unwrap();
        assert_eq!(c1.len(), 2);
        assert!(c1.iter().all(|e| e.container_id == "c1"));
    }
}
