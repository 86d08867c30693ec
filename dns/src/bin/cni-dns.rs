//! The DNS sidecar the dnsname plugin starts; see `cni_dns::server::cli`.

fn main() -> std::process::ExitCode {
    cni_dns::server::cli::main()
}
