//! host-local's allocation store and allocator: a directory per network, a file per address,
//! one flock for every writer, on-disk compatible with the reference host-local.

pub mod allocator;
pub mod disk;
pub mod error;
pub mod range;
mod safe_path;

pub use allocator::{Allocated, allocate};
pub use disk::{Allocation, AttachmentKey, Locked, NetnsRecord, Store};
pub use error::StoreError;
pub use range::{Range, RangeError, RangeSet, RangeSpec};
