fn main() {
    // IPAM from our own host-local runs in this process (see cni::linked).
    cni::linked::link(vec![("host-local", &host_local::HostLocal)]);
    cni::skel::run("ptp", &ptp::Ptp);
}
