//! The CNI error object and the spec's well-known codes.

use serde::{Deserialize, Serialize};

/// Well-known error codes (CNI spec §5 "Error"), plus this suite's plugin-specific ones (100+).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration; the message names key and value.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables; the message names them.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// The container network namespace is invalid (Go skel code).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// A requested address is taken, reserved (a gateway) or outside every range.
    pub const ADDRESS_UNAVAILABLE: u32 = 100;
    /// A range set has no free address left.
    pub const RANGE_EXHAUSTED: u32 = 101;
    /// The container and interface already hold an address in a range set.
    pub const ALREADY_ALLOCATED: u32 = 102;
    /// CHECK found the attachment differs from what ADD set up.
    pub const CHECK_FAILED: u32 = 103;
    /// Anything else (Go's `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: printed as JSON on stdout, with a non-zero exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{msg}")]
pub struct Error {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl Error {
    pub fn new(code: u32, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    /// Prefixes the message with what was being done: `allocate address: <msg>`.
    pub fn context(mut self, what: impl AsRef<str>) -> Error {
        self.msg = format!("{}: {}", what.as_ref(), self.msg);
        self
    }

    pub fn incompatible_version(msg: impl Into<String>) -> Error {
        Error::new(code::INCOMPATIBLE_VERSION, msg)
    }
    pub fn invalid_env(msg: impl Into<String>) -> Error {
        Error::new(code::INVALID_ENV, msg)
    }
    pub fn io(msg: impl Into<String>) -> Error {
        Error::new(code::IO_FAILURE, msg)
    }
    pub fn decoding(msg: impl Into<String>) -> Error {
        Error::new(code::DECODING_FAILURE, msg)
    }
    pub fn invalid_config(msg: impl Into<String>) -> Error {
        Error::new(code::INVALID_NETWORK_CONFIG, msg)
    }
    pub fn invalid_netns(msg: impl Into<String>) -> Error {
        Error::new(code::INVALID_NETNS, msg)
    }
    pub fn not_available(msg: impl Into<String>) -> Error {
        Error::new(code::NOT_AVAILABLE, msg)
    }
    pub fn check_failed(msg: impl Into<String>) -> Error {
        Error::new(code::CHECK_FAILED, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Error {
        Error::new(code::INTERNAL, msg)
    }
    /// Busy (a lock held past the wait): the runtime may retry.
    pub fn try_again_later(msg: impl Into<String>) -> Error {
        Error::new(code::TRY_AGAIN_LATER, msg)
    }

    /// The JSON object printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = serde_json::Value::String(self.details.clone());
        }
        v
    }
}

/// Adds a "while doing X" prefix to any error on its way to becoming a CNI error.
pub trait ResultExt<T> {
    fn context(self, what: impl AsRef<str>) -> Result<T, Error>;
}

impl<T> ResultExt<T> for Result<T, Error> {
    fn context(self, what: impl AsRef<str>) -> Result<T, Error> {
        self.map_err(|e| e.context(what))
    }
}
