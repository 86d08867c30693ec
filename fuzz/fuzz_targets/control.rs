//! Any bytes as what the DNS sidecar receives from the dnsname plugin: a control line and,
//! for `update`, the record it names (see cni_fuzz_entries::control_message).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cni_fuzz_entries::control_message(data);
});
