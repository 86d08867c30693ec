//! What the real-runtime tests share (included by tests/tests/runtime_*.rs with `#[path]`):
//! a sandbox host netns, a temp dir holding all of the runtime's state, a plugin directory
//! with our binaries only, and a *holder*: a process in the sandbox netns and in a private
//! mount namespace in which
//!
//! - `/run` is a fresh tmpfs (the runtime's netns files, runc and conmon state, our plugins'
//!   `/run/cni/*` state: bind-mounted from `<tmp>/run-cni` so the test can inspect it),
//! - `/var/lib` is `<tmp>/var-lib` (the libcni result cache and host-local's store at their
//!   default `/var/lib/cni`; `/var/lib/containers` is out of reach),
//! - `/etc/cni` is `<tmp>/etc-cni`,
//! - `/sys/fs/cgroup` is the machine's (`ip netns exec` mounts a sysfs of the netns over
//!   `/sys`; runc needs the cgroup mounts back).
//!
//! The runtime runs as the holder itself (containerd) or is entered with `nsenter` for each
//! command (podman, whose commands must all share the holder's mounts). Container processes
//! go into a cgroup parent named after the test, and whatever is left in it when the test
//! ends (a failed test) is killed by pid, as are the processes left in the sandbox netns.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cni_tests::{TestNetns, bin_dir};

/// Our plugins a runtime's generated network may name, and the DNS sidecar.
const PLUGINS: &[&str] = &[
    "bridge",
    "host-local",
    "loopback",
    "portmap",
    "firewall",
    "tuning",
    "dnsname",
    "cni-dns",
    "ptp",
    "bandwidth",
];

pub struct RuntimeSandbox {
    pub host: TestNetns,
    pub dir: tempfile::TempDir,
    /// The name of the cgroup parent of every container of this test.
    pub cgroup_parent: String,
    holder: Option<u32>,
    holder_child: Option<std::process::Child>,
}

/// Whether the runtime tests may run: every tool is installed, or the test fails (CI,
/// scripts/test.sh) or is skipped (elsewhere), naming the missing package.
pub fn require_tools(tools: &[&str]) -> bool {
    tools.iter().all(|tool| test_requires::tool(tool))
}

impl RuntimeSandbox {
    pub fn new(prefix: &str) -> RuntimeSandbox {
        let host = TestNetns::new();
        host.lo_up();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        for sub in [
            "bin",
            "var-lib",
            "run-cni",
            "etc-cni/net.d",
            "cgroup",
            "rootfs/bin",
            "rootfs/www",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        for name in PLUGINS {
            let bin = bin_dir().join(name);
            if bin.is_file() {
                std::os::unix::fs::symlink(&bin, dir.path().join("bin").join(name)).unwrap();
            }
        }
        let cgroup_parent = format!("cnitest-{}-{}", std::process::id(), host.name());
        RuntimeSandbox {
            host,
            dir,
            cgroup_parent,
            holder: None,
            holder_child: None,
        }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn has_plugin(&self, name: &str) -> bool {
        self.path("bin").join(name).exists()
    }

    /// A busybox-static root filesystem with an index page at /www.
    pub fn rootfs(&self) -> PathBuf {
        let root = self.path("rootfs");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox not installed (package busybox-static)");
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "ping", "wget", "httpd", "ip", "cat", "echo", "ls", "nslookup",
            "hostname",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), "hello from the container\n").unwrap();
        // /cgi-bin/ip answers with the address the request came from, as the server saw it.
        std::fs::create_dir_all(root.join("www/cgi-bin")).unwrap();
        let cgi = root.join("www/cgi-bin/ip");
        std::fs::write(
            &cgi,
            "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        root
    }

    /// Starts containerd 1.6 with its CRI plugin in this sandbox (root, state, socket and CNI
    /// conf dir in the temp dir; `bin_dir` our plugins only; `conflist` as its one network
    /// config) and imports the busybox image; the CRI client for it.
    pub fn start_containerd(&mut self, conflist_file: &str, conflist: &serde_json::Value) -> Cri {
        let t = self.dir.path().display().to_string();
        for sub in ["ctd/net.d", "ctd/root", "ctd/state"] {
            std::fs::create_dir_all(self.path(sub)).unwrap();
        }
        std::fs::write(
            self.path("ctd/net.d").join(conflist_file),
            serde_json::to_vec_pretty(conflist).unwrap(),
        )
        .unwrap();
        std::fs::write(
            self.path("ctd/config.toml"),
            format!(
                "version = 2\n\
                 root = \"{t}/ctd/root\"\n\
                 state = \"{t}/ctd/state\"\n\
                 [grpc]\n  address = \"{t}/ctd/containerd.sock\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n\
                 \x20 restrict_oom_score_adj = true\n\
                 \x20 sandbox_image = \"{IMAGE}\"\n\
                 \x20 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
                 \x20   snapshotter = \"native\"\n\
                 \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
                 \x20   bin_dir = \"{t}/bin\"\n\
                 \x20   conf_dir = \"{t}/ctd/net.d\"\n"
            ),
        )
        .unwrap();
        let python = cri_python().unwrap_or_else(|e| panic!("CRI client setup: {e}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtimes/cri.py");
        let rootfs = self.rootfs();
        let image = self.path("image.tar");
        check(
            Command::new(&python)
                .arg(&script)
                .args(["image", &image.display().to_string()])
                .arg(&rootfs)
                .arg(IMAGE)
                .output()
                .unwrap(),
            "build image",
        );
        let sock = self.path("ctd/containerd.sock");
        self.start_holder(
            &format!("containerd --config {t}/ctd/config.toml"),
            "containerd.log",
            Some(&sock),
        );
        let sock = sock.display().to_string();
        check(
            Command::new("ctr")
                .args(["-a", &sock, "-n", "k8s.io", "images", "import"])
                .args(["--snapshotter", "native"])
                .arg(&image)
                .output()
                .unwrap(),
            "ctr images import",
        );
        Cri {
            python,
            script,
            sock,
            cgroup_parent: format!("/{}", self.cgroup_parent),
        }
    }

    /// Starts `command` as the holder (see the module doc); waits for `ready` to exist when
    /// given. Returns its pid.
    pub fn start_holder(&mut self, command: &str, log_name: &str, ready: Option<&Path>) -> u32 {
        let t = self.dir.path().display().to_string();
        let ns = self.host.name().to_string();
        let inner = format!(
            "mount --rbind {t}/cgroup /sys/fs/cgroup && mount -t tmpfs tmpfs /run && \
             mkdir -p /run/netns /run/cni && mount --bind {t}/run-cni /run/cni && \
             mount --bind {t}/var-lib /var/lib && mount --bind {t}/etc-cni /etc/cni && \
             touch {t}/holder.ready && exec {command}"
        );
        let outer = format!(
            "mount --rbind /sys/fs/cgroup {t}/cgroup && exec ip netns exec {ns} sh -c '{inner}'"
        );
        let log = std::fs::File::create(self.path(log_name)).unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &outer])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run unshare");
        let pid = child.id();
        self.holder = Some(pid);
        self.holder_child = Some(child);
        let holder_ready = self.path("holder.ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(holder_ready.exists() && ready.is_none_or(Path::exists)) {
            assert!(
                Instant::now() < deadline,
                "holder did not start: {}",
                std::fs::read_to_string(self.dir.path().join(log_name)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pid
    }

    /// Runs a command inside the holder's mount and network namespaces.
    pub fn in_holder(&self, env: &[(&str, String)], args: &[&str]) -> Output {
        let pid = self.holder.expect("no holder").to_string();
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &pid, "-m", "-n", "--"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).output().expect("run nsenter")
    }

    /// Runs a command in the sandbox host netns (`ip netns exec`).
    pub fn in_host(&self, args: &[&str]) -> String {
        self.host.run(args)
    }

    /// One HTTP GET from the sandbox host; the body.
    pub fn http_get(&self, addr: &str, port: u16) -> String {
        let script = format!(
            "exec 3<>/dev/tcp/{addr}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let out = self.host.exec(&["timeout", "5", "bash", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Address files in host-local's store (`/var/lib/cni/networks/<net>`).
    pub fn allocations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.path("var-lib/cni/networks");
        for net in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.parse::<std::net::IpAddr>().is_ok() {
                    out.push(format!("{}/{name}", net.file_name().to_string_lossy()));
                }
            }
        }
        out
    }

    /// Files left in our plugins' state directories and libcni's result cache.
    pub fn state_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for root in [self.path("run-cni"), self.path("var-lib/cni/results")] {
            walk(&root, &mut out);
        }
        out.retain(|f| !f.ends_with("/lock") && !f.ends_with(".lock"));
        out
    }

    /// Lines of the sandbox host's nftables ruleset and iptables rules that name `ip`.
    pub fn rules_naming(&self, ip: &str) -> Vec<String> {
        let nft = self.in_host(&["nft", "list", "ruleset"]);
        let ipt = self.in_host(&["iptables-save"]);
        nft.lines()
            .chain(ipt.lines())
            .filter(|l| {
                l.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .any(|w| w == ip)
            })
            .map(str::to_string)
            .collect()
    }

    /// Kills what is left in the test's cgroup parent (container processes of a failed
    /// test), by pid.
    fn kill_cgroup_leftovers(&self) {
        let needle = format!("/{}", self.cgroup_parent);
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cg.contains(&needle) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path.display().to_string());
        }
    }
}

impl Drop for RuntimeSandbox {
    fn drop(&mut self) {
        self.kill_cgroup_leftovers();
        // The holder, conmon, shims and the DNS sidecar live in the sandbox netns: the
        // TestNetns drop stops them by pid.
        self.host.stop_processes();
        if let Some(mut child) = self.holder_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The image every runtime test's pods run: busybox, an httpd document root at /www.
pub const IMAGE: &str = "localhost/bb:latest";

/// A CRI client of one containerd (tests/runtimes/cri.py), making pods as kubelet makes them.
pub struct Cri {
    pub python: PathBuf,
    pub script: PathBuf,
    pub sock: String,
    cgroup_parent: String,
}

/// A pod made by [`Cri::pod`]: its sandbox, its httpd container and its IP.
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub container: String,
    pub ip: String,
}

impl Cri {
    fn run(&self, args: &[&str]) -> serde_json::Value {
        let out = check(
            Command::new(&self.python)
                .arg(&self.script)
                .args(args)
                .output()
                .unwrap(),
            &format!("cri.py {}", args.first().copied().unwrap_or_default()),
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// RunPodSandbox with a hostPort to 80 and annotations, and its httpd container.
    pub fn pod(&self, name: &str, host_port: Option<u16>, annotations: &[(&str, &str)]) -> Pod {
        let mut args = vec![
            "pod".to_string(),
            self.sock.clone(),
            IMAGE.to_string(),
            name.to_string(),
            self.cgroup_parent.clone(),
        ];
        if let Some(port) = host_port {
            args.push(port.to_string());
        }
        args.extend(annotations.iter().map(|(k, v)| format!("{k}={v}")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = self.run(&refs);
        Pod {
            id: v["pod"].as_str().unwrap().to_string(),
            container: v["container"].as_str().unwrap().to_string(),
            ip: v["ip"].as_str().unwrap().to_string(),
        }
    }

    /// Runs a command in a pod's container: its exit code and output.
    pub fn exec(&self, pod: &Pod, cmd: &[&str]) -> (i64, String) {
        let mut args = vec!["exec", self.sock.as_str(), pod.container.as_str()];
        args.extend_from_slice(cmd);
        let v = self.run(&args);
        (
            v["exit"].as_i64().unwrap_or(-1),
            v["stdout"].as_str().unwrap_or_default().trim().to_string(),
        )
    }

    /// StopPodSandbox then RemovePodSandbox; the errors of both (none expected).
    pub fn remove(&self, pod: &Pod) -> Vec<String> {
        let v = self.run(&["remove", &self.sock, &pod.id]);
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Runs a command, panicking with its output if it fails; returns stdout.
pub fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Python with the CRI stubs (tests/runtimes/setup-python.sh), installed on first use.
pub fn cri_python() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtimes/setup-python.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
