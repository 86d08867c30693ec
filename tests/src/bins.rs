//! Where the plugin binaries are.

use std::path::{Path, PathBuf};

/// Where Debian's `containernetworking-plugins` installs the reference Go plugins.
pub const REFERENCE_PLUGIN_DIR: &str = "/usr/lib/cni";

/// The directory holding our built binaries: `$CNI_TEST_BIN_DIR` when set, else the cargo
/// target directory of the running test (`target/debug/deps/<test>` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot locate the running test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has no parent directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Our binary `name` (a plugin type such as `bridge`). Panics when it has not been built.
pub fn plugin_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "plugin binary {} not found: run `cargo build --workspace` first \
             (or point CNI_TEST_BIN_DIR at the binaries)",
            path.display()
        );
    }
    path
}

/// The reference plugins' directory. Panics when the Debian package is missing.
pub fn reference_dir() -> PathBuf {
    let dir = Path::new(REFERENCE_PLUGIN_DIR);
    if !dir.is_dir() {
        panic!(
            "{REFERENCE_PLUGIN_DIR} not found: install the reference plugins with \
             `apt-get install containernetworking-plugins` (scripts/deps.sh does)"
        );
    }
    dir.to_path_buf()
}

/// Whether a test comparing with the reference plugins may run: they are installed, or the
/// test fails (CI, scripts/test.sh) or is skipped (elsewhere) by the tests' one skip policy.
pub fn require_reference_plugins() -> bool {
    test_requires::require(
        Path::new(REFERENCE_PLUGIN_DIR).join("bridge").is_file(),
        &format!("the reference plugins in {REFERENCE_PLUGIN_DIR}"),
        "apt-get install containernetworking-plugins; scripts/test.sh installs it",
    )
}

/// The reference Go plugin `name`. Panics when it is not installed.
pub fn reference_bin(name: &str) -> PathBuf {
    let path = reference_dir().join(name);
    if !path.is_file() {
        panic!(
            "reference plugin {} not found (package containernetworking-plugins)",
            path.display()
        );
    }
    path
}
