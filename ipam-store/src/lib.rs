//! host-local store.
