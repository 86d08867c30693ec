//! The two implementations measured side by side.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Impl {
    Ours,
    Reference,
}

impl Impl {
    pub fn label(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Reference => "reference",
        }
    }
}

/// One implementation: a directory holding its plugin binaries (private copies made by the
/// bench), which is also the CNI_PATH its plugins get.
#[derive(Debug, Clone)]
pub struct Side {
    pub which: Impl,
    pub bin_dir: PathBuf,
}

impl Side {
    pub fn label(&self) -> &'static str {
        self.which.label()
    }

    pub fn bin(&self, plugin: &str) -> PathBuf {
        self.bin_dir.join(plugin)
    }

    pub fn has(&self, plugin: &str) -> bool {
        self.bin(plugin).is_file()
    }

    pub fn cni_path(&self) -> String {
        path_str(&self.bin_dir)
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
