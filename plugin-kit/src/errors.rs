//! One table from kernel and state errors to CNI error codes.

use cni::Error;

use crate::StateError;

/// A kernel error as a CNI error: failing to enter a netns is the spec's "invalid netns"
/// (8); anything else the kernel refuses is internal (999).
pub fn kernel_error(e: cni_netlink::Error) -> Error {
    match e {
        cni_netlink::Error::EnterNetns { .. } => Error::invalid_netns(e.to_string()),
        e => Error::internal(e.to_string()),
    }
}

/// State that cannot be written or read is an I/O failure (5); a lock another invocation
/// held past the wait is "try again later" (11).
pub fn state_error(e: StateError) -> Error {
    if e.is_timeout() {
        Error::try_again_later(e.to_string())
    } else {
        Error::io(e.to_string())
    }
}

/// `.cni()?` on a netlink result: the error mapped by [`kernel_error`]; `.cni_context(what)`
/// also says what was being done.
pub trait KernelResultExt<T> {
    fn cni(self) -> Result<T, Error>;
    fn cni_context(self, what: impl AsRef<str>) -> Result<T, Error>;
}

impl<T> KernelResultExt<T> for Result<T, cni_netlink::Error> {
    fn cni(self) -> Result<T, Error> {
        self.map_err(kernel_error)
    }
    fn cni_context(self, what: impl AsRef<str>) -> Result<T, Error> {
        self.map_err(|e| kernel_error(e).context(what))
    }
}
