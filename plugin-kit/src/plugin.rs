//! The `impl Plugin` of a plugin in the kit's shape: each command delegates to one function
//! (its `add.rs`, `del.rs`, ... module's), written once here instead of in every crate.

/// Implements `cni::Plugin` for a unit struct by delegating each command to a function of
/// the same signature, minus `&self`:
///
/// ```ignore
/// plugin_kit::delegate_plugin!(Ptp {
///     add: add::add,
///     del: del::del,
///     check: check::check,
///     status: plugin_kit::ipam_status,
///     gc: gc::gc,
/// });
/// ```
///
/// Commands left out keep the trait's defaults (STATUS and GC succeed); `versions:` takes
/// the spec versions when they are not all of them.
#[macro_export]
macro_rules! delegate_plugin {
    ($plugin:ty { $($command:ident: $target:expr),* $(,)? }) => {
        impl ::cni::Plugin for $plugin {
            $( $crate::delegate_plugin!(@command $command $target); )*
        }
    };
    (@command versions $versions:expr) => {
        fn versions(&self) -> &'static [::cni::Version] {
            $versions
        }
    };
    (@command add $f:expr) => {
        fn add(&self, req: &::cni::Request) -> Result<::cni::CniResult, ::cni::Error> {
            $f(req)
        }
    };
    (@command $command:ident $f:expr) => {
        fn $command(&self, req: &::cni::Request) -> Result<(), ::cni::Error> {
            $f(req)
        }
    };
}
