//! Any bytes as one invocation of the macvlan plugin (see cni_fuzz_entries::split_invocation).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cni_fuzz_entries::plugin_input("macvlan", data);
});
