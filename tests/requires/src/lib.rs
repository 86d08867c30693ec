//! The tests' one skip policy. A test whose dependency is missing (root, the reference
//! plugins, a runtime, a tool) fails under CI (`CI` set) and under `scripts/test.sh`
//! (`CNI_TESTS_STRICT=1`), saying what is missing and how to get it; elsewhere it prints
//! `SKIPPED: <why>` and returns early. A kernel feature this kernel lacks is not a missing
//! install: the test names the VM test (`tests/vm/<name>`) that runs it on a kernel that has
//! it, and that VM test is part of the test command.
//!
//! ```no_run
//! #[test]
//! fn needs_root() {
//!     if !test_requires::root() {
//!         return;
//!     }
//!     // ...
//! }
//! ```

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Prints a skip past the test harness's capture of `eprintln!`, so that it shows.
fn report_skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Whether a missing dependency fails the test instead of skipping it.
pub fn strict() -> bool {
    let set = |key| std::env::var_os(key).is_some_and(|v| !v.is_empty() && v != "0");
    set("CI") || set("CNI_TESTS_STRICT")
}

/// Whether the test may go on: true when `present`. Otherwise it panics under CI and
/// `scripts/test.sh`, and prints `SKIPPED: ...` and returns false elsewhere.
pub fn require(present: bool, what: &str, how: &str) -> bool {
    if present {
        return true;
    }
    if strict() {
        panic!("missing {what}: {how}");
    }
    report_skip(&format!("missing {what}: {how}"));
    false
}

/// Root, which creating network namespaces needs.
pub fn root() -> bool {
    // /proc/self belongs to the process's effective uid.
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    require(
        is_root,
        "root",
        "the tests create network namespaces; run them as root",
    )
}

/// A program on PATH (or at an absolute path), with the Debian package that has it.
pub fn tool(name: &str) -> bool {
    require(find_tool(name), &format!("`{name}`"), &install_hint(name))
}

/// Whether a program is on PATH, or the path given exists.
pub fn find_tool(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// How to get a program the tests run: its Debian package, which `scripts/test.sh` installs.
pub fn install_hint(tool: &str) -> String {
    let package = match tool {
        "ip" | "bridge" | "tc" => "iproute2",
        "nft" => "nftables",
        "iptables" | "iptables-save" | "iptables-restore" | "ip6tables" | "ip6tables-save"
        | "ip6tables-restore" => "iptables",
        "conntrack" => "conntrack",
        "nsenter" | "unshare" => "util-linux",
        "busybox" => "busybox-static",
        "ping" => "iputils-ping",
        "dig" => "dnsutils",
        "podman" => "podman",
        "containerd" | "ctr" | "containerd-shim-runc-v2" => "containerd",
        "runc" => "runc",
        "conmon" => "conmon",
        "qemu-system-x86_64" => "qemu-system-x86",
        "sysctl" | "kill" => "procps",
        _ => return format!("install `{tool}`; scripts/test.sh installs what the tests need"),
    };
    format!("apt-get install {package}; scripts/test.sh installs it")
}

/// A kernel feature the test needs. This kernel may lack it: then the test is skipped,
/// also under CI, naming `tests/vm/<vm_test>`, which runs it on the VM's kernel as part of the
/// test command (and must exist).
pub fn kernel_feature(present: bool, feature: &str, vm_test: &str) -> bool {
    let covering = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vm")
        .join(vm_test)
        .join("test.sh");
    assert!(
        covering.is_file(),
        "tests/vm/{vm_test}, named as the VM test for {feature}, does not exist"
    );
    if !present {
        report_skip(&format!(
            "this kernel has no {feature}; tests/vm/{vm_test} runs it in the VM"
        ));
    }
    present
}

/// A test of how we fail on kernels *without* `feature`: on a kernel that has it, that
/// failure cannot be produced, so the test is skipped (nothing is missing, nothing to install).
pub fn kernel_without(has_feature: bool, feature: &str) -> bool {
    if has_feature {
        report_skip(&format!(
            "this kernel has {feature}; the test is of kernels without it"
        ));
    }
    !has_feature
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_debian_package() {
        assert!(install_hint("nft").contains("apt-get install nftables"));
        assert!(install_hint("iptables-save").contains("apt-get install iptables"));
        assert!(install_hint("frobnicate").contains("`frobnicate`"));
    }

    #[test]
    fn present_dependencies_never_skip() {
        assert!(require(true, "x", "y"));
        assert!(kernel_without(false, "ipvlan"));
        assert!(!kernel_without(true, "ipvlan"));
    }

    #[test]
    fn tools_are_found_on_path_or_by_path() {
        assert!(find_tool("sh"));
        assert!(find_tool("/bin/sh"));
        assert!(!find_tool("no-such-tool-anywhere"));
    }

    #[test]
    #[should_panic(expected = "does not exist")]
    fn a_vm_test_that_does_not_exist_cannot_cover_anything() {
        kernel_feature(false, "ipvlan", "no-such-vm-test");
    }

    #[test]
    fn vm_tests_named_for_kernel_features_exist() {
        assert!(kernel_feature(true, "ipvlan", "ipvlan"));
        assert!(kernel_feature(true, "bridge VLAN filtering", "netlink"));
    }
}
